/*
 * record.c - log records: the one-allocation copy a producer hands to the
 * pipeline, and the archive JSON line the sinks write.
 *
 * Owns: sb_log_record_new/free, fan-out records (their packed recipients and
 * their expansion), the level and type names, the fixed-width time text and
 * the hand-written JSON writer.  The writer runs once per record per archive
 * destination on the writer thread, so it builds no jansson objects: it
 * reserves the worst case once and writes bytes in place.  A fan-out's lines
 * share everything but the recipient's fields, so its invariant pieces (time,
 * resource id, hub, tracing id, the message around the connection id) are
 * formatted once and copied per line.
 *
 * Invariants:
 *  - a record is immutable once handed to the writer (the pipeline only uses
 *    next/refs); copied strings live in data[], names.h literals are not
 *    copied; a fan-out's recipients live in their own block (rcpt), each
 *    entry an rcpt_head followed by its NUL-terminated strings;
 *  - a fan-out's line for a recipient is byte-identical to the line of the
 *    plain record with the same fields (tests/unit/test_diag_record.c);
 *  - every line produced is one valid JSON object followed by '\n': strings
 *    are escaped (quotes, backslash, control characters) and invalid UTF-8 is
 *    replaced by U+FFFD, so a hostile user id or URL can neither break the
 *    line nor make the file unparsable; valid UTF-8 passes through unchanged;
 *  - absent (NULL) fields are omitted, never written as null.
 *
 * Not here: where lines go (sink_archive.c) and the workspace columns
 * (sink_workspace.c).
 */
#include "diag/record.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "diag/names.h"
#include "util/alloc.h"
#include "util/isotime.h"
#include "util/utf8.h"

#define N_COPIED 13

