/*
 * isotime.h - ISO 8601 date-times: the calendar arithmetic and the one parser
 * every module uses (KQL datetime literals and values, the metrics API's
 * timespan, `--since` on the command line), so they agree on what a date is.
 *
 * Times are 100 ns ticks since 1970-01-01T00:00:00Z (.NET's and Kusto's
 * resolution; negative before the epoch).  Calendar arithmetic is the
 * proleptic Gregorian days-from-civil algorithm: exact for years 1..9999, no
 * libc time zone state, thread-safe.  Not here: formatting (each output has
 * its own fixed shape: kql/datetime.c, diag/record.c).
 */
#ifndef SB_UTIL_ISOTIME_H
#define SB_UTIL_ISOTIME_H

#include <stddef.h>
#include <stdint.h>

#define SB_TICKS_PER_SECOND INT64_C(10000000)

/* Days since 1970-01-01 of a civil date (m 1..12, d 1..31), and back. */
int64_t sb_days_from_civil(int64_t y, unsigned m, unsigned d);
void sb_civil_from_days(int64_t days, int *y, unsigned *m, unsigned *d);

enum {
    SB_ISOTIME_SPACE_SEP = 1,   /* ' ' may separate the date and the time (KQL) */
    SB_ISOTIME_OFFSET = 2,      /* a +HH:MM / -HH:MM offset may follow; ' ' stands for a '+' a URL decoder turned
                                   into a space */
    SB_ISOTIME_LEAP_SECOND = 4, /* :60 is accepted (as the first second of the next minute) */
};

/*
 * "YYYY-MM-DD", optionally followed by 'T'/'t' (or ' ' with SB_ISOTIME_SPACE_SEP) and HH:MM[:SS[.fraction]],
 * optionally followed by 'Z'/'z' or (SB_ISOTIME_OFFSET) an offset.  Fraction digits past the seventh are
 * truncated.  The whole of s[0..n) must match.  SB_OK with *ticks, or SB_EINVAL (bad form, no such date or
 * time, year 0).
 */
int sb_isotime_parse(const char *s, size_t n, unsigned flags, int64_t *ticks);

/*
 * The time-of-day part alone, HH:MM[:SS[.fraction]] at s[*i] (also the clock of a KQL timespan): hours 0-23,
 * minutes and seconds 0-59 (60 with SB_ISOTIME_LEAP_SECOND), fraction digits past the seventh truncated.  SB_OK
 * with *ticks since midnight and *i past it (what follows is the caller's), or SB_EINVAL.
 */
int sb_isotime_parse_clock(const char *s, size_t n, size_t *i, unsigned flags, int64_t *ticks);

#endif
