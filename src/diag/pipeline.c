/*
 * pipeline.c - the resource-log pipeline (diag.h): the loop-side hand-off
 * and the writer thread that routes records to sinks, retries and counts
 * drops.  Also the sink registry (sink.h).
 *
 * Loop side (event loop thread only): the current settings and the hot-path
 * flags derived from them, and a per-turn batch (a singly linked list, no
 * lock).  sb_diag_flush_turn() splices the batch onto the shared queue under
 * one mutex and signals the writer.  The bound log_queue_max_records covers
 * the batch plus the queue: past it a record is refused (dropped_queue) before
 * anything is allocated.
 *
 * Fan-outs: the records of one message's deliveries are one fan-out record
 * (record.h), joined to the batch at its first recipient and kept OPEN while
 * later recipients append to it; the next other record, the next fan-out or
 * the hand-off closes it, so the batch keeps the order of events and the
 * writer never sees a record that still grows.  Everything counts records,
 * not fan-outs: a fan-out of n recipients is n emitted, n in the bound and the
 * depth, n written or dropped per destination.  Its recipients' block goes
 * back to the loop when the writer is done with it (a bounded pool handed
 * over under the queue's mutex, both ways, once per turn or wake-up), so a
 * busy fan-out reuses memory that is mapped and cached instead of freeing
 * across threads and faulting fresh pages in again.
 *
 * Writer thread: wakes on a hand-off, a settings change, a due retry, or
 * every 200 ms; takes the whole queue and routes every record to its
 * destinations:
 *   - resource logs: every destination of a setting with logs_all, or with
 *     logs_audit when the record's collection is Authorization;
 *   - activity records: the same destinations with logs_all or logs_audit,
 *     and always the built-in activity-log store (<data_dir>/activitylog);
 *   - metric rows (SB_LOGT_METRIC): every destination of a setting with
 *     AllMetrics; they are produced only while such a setting exists.
 * The writer also runs jobs handed to it (sb_diag_run_on_writer: the metrics
 * store is written there, so the data dir has one writer thread) and, on
 * sb_diag_reopen, closes every sink so each reopens on its next write.
 * A destination is one sink instance per (kind, name), opened on first use
 * and kept open.  Each holds its own pending array, so one failing
 * destination never delays the others.  A record carries a count of
 * outstanding deliveries (refs) and is freed by the last one.  A fan-out is
 * routed, delivered, retried and freed whole, like one record.
 *
 * Delivery and retries: pending records go to the sink in chunks of about
 * CHUNK_RECORDS log records (write + flush).  On failure the destination
 * backs off with full jitter (base 100 ms, doubling, cap 5 s) and retries up
 * to 5 times; then its pending records are dropped (dropped_sink).  While it
 * waits, new records join its pending array, bounded by log_queue_max_records
 * (beyond: dropped_sink).  Drops are reported at most once per second by
 * LogRecordsDropped Warning records routed like any other, per reason (queue
 * full, destination).
 *
 * Settings: sb_diag_apply_settings() updates the loop copy at once and
 * publishes a copy the writer adopts at its next wake-up; the writer persists
 * it to <data_dir>/diagnostic-settings.json (temp file, fsync, rename).
 * Destination names must be declared in the configuration (storage_accounts,
 * workspaces) and be plain file names; a setting naming anything else drops
 * its records with a reason instead of writing outside the data dir.
 *
 * Shutdown: sb_diag_stop() hands over the last batch and asks the writer to
 * drain; retries continue for at most 3 s, then what is left is dropped and
 * counted.  The writer closes every sink before the thread ends.
 *
 * The writer never touches libuv, the router or sb_server: start copies
 * everything it needs.  Not here: record formats (record.c), sink I/O
 * (sink_*.c), settings parsing (settings.c).
 */
#include "diag/diag.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "diag/names.h"
#include "diag/sink.h"
#include "server.h"
#include "util/alloc.h"
#include "util/error.h"

#define WAKE_INTERVAL_US INT64_C(200000)
#define RETRY_BASE_US INT64_C(100000)
#define RETRY_CAP_US INT64_C(5000000)
#define RETRY_LIMIT 5 /* retries after the first attempt */
#define DRAIN_LIMIT_US INT64_C(3000000)
#define DROP_REPORT_INTERVAL_US INT64_C(1000000)
#define CHUNK_RECORDS 8192 /* records per write+flush: bounds a sink's staging memory */
#define SPARE_MAX_BYTES ((size_t)4 << 20) /* recycled fan-out blocks kept, over all three lists */

/* ---- sink registry ---------------------------------------------------------------------------- */

