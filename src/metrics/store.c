/*
 * store.c - the minute record's values and the 93-day store; see store.h.
 *
 * Owns the meaning of a record (which fields make which metric, how a
 * dimension is aggregated away, how minutes combine) and the day files.
 * Nothing here knows the event loop, the server or the pipeline: the writer
 * thread calls write/prune through a job metrics.c queues (diag.h
 * sb_diag_run_on_writer), readers call scan.
 */
#include "metrics/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/error.h"

#define RECORD_MAGIC UINT32_C(0x314d4253) /* "SBM1" */
#define RECORD_VERSION 1
#define SCAN_CHUNK 64 /* slots per pread: bounds a reader's buffer to ~40 KB */

_Static_assert(sizeof(sb_metrics_minute) % 8 == 0, "the record must have no tail padding");
_Static_assert(sizeof(sb_metrics_minute) < 65536, "the record size must fit the header's 16 bits");

/* ---- values ----------------------------------------------------------------------------------- */

static void counter_point(double v, sb_metrics_point *out) {
    out->total = out->minimum = out->maximum = v;
    out->count = 1;
}

static void gauge_point(const sb_metrics_gauge *g, sb_metrics_point *out) {
    out->total = g->sum;
    out->minimum = g->min;
    out->maximum = g->max;
    out->count = g->count;
}

static double percent(uint64_t part, uint64_t whole) {
    return whole ? (double)part * 100.0 / (double)whole : 0.0;
}

void sb_metrics_minute_point(const sb_metrics_minute *m, sb_metric_id id, int endpoint, int category,
                             sb_metrics_point *out) {
    int e0 = 0, e1 = SB_EP_COUNT, c0 = 0, c1 = SB_CC_COUNT;
    if (endpoint >= 0 && endpoint < SB_EP_COUNT)
        e0 = endpoint, e1 = endpoint + 1;
    if (category >= 0 && category < SB_CC_COUNT)
        c0 = category, c1 = category + 1;
    uint64_t sum = 0;
    switch (id) {
    case SB_METRIC_CONNECTION_CLOSE_COUNT:
        for (int e = e0; e < e1; e++)
            for (int c = c0; c < c1; c++)
                sum += m->closed[e][c];
        counter_point((double)sum, out);
        return;
    case SB_METRIC_CONNECTION_OPEN_COUNT:
        for (int e = e0; e < e1; e++)
            sum += m->opened[e];
        counter_point((double)sum, out);
        return;
    case SB_METRIC_CONNECTION_COUNT:
        gauge_point(&m->connections[e1 - e0 == 1 ? e0 : SB_EP_COUNT], out);
        return;
    case SB_METRIC_CONNECTION_QUOTA_UTILIZATION:
        gauge_point(&m->quota, out);
        return;
    case SB_METRIC_SERVER_LOAD:
        gauge_point(&m->server_load, out);
        return;
    case SB_METRIC_INBOUND_TRAFFIC:
        counter_point((double)m->inbound_bytes, out);
        return;
    case SB_METRIC_OUTBOUND_TRAFFIC:
        counter_point((double)m->outbound_bytes, out);
        return;
    case SB_METRIC_MESSAGE_COUNT:
        counter_point((double)m->messages, out);
        return;
    case SB_METRIC_SYSTEM_ERRORS:
        counter_point(percent(m->system_errors, m->operations), out);
        return;
    case SB_METRIC_USER_ERRORS:
        counter_point(percent(m->user_errors, m->operations), out);
        return;
    case SB_METRIC_COUNT:
        break;
    }
    memset(out, 0, sizeof *out);
}

void sb_metrics_point_add(sb_metrics_point *a, const sb_metrics_point *b) {
    if (!b->count)
        return;
    if (!a->count) {
        *a = *b;
        return;
    }
    a->total += b->total;
    a->count += b->count;
    if (b->minimum < a->minimum)
        a->minimum = b->minimum;
    if (b->maximum > a->maximum)
        a->maximum = b->maximum;
}

double sb_metrics_point_value(const sb_metrics_point *p, sb_metric_aggregation agg) {
    switch (agg) {
    case SB_AGG_AVERAGE:
        return p->count ? p->total / (double)p->count : 0.0;
    case SB_AGG_COUNT:
        return (double)p->count;
    case SB_AGG_MINIMUM:
        return p->minimum;
    case SB_AGG_MAXIMUM:
        return p->maximum;
    case SB_AGG_TOTAL:
    case SB_AGG_N:
        break;
    }
    return p->total;
}

static void gauge_merge(sb_metrics_gauge *a, const sb_metrics_gauge *b) {
    if (!b->count)
        return;
    if (!a->count) {
        *a = *b;
        return;
    }
    a->sum += b->sum;
    a->count += b->count;
    if (b->min < a->min)
        a->min = b->min;
    if (b->max > a->max)
        a->max = b->max;
}

