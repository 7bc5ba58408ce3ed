/*
 * datetime.c - datetime and timespan ticks and text; see datetime.h.
 *
 * Calendar arithmetic and parsing are util/isotime's (proleptic Gregorian,
 * exact for every year 0001..9999, no libc time zone state: thread-safe).
 */
#include "kql/datetime.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/error.h"
#include "util/isotime.h"

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

int sb_kql_dt_parse(const char *s, size_t n, int64_t *ticks) {
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    /* Kusto's epoch is 1970 too; a 4-digit year keeps every parse inside SB_KQL_DT_MIN..MAX */
    return sb_isotime_parse(s, n, SB_ISOTIME_SPACE_SEP, ticks);
}

static char *put_digits(char *o, unsigned v, int w) {
    for (int k = w - 1; k >= 0; k--) {
        o[k] = (char)('0' + v % 10);
        v /= 10;
    }
    return o + w;
}

void sb_kql_dt_format(int64_t t, char out[SB_KQL_DT_TEXT_LEN + 1]) {
    if (t < SB_KQL_DT_MIN)
        t = SB_KQL_DT_MIN;
    if (t > SB_KQL_DT_MAX)
        t = SB_KQL_DT_MAX;
    int64_t days =
        t >= 0 ? t / SB_KQL_TICKS_PER_DAY : -((-t + SB_KQL_TICKS_PER_DAY - 1) / SB_KQL_TICKS_PER_DAY);
    int64_t rem = t - days * SB_KQL_TICKS_PER_DAY;
    int y;
    unsigned m, d;
    sb_civil_from_days(days, &y, &m, &d);
    unsigned sod = (unsigned)(rem / SB_KQL_TICKS_PER_SECOND);
    char *o = put_digits(out, (unsigned)y, 4);
    *o++ = '-';
    o = put_digits(o, m, 2);
    *o++ = '-';
    o = put_digits(o, d, 2);
    *o++ = 'T';
    o = put_digits(o, sod / 3600, 2);
    *o++ = ':';
    o = put_digits(o, sod / 60 % 60, 2);
    *o++ = ':';
    o = put_digits(o, sod % 60, 2);
    *o++ = '.';
    o = put_digits(o, (unsigned)(rem % SB_KQL_TICKS_PER_SECOND), 7);
    *o++ = 'Z';
    *o = '\0';
}

size_t sb_kql_dt_format_api(int64_t ticks, char out[SB_KQL_DT_TEXT_LEN + 1]) {
    sb_kql_dt_format(ticks, out);
    size_t n = SB_KQL_DT_TEXT_LEN - 1; /* index of 'Z' */
    while (out[n - 1] == '0')
        n--;
    if (out[n - 1] == '.')
        n--;
    out[n++] = 'Z';
    out[n] = '\0';
    return n;
}

size_t sb_kql_ts_format(int64_t t, char out[40]) {
    char *o = out;
    uint64_t u = t < 0 ? (uint64_t)0 - (uint64_t)t : (uint64_t)t;
    if (t < 0)
        *o++ = '-';
    uint64_t frac = u % (uint64_t)SB_KQL_TICKS_PER_SECOND, secs = u / (uint64_t)SB_KQL_TICKS_PER_SECOND;
    uint64_t days = secs / 86400;
    secs %= 86400;
    if (days)
        o += sprintf(o, "%llu.", (unsigned long long)days);
    o += sprintf(o, "%02u:%02u:%02u", (unsigned)(secs / 3600), (unsigned)(secs / 60 % 60),
                 (unsigned)(secs % 60));
    if (frac)
        o += sprintf(o, ".%07u", (unsigned)frac);
    *o = '\0';
    return (size_t)(o - out);
}

int64_t sb_kql_ts_unit(const char *s, size_t n) {
    static const struct {
        const char *name;
        int64_t ticks;
    } units[] = {
        {"d", SB_KQL_TICKS_PER_DAY},
        {"day", SB_KQL_TICKS_PER_DAY},
        {"days", SB_KQL_TICKS_PER_DAY},
        {"h", 3600 * SB_KQL_TICKS_PER_SECOND},
        {"hr", 3600 * SB_KQL_TICKS_PER_SECOND},
        {"hrs", 3600 * SB_KQL_TICKS_PER_SECOND},
        {"hour", 3600 * SB_KQL_TICKS_PER_SECOND},
        {"hours", 3600 * SB_KQL_TICKS_PER_SECOND},
        {"m", 60 * SB_KQL_TICKS_PER_SECOND},
        {"min", 60 * SB_KQL_TICKS_PER_SECOND},
        {"minute", 60 * SB_KQL_TICKS_PER_SECOND},
        {"minutes", 60 * SB_KQL_TICKS_PER_SECOND},
        {"s", SB_KQL_TICKS_PER_SECOND},
        {"sec", SB_KQL_TICKS_PER_SECOND},
        {"second", SB_KQL_TICKS_PER_SECOND},
        {"seconds", SB_KQL_TICKS_PER_SECOND},
        {"ms", 10000},
        {"milli", 10000},
        {"millis", 10000},
        {"millisec", 10000},
        {"millisecond", 10000},
        {"milliseconds", 10000},
        {"microsecond", 10},
        {"microseconds", 10},
        {"tick", 1},
        {"ticks", 1},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strlen(units[i].name) == n && strncasecmp(units[i].name, s, n) == 0)
            return units[i].ticks;
    return 0;
}