#define MAX_SINK_KINDS 8
static const sb_sink_vtable *sink_kinds[MAX_SINK_KINDS] = {&sb_sink_archive, &sb_sink_workspace};

void sb_sink_register(const sb_sink_vtable *vt) {
    for (int i = 0; i < MAX_SINK_KINDS; i++) {
        if (!sink_kinds[i] || strcmp(sink_kinds[i]->name, vt->name) == 0) {
            sink_kinds[i] = vt;
            return;
        }
    }
    fprintf(stderr, "switchboard: logs: too many sink kinds, '%s' not registered\n", vt->name);
}

const sb_sink_vtable *sb_sink_find(const char *kind) {
    for (int i = 0; i < MAX_SINK_KINDS && sink_kinds[i]; i++)
        if (strcmp(sink_kinds[i]->name, kind) == 0)
            return sink_kinds[i];
    return NULL;
}

/* ---- state ------------------------------------------------------------------------------------ */

typedef enum dest_kind { DEST_STORAGE, DEST_WORKSPACE, DEST_ACTIVITY_STORE } dest_kind;

static const char *const dest_labels[] = {"storage account", "workspace", "activity log store"};

typedef struct dest {
    struct dest *next;
    dest_kind kind;
    char name[SB_DIAG_NAME_MAX + 1];
    const sb_sink_vtable *vt;
    sb_sink sink;
    int opened;
    int usable;                 /* declared in the configuration and safe as a file name */
    int route_all, route_audit; /* what the current settings send here */
    int route_metrics;          /* AllMetrics rows */
    sb_log_record **pending;    /* [head, n) wait for delivery */
    size_t head, n, cap;
    size_t pending_records;     /* log records in [head, n): fan-outs count their recipients */
    int failures;     /* failed attempts for what is pending */
    int64_t retry_at; /* monotonic us; pending waits until then */
    uint64_t unreported_drops;
    char last_err[SB_SINK_ERR_MAX];
} dest;

/* A recycled fan-out block, while nobody uses it (the link lives in the block). */
typedef struct spare_block {
    struct spare_block *next;
    size_t cap;
} spare_block;

typedef struct writer_job {
    struct writer_job *next;
    void (*fn)(void *arg);
    void *arg;
} writer_job;

struct sb_diag {
    /* copied at start, immutable: the writer never reads sb_server */
    char *data_dir, *resource_id, *location, *subscription_id, *resource_group;
    int workspace_retention_days, activity_retention_days; /* from the config table */
    char *storage_accounts, *workspaces, *settings_path;
    size_t max_records;

    /* loop thread */
    sb_diag_settings settings;
    int collecting;
    int exporting_metrics; /* a setting has AllMetrics */
    int type_enabled[SB_LOGT_COUNT];
    sb_log_record *batch_head, **batch_tail;
    size_t batch_n;         /* log records in the batch (a fan-out counts its recipients) */
    sb_log_record *fanout;  /* the open fan-out: the batch's last record, still taking recipients */
    const void *fanout_scope;
    spare_block *spare;     /* blocks for the next fan-outs */

    /* shared, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sb_log_record *q_head, **q_tail;
    sb_diag_settings *published; /* settings the writer has not adopted yet */
    struct writer_job *j_head, **j_tail;
    spare_block *returned; /* from the writer, for the loop */
    int reopen;
    int stop;

    /* any thread; emitted is the loop's own (no locked add per recipient), emitted_writer the writer's */
    _Atomic uint64_t emitted, emitted_writer, written, dropped_queue, dropped_sink, depth;
    _Atomic size_t spare_bytes; /* in spare, returned and w_spare */

    /* writer thread */
    pthread_t thread;
    sb_diag_settings wsettings;
    spare_block *w_spare; /* released blocks, handed to the loop at the next wake-up */
    dest *dests;
    dest *activity_store;
    uint64_t reported_queue_drops;
    int64_t last_report_us;
    uint64_t rng;
};

static int64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t real_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- loop side -------------------------------------------------------------------------------- */

static void set_flags(sb_diag *d) {
    d->collecting = sb_diag_settings_collecting(&d->settings);
    d->exporting_metrics = sb_diag_settings_metrics(&d->settings);
    memcpy(d->type_enabled, d->settings.type_enabled, sizeof d->type_enabled);
}

int sb_diag_collecting(const sb_server *srv) {
    return srv->diag && srv->diag->collecting;
}

int sb_diag_type_enabled(const sb_server *srv, sb_log_type t) {
    return srv->diag && (unsigned)t < SB_LOGT_COUNT && srv->diag->type_enabled[t];
}