void sb_metrics_minute_merge(sb_metrics_minute *a, const sb_metrics_minute *b) {
    for (int e = 0; e < SB_EP_COUNT; e++) {
        a->opened[e] += b->opened[e];
        for (int c = 0; c < SB_CC_COUNT; c++)
            a->closed[e][c] += b->closed[e][c];
    }
    a->inbound_bytes += b->inbound_bytes;
    a->outbound_bytes += b->outbound_bytes;
    a->messages += b->messages;
    a->operations += b->operations;
    a->user_errors += b->user_errors;
    a->system_errors += b->system_errors;
    for (int e = 0; e <= SB_EP_COUNT; e++)
        gauge_merge(&a->connections[e], &b->connections[e]);
    gauge_merge(&a->quota, &b->quota);
    gauge_merge(&a->server_load, &b->server_load);
}

void sb_metrics_minute_init(sb_metrics_minute *m, int64_t minute, const uint64_t live[SB_EP_COUNT],
                            double quota_percent) {
    memset(m, 0, sizeof *m);
    m->minute = minute;
    uint64_t all = 0;
    for (int e = 0; e < SB_EP_COUNT; e++) {
        m->connections[e].min = m->connections[e].max = (double)live[e];
        all += live[e];
    }
    m->connections[SB_EP_COUNT].min = m->connections[SB_EP_COUNT].max = (double)all;
    m->quota.min = m->quota.max = quota_percent;
}

/* ---- files ------------------------------------------------------------------------------------ */

struct sb_metrics_store {
    char *dir;
    int fd;      /* open day file, or -1 */
    int64_t day; /* its day */
    int64_t pruned_day;
};

void sb_metrics_day_name(int64_t day, char out[11]) {
    time_t t = (time_t)(day * 86400);
    struct tm tm;
    gmtime_r(&t, &tm);
    char tmp[48];
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02d", (tm.tm_year + 1900) % 10000, tm.tm_mon + 1, tm.tm_mday);
    memcpy(out, tmp, 10);
    out[10] = '\0';
}

static char *day_path(const char *dir, int64_t day) {
    char name[11];
    sb_metrics_day_name(day, name);
    return sb_asprintf("%s/%s" SB_METRICS_FILE_SUFFIX, dir, name);
}

static int64_t floor_div(int64_t a, int64_t b) {
    return a >= 0 ? a / b : -((-a + b - 1) / b);
}

static uint32_t checksum(const void *p, size_t n) { /* FNV-1a: detects torn and stray slots, not attacks */
    const unsigned char *s = p;
    uint32_t h = UINT32_C(2166136261);
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * UINT32_C(16777619);
    return h;
}

