/*
 * libFuzzer target for the timing wheel: every input is a program of arm,
 * stop, advance and callback-behaviour operations checked against a model
 * (fuzz/wheel_model.h). `make fuzz` runs it.
 */
#include <stdlib.h>

#include "wheel_model.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (wheel_model_run(data, size) != 0)
        abort();
    return 0;
}
