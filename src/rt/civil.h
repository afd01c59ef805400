/*
 * Calendar arithmetic for the modules that read and write timestamps
 * (src/pg, src/db): days since 1970-01-01 of a proleptic Gregorian date and
 * back, with H. Hinnant's algorithms (no tables, no time zone, no libc, any
 * year). Private; static inline so each user compiles its own copy.
 */
#ifndef WEAVE_SRC_RT_CIVIL_H
#define WEAVE_SRC_RT_CIVIL_H

#include <stdint.h>

#define US_PER_DAY INT64_C(86400000000)

static inline int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static inline void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

#endif