int sb_diag_should_log(const sb_server *srv, sb_log_type t, int diagnostic) {
    const sb_diag *d = srv->diag;
    if (!d)
        return 0;
    if (t == SB_LOGT_METRIC)
        return d->exporting_metrics;
    if (t == SB_LOGT_ACTIVITY) /* the activity log is collected whatever the settings */
        return 1;
    if (!d->collecting || (unsigned)t >= SB_LOGT_COUNT)
        return 0;
    return diagnostic || d->type_enabled[t];
}

/* Is there room for one more record?  If not, it is counted as dropped. */
static int room_for_one(sb_diag *d) {
    if (d->batch_n + atomic_load_explicit(&d->depth, memory_order_relaxed) < d->max_records)
        return 1;
    atomic_fetch_add_explicit(&d->dropped_queue, 1, memory_order_relaxed);
    return 0;
}

/* The loop is the only thread that adds to emitted. */
static void count_emitted(sb_diag *d) {
    atomic_store_explicit(&d->emitted, atomic_load_explicit(&d->emitted, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static void batch_append(sb_diag *d, sb_log_record *r) {
    *d->batch_tail = r;
    d->batch_tail = &r->next;
    d->batch_n++;
    count_emitted(d);
}

/* Move list onto *to (both lists of spare blocks). */
static void splice_spares(spare_block **to, spare_block *list) {
    if (!list)
        return;
    spare_block *tail = list;
    while (tail->next)
        tail = tail->next;
    tail->next = *to;
    *to = list;
}

void sb_diag_emit(sb_server *srv, const sb_log_fields *f) {
    sb_diag *d = srv->diag;
    int accepted = f->type == SB_LOGT_METRIC     ? d && d->exporting_metrics
                   : f->type == SB_LOGT_ACTIVITY ? d != NULL
                                                 : d && d->collecting;
    if (!accepted)
        return;
    d->fanout = NULL; /* whatever follows this record is a new fan-out */
    if (room_for_one(d))
        batch_append(d, sb_log_record_new(f));
}

int sb_diag_fanout_add(sb_server *srv, const void *handle, const void *scope, const sb_log_recipient *rc) {
    sb_diag *d = srv->diag;
    if (!d || !d->collecting || !room_for_one(d))
        return 1;
    if (!handle || handle != d->fanout || scope != d->fanout_scope)
        return 0;
    sb_log_record_add_recipient(d->fanout, rc);
    d->batch_n++;
    count_emitted(d);
    return 1;
}

void *sb_diag_fanout_begin(sb_server *srv, const void *scope, const sb_log_fields *shared,
                           const sb_log_recipient *rc) {
    sb_diag *d = srv->diag;
    if (!d || !d->collecting || (unsigned)shared->type >= SB_LOGT_COUNT || !room_for_one(d))
        return NULL;
    spare_block *b = d->spare;
    size_t cap = 0;
    if (b) {
        d->spare = b->next;
        cap = b->cap;
        atomic_fetch_sub_explicit(&d->spare_bytes, cap, memory_order_relaxed);
    }
    sb_log_record *r = sb_log_record_new_fanout(shared, rc, b, cap);
    batch_append(d, r);
    d->fanout = r;
    d->fanout_scope = scope;
    return r;
}

void sb_diag_flush_turn(sb_server *srv) {
    sb_diag *d = srv->diag;
    if (!d)
        return;
    d->fanout = NULL; /* from here on the writer owns it */
    if (!d->batch_n)
        return;
    pthread_mutex_lock(&d->mu);
    *d->q_tail = d->batch_head;
    d->q_tail = d->batch_tail;
    atomic_fetch_add_explicit(&d->depth, d->batch_n, memory_order_relaxed);
    spare_block *returned = d->returned;
    d->returned = NULL;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    splice_spares(&d->spare, returned);
    d->batch_head = NULL;
    d->batch_tail = &d->batch_head;
    d->batch_n = 0;
}

void sb_diag_apply_settings(sb_server *srv, const sb_diag_settings *s) {
    sb_diag *d = srv->diag;
    if (!d)
        return;
    sb_diag_settings_free(&d->settings);
    sb_diag_settings_copy(&d->settings, s);
    set_flags(d);
    sb_diag_settings *pub = sb_malloc(sizeof *pub);
    sb_diag_settings_copy(pub, s);
    pthread_mutex_lock(&d->mu);
    if (d->published) { /* never adopted: the newer one wins */
        sb_diag_settings_free(d->published);
        sb_free(d->published);
    }
    d->published = pub;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

const sb_diag_settings *sb_diag_current_settings(const sb_server *srv) {
    static const sb_diag_settings none = {.type_enabled = {1, 1, 1}};
    return srv->diag ? &srv->diag->settings : &none;
}

void sb_diag_get_stats(const sb_server *srv, sb_diag_stats *out) {
    memset(out, 0, sizeof *out);
    sb_diag *d = srv->diag;
    if (!d)
        return;
    out->emitted = atomic_load(&d->emitted) + atomic_load(&d->emitted_writer);
    out->written = atomic_load(&d->written);
    out->dropped_queue = atomic_load(&d->dropped_queue);
    out->dropped_sink = atomic_load(&d->dropped_sink);
    out->queue_depth = atomic_load(&d->depth);
}

/* ---- writer: destinations --------------------------------------------------------------------- */

/* Is name one of the comma-separated names of list (blanks around names ignored)? */
static int list_has(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list ? list : ""; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = strchrnul(p, ',');
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == n && n && memcmp(p, name, n) == 0)
            return 1;
        p = e;
    }
    return 0;
}

/* A name that can be one path segment: no separators, no dot-only names, nothing a shell would trip on. */
static int plain_file_name(const char *name) {
    if (!*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || *p == '.'))
            return 0;
    return 1;
}

static dest *dest_get(sb_diag *d, dest_kind kind, const char *name) {
    for (dest *x = d->dests; x; x = x->next)
        if (x->kind == kind && strcmp(x->name, name) == 0)
            return x;
    dest *x = sb_calloc(1, sizeof *x);
    x->kind = kind;
    snprintf(x->name, sizeof x->name, "%s", name);
    x->vt = kind == DEST_ACTIVITY_STORE ? &sb_sink_archive
                                        : sb_sink_find(kind == DEST_STORAGE ? "archive" : "workspace");
    const char *list = kind == DEST_STORAGE ? d->storage_accounts : d->workspaces;
    x->usable = x->vt && (kind == DEST_ACTIVITY_STORE || (plain_file_name(name) && list_has(list, name)));
    if (!x->usable) {
        if (x->vt)
            snprintf(x->last_err, sizeof x->last_err, "not declared in the %s setting",
                     kind == DEST_STORAGE ? "storage_accounts" : "workspaces");
        else
            snprintf(x->last_err, sizeof x->last_err, "no sink is registered for it");
        fprintf(stderr, "switchboard: logs: %s '%s' is %s; its records are dropped\n", dest_labels[kind],
                name, x->last_err);
    }
    x->next = d->dests;
    d->dests = x;
    return x;
}

/* Recompute what each destination receives from the writer's settings. */
static void rebuild_routes(sb_diag *d) {
    for (dest *x = d->dests; x; x = x->next)
        x->route_all = x->route_audit = x->route_metrics = 0;
    for (size_t i = 0; i < d->wsettings.n; i++) {
        const sb_diag_setting *s = &d->wsettings.v[i];
        if (!s->logs_all && !s->logs_audit && !s->metrics)
            continue;
        const char *ids[2] = {s->storage_account_id, s->workspace_id};
        for (int k = 0; k < 2; k++) {
            if (!ids[k])
                continue;
            dest *x = dest_get(d, k == 0 ? DEST_STORAGE : DEST_WORKSPACE, sb_diag_resource_name(ids[k]));
            x->route_all |= s->logs_all;
            x->route_audit |= s->logs_audit;
            x->route_metrics |= s->metrics;
        }
    }
}

/* The last delivery frees the record; a fan-out's block goes back to the loop while the pool has room. */
static void release(sb_diag *d, sb_log_record *r) {
    if (--r->refs)
        return;
    size_t cap;
    spare_block *b = sb_log_record_free_keep_block(r, &cap);
    if (!b)
        return;
    size_t pooled = atomic_load_explicit(&d->spare_bytes, memory_order_relaxed);
    if (cap < sizeof *b || pooled + cap > SPARE_MAX_BYTES) {
        sb_free(b);
        return;
    }
    atomic_fetch_add_explicit(&d->spare_bytes, cap, memory_order_relaxed);
    b->cap = cap;
    b->next = d->w_spare;
    d->w_spare = b;
}

/* A lost LogRecordsDropped record is counted but not reported again: a destination that is down would
 * otherwise produce a report about the previous report every second, forever. */
static void count_drop(sb_diag *d, dest *x, const sb_log_record *r) {
    size_t n = sb_log_record_count(r);
    atomic_fetch_add_explicit(&d->dropped_sink, n, memory_order_relaxed);
    if (!r->operation_name || strcmp(r->operation_name, SB_OP_LOG_RECORDS_DROPPED) != 0)
        x->unreported_drops += n;
}

static void push(sb_diag *d, dest *x, sb_log_record *r) {
    /* a healthy destination holds one wake-up's worth, delivered at once; one that is backing off may hold
     * up to the queue bound more, then refuses */
    if (!x->usable || (x->failures && x->pending_records >= d->max_records)) {
        count_drop(d, x, r);
        return;
    }
    if (x->n == x->cap && x->head) {
        memmove(x->pending, x->pending + x->head, (x->n - x->head) * sizeof *x->pending);
        x->n -= x->head;
        x->head = 0;
    }
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 256;
        x->pending = sb_realloc(x->pending, x->cap * sizeof *x->pending);
    }
    x->pending[x->n++] = r;
    x->pending_records += sb_log_record_count(r);
    r->refs++;
}

