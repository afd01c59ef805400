/*
 * src/grpc/timeout.c: the grpc-timeout header, in and out. A value is 1 to 8
 * digits and a unit letter; weave's deadlines are int64_t nanoseconds on the
 * monotonic clock, so parsing multiplies out (saturating: 99999999 hours
 * does not fit in 63 bits of nanoseconds) and formatting picks the unit.
 *
 * Formatting prefers an exact value in the coarsest unit that holds it in 8
 * digits; when no unit is exact it rounds up in the finest unit that fits,
 * which loses the least while never telling the peer a deadline earlier
 * than ours. INT64_MAX ns is 2562048 hours rounded up, so every positive
 * value has a form.
 */
#include "grpc/grpc_internal.h"

#include <errno.h>
#include <stdio.h>

#include "weave/rt.h"

#define TIMEOUT_DIGITS_MAX 8
#define TIMEOUT_VALUE_MAX  INT64_C(99999999)

static const struct {
    char unit;
    int64_t ns;
} units[] = {
    /* coarse to fine */
    {'H', INT64_C(3600000000000)}, {'M', INT64_C(60000000000)}, {'S', INT64_C(1000000000)},
    {'m', INT64_C(1000000)},       {'u', INT64_C(1000)},        {'n', 1},
};

#define UNIT_COUNT (sizeof units / sizeof units[0])

int grpc_timeout_parse(const char *s, size_t n, int64_t *ns)
{
    if (n < 2 || n > TIMEOUT_DIGITS_MAX + 1)
        return -EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    for (size_t u = 0; u < UNIT_COUNT; u++) {
        if (units[u].unit == s[n - 1]) {
            *ns = v > INT64_MAX / units[u].ns ? INT64_MAX : v * units[u].ns;
            return 0;
        }
    }
    return -EINVAL;
}

int64_t grpc_timeout_deadline(int64_t now, int64_t ns)
{
    int64_t at;
    if (__builtin_add_overflow(now, ns, &at))
        return ns > 0 ? WV_NEVER : INT64_MIN;
    return at;
}

int grpc_timeout_format(int64_t ns, char out[GRPC_TIMEOUT_MAX])
{
    if (ns <= 0)
        return -ETIMEDOUT;
    size_t pick = UNIT_COUNT;
    int64_t value = 0;
    for (size_t u = 0; u < UNIT_COUNT && pick == UNIT_COUNT; u++) {
        if (ns % units[u].ns == 0 && ns / units[u].ns <= TIMEOUT_VALUE_MAX) {
            pick = u;
            value = ns / units[u].ns;
        }
    }
    for (size_t u = UNIT_COUNT; u-- > 0 && pick == UNIT_COUNT;) {
        int64_t up = ns / units[u].ns + (ns % units[u].ns != 0);
        if (up <= TIMEOUT_VALUE_MAX) {
            pick = u;
            value = up;
        }
    }
    /* unreachable: INT64_MAX ns is 2562048H */
    if (pick == UNIT_COUNT)
        return -ERANGE;
    return snprintf(out, GRPC_TIMEOUT_MAX, "%lld%c", (long long)value, units[pick].unit);
}

int grpc_timeout_format_deadline(int64_t deadline, int64_t now, char out[GRPC_TIMEOUT_MAX])
{
    if (deadline == WV_NEVER) {
        out[0] = '\0';
        return 0;
    }
    int64_t left;
    if (__builtin_sub_overflow(deadline, now, &left))
        left = deadline > now ? INT64_MAX : INT64_MIN;
    return grpc_timeout_format(left, out);
}