sb_log_record *sb_log_record_new(const sb_log_fields *f) {
    /* message type, method and route template are usually literals, but a producer may build them (a
     * route template is computed per request), and the record outlives the producer's stack */
    const char *src[N_COPIED] = {f->message,      f->caller_ip,   f->connection_id, f->user_id, f->hub,
                                 f->group,        f->url,         f->trace_id,      f->caller,  f->properties,
                                 f->message_type, f->http_method, f->route_template};
    size_t len[N_COPIED], total = 0;
    for (int i = 0; i < N_COPIED; i++) {
        len[i] = src[i] ? strlen(src[i]) + 1 : 0;
        total += len[i];
    }
    sb_log_record *r = sb_malloc(sizeof *r + total);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r->next = NULL;
    r->refs = 0;
    r->time_us = f->time_us ? f->time_us : (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    r->type = f->type;
    r->level = f->level;
    r->tracing_id = f->tracing_id;
    r->has_tracing_id = f->has_tracing_id;
    r->status_code = f->status_code;
    r->duration_ms = f->duration_ms;
    r->operation_name = f->operation_name;
    r->collection = f->collection;
    r->transport_type = f->transport_type;
    r->connection_type = f->connection_type;
    r->status = f->status;
    r->metric = f->metric;
    r->message_tail = NULL;
    r->rcpt_n = 0;
    r->rcpt = NULL;
    r->rcpt_len = r->rcpt_cap = 0;
    const char **dst[N_COPIED] = {&r->message,       &r->caller_ip,  &r->connection_id, &r->user_id,
                                  &r->hub,           &r->group,      &r->url,           &r->trace_id,
                                  &r->caller,        &r->properties, &r->message_type,  &r->http_method,
                                  &r->route_template};
    char *p = r->data;
    for (int i = 0; i < N_COPIED; i++) {
        if (!src[i]) {
            *dst[i] = NULL;
            continue;
        }
        memcpy(p, src[i], len[i]);
        *dst[i] = p;
        p += len[i];
    }
    return r;
}

void sb_log_fields_sent_to_client(sb_log_fields *f, const char *hub, uint64_t tracing_id, char *head,
                                  size_t headlen) {
    snprintf(head, headlen, SB_MSG_FMT_SENT_TO_CLIENT_HEAD, (unsigned long long)tracing_id);
    *f = (sb_log_fields){.type = SB_LOGT_MESSAGING,
                         .level = SB_LEVEL_INFORMATIONAL,
                         .operation_name = SB_OP_MESSAGE_SENT_TO_CLIENT,
                         .collection = SB_LOG_COLLECTION_MESSAGE,
                         .connection_type = SB_LOG_CONNECTION_TYPE_CLIENT,
                         .hub = hub,
                         .message = head,
                         .message_tail = SB_MSG_SENT_TO_CLIENT_TAIL,
                         .tracing_id = tracing_id,
                         .has_tracing_id = 1};
}

void sb_log_record_free(sb_log_record *r) {
    if (r)
        sb_free(r->rcpt);
    sb_free(r);
}

/* ---- fan-out recipients ---- */

#define ABSENT UINT32_MAX

/* One packed recipient: the head, then its connection id, user id and caller IP, each NUL-terminated, absent
 * ones left out.  Unaligned: heads are copied in and out with memcpy. */
typedef struct rcpt_head {
    const char *transport_type;
    uint32_t len[3]; /* strlen of connection id, user id, caller IP; ABSENT when NULL */
} rcpt_head;

#define HEAD_SIZE (sizeof(const char *) + 3 * sizeof(uint32_t))

sb_log_record *sb_log_record_new_fanout(const sb_log_fields *shared, const sb_log_recipient *first, void *block,
                                        size_t block_cap) {
    sb_log_fields f = *shared;
    f.connection_id = f.user_id = f.caller_ip = NULL;
    f.transport_type = NULL;
    sb_log_record *r = sb_log_record_new(&f);
    r->message_tail = shared->message_tail;
    if (block) {
        r->rcpt = block;
        r->rcpt_cap = block_cap;
    }
    sb_log_record_add_recipient(r, first);
    return r;
}

void *sb_log_record_free_keep_block(sb_log_record *r, size_t *cap) {
    void *block = r->rcpt;
    *cap = r->rcpt_cap;
    sb_free(r);
    return block;
}

void sb_log_record_add_recipient(sb_log_record *r, const sb_log_recipient *rc) {
    const char *src[3] = {rc->connection_id, rc->user_id, rc->caller_ip};
    rcpt_head h = {.transport_type = rc->transport_type};
    size_t need = HEAD_SIZE;
    for (int i = 0; i < 3; i++) {
        size_t n = src[i] ? strlen(src[i]) : 0;
        if (n >= ABSENT) /* beyond any request this service accepts */
            src[i] = NULL;
        h.len[i] = src[i] ? (uint32_t)n : ABSENT;
        need += src[i] ? n + 1 : 0;
    }
    if (r->rcpt_cap - r->rcpt_len < need) {
        size_t cap = r->rcpt_cap ? r->rcpt_cap * 2 : need * 8;
        while (cap - r->rcpt_len < need)
            cap *= 2;
        r->rcpt = sb_realloc(r->rcpt, cap);
        r->rcpt_cap = cap;
    }
    char *o = r->rcpt + r->rcpt_len;
    memcpy(o, &h.transport_type, sizeof h.transport_type);
    memcpy(o + sizeof h.transport_type, h.len, sizeof h.len);
    o += HEAD_SIZE;
    for (int i = 0; i < 3; i++) {
        if (!src[i])
            continue;
        memcpy(o, src[i], h.len[i] + 1);
        o += h.len[i] + 1;
    }
    r->rcpt_len += need;
    r->rcpt_n++;
}

/* Decode the recipient at *pos and step past it. */
static void rcpt_read(const sb_log_record *r, size_t *pos, sb_log_recipient *rc, size_t len[3]) {
    const char *p = r->rcpt + *pos;
    rcpt_head h;
    memcpy(&h.transport_type, p, sizeof h.transport_type);
    memcpy(h.len, p + sizeof h.transport_type, sizeof h.len);
    p += HEAD_SIZE;
    const char **dst[3] = {&rc->connection_id, &rc->user_id, &rc->caller_ip};
    for (int i = 0; i < 3; i++) {
        if (h.len[i] == ABSENT) {
            len[i] = 0;
            *dst[i] = NULL;
            continue;
        }
        len[i] = h.len[i];
        *dst[i] = p;
        p += len[i] + 1;
    }
    rc->transport_type = h.transport_type;
    *pos = (size_t)(p - r->rcpt);
}

const sb_log_record *sb_log_record_next(const sb_log_record *r, size_t *pos, sb_log_record *view,
                                        sb_buf *message) {
    if (!r->rcpt_n) {
        if (*pos)
            return NULL;
        *pos = 1;
        return r;
    }
    if (*pos >= r->rcpt_len)
        return NULL;
    sb_log_recipient rc;
    size_t len[3];
    rcpt_read(r, pos, &rc, len);
    *view = *r;
    view->next = NULL;
    view->rcpt_n = 0;
    view->rcpt = NULL;
    view->rcpt_len = view->rcpt_cap = 0;
    view->message_tail = NULL;
    view->connection_id = rc.connection_id;
    view->user_id = rc.user_id;
    view->caller_ip = rc.caller_ip;
    view->transport_type = rc.transport_type;
    if (r->message) {
        sb_buf_reset(message);
        sb_buf_appends(message, r->message);
        if (rc.connection_id)
            sb_buf_append(message, rc.connection_id, len[0]);
        if (r->message_tail)
            sb_buf_appends(message, r->message_tail);
        view->message = message->data;
    }
    return view;
}

const char *sb_log_level_name(sb_log_level l) {
    switch (l) {
    case SB_LEVEL_WARNING:
        return SB_LOG_LEVEL_WARNING;
    case SB_LEVEL_ERROR:
        return SB_LOG_LEVEL_ERROR;
    case SB_LEVEL_CRITICAL:
        return SB_LOG_LEVEL_CRITICAL;
    default:
        return SB_LOG_LEVEL_INFORMATIONAL;
    }
}

const char *sb_log_type_name(sb_log_type t) {
    switch (t) {
    case SB_LOGT_MESSAGING:
        return SB_LOG_TYPE_MESSAGING;
    case SB_LOGT_HTTP:
        return SB_LOG_TYPE_HTTP;
    case SB_LOGT_ACTIVITY:
        return SB_ACTIVITY_CATEGORY_ADMINISTRATIVE;
    default:
        return SB_LOG_TYPE_CONNECTIVITY;
    }
}

/* ---- numbers and time, written in place ---- */

static char *put_digits(char *o, unsigned v, int width) {
    for (int i = width - 1; i >= 0; i--) {
        o[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return o + width;
}

#define TIME_TEXT_LEN 28                        /* 2026-11-26T01:02:03.4560000Z */
#define TIME_MAX_US INT64_C(253402300799999999) /* 9999-12-31T23:59:59.999999Z keeps the year 4 digits */

static char *put_time(char *o, int64_t t) {
    if (t < 0)
        t = 0;
    if (t > TIME_MAX_US)
        t = TIME_MAX_US;
    int64_t secs = t / 1000000;
    unsigned us = (unsigned)(t % 1000000);
    int y;
    unsigned m, d, sod = (unsigned)(secs % 86400);
    sb_civil_from_days(secs / 86400, &y, &m, &d);
    o = put_digits(o, (unsigned)y, 4);
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
    o = put_digits(o, us, 6);
    *o++ = '0'; /* Azure writes 100 ns ticks; ours are microseconds */
    *o++ = 'Z';
    return o;
}

void sb_log_time_format(int64_t time_us, sb_buf *out) {
    sb_buf_reserve(out, TIME_TEXT_LEN);
    out->len = (size_t)(put_time(out->data + out->len, time_us) - out->data);
    out->data[out->len] = '\0';
}

static void put_u64(sb_buf *b, uint64_t v) {
    char tmp[24], *p = tmp + sizeof tmp;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sb_buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

static void put_int(sb_buf *b, int v) {
    if (v < 0) {
        sb_buf_appendc(b, '-');
        put_u64(b, (uint64_t)0 - (uint64_t)(int64_t)v);
    } else {
        put_u64(b, (uint64_t)v);
    }
}

/* Milliseconds with at most 3 decimals and no trailing zeros; JSON has no NaN or infinity, so those are 0. */
static void put_ms(sb_buf *b, double v) {
    if (!isfinite(v))
        v = 0;
    char tmp[400]; /* the largest double is 309 digits */
    int n = snprintf(tmp, sizeof tmp, "%.3f", v);
    if (n <= 0 || (size_t)n >= sizeof tmp) {
        sb_buf_appendc(b, '0');
        return;
    }
    while (n > 1 && tmp[n - 1] == '0')
        n--;
    if (tmp[n - 1] == '.')
        n--;
    if (n == 2 && tmp[0] == '-' && tmp[1] == '0') /* -0.0001 rounds to "-0" */
        sb_buf_appendc(b, '0');
    else
        sb_buf_append(b, tmp, (size_t)n);
}

/* ---- strings ---- */

static const char hexdigits[] = "0123456789abcdef";

/* Length of the valid UTF-8 sequence at p (<= end), or 0 with *skip = bytes to replace by one U+FFFD. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end, size_t *skip) {
    uint32_t st = SB_UTF8_ACCEPT;
    size_t k = 0;
    do {
        sb_utf8_feed(&st, p + k, 1);
        k++;
    } while (st != SB_UTF8_ACCEPT && st != SB_UTF8_REJECT && p + k < end);
    if (st == SB_UTF8_ACCEPT)
        return k;
    /* rejected at byte k-1: the bytes before it were a valid prefix and that byte starts afresh */
    *skip = st == SB_UTF8_REJECT && k > 1 ? k - 1 : k;
    return 0;
}

/* Length of the leading run of s[0..n) that JSON takes as it is: printable ASCII other than '"' and '\\'.
 * Eight bytes at a time; a word that may hold anything else stops the scan (byte by byte from there). */
static size_t plain_run(const unsigned char *s, size_t n) {
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w, q, bs;
        memcpy(&w, s + i, 8);
        q = w ^ (ones * '"');
        bs = w ^ (ones * '\\');
        /* per byte, the high bit of: byte >= 0x80, byte < 0x20, byte == '"', byte == '\\' */
        if ((w | ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & highs)
            break;
    }
    while (i < n && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\')
        i++;
    return i;
}

/* Write the escaped contents of the n bytes at s at o (room for 6n bytes: every byte a \u00XX escape) and
 * return the end; upper = ASCII letters upper-cased (resource ids). */
static char *esc_to(char *o, const char *s, size_t n, int upper) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        if (!upper) {
            size_t run = plain_run(p, (size_t)(end - p));
            memcpy(o, p, run);
            o += run;
            p += run;
            if (p == end)
                break;
        }
        unsigned c = *p;
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *o++ = (char)(upper && c >= 'a' && c <= 'z' ? c - ('a' - 'A') : c);
            p++;
            continue;
        }
        if (c < 0x80) {
            *o++ = '\\';
            switch (c) {
            case '"':
            case '\\':
                *o++ = (char)c;
                break;
            case '\n':
                *o++ = 'n';
                break;
            case '\r':
                *o++ = 'r';
                break;
            case '\t':
                *o++ = 't';
                break;
            case '\b':
                *o++ = 'b';
                break;
            case '\f':
                *o++ = 'f';
                break;
            default:
                memcpy(o, "u00", 3);
                o += 3;
                *o++ = hexdigits[c >> 4];
                *o++ = hexdigits[c & 15];
            }
            p++;
            continue;
        }
        size_t skip = 0, k = utf8_seq(p, end, &skip);
        if (k) {
            memcpy(o, p, k);
            o += k;
            p += k;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            p += skip;
        }
    }
    return o;
}

/* The JSON string literal for the n bytes at s (quoted = with its quotes, else only the escaped contents);
 * upper = ASCII letters upper-cased (resource ids). */
static void put_esc(sb_buf *b, const char *s, size_t n, int upper, int quoted) {
    sb_buf_reserve(b, 6 * n + 2);
    char *o = b->data + b->len;
    if (quoted)
        *o++ = '"';
    o = esc_to(o, s, n, upper);
    if (quoted)
        *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
}

static void put_str(sb_buf *b, const char *s, int upper) {
    put_esc(b, s, strlen(s), upper, 1);
}

#define PUT_LIT(b, s) sb_buf_append((b), (s), sizeof(s) - 1)
#define OPT_STR(b, key, v)                                                                                   \
    do {                                                                                                     \
        if (v) {                                                                                             \
            PUT_LIT(b, ",\"" key "\":");                                                                     \
            put_str(b, v, 0);                                                                                \
        }                                                                                                    \
    } while (0)

/* Activity properties are the producer's JSON object; re-encoded compactly so a pretty-printed or invalid
 * document can never split the line (activity records are rare, so jansson is affordable here). */
static void put_activity_properties(sb_buf *b, const char *props) {
    json_t *j = props ? json_loads(props, 0, NULL) : NULL;
    char *text = json_is_object(j) ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (text) {
        sb_buf_appends(b, text);
    } else if (props) { /* not an object: keep the text, as a string, under a name that says so */
        PUT_LIT(b, "{\"text\":");
        put_str(b, props, 0);
        sb_buf_appendc(b, '}');
    } else {
        PUT_LIT(b, "{}");
    }
    free(text);
    json_decref(j);
}

/* The line up to the category: {"time","level","resourceId","location". */
static void put_line_head(sb_buf *out, const sb_log_record *r, const char *resource_id, const char *location) {
    PUT_LIT(out, "{\"time\":\"");
    sb_log_time_format(r->time_us, out);
    PUT_LIT(out, "\",\"level\":");
    put_str(out, sb_log_level_name(r->level), 0);
    if (resource_id) {
        PUT_LIT(out, ",\"resourceId\":");
        put_str(out, resource_id, 1);
    }
    OPT_STR(out, "location", location);
}

/* The pieces of a resource-log line around the recipient's fields (see sb_log_record_archive_json). */
static void put_resource_head(sb_buf *out, const sb_log_record *r, const char *resource_id,
                              const char *location) {
    put_line_head(out, r, resource_id, location);
    PUT_LIT(out, ",\"category\":\"" SB_LOG_CATEGORY_ALLLOGS "\"");
    OPT_STR(out, "operationName", r->operation_name);
}

static void put_properties_head(sb_buf *out, const sb_log_record *r) {
    PUT_LIT(out, ",\"properties\":{\"type\":");
    put_str(out, sb_log_type_name(r->type), 0);
    OPT_STR(out, "collection", r->collection);
}

static void put_properties_tail(sb_buf *out, const sb_log_record *r) {
    OPT_STR(out, "hub", r->hub);
    OPT_STR(out, "groupName", r->group);
    if (r->has_tracing_id) {
        PUT_LIT(out, ",\"messageTracingId\":");
        put_u64(out, r->tracing_id);
    }
    OPT_STR(out, "messageType", r->message_type);
    if (r->type == SB_LOGT_HTTP) {
        OPT_STR(out, "httpMethod", r->http_method);
        OPT_STR(out, "url", r->url);
        OPT_STR(out, "routeTemplate", r->route_template);
        PUT_LIT(out, ",\"statusCode\":");
        put_int(out, r->status_code);
        PUT_LIT(out, ",\"durationMs\":");
        put_ms(out, r->duration_ms);
        OPT_STR(out, "traceId", r->trace_id);
    }
    PUT_LIT(out, "}}\n");
}

static void archive_json_one(const sb_log_record *r, const char *resource_id, const char *location,
                             sb_buf *out) {
    if (r->type == SB_LOGT_ACTIVITY) {
        put_line_head(out, r, resource_id, location);
        PUT_LIT(out, ",\"category\":\"" SB_ACTIVITY_CATEGORY_ADMINISTRATIVE "\"");
        OPT_STR(out, "operationName", r->operation_name);
        OPT_STR(out, "resultType", r->status);
        OPT_STR(out, "resultDescription", r->message); /* Azure: the operation's static description */
        OPT_STR(out, "caller", r->caller);
        OPT_STR(out, "callerIpAddress", r->caller_ip);
        PUT_LIT(out, ",\"properties\":");
        put_activity_properties(out, r->properties);
        PUT_LIT(out, "}\n");
        return;
    }
    put_resource_head(out, r, resource_id, location);
    OPT_STR(out, "callerIpAddress", r->caller_ip);
    put_properties_head(out, r);
    OPT_STR(out, "connectionId", r->connection_id);
    OPT_STR(out, "transportType", r->transport_type);
    OPT_STR(out, "connectionType", r->connection_type);
    OPT_STR(out, "userId", r->user_id);
    OPT_STR(out, "message", r->message);
    put_properties_tail(out, r);
}

/* Escaping the message in three pieces (head, connection id, tail) gives the bytes of escaping it whole when
 * the pieces meet at ASCII characters: no UTF-8 sequence spans a boundary, and an invalid one ending a piece
 * is replaced the same way whether the string ends there or an ASCII character follows. */
static int message_splits_cleanly(const sb_log_record *r) {
    size_t n = r->message ? strlen(r->message) : 0;
    return (!n || (unsigned char)r->message[n - 1] < 0x80) &&
           (!r->message_tail || (unsigned char)r->message_tail[0] < 0x80);
}

/* Every line of a fan-out: the invariant pieces once into inv, then per recipient those pieces and its own
 * fields; its connection id is escaped once and copied into the message. */
static void archive_json_fanout(const sb_log_record *r, const char *resource_id, const char *location,
                                sb_buf *out) {
    enum { HEAD, PROPS, CONN_TYPE, MSG_HEAD, TAIL, NPIECES };
    size_t at[NPIECES + 1];
    sb_buf inv;
    sb_buf_init(&inv);
    at[HEAD] = inv.len;
    put_resource_head(&inv, r, resource_id, location);
    at[PROPS] = inv.len;
    put_properties_head(&inv, r);
    at[CONN_TYPE] = inv.len;
    OPT_STR(&inv, "connectionType", r->connection_type);
    at[MSG_HEAD] = inv.len;
    if (r->message) {
        PUT_LIT(&inv, ",\"message\":\"");
        put_esc(&inv, r->message, strlen(r->message), 0, 0);
    }
    at[TAIL] = inv.len;
    if (r->message) {
        if (r->message_tail)
            put_esc(&inv, r->message_tail, strlen(r->message_tail), 0, 0);
        sb_buf_appendc(&inv, '"');
    }
    put_properties_tail(&inv, r);
    at[NPIECES] = inv.len;
#define PIECE(k) (memcpy(o, inv.data + at[k], at[(k) + 1] - at[k]), o += at[(k) + 1] - at[k])
#define LIT(s) (memcpy(o, s, sizeof(s) - 1), o += sizeof(s) - 1)
    size_t pieces = at[NPIECES] - at[HEAD];
    size_t pos = 0;
    while (pos < r->rcpt_len) {
        sb_log_recipient rc;
        size_t len[3];
        rcpt_read(r, &pos, &rc, len);
        size_t tt_len = rc.transport_type ? strlen(rc.transport_type) : 0;
        size_t own = 6 * ((rc.connection_id ? 2 * len[0] : 0) + (rc.user_id ? len[1] : 0) +
                          (rc.caller_ip ? len[2] : 0) + tt_len);
        sb_buf_reserve(out, pieces + own + 96); /* + the keys of the recipient's fields */
        char *o = out->data + out->len;
        PIECE(HEAD);
        if (rc.caller_ip) {
            LIT(",\"callerIpAddress\":\"");
            o = esc_to(o, rc.caller_ip, len[2], 0);
            *o++ = '"';
        }
        PIECE(PROPS);
        const char *conn = NULL;
        size_t conn_len = 0;
        if (rc.connection_id) {
            LIT(",\"connectionId\":\"");
            conn = o;
            o = esc_to(o, rc.connection_id, len[0], 0);
            conn_len = (size_t)(o - conn);
            *o++ = '"';
        }
        if (rc.transport_type) {
            LIT(",\"transportType\":\"");
            o = esc_to(o, rc.transport_type, tt_len, 0);
            *o++ = '"';
        }
        PIECE(CONN_TYPE);
        if (rc.user_id) {
            LIT(",\"userId\":\"");
            o = esc_to(o, rc.user_id, len[1], 0);
            *o++ = '"';
        }
        PIECE(MSG_HEAD);
        if (r->message && conn_len) { /* the connection id as escaped above */
            memcpy(o, conn, conn_len);
            o += conn_len;
        }
        PIECE(TAIL);
        out->len = (size_t)(o - out->data);
        out->data[out->len] = '\0';
    }
#undef LIT
#undef PIECE
    sb_buf_free(&inv);
}

void sb_log_record_archive_json(const sb_log_record *r, const char *resource_id, const char *location,
                                sb_buf *out) {
    if (!r->rcpt_n) {
        archive_json_one(r, resource_id, location, out);
        return;
    }
    if (r->type != SB_LOGT_ACTIVITY && message_splits_cleanly(r)) {
        archive_json_fanout(r, resource_id, location, out);
        return;
    }
    sb_log_record view;
    sb_buf msg;
    sb_buf_init(&msg);
    size_t pos = 0;
    for (const sb_log_record *v; (v = sb_log_record_next(r, &pos, &view, &msg));)
        archive_json_one(v, resource_id, location, out);
    sb_buf_free(&msg);
}

/* Numbers of a metric row: integers without a fraction, others to 15 significant digits (a percentage), never
 * NaN or infinity (not JSON). */
static void put_number(sb_buf *b, double v) {
    if (!isfinite(v))
        v = 0;
    char tmp[40];
    int n = v == (double)(int64_t)v && fabs(v) < 9007199254740992.0 ? snprintf(tmp, sizeof tmp, "%lld", (long long)v)
                                                                     : snprintf(tmp, sizeof tmp, "%.15g", v);
    sb_buf_append(b, tmp, n > 0 && (size_t)n < sizeof tmp ? (size_t)n : 0);
}

void sb_log_record_metric_json(const sb_log_record *r, const char *resource_id, sb_buf *out) {
    PUT_LIT(out, "{\"count\":");
    put_number(out, r->metric.count);
    PUT_LIT(out, ",\"total\":");
    put_number(out, r->metric.total);
    PUT_LIT(out, ",\"minimum\":");
    put_number(out, r->metric.minimum);
    PUT_LIT(out, ",\"maximum\":");
    put_number(out, r->metric.maximum);
    PUT_LIT(out, ",\"average\":");
    put_number(out, r->metric.average);
    PUT_LIT(out, ",\"resourceId\":");
    put_str(out, resource_id ? resource_id : "", 1);
    PUT_LIT(out, ",\"time\":\"");
    sb_log_time_format(r->time_us, out);
    PUT_LIT(out, "\",\"metricName\":");
    put_str(out, r->metric.name ? r->metric.name : "", 0);
    PUT_LIT(out, ",\"timeGrain\":\"PT1M\"}\n");
}