static void route(sb_diag *d, sb_log_record *r) {
    int activity = r->type == SB_LOGT_ACTIVITY;
    int audit = activity || (r->collection && strcmp(r->collection, SB_LOG_COLLECTION_AUTHORIZATION) == 0);
    r->refs = 1; /* held while routing, so a full destination cannot free it under us */
    for (dest *x = d->dests; x; x = x->next) {
        int want = x->kind == DEST_ACTIVITY_STORE ? activity
                   : r->type == SB_LOGT_METRIC    ? x->route_metrics
                                                  : x->route_all || (x->route_audit && audit);
        if (want)
            push(d, x, r);
    }
    release(d, r);
}

static void drop_pending(sb_diag *d, dest *x) {
    size_t n = x->pending_records;
    for (size_t i = x->head; i < x->n; i++) {
        count_drop(d, x, x->pending[i]);
        release(d, x->pending[i]);
    }
    x->head = x->n = 0;
    x->pending_records = 0;
    x->failures = 0;
    x->retry_at = 0;
    if (n) {
        fprintf(stderr, "switchboard: logs: %s '%s': %zu records dropped: %s\n", dest_labels[x->kind],
                x->name, n, x->last_err);
    }
}

static uint64_t next_random(sb_diag *d) { /* xorshift64*: jitter only, no need for quality */
    d->rng ^= d->rng >> 12;
    d->rng ^= d->rng << 25;
    d->rng ^= d->rng >> 27;
    return d->rng * UINT64_C(2685821657736338717);
}

