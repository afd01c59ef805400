/*
 * The timing wheel against its model (fuzz/wheel_model.h) on pseudo-random
 * operation programs: the same checks the fuzzer makes, on a fixed sample,
 * so every `make test` covers them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../fuzz/wheel_model.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint8_t next_byte(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint8_t)(rng >> 24);
}

static void test_wheel_matches_model_on_random_operation_programs(void **state)
{
    (void)state;
    static uint8_t prog[5 * 4000];
    for (int run = 0; run < 300; run++) {
        for (size_t i = 0; i < sizeof prog; i++)
            prog[i] = next_byte();
        assert_int_equal(wheel_model_run(prog, sizeof prog), 0);
    }
}

static void test_wheel_fires_timers_armed_in_the_past_on_the_next_pass(void **state)
{
    (void)state;
    /* op 1: arm timer 1 at now + 1 ns - 200 ns, in the past; op 3: advance
     * time by 1 ns and run the wheel, which must fire it */
    const uint8_t arm_past[] = {1, 1, 0, 0, 200, 3, 0, 0, 0, 0};
    assert_int_equal(wheel_model_run(arm_past, sizeof arm_past), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wheel_matches_model_on_random_operation_programs),
        cmocka_unit_test(test_wheel_fires_timers_armed_in_the_past_on_the_next_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