/* A decimal number (digits, optional fraction) scaled by unit, without floating point for whole numbers. */
static int scaled(const char *s, size_t n, size_t *i, int64_t unit, int64_t *out) {
    int64_t whole = 0;
    size_t start = *i;
    while (*i < n && is_digit(s[*i])) {
        if (whole > INT64_MAX / 10 / (unit ? unit : 1))
            return SB_EINVAL;
        whole = whole * 10 + (s[*i] - '0');
        (*i)++;
    }
    int64_t v = whole * unit, fscale = unit;
    if (*i < n && s[*i] == '.') {
        (*i)++;
        while (*i < n && is_digit(s[*i])) {
            fscale /= 10; /* digits finer than a tick do not count */
            v += (s[*i] - '0') * fscale;
            (*i)++;
        }
    }
    if (*i == start)
        return SB_EINVAL;
    *out = v;
    return SB_OK;
}

int sb_kql_ts_parse(const char *s, size_t n, int64_t *ticks) {
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    size_t i = 0;
    int neg = 0;
    if (i < n && s[i] == '-')
        neg = 1, i++;
    if (memchr(s, ':', n)) {
        /* [d.]hh:mm[:ss[.f]] */
        unsigned days = 0;
        size_t j = i;
        while (j < n && is_digit(s[j]))
            j++;
        if (j < n && s[j] == '.') {
            if (j - i > 7)
                return SB_EINVAL;
            for (; i < j; i++)
                days = days * 10 + (unsigned)(s[i] - '0');
            i++;
        }
        int64_t clock;
        if (sb_isotime_parse_clock(s, n, &i, 0, &clock) != SB_OK || i != n)
            return SB_EINVAL;
        int64_t v = (int64_t)days * 86400 * SB_KQL_TICKS_PER_SECOND + clock;
        *ticks = neg ? -v : v;
        return SB_OK;
    }
    size_t numstart = i;
    while (i < n && (is_digit(s[i]) || s[i] == '.'))
        i++;
    int64_t unit = sb_kql_ts_unit(s + i, n - i);
    if (!unit || i == numstart)
        return SB_EINVAL;
    size_t k = numstart;
    int64_t v;
    if (scaled(s, i, &k, unit, &v) != SB_OK || k != i)
        return SB_EINVAL;
    *ticks = neg ? -v : v;
    return SB_OK;
}

int sb_kql_iso_duration(const char *s, size_t n, int64_t *ticks) {
    size_t i = 0;
    if (i >= n || (s[i] != 'P' && s[i] != 'p'))
        return SB_EINVAL;
    i++;
    int in_time = 0, any = 0;
    int64_t total = 0;
    while (i < n) {
        if (s[i] == 'T' || s[i] == 't') {
            if (in_time)
                return SB_EINVAL;
            in_time = 1;
            i++;
            continue;
        }
        size_t start = i;
        while (i < n && (is_digit(s[i]) || s[i] == '.' || s[i] == ','))
            i++;
        if (i == start || i >= n)
            return SB_EINVAL;
        char u = (char)(s[i] | 0x20);
        int64_t unit;
        if (!in_time && u == 'w')
            unit = 7 * SB_KQL_TICKS_PER_DAY;
        else if (!in_time && u == 'd')
            unit = SB_KQL_TICKS_PER_DAY;
        else if (in_time && u == 'h')
            unit = 3600 * SB_KQL_TICKS_PER_SECOND;
        else if (in_time && u == 'm')
            unit = 60 * SB_KQL_TICKS_PER_SECOND;
        else if (in_time && u == 's')
            unit = SB_KQL_TICKS_PER_SECOND;
        else
            return SB_EINVAL; /* years and months have no fixed length */
        char num[32];
        size_t len = i - start;
        if (len >= sizeof num)
            return SB_EINVAL;
        memcpy(num, s + start, len);
        for (size_t k = 0; k < len; k++)
            if (num[k] == ',')
                num[k] = '.';
        size_t k = 0;
        int64_t v;
        if (scaled(num, len, &k, unit, &v) != SB_OK || k != len || total > INT64_MAX - v)
            return SB_EINVAL;
        total += v;
        any = 1;
        i++;
    }
    if (!any)
        return SB_EINVAL;
    *ticks = total;
    return SB_OK;
}

int sb_kql_iso_interval(const char *s, int64_t now, int64_t *start, int64_t *end) {
    size_t n = strlen(s);
    const char *slash = memchr(s, '/', n);
    int64_t a, b;
    if (!slash) {
        if (sb_kql_iso_duration(s, n, &a) != SB_OK)
            return SB_EINVAL;
        *start = now - a;
        *end = now;
        return SB_OK;
    }
    size_t la = (size_t)(slash - s), lb = n - la - 1;
    const char *sb = slash + 1;
    int a_dt = sb_kql_dt_parse(s, la, &a) == SB_OK, b_dt = sb_kql_dt_parse(sb, lb, &b) == SB_OK;
    if (a_dt && b_dt) {
        *start = a;
        *end = b;
    } else if (a_dt && sb_kql_iso_duration(sb, lb, &b) == SB_OK) {
        *start = a;
        *end = a + b;
    } else if (b_dt && sb_kql_iso_duration(s, la, &a) == SB_OK) {
        *start = b - a;
        *end = b;
    } else {
        return SB_EINVAL;
    }
    return *start <= *end ? SB_OK : SB_EINVAL;
}

int64_t sb_kql_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * SB_KQL_TICKS_PER_SECOND + ts.tv_nsec / 100;
}
