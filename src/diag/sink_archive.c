/*
 * sink_archive.c - the storage-account sink: Azure's archive layout on the
 * local disk (see sink.h for the tree), one compact JSON object per line.
 *
 * Owns: the three open hour files of one archive root (resource logs in
 * insights-logs-alllogs, activity records in insights-activity-logs, metric
 * rows in insights-metrics-pt1m), their rotation, and the retention sweep of
 * the built-in activity-log store.
 *
 * Invariants:
 *  - like Azure, a record goes into the file of the hour in which it is
 *    WRITTEN (appended as records arrive, split by hour), so a file may hold
 *    a few records stamped just before its hour;
 *  - one write() per file per batch, O_APPEND; if it fails or comes up short
 *    the file is truncated back to where the batch started, so a retried batch
 *    never leaves a torn line behind.  A batch holding several kinds of
 *    record touches several files; if a later one fails the earlier ones are
 *    written again on retry (at-least-once, as Azure's own pipeline);
 *  - data reaches the page cache on flush (survives a crash of the process,
 *    not of the machine: there is no fsync per batch, by design, for speed);
 *  - drop-behind: an hour file is written once and never read back here, so
 *    its pages are not left to pile up in the page cache.  Every
 *    DROP_BEHIND_BYTES appended, writeback of that stretch starts
 *    (sync_file_range, no wait), and what lies a stretch further back - by
 *    then normally clean - is dropped (POSIX_FADV_DONTNEED).  A busy archive
 *    then holds a few tens of MB of cache instead of gigabytes, and the
 *    writer keeps recycling the same pages: allocating fresh ones for GBs of
 *    log lines costs more than formatting them (several times over in a VM).
 *    Both calls are advice: their failure changes nothing.
 *
 * Called by: pipeline.c on the writer thread, through sb_sink_archive.
 * Not here: the JSON line (record.c), retries and routing (pipeline.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "diag/names.h"
#include "diag/sink.h"
#include "util/alloc.h"
#include "util/error.h"

#define US_PER_HOUR INT64_C(3600000000)
#define PRUNE_INTERVAL_US US_PER_HOUR
#define DROP_BEHIND_BYTES ((off_t)32 << 20)

typedef struct hour_file {
    const char *container;
    char *resource; /* resource id (resource logs) or /subscriptions/<sub> (activity) */
    int fd;         /* open file of `hour`, or -1 */
    int64_t hour;   /* hours since the epoch */
    sb_buf staged;  /* lines of the batch being delivered */
    off_t synced;   /* writeback started for [.., synced) */
    off_t dropped;  /* [.., dropped) dropped from the page cache */
} hour_file;

typedef struct archive {
    char *root;
    char *resource_id, *location;
    hour_file logs, activity, metrics;
    int retention_days;
    int64_t next_prune_us;
} archive;

void sb_sink_archive_path(const char *container, const char *resource, int64_t time_us, sb_buf *out) {
    time_t secs = (time_t)(time_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    sb_buf_appends(out, container);
    sb_buf_appends(out, "/resourceId=");
    size_t start = out->len;
    sb_buf_appends(out, resource);
    for (size_t i = start; i < out->len; i++)
        if (out->data[i] >= 'a' && out->data[i] <= 'z')
            out->data[i] = (char)(out->data[i] - ('a' - 'A'));
    sb_buf_appendf(out, "/y=%04d/m=%02d/d=%02d/h=%02d/m=00/PT1H.json", tm.tm_year + 1900, tm.tm_mon + 1,
                   tm.tm_mday, tm.tm_hour);
}

/* mkdir -p of the directory part of path. */
static int mkdir_parents(char *path) {
    for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        int rc = mkdir(path, 0755);
        int e = errno;
        *p = '/';
        if (rc != 0 && e != EEXIST)
            return -e;
    }
    return SB_OK;
}

static int set_err(sb_sink *s, int code, const char *what, const char *path) {
    /* the cause first: archive paths are long and the buffer is bounded */
    snprintf(s->err, sizeof s->err, "%s: %s %s", strerror(-code), what, path);
    return code;
}