static void delivery_failed(sb_diag *d, dest *x, int64_t now, int64_t deadline) {
    snprintf(x->last_err, sizeof x->last_err, "%s", x->sink.err[0] ? x->sink.err : "failed");
    if (x->failures++ == 0)
        fprintf(stderr, "switchboard: logs: %s '%s': %s; retrying\n", dest_labels[x->kind], x->name,
                x->last_err);
    if (x->failures > RETRY_LIMIT) {
        drop_pending(d, x);
        return;
    }
    int64_t cap = RETRY_BASE_US << (x->failures - 1);
    if (cap > RETRY_CAP_US)
        cap = RETRY_CAP_US;
    x->retry_at = now + (int64_t)(next_random(d) % (uint64_t)(cap + 1)); /* full jitter */
    if (deadline && x->retry_at > deadline)
        drop_pending(d, x);
}

static int dest_open(sb_diag *d, dest *x) {
    char *path;
    int retention = 0;
    if (x->kind == DEST_ACTIVITY_STORE) {
        path = sb_asprintf("%s/activitylog", d->data_dir);
        retention = d->activity_retention_days;
    } else if (x->kind == DEST_STORAGE) {
        path = sb_asprintf("%s/storage/%s", d->data_dir, x->name);
    } else {
        path = sb_asprintf("%s/workspaces/%s.db", d->data_dir, x->name);
        retention = d->workspace_retention_days;
    }
    sb_sink_config c = {
        .name = x->name,
        .path = path,
        .resource_id = d->resource_id,
        .subscription_id = d->subscription_id,
        .resource_group = d->resource_group,
        .location = d->location,
        .retention_days = retention,
        .activity_retention_days = d->activity_retention_days,
    };
    memset(&x->sink, 0, sizeof x->sink);
    x->sink.vt = x->vt;
    int rc = x->vt->open(&x->sink, &c);
    sb_free(path);
    if (rc != SB_OK) {
        x->vt->close(&x->sink);
        return rc;
    }
    x->opened = 1;
    return SB_OK;
}

