/*
 * store.h - one minute of platform metrics as a fixed-size record, the values
 * of a metric read from it, and the 93-day store of records on disk.
 *
 * A record (sb_metrics_minute) holds everything the ten metrics need for one
 * UTC minute, at the finest dimension grain: counters per endpoint and close
 * category, and gauges (sum, min, max, samples) per endpoint plus one for all
 * endpoints together (a gauge's maximum over endpoints is not the maximum of
 * their sum, so the combined gauge is kept, not derived).  Everything a
 * reader wants - a metric, a dimension value or aggregated away, an
 * aggregation over many minutes - is computed from records by the point
 * functions below, the one definition shared by the API, the CLI, the
 * AllMetrics export and the tests.
 *
 * Files: <data_dir>/metrics/YYYY-MM-DD.pt1m, one per UTC day, 1440 slots of
 * SB_METRICS_RECORD_SIZE bytes; minute-of-day N lives at offset
 * N * SB_METRICS_RECORD_SIZE (a hole or a short file means "no data").  Each
 * slot is a header (magic, format version, size, checksum of the payload)
 * and the record in native byte order: the store is this machine's, not an
 * interchange format.  A slot is written whole with one pwrite, so writing
 * the same minute again replaces it; a reader that races a write sees a bad
 * checksum and treats the slot as absent.  Day files older than the
 * retention are deleted.
 *
 * Threads: sb_metrics_store_write/prune run on the log writer thread only
 * (the one writer); scan and day_messages may run on any thread (API jobs on
 * the libuv threadpool, the CLI, start-up).
 */
#ifndef SB_METRICS_STORE_H
#define SB_METRICS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/metrics.h"

#define SB_METRICS_RETENTION_DAYS 93
#define SB_METRICS_MINUTES_PER_DAY 1440
#define SB_METRICS_DIR "metrics"
#define SB_METRICS_FILE_SUFFIX ".pt1m"

typedef struct sb_metrics_gauge {
    double sum, min, max; /* over the samples and every change within the minute */
    uint32_t count;       /* samples (one per second, plus the minute's first) */
    uint32_t reserved;
} sb_metrics_gauge;

typedef struct sb_metrics_minute {
    int64_t minute; /* minutes since the epoch, UTC */
    uint64_t opened[SB_EP_COUNT];
    uint64_t closed[SB_EP_COUNT][SB_CC_COUNT];
    uint64_t inbound_bytes, outbound_bytes, messages;
    uint64_t operations, user_errors, system_errors;
    sb_metrics_gauge connections[SB_EP_COUNT + 1]; /* [SB_EP_COUNT]: all endpoints together */
    sb_metrics_gauge quota;                        /* percent of the tier's connection limit */
    sb_metrics_gauge server_load;                  /* percent of the machine's CPU used by the process */
} sb_metrics_minute;

#define SB_METRICS_RECORD_HEADER 16
#define SB_METRICS_RECORD_SIZE (SB_METRICS_RECORD_HEADER + sizeof(sb_metrics_minute))

/* ---- values ---- */

/* One aggregate of a metric: a minute's, or many minutes' combined with sb_metrics_point_add. */
typedef struct sb_metrics_point {
    double total, minimum, maximum;
    uint64_t count; /* samples: 1 per minute for counters and percentages, seconds for gauges */
} sb_metrics_point;

/* Which dimension values a series covers: an endpoint / category index, or SB_METRICS_ALL (aggregated away).
 */
#define SB_METRICS_ALL (-1)

/* The aggregate of metric id in minute m for one series.  A dimension the metric lacks is ignored. */
void sb_metrics_minute_point(const sb_metrics_minute *m, sb_metric_id id, int endpoint, int category,
                             sb_metrics_point *out);
/* Combine b into a (a->count == 0 means empty: a becomes b). */
void sb_metrics_point_add(sb_metrics_point *a, const sb_metrics_point *b);
/* The value of one aggregation (average = total / count). */
double sb_metrics_point_value(const sb_metrics_point *p, sb_metric_aggregation agg);

/* Fold b into a (same minute): counters add, gauges combine.  Used when a restart splits a minute. */
void sb_metrics_minute_merge(sb_metrics_minute *a, const sb_metrics_minute *b);
/* Start an empty minute whose gauges sit at the given levels (connections per endpoint; quota percent). */
void sb_metrics_minute_init(sb_metrics_minute *m, int64_t minute, const uint64_t live[SB_EP_COUNT],
                            double quota_percent);

/* ---- files ---- */

/* "YYYY-MM-DD" of a day number (days since the epoch). */
void sb_metrics_day_name(int64_t day, char out[11]);

typedef struct sb_metrics_store sb_metrics_store;

/* dir: <data_dir>/metrics (created if missing).  NULL with a message in err when it cannot be created. */
sb_metrics_store *sb_metrics_store_open(const char *dir, char *err, size_t errlen);
void sb_metrics_store_close(sb_metrics_store *st);
/* Write one minute's slot (writer thread).  SB_OK or -errno (message in err). */
int sb_metrics_store_write(sb_metrics_store *st, const sb_metrics_minute *m, char *err, size_t errlen);
/* Delete day files older than SB_METRICS_RETENTION_DAYS before now_day; at most once an hour (writer thread).
 */
void sb_metrics_store_prune(sb_metrics_store *st, int64_t now_day);

/*
 * Call fn for every stored minute in [from, to) (minutes since the epoch), in order.  fn returns non-zero to
 * stop.  Reads a day file at a time in bounded chunks; missing files and bad slots are skipped.  Returns
 * SB_OK or -errno for an unreadable (not missing) file.  Any thread.
 */
int sb_metrics_store_scan(const char *dir, int64_t from, int64_t to,
                          int (*fn)(const sb_metrics_minute *m, void *arg), void *arg);
/* Read one minute; SB_OK, or SB_ENOENT when absent. */
int sb_metrics_store_read(const char *dir, int64_t minute, sb_metrics_minute *out);
/* Sum of MessageCount over the stored minutes of day, strictly before minute `before`. */
uint64_t sb_metrics_store_day_messages(const char *dir, int64_t day, int64_t before);

#endif