static void put_u32(unsigned char *p, uint32_t v) {
    memcpy(p, &v, 4);
}
static void put_u16(unsigned char *p, uint16_t v) {
    memcpy(p, &v, 2);
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint16_t get_u16(const unsigned char *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static int mkdir_p(const char *dir) {
    char *p = sb_strdup(dir);
    int rc = SB_OK;
    for (char *s = strchr(p + 1, '/');; s = strchr(s + 1, '/')) {
        if (s)
            *s = '\0';
        if (*p && mkdir(p, 0755) != 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        if (!s)
            break;
        *s = '/';
    }
    struct stat st; /* an existing file of that name is not a directory */
    if (rc == SB_OK && stat(p, &st) != 0)
        rc = -errno;
    else if (rc == SB_OK && !S_ISDIR(st.st_mode))
        rc = -ENOTDIR;
    sb_free(p);
    return rc;
}

sb_metrics_store *sb_metrics_store_open(const char *dir, char *err, size_t errlen) {
    int rc = mkdir_p(dir);
    if (rc != SB_OK) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(-rc));
        return NULL;
    }
    sb_metrics_store *st = sb_calloc(1, sizeof *st);
    st->dir = sb_strdup(dir);
    st->fd = -1;
    st->day = INT64_MIN;
    st->pruned_day = INT64_MIN;
    return st;
}

void sb_metrics_store_close(sb_metrics_store *st) {
    if (!st)
        return;
    if (st->fd >= 0)
        close(st->fd);
    sb_free(st->dir);
    sb_free(st);
}

int sb_metrics_store_write(sb_metrics_store *st, const sb_metrics_minute *m, char *err, size_t errlen) {
    int64_t day = floor_div(m->minute, SB_METRICS_MINUTES_PER_DAY);
    if (st->fd < 0 || st->day != day) {
        if (st->fd >= 0)
            close(st->fd);
        char *path = day_path(st->dir, day);
        st->fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        int e = errno;
        if (st->fd < 0)
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
        sb_free(path);
        if (st->fd < 0)
            return -e;
        st->day = day;
    }
    unsigned char rec[SB_METRICS_RECORD_SIZE];
    memset(rec, 0, SB_METRICS_RECORD_HEADER);
    memcpy(rec + SB_METRICS_RECORD_HEADER, m, sizeof *m);
    put_u32(rec, RECORD_MAGIC);
    put_u16(rec + 4, RECORD_VERSION);
    put_u16(rec + 6, (uint16_t)sizeof *m);
    put_u32(rec + 8, checksum(rec + SB_METRICS_RECORD_HEADER, sizeof *m));
    off_t off = (off_t)(m->minute - day * SB_METRICS_MINUTES_PER_DAY) * (off_t)SB_METRICS_RECORD_SIZE;
    size_t done = 0;
    while (done < sizeof rec) {
        ssize_t w = pwrite(st->fd, rec + done, sizeof rec - done, off + (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            snprintf(err, errlen, "cannot write %s/...%s: %s", st->dir, SB_METRICS_FILE_SUFFIX, strerror(e));
            close(st->fd); /* reopen next time: the file may have been removed or the disk replaced */
            st->fd = -1;
            return -e;
        }
        done += (size_t)w;
    }
    return SB_OK;
}

/* The day of a file name "YYYY-MM-DD.pt1m", or 0 (not ours: never deleted). */
static int parse_day_file(const char *name, int64_t *day) {
    int y, mo, d, n = 0;
    if (sscanf(name, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10 ||
        strcmp(name + 10, SB_METRICS_FILE_SUFFIX) != 0)
        return 0;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d};
    *day = floor_div((int64_t)timegm(&tm), 86400);
    char check[11];
    sb_metrics_day_name(*day, check);
    return memcmp(check, name, 10) == 0;
}

void sb_metrics_store_prune(sb_metrics_store *st, int64_t now_day) {
    if (st->pruned_day == now_day)
        return;
    st->pruned_day = now_day;
    DIR *d = opendir(st->dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t day;
        if (!parse_day_file(e->d_name, &day) || day >= now_day - SB_METRICS_RETENTION_DAYS)
            continue;
        char *path = sb_asprintf("%s/%s", st->dir, e->d_name);
        unlink(path);
        sb_free(path);
    }
    closedir(d);
}

static int slot_valid(const unsigned char *slot, int64_t minute, sb_metrics_minute *out) {
    if (get_u32(slot) != RECORD_MAGIC || get_u16(slot + 4) != RECORD_VERSION ||
        get_u16(slot + 6) != sizeof(sb_metrics_minute) ||
        get_u32(slot + 8) != checksum(slot + SB_METRICS_RECORD_HEADER, sizeof(sb_metrics_minute)))
        return 0;
    memcpy(out, slot + SB_METRICS_RECORD_HEADER, sizeof *out);
    return out->minute == minute;
}

int sb_metrics_store_scan(const char *dir, int64_t from, int64_t to,
                          int (*fn)(const sb_metrics_minute *m, void *arg), void *arg) {
    if (from >= to)
        return SB_OK;
    unsigned char *buf = sb_malloc(SCAN_CHUNK * SB_METRICS_RECORD_SIZE);
    int rc = SB_OK, stop = 0;
    for (int64_t day = floor_div(from, SB_METRICS_MINUTES_PER_DAY);
         !stop && rc == SB_OK && day <= floor_div(to - 1, SB_METRICS_MINUTES_PER_DAY); day++) {
        int64_t first = day * SB_METRICS_MINUTES_PER_DAY;
        int64_t lo = from > first ? from : first;
        int64_t hi = to < first + SB_METRICS_MINUTES_PER_DAY ? to : first + SB_METRICS_MINUTES_PER_DAY;
        char *path = day_path(dir, day);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        sb_free(path);
        if (fd < 0) {
            if (errno != ENOENT)
                rc = -errno;
            continue;
        }
        for (int64_t at = lo; !stop && at < hi;) {
            size_t want = (size_t)(hi - at < SCAN_CHUNK ? hi - at : SCAN_CHUNK);
            ssize_t got = pread(fd, buf, want * SB_METRICS_RECORD_SIZE,
                                (off_t)(at - first) * (off_t)SB_METRICS_RECORD_SIZE);
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0) {
                rc = -errno;
                break;
            }
            size_t slots = (size_t)got / SB_METRICS_RECORD_SIZE;
            for (size_t i = 0; !stop && i < slots; i++) {
                sb_metrics_minute m;
                if (slot_valid(buf + i * SB_METRICS_RECORD_SIZE, at + (int64_t)i, &m))
                    stop = fn(&m, arg);
            }
            if (slots < want)
                break; /* end of the file: the rest of the day has no data */
            at += (int64_t)want;
        }
        close(fd);
    }
    sb_free(buf);
    return rc;
}

static int copy_one(const sb_metrics_minute *m, void *arg) {
    *(sb_metrics_minute *)arg = *m;
    return 1;
}

int sb_metrics_store_read(const char *dir, int64_t minute, sb_metrics_minute *out) {
    out->minute = minute - 1; /* anything but minute: "not found" unless the scan copies a record */
    int rc = sb_metrics_store_scan(dir, minute, minute + 1, copy_one, out);
    if (rc != SB_OK)
        return rc;
    return out->minute == minute ? SB_OK : SB_ENOENT;
}

static int add_messages(const sb_metrics_minute *m, void *arg) {
    *(uint64_t *)arg += m->messages;
    return 0;
}

uint64_t sb_metrics_store_day_messages(const char *dir, int64_t day, int64_t before) {
    uint64_t n = 0;
    int64_t end = (day + 1) * SB_METRICS_MINUTES_PER_DAY;
    sb_metrics_store_scan(dir, day * SB_METRICS_MINUTES_PER_DAY, before < end ? before : end, add_messages,
                          &n);
    return n;
}