static void deliver(sb_diag *d, dest *x, int64_t now, int64_t deadline) {
    if (x->head == x->n || now < x->retry_at)
        return;
    if (!x->opened && dest_open(d, x) != SB_OK) {
        delivery_failed(d, x, now, deadline);
        return;
    }
    while (x->head < x->n) {
        size_t k = 0, records = 0;
        while (x->head + k < x->n && (k == 0 || records < CHUNK_RECORDS))
            records += sb_log_record_count(x->pending[x->head + k++]);
        sb_log_record *const *chunk = x->pending + x->head;
        x->sink.err[0] = '\0';
        int rc = x->vt->write(&x->sink, chunk, k);
        if (rc == SB_OK)
            rc = x->vt->flush(&x->sink);
        if (rc != SB_OK) {
            delivery_failed(d, x, now, deadline);
            return;
        }
        for (size_t i = 0; i < k; i++)
            release(d, chunk[i]);
        x->head += k;
        x->pending_records -= records;
        x->failures = 0;
        atomic_fetch_add_explicit(&d->written, records, memory_order_relaxed);
    }
    x->head = x->n = 0;
    x->retry_at = 0;
}

static int any_pending(const sb_diag *d) {
    for (const dest *x = d->dests; x; x = x->next)
        if (x->head < x->n)
            return 1;
    return 0;
}

static int64_t next_retry(const sb_diag *d, int64_t limit) {
    for (const dest *x = d->dests; x; x = x->next)
        if (x->head < x->n && x->retry_at < limit)
            limit = x->retry_at;
    return limit;
}

/* ---- writer: drop reports and settings -------------------------------------------------------- */

static void route_warning(sb_diag *d, uint64_t n, const char *reason) {
    char msg[1024];
    snprintf(msg, sizeof msg, SB_MSG_FMT_LOG_RECORDS_DROPPED, (unsigned long long)n, reason);
    sb_log_fields f = {
        .type = SB_LOGT_CONNECTIVITY,
        .level = SB_LEVEL_WARNING,
        .operation_name = SB_OP_LOG_RECORDS_DROPPED,
        .message = msg,
    };
    atomic_fetch_add_explicit(&d->emitted_writer, 1, memory_order_relaxed);
    route(d, sb_log_record_new(&f));
}

static void report_drops(sb_diag *d, int64_t now, int force) {
    if (!force && now - d->last_report_us < DROP_REPORT_INTERVAL_US)
        return;
    int reported = 0;
    uint64_t q = atomic_load_explicit(&d->dropped_queue, memory_order_relaxed);
    if (q > d->reported_queue_drops) {
        route_warning(d, q - d->reported_queue_drops, SB_MSG_DROP_REASON_QUEUE_FULL);
        d->reported_queue_drops = q;
        reported = 1;
    }
    for (dest *x = d->dests; x; x = x->next) {
        if (!x->unreported_drops)
            continue;
        char reason[SB_SINK_ERR_MAX + SB_DIAG_NAME_MAX + 64];
        snprintf(reason, sizeof reason, SB_MSG_FMT_DROP_REASON_DESTINATION, dest_labels[x->kind], x->name,
                 x->last_err);
        uint64_t n = x->unreported_drops;
        x->unreported_drops = 0; /* before routing: the warning may itself be dropped here */
        route_warning(d, n, reason);
        reported = 1;
    }
    if (reported)
        d->last_report_us = now;
}

/* Write the document next to its final name, fsync, rename: a crash leaves the old or the new file. */
static void persist_settings(sb_diag *d) {
    json_t *doc = sb_diag_settings_to_json(&d->wsettings);
    char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    json_decref(doc);
    char *tmp = sb_asprintf("%s.tmp", d->settings_path);
    int rc = text ? SB_OK : SB_EINVAL;
    int fd = rc == SB_OK ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
    if (rc == SB_OK && fd < 0)
        rc = -errno;
    for (size_t done = 0, len = text ? strlen(text) : 0; rc == SB_OK && done < len;) {
        ssize_t w = write(fd, text + done, len - done);
        if (w > 0)
            done += (size_t)w;
        else if (w == 0 || errno != EINTR)
            rc = w == 0 ? SB_EIO : -errno;
    }
    if (rc == SB_OK && fsync(fd) != 0)
        rc = -errno;
    if (fd >= 0 && close(fd) != 0 && rc == SB_OK)
        rc = -errno;
    if (rc == SB_OK && rename(tmp, d->settings_path) != 0)
        rc = -errno;
    if (rc == SB_OK) {
        int dfd = open(d->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) { /* make the rename itself durable */
            fsync(dfd);
            close(dfd);
        }
    } else {
        unlink(tmp);
        fprintf(stderr, "switchboard: logs: cannot save diagnostic settings to %s: %s\n", d->settings_path,
                sb_strerror(rc));
    }
    free(text);
    sb_free(tmp);
}

static void adopt_settings(sb_diag *d, sb_diag_settings *s) {
    sb_diag_settings_free(&d->wsettings);
    d->wsettings = *s; /* takes the strings */
    sb_free(s);
    rebuild_routes(d);
    persist_settings(d);
}

/* ---- writer: the thread ----------------------------------------------------------------------- */