static int open_hour(sb_sink *s, archive *a, hour_file *f, int64_t now_us) {
    int64_t hour = now_us / US_PER_HOUR;
    if (f->fd >= 0 && f->hour == hour)
        return SB_OK;
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    sb_buf path;
    sb_buf_init(&path);
    sb_buf_appendf(&path, "%s/", a->root);
    sb_sink_archive_path(f->container, f->resource, now_us, &path);
    int rc = mkdir_parents(path.data);
    if (rc == SB_OK) {
        f->fd = open(path.data, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (f->fd < 0)
            rc = -errno;
    }
    if (rc == SB_OK) { /* what the file already holds is left alone */
        off_t end = lseek(f->fd, 0, SEEK_END);
        f->synced = f->dropped = end > 0 ? end : 0;
    }
    if (rc != SB_OK)
        set_err(s, rc, "cannot open", path.data);
    f->hour = hour;
    sb_buf_free(&path);
    return rc;
}

/* Start writeback of what was appended since the last stretch; drop the stretch before it from the cache. */
static void drop_behind(hour_file *f, off_t end) {
    if (end - f->synced >= DROP_BEHIND_BYTES) {
        sync_file_range(f->fd, f->synced, end - f->synced, SYNC_FILE_RANGE_WRITE);
        f->synced = end;
    }
    if (f->synced - f->dropped >= 2 * DROP_BEHIND_BYTES) {
        off_t upto = f->synced - DROP_BEHIND_BYTES;
        posix_fadvise(f->fd, f->dropped, upto - f->dropped, POSIX_FADV_DONTNEED);
        f->dropped = upto;
    }
}

/* Append the staged lines with one write(); undo a partial append so a retry starts from a line boundary. */
static int append_staged(sb_sink *s, archive *a, hour_file *f, int64_t now_us) {
    if (!f->staged.len)
        return SB_OK;
    int rc = open_hour(s, a, f, now_us);
    if (rc != SB_OK)
        return rc;
    off_t start = lseek(f->fd, 0, SEEK_END);
    size_t done = 0;
    while (done < f->staged.len) {
        ssize_t w = write(f->fd, f->staged.data + done, f->staged.len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = w < 0 ? -errno : SB_EIO;
            break;
        }
        done += (size_t)w;
    }
    if (rc != SB_OK) {
        /* best effort: if even the truncate fails, the disk is gone and a torn line is the least of it */
        int trunc_rc = start >= 0 ? ftruncate(f->fd, start) : -1;
        (void)trunc_rc;
        close(f->fd);
        f->fd = -1; /* reopen next time: the file may have been removed or the disk replaced */
        snprintf(s->err, sizeof s->err, "cannot append to %s/%s: %s", a->root, f->container, strerror(-rc));
        return rc;
    }
    if (start >= 0)
        drop_behind(f, start + (off_t)done);
    sb_buf_reset(&f->staged);
    return SB_OK;
}

static void hour_file_init(hour_file *f, const char *container, char *resource) {
    f->container = container;
    f->resource = resource;
    f->fd = -1;
    f->hour = -1;
    sb_buf_init(&f->staged);
}

static void hour_file_free(hour_file *f) {
    if (f->fd >= 0)
        close(f->fd);
    sb_buf_free(&f->staged);
    sb_free(f->resource);
}

static int archive_open(sb_sink *s, const sb_sink_config *c) {
    archive *a = sb_calloc(1, sizeof *a);
    a->root = sb_strdup(c->path);
    a->resource_id = sb_strdup(c->resource_id);
    a->location = c->location ? sb_strdup(c->location) : NULL;
    a->retention_days = c->retention_days;
    hour_file_init(&a->logs, SB_CONTAINER_LOGS, sb_strdup(c->resource_id));
    hour_file_init(&a->activity, SB_CONTAINER_ACTIVITY, sb_asprintf("/subscriptions/%s", c->subscription_id));
    hour_file_init(&a->metrics, SB_CONTAINER_METRICS, sb_strdup(c->resource_id));
    s->impl = a;
    /* create the root now so a bad path is reported when the destination is first used */
    sb_buf root;
    sb_buf_init(&root);
    sb_buf_appendf(&root, "%s/", a->root);
    int rc = mkdir_parents(root.data);
    if (rc != SB_OK)
        set_err(s, rc, "cannot create", a->root);
    sb_buf_free(&root);
    return rc;
}

static int archive_write(sb_sink *s, sb_log_record *const *recs, size_t n) {
    archive *a = s->impl;
    sb_buf_reset(&a->logs.staged); /* whatever a failed attempt staged is part of this batch again */
    sb_buf_reset(&a->activity.staged);
    sb_buf_reset(&a->metrics.staged);
    for (size_t i = 0; i < n; i++) {
        if (recs[i]->type == SB_LOGT_METRIC) {
            sb_log_record_metric_json(recs[i], a->resource_id, &a->metrics.staged);
            continue;
        }
        hour_file *f = recs[i]->type == SB_LOGT_ACTIVITY ? &a->activity : &a->logs;
        sb_log_record_archive_json(recs[i], a->resource_id, a->location, &f->staged);
    }
    return SB_OK;
}

static int archive_flush(sb_sink *s) {
    archive *a = s->impl;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    int rc = append_staged(s, a, &a->logs, now_us);
    if (rc == SB_OK)
        rc = append_staged(s, a, &a->activity, now_us);
    if (rc == SB_OK)
        rc = append_staged(s, a, &a->metrics, now_us);
    return rc;
}

/* ---- retention: delete whole hour folders older than the cutoff ---- */

static int parse_seg(const char *name, char key, int digits, int *out) {
    if (name[0] != key || name[1] != '=' || (int)strlen(name) != digits + 2)
        return 0;
    int v = 0;
    for (int i = 0; i < digits; i++) {
        char c = name[2 + i];
        if (c < '0' || c > '9')
            return 0;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return 1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    return remove(path);
}

/* Visit dir/<key>=<digits> folders (level 0..3 = y, m, d, h); delete expired hours, then emptied parents. */
static void prune_level(const char *dir, int level, int ymdh[4], int64_t cutoff_s) {
    static const char keys[4] = {'y', 'm', 'd', 'h'};
    static const int digits[4] = {4, 2, 2, 2};
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!parse_seg(e->d_name, keys[level], digits[level], &ymdh[level]))
            continue; /* never delete what this sink did not create */
        char *sub = sb_asprintf("%s/%s", dir, e->d_name);
        if (level < 3) {
            prune_level(sub, level + 1, ymdh, cutoff_s);
            rmdir(sub); /* only succeeds once empty */
        } else {
            struct tm tm = {
                .tm_year = ymdh[0] - 1900, .tm_mon = ymdh[1] - 1, .tm_mday = ymdh[2], .tm_hour = ymdh[3]};
            if ((int64_t)timegm(&tm) + 3600 <= cutoff_s)
                nftw(sub, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
        }
        sb_free(sub);
    }
    closedir(d);
}

static void prune_container(archive *a, const hour_file *f, int64_t cutoff_s) {
    sb_buf dir;
    sb_buf_init(&dir);
    sb_buf_appendf(&dir, "%s/%s/resourceId=", a->root, f->container);
    size_t start = dir.len;
    sb_buf_appends(&dir, f->resource);
    for (size_t i = start; i < dir.len; i++)
        if (dir.data[i] >= 'a' && dir.data[i] <= 'z')
            dir.data[i] = (char)(dir.data[i] - ('a' - 'A'));
    int ymdh[4];
    prune_level(dir.data, 0, ymdh, cutoff_s);
    sb_buf_free(&dir);
}

static void archive_tick(sb_sink *s, int64_t now_us) {
    archive *a = s->impl;
    if (a->retention_days <= 0 || now_us < a->next_prune_us)
        return;
    a->next_prune_us = now_us + PRUNE_INTERVAL_US;
    int64_t cutoff_s = now_us / 1000000 - (int64_t)a->retention_days * 86400;
    prune_container(a, &a->logs, cutoff_s);
    prune_container(a, &a->activity, cutoff_s);
}

static void archive_close(sb_sink *s) {
    archive *a = s->impl;
    if (!a)
        return;
    hour_file_free(&a->logs);
    hour_file_free(&a->activity);
    hour_file_free(&a->metrics);
    sb_free(a->root);
    sb_free(a->resource_id);
    sb_free(a->location);
    sb_free(a);
    s->impl = NULL;
}

const sb_sink_vtable sb_sink_archive = {
    .name = "archive",
    .open = archive_open,
    .write = archive_write,
    .flush = archive_flush,
    .tick = archive_tick,
    .close = archive_close,
};
