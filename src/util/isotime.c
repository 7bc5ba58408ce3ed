/*
 * isotime.c - ISO 8601 date-times; see isotime.h.
 */
#include "util/isotime.h"

#include "util/error.h"

int64_t sb_days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void sb_civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yoe + era * 400) + (*m <= 2);
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Exactly w digits at s[*i]. */
static int digits(const char *s, size_t n, size_t *i, int w, unsigned *v) {
    *v = 0;
    for (int k = 0; k < w; k++, (*i)++) {
        if (*i >= n || !is_digit(s[*i]))
            return 0;
        *v = *v * 10 + (unsigned)(s[*i] - '0');
    }
    return 1;
}

static unsigned days_in_month(unsigned y, unsigned m) {
    static const unsigned dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

int sb_isotime_parse_clock(const char *s, size_t n, size_t *i, unsigned flags, int64_t *ticks) {
    unsigned h, mi, sec = 0;
    int64_t frac = 0;
    if (!digits(s, n, i, 2, &h) || *i >= n || s[(*i)++] != ':' || !digits(s, n, i, 2, &mi))
        return SB_EINVAL;
    if (*i < n && s[*i] == ':') {
        (*i)++;
        if (!digits(s, n, i, 2, &sec))
            return SB_EINVAL;
        if (*i < n && s[*i] == '.') {
            (*i)++;
            if (*i >= n || !is_digit(s[*i]))
                return SB_EINVAL;
            for (int64_t scale = SB_TICKS_PER_SECOND; *i < n && is_digit(s[*i]); (*i)++) {
                scale /= 10; /* digits finer than a tick do not count */
                frac += (s[*i] - '0') * scale;
            }
        }
    }
    if (h > 23 || mi > 59 || sec > ((flags & SB_ISOTIME_LEAP_SECOND) ? 60u : 59u))
        return SB_EINVAL;
    *ticks = ((int64_t)h * 3600 + mi * 60 + sec) * SB_TICKS_PER_SECOND + frac;
    return SB_OK;
}

int sb_isotime_parse(const char *s, size_t n, unsigned flags, int64_t *ticks) {
    size_t i = 0;
    unsigned y, mo, d;
    int64_t clock = 0;
    if (!digits(s, n, &i, 4, &y) || i >= n || s[i++] != '-' || !digits(s, n, &i, 2, &mo) || i >= n ||
        s[i++] != '-' || !digits(s, n, &i, 2, &d))
        return SB_EINVAL;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return SB_EINVAL;
    if (i < n && (s[i] == 'T' || s[i] == 't' || (s[i] == ' ' && (flags & SB_ISOTIME_SPACE_SEP)))) {
        i++;
        if (sb_isotime_parse_clock(s, n, &i, flags, &clock) != SB_OK)
            return SB_EINVAL;
    }
    int64_t offset_s = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (flags & SB_ISOTIME_OFFSET) && (s[i] == '+' || s[i] == '-' || s[i] == ' ')) {
        int sign = s[i] == '-' ? -1 : 1;
        unsigned oh, om;
        i++;
        if (!digits(s, n, &i, 2, &oh) || i >= n || s[i++] != ':' || !digits(s, n, &i, 2, &om) || oh > 23 ||
            om > 59)
            return SB_EINVAL;
        offset_s = sign * (int64_t)(oh * 3600 + om * 60);
    }
    if (i != n)
        return SB_EINVAL;
    *ticks = (sb_days_from_civil(y, mo, d) * 86400 - offset_s) * SB_TICKS_PER_SECOND + clock;
    return SB_OK;
}