static sb_log_record *take_work(sb_diag *d, int64_t wake_at, int stopping, sb_diag_settings **settings,
                                int *stop, writer_job **jobs, int *reopen) {
    struct timespec ts = {.tv_sec = wake_at / 1000000, .tv_nsec = (wake_at % 1000000) * 1000};
    pthread_mutex_lock(&d->mu);
    while (!d->q_head && !d->published && !d->j_head && !d->reopen && (stopping || !d->stop))
        if (pthread_cond_timedwait(&d->cv, &d->mu, &ts) == ETIMEDOUT)
            break;
    sb_log_record *recs = d->q_head;
    d->q_head = NULL;
    d->q_tail = &d->q_head;
    atomic_store_explicit(&d->depth, 0, memory_order_relaxed);
    *settings = d->published;
    d->published = NULL;
    *stop = d->stop;
    *jobs = d->j_head;
    d->j_head = NULL;
    d->j_tail = &d->j_head;
    *reopen = d->reopen;
    d->reopen = 0;
    splice_spares(&d->returned, d->w_spare);
    d->w_spare = NULL;
    pthread_mutex_unlock(&d->mu);
    return recs;
}

static void run_jobs(writer_job *j) {
    while (j) {
        writer_job *next = j->next;
        j->fn(j->arg);
        sb_free(j);
        j = next;
    }
}

/* Pending records stay with their destination and reach the reopened sink. */
static void reopen_sinks(sb_diag *d) {
    for (dest *x = d->dests; x; x = x->next) {
        if (!x->opened)
            continue;
        x->vt->close(&x->sink);
        x->opened = 0;
    }
    if (dest_open(d, d->activity_store) != SB_OK) /* its retention sweep needs it open, as at start */
        fprintf(stderr, "switchboard: logs: %s: %s\n", dest_labels[DEST_ACTIVITY_STORE],
                d->activity_store->sink.err);
}

static void *writer_main(void *arg) {
    sb_diag *d = arg;
    int stopping = 0, final_report = 0;
    int64_t deadline = 0;
    /* open now, so its retention sweep runs even when nothing is written */
    if (dest_open(d, d->activity_store) != SB_OK)
        fprintf(stderr, "switchboard: logs: %s: %s\n", dest_labels[DEST_ACTIVITY_STORE],
                d->activity_store->sink.err);
    for (;;) {
        int64_t now = mono_us();
        sb_diag_settings *settings;
        int stop, reopen;
        writer_job *jobs;
        sb_log_record *recs =
            take_work(d, next_retry(d, now + WAKE_INTERVAL_US), stopping, &settings, &stop, &jobs, &reopen);
        if (settings)
            adopt_settings(d, settings);
        now = mono_us();
        if (stop && !stopping) {
            stopping = 1;
            deadline = now + DRAIN_LIMIT_US;
        }
        while (recs) {
            sb_log_record *next = recs->next;
            route(d, recs);
            recs = next;
        }
        run_jobs(jobs);
        if (reopen)
            reopen_sinks(d);
        report_drops(d, now, 0);
        for (dest *x = d->dests; x; x = x->next)
            deliver(d, x, now, deadline);
        int64_t wall = real_us();
        for (dest *x = d->dests; x; x = x->next)
            if (x->opened && x->vt->tick)
                x->vt->tick(&x->sink, wall);
        if (!stopping)
            continue;
        if (mono_us() >= deadline)
            for (dest *x = d->dests; x; x = x->next)
                drop_pending(d, x);
        if (!any_pending(d) && !final_report) {
            final_report = 1; /* one last report of what was lost, delivered in one more round */
            report_drops(d, now, 1);
        }
        if (!any_pending(d))
            break;
    }
    for (dest *x = d->dests; x; x = x->next)
        if (x->opened)
            x->vt->close(&x->sink);
    return NULL;
}

/* ---- start / stop ----------------------------------------------------------------------------- */

static int mkdir_p(const char *dir) {
    char *p = sb_strdup(dir);
    int rc = SB_OK;
    for (char *s = strchr(p + 1, '/');; s = strchr(s + 1, '/')) {
        if (s)
            *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        if (!s)
            break;
        *s = '/';
    }
    sb_free(p);
    return rc;
}

