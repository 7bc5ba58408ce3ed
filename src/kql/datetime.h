/*
 * datetime.h - KQL datetime and timespan values as 100 ns ticks, and their
 * text forms.
 *
 * Owns: the one representation of time inside the query engine.  A datetime
 * is a signed tick count since 1970-01-01T00:00:00Z, limited to the years
 * 0001..9999 (what KQL and the workspace's fixed-width text can hold); a
 * timespan is a signed tick count.  In SQL a datetime travels as the
 * workspace's canonical text 'YYYY-MM-DDTHH:MM:SS.fffffffZ' (28 bytes, so
 * text order is time order and the TimeGenerated index serves range
 * filters) and a timespan as an INTEGER of ticks.
 *
 * Also here: ISO-8601 durations and intervals (the Logs API `timespan`
 * parameter: "PT1H", "start/end", "start/duration", "duration/end").
 *
 * Pure functions, no allocation; called by the lexer (literals), the SQL
 * functions (arithmetic, bin) and result formatting.
 */
#ifndef SB_KQL_DATETIME_H
#define SB_KQL_DATETIME_H

#include <stddef.h>
#include <stdint.h>

#define SB_KQL_TICKS_PER_SECOND INT64_C(10000000)
#define SB_KQL_TICKS_PER_DAY (INT64_C(86400) * SB_KQL_TICKS_PER_SECOND)
#define SB_KQL_DT_TEXT_LEN 28                      /* 2026-01-02T03:04:05.1234567Z */
#define SB_KQL_DT_MIN INT64_C(-621355968000000000) /* 0001-01-01T00:00:00Z */
#define SB_KQL_DT_MAX INT64_C(2534023007999999999) /* 9999-12-31T23:59:59.9999999Z */

/* Parse a datetime: "YYYY-MM-DD", optionally followed by 'T' or ' ' and HH:MM[:SS[.f{1,7}]], optionally 'Z'
 * (surrounding blanks allowed).  SB_OK or SB_EINVAL (bad form, out of range). */
int sb_kql_dt_parse(const char *s, size_t n, int64_t *ticks);
/* The canonical 28-byte form plus NUL. */
void sb_kql_dt_format(int64_t ticks, char out[SB_KQL_DT_TEXT_LEN + 1]);
/* The Logs API form: canonical with trailing fraction zeros dropped ("...:05Z", "...:05.1Z").  Returns
 * length. */
size_t sb_kql_dt_format_api(int64_t ticks, char out[SB_KQL_DT_TEXT_LEN + 1]);
/* Is a datetime within the supported range? */
static inline int sb_kql_dt_valid(int64_t ticks) {
    return ticks >= SB_KQL_DT_MIN && ticks <= SB_KQL_DT_MAX;
}

/* "[-][d.]hh:mm:ss[.fffffff]" (the Logs API form of a timespan).  out must hold 40 bytes.  Returns length. */
size_t sb_kql_ts_format(int64_t ticks, char out[40]);
/* A timespan from text: a literal like "1.5h", "30s", "100ms", "2d", or "[-][d.]hh:mm[:ss[.f]]". */
int sb_kql_ts_parse(const char *s, size_t n, int64_t *ticks);
/* Ticks in one unit named by a KQL timespan suffix ("d", "h", "m", "min", "s", "ms", "tick", "microsecond",
 * ...); 0 when the suffix is not one. */
int64_t sb_kql_ts_unit(const char *s, size_t n);

/* An ISO-8601 duration "P[nW][nD][T[nH][nM][n[.f]S]]" (years and months are refused: they have no fixed
 * length).  SB_OK or SB_EINVAL. */
int sb_kql_iso_duration(const char *s, size_t n, int64_t *ticks);
/* The Logs API timespan: a duration (ending at now), "start/end", "start/duration" or "duration/end".
 * SB_OK with [*start, *end] or SB_EINVAL. */
int sb_kql_iso_interval(const char *s, int64_t now, int64_t *start, int64_t *end);

/* The wall clock in ticks. */
int64_t sb_kql_now(void);

#endif