static void diag_free(sb_diag *d) {
    while (d->dests) {
        dest *x = d->dests;
        d->dests = x->next;
        for (size_t i = x->head; i < x->n; i++)
            release(d, x->pending[i]);
        sb_free(x->pending);
        sb_free(x);
    }
    for (sb_log_record *r = d->batch_head, *next; r; r = next) {
        next = r->next;
        sb_log_record_free(r);
    }
    for (sb_log_record *r = d->q_head, *next; r; r = next) {
        next = r->next;
        sb_log_record_free(r);
    }
    if (d->published) {
        sb_diag_settings_free(d->published);
        sb_free(d->published);
    }
    run_jobs(d->j_head); /* a job owns its argument: only running it releases that */
    spare_block *lists[3] = {d->spare, d->returned, d->w_spare};
    for (int i = 0; i < 3; i++)
        for (spare_block *b = lists[i], *next; b; b = next) {
            next = b->next;
            sb_free(b);
        }
    sb_diag_settings_free(&d->settings);
    sb_diag_settings_free(&d->wsettings);
    sb_free(d->data_dir);
    sb_free(d->resource_id);
    sb_free(d->location);
    sb_free(d->subscription_id);
    sb_free(d->resource_group);
    sb_free(d->storage_accounts);
    sb_free(d->workspaces);
    sb_free(d->settings_path);
    sb_free(d);
}

int sb_diag_start(sb_server *srv) {
    if (srv->diag)
        return SB_OK;
    const sb_config *c = &srv->cfg;
    sb_diag *d = sb_calloc(1, sizeof *d);
    d->data_dir = sb_strdup(c->data_dir);
    d->workspace_retention_days = (int)c->workspace_retention_days;
    d->activity_retention_days = (int)c->activity_retention_days;
    d->resource_id =
        srv->resource_id[0]
            ? sb_strdup(srv->resource_id)
            : sb_asprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.SignalRService/SignalR/%s",
                          c->subscription_id, c->resource_group, c->resource_name);
    d->location = sb_strdup(c->location ? c->location : "");
    d->subscription_id = sb_strdup(c->subscription_id ? c->subscription_id : "");
    d->resource_group = sb_strdup(c->resource_group ? c->resource_group : "");
    d->storage_accounts = sb_strdup(c->storage_accounts ? c->storage_accounts : "");
    d->workspaces = sb_strdup(c->workspaces ? c->workspaces : "");
    d->settings_path = sb_asprintf("%s/diagnostic-settings.json", c->data_dir);
    d->max_records = c->log_queue_max_records > 0 ? (size_t)c->log_queue_max_records : 1;
    d->batch_tail = &d->batch_head;
    d->q_tail = &d->q_head;
    d->j_tail = &d->j_head;
    d->rng = (uint64_t)real_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)d;
    if (!d->rng)
        d->rng = 1;

    static const char *const subdirs[] = {"", "/storage", "/workspaces", "/activitylog"};
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        char *dir = sb_asprintf("%s%s", d->data_dir, subdirs[i]);
        int rc = mkdir_p(dir);
        if (rc != SB_OK)
            fprintf(stderr, "switchboard: logs: cannot create %s: %s\n", dir, sb_strerror(rc));
        sb_free(dir);
        if (rc != SB_OK) {
            diag_free(d);
            return rc;
        }
    }
    char err[768];
    int rc = sb_diag_settings_load(&d->settings, d->settings_path, err, sizeof err);
    if (rc != SB_OK) {
        fprintf(stderr, "switchboard: diagnostic settings: %s\n", err);
        diag_free(d);
        return rc;
    }
    set_flags(d);
    sb_diag_settings_copy(&d->wsettings, &d->settings);
    d->activity_store = dest_get(d, DEST_ACTIVITY_STORE, "activitylog");
    rebuild_routes(d);

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&d->mu, NULL);
    /* signals belong to the event loop: the writer starts with all of them blocked */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&d->thread, NULL, writer_main, d);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        fprintf(stderr, "switchboard: logs: cannot start the writer thread: %s\n", strerror(rc));
        pthread_cond_destroy(&d->cv);
        pthread_mutex_destroy(&d->mu);
        diag_free(d);
        return -rc;
    }
    srv->diag = d;
    return SB_OK;
}

void sb_diag_stop(sb_server *srv) {
    sb_diag *d = srv->diag;
    if (!d)
        return;
    sb_diag_flush_turn(srv);
    pthread_mutex_lock(&d->mu);
    d->stop = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    srv->diag = NULL; /* from here on, producers find no pipeline and emit nothing */
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    diag_free(d);
}

int sb_diag_run_on_writer(sb_server *srv, void (*fn)(void *arg), void *arg) {
    sb_diag *d = srv->diag;
    if (!d)
        return SB_ECLOSED;
    writer_job *j = sb_malloc(sizeof *j);
    j->next = NULL;
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&d->mu);
    *d->j_tail = j;
    d->j_tail = &j->next;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return SB_OK;
}

void sb_diag_reopen(sb_server *srv) {
    sb_diag *d = srv->diag;
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->reopen = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}
