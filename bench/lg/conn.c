/*
 * conn.c - the load generator's WebSocket client connections: subscribers,
 * invoking clients (default mode) and echo clients.
 *
 * Life of a connection (state in sb_lg_conn.state):
 *
 *   Switchboard:  CONNECTING -> NEGOTIATE (POST {path}negotiate?{query}&negotiateVersion=1)
 *                 -> UPGRADE (GET {path}?{query}&id=<connectionToken>, on the same keep-alive
 *                 socket unless the service closed it) -> HANDSHAKE ({"protocol":..,"version":1})
 *                 -> OPEN once "{}" + 0x1e arrives
 *   nchan:        CONNECTING -> UPGRADE (GET /sub?id=<channel>, or /pubsub for clients that
 *                 publish: echo clients, the first --publishers with --via ws) -> OPEN
 *
 * Anything unexpected before OPEN is a failure (counted, first reason kept);
 * anything that ends an OPEN connection is a close (counted, first reason kept).
 * Neither is retried: hiding a refused or dropped connection would hide loss.
 *
 * Hot path (OPEN): one recvmsg() into a shared 256 KB buffer, the frame parser hands
 * data-frame payload chunks to the stamp scanner, each stamp is one histogram
 * update.  No allocation, no copy, no JSON.
 *
 * Arrival time: the kernel's receive timestamp of the data (SO_TIMESTAMPNS), not the
 * moment this thread gets round to reading the socket.  One thread reading 10,000
 * sockets in turn would otherwise add its own queueing (tens of ms) to every
 * server's latency alike and flatten the comparison.  For TCP the stamp is that of
 * the last segment the read consumed, so messages coalesced in one read get the
 * latest arrival among them (an overestimate, never an underestimate).  The handshake answer and a server
 * Close message are the only hub messages ever looked at; pings from the service
 * are ignored (they only keep the connection alive, as the spec allows).
 *
 * Writes (handshake, pings, invocations) are small: written directly; the rare
 * short write parks the rest in a heap block and waits for EPOLLOUT.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"
#include "net/ws_frame.h"
#include "util/alloc.h"
#include "util/error.h"

#define RBUF_SIZE (256 * 1024)
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="

typedef struct sb_lg_pending {
    size_t len, off, cap;
    uint8_t data[];
} sb_lg_pending;

static uint8_t rbuf[RBUF_SIZE];
static uint8_t *wbuf; /* one outgoing frame; grown to the largest ever sent */
static size_t wbuf_cap;
static sb_lg_ctx *cur; /* the ctx of the frame callbacks below (one ctx per process) */

sb_lg_setup *sb_lg_setup_new(void) {
    sb_lg_setup *s = sb_calloc(1, sizeof *s);
    sb_buf_init(&s->in);
    return s;
}

void sb_lg_setup_free(sb_lg_setup *s) {
    if (!s)
        return;
    sb_buf_free(&s->in);
    sb_free(s->token);
    sb_free(s->path);
    sb_free(s->query);
    sb_free(s->conn_token);
    sb_free(s->conn_id);
    sb_free(s);
}

static uint32_t next_mask(void) {
    static uint32_t x = 2463534242u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}

/* ---- ending ---------------------------------------------------------------------------------- */

/* End a connection: a failure if it never opened, a close if it did; "what" + detail is kept as the
 * run's first problem if it is the first. */
static void drop(sb_lg_ctx *c, sb_lg_conn *cn, const char *what, const char *detail) {
    int was_open = cn->state == SB_LG_CS_OPEN;
    if (cn->state == SB_LG_CS_FAILED || cn->state == SB_LG_CS_CLOSED)
        return;
    if (was_open) {
        c->open--;
        c->st.closed++;
        cn->state = SB_LG_CS_CLOSED;
        sb_lg_note_error(c, "connection %u closed: %s%s", cn->index, what, detail ? detail : "");
    } else {
        c->connecting--;
        c->st.failed++;
        cn->state = SB_LG_CS_FAILED;
        sb_lg_note_error(c, "connection %u failed: %s%s", cn->index, what, detail ? detail : "");
    }
    if (cn->io.fd >= 0) {
        sb_lg_loop_del(c, &cn->io);
        close(cn->io.fd);
        cn->io.fd = -1;
    }
    sb_lg_setup_free(cn->setup);
    cn->setup = NULL;
    sb_free(cn->pending);
    cn->pending = NULL;
    sb_lg_ws_free(&cn->rx);
}

static void opened(sb_lg_ctx *c, sb_lg_conn *cn) {
    cn->state = SB_LG_CS_OPEN;
    c->connecting--;
    c->open++;
    c->st.opened++;
    sb_lg_setup_free(cn->setup);
    cn->setup = NULL;
}

/* ---- writing --------------------------------------------------------------------------------- */

static void want_write(sb_lg_ctx *c, sb_lg_conn *cn, int on) {
    sb_lg_loop_mod(c, &cn->io, EPOLLIN | (on ? EPOLLOUT : 0));
}

static int write_bytes(sb_lg_ctx *c, sb_lg_conn *cn, const void *p, size_t n) {
    size_t off = 0;
    if (!cn->pending) {
        while (off < n) {
            ssize_t w = send(cn->io.fd, (const char *)p + off, n - off, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0 && errno == EAGAIN)
                break;
            if (w < 0)
                return -errno;
            off += (size_t)w;
        }
        if (off == n)
            return SB_OK;
    }
    size_t rest = n - off;
    sb_lg_pending *pd = cn->pending;
    size_t have = pd ? pd->len - pd->off : 0;
    if (!pd || pd->cap < have + rest) {
        sb_lg_pending *np = sb_malloc(sizeof *np + have + rest);
        np->cap = have + rest;
        np->len = have;
        np->off = 0;
        if (pd)
            memcpy(np->data, pd->data + pd->off, have);
        sb_free(pd);
        cn->pending = pd = np;
    } else if (pd->off) {
        memmove(pd->data, pd->data + pd->off, have);
        pd->len = have;
        pd->off = 0;
    }
    memcpy(pd->data + pd->len, (const char *)p + off, rest);
    pd->len += rest;
    want_write(c, cn, 1);
    return SB_OK;
}

static int flush_pending(sb_lg_ctx *c, sb_lg_conn *cn) {
    sb_lg_pending *pd = cn->pending;
    while (pd->off < pd->len) {
        ssize_t w = send(cn->io.fd, pd->data + pd->off, pd->len - pd->off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return SB_OK;
        if (w < 0)
            return -errno;
        pd->off += (size_t)w;
    }
    sb_free(pd);
    cn->pending = NULL;
    want_write(c, cn, 0);
    return SB_OK;
}

int sb_lg_conn_send(sb_lg_ctx *c, sb_lg_conn *cn, int opcode, const void *p, size_t n) {
    if (cn->state != SB_LG_CS_OPEN && cn->state != SB_LG_CS_HANDSHAKE)
        return SB_ECLOSED;
    if (wbuf_cap < n + SB_LG_WS_MAX_HEADER) {
        wbuf_cap = n + SB_LG_WS_MAX_HEADER + 4096;
        sb_free(wbuf);
        wbuf = sb_malloc(wbuf_cap);
    }
    size_t len = sb_lg_ws_frame(wbuf, opcode, p, n, next_mask());
    int rc = write_bytes(c, cn, wbuf, len);
    if (rc != SB_OK)
        drop(c, cn, "write: ", strerror(-rc));
    return rc;
}

void sb_lg_conn_ping(sb_lg_ctx *c, sb_lg_conn *cn) {
    if (c->o.target == SB_LG_TARGET_NCHAN)
        sb_lg_conn_send(c, cn, SB_WS_OP_PING, "", 0);
    else if (c->o.protocol == SB_HUBPROTO_MSGPACK)
        sb_lg_conn_send(c, cn, SB_WS_OP_BINARY, "\x02\x91\x06", 3);
    else
        sb_lg_conn_send(c, cn, SB_WS_OP_TEXT, "{\"type\":6}\x1e", 11);
}

/* ---- requests -------------------------------------------------------------------------------- */

static const char *channel_of(sb_lg_ctx *c, sb_lg_conn *cn, char *buf, size_t len) {
    switch (c->o.scenario) {
    case SB_LG_SC_GROUP:
        snprintf(buf, len, "g%u", cn->index / (unsigned)c->o.group_size);
        break;
    case SB_LG_SC_USER:
        snprintf(buf, len, "u%u", cn->index);
        break;
    case SB_LG_SC_ECHO:
        snprintf(buf, len, "e%u", cn->index);
        break;
    default:
        snprintf(buf, len, "b");
        break;
    }
    return buf;
}

static int send_request(sb_lg_ctx *c, sb_lg_conn *cn) {
    sb_lg_setup *s = cn->setup;
    char buf[4096];
    int n;
    if (c->o.target == SB_LG_TARGET_NCHAN) {
        char ch[32];
        n = snprintf(buf, sizeof buf,
                     "GET /%s?id=%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     c->o.publish == SB_LG_PUBLISH_NCHAN_WS &&
                             (c->o.scenario == SB_LG_SC_ECHO || cn->index < (unsigned)c->o.publishers)
                         ? "pubsub"
                         : "sub",
                     channel_of(c, cn, ch, sizeof ch), c->o.host, c->o.port);
        cn->state = SB_LG_CS_UPGRADE;
    } else if (!s->conn_token) {
        n = snprintf(buf, sizeof buf,
                     "POST %snegotiate?%s&negotiateVersion=1 HTTP/1.1\r\nHost: %s:%d\r\n"
                     "Authorization: Bearer %s\r\nContent-Length: 0\r\n\r\n",
                     s->path, s->query, c->o.host, c->o.port, s->token);
        cn->state = SB_LG_CS_NEGOTIATE;
    } else {
        n = snprintf(
            buf, sizeof buf,
            "GET %s?%s&id=%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n"
            "Authorization: Bearer %s\r\n\r\n",
            s->path, s->query, s->conn_token, c->o.host, c->o.port, s->token);
        cn->state = SB_LG_CS_UPGRADE;
    }
    if (n <= 0 || (size_t)n >= sizeof buf)
        return SB_E2BIG;
    return write_bytes(c, cn, buf, (size_t)n);
}

static void open_socket(sb_lg_ctx *c, sb_lg_conn *cn) {
    char src[32];
    const char *src_ip = NULL;
    if (c->o.source_ips > 1) {
        snprintf(src, sizeof src, "127.0.0.%u", 1 + cn->index % (unsigned)c->o.source_ips);
        src_ip = src;
    }
    int in_progress;
    int fd = sb_lg_tcp_connect(c->o.host, c->o.port, src_ip, &in_progress);
    if (fd < 0) {
        cn->state = SB_LG_CS_CONNECTING;
        drop(c, cn, "connect: ", strerror(-fd));
        return;
    }
    if (!c->o.user_clock) {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    }
    cn->io.fd = fd;
    cn->io.kind = SB_LG_IO_CONN;
    cn->state = SB_LG_CS_CONNECTING;
    sb_lg_loop_add(c, &cn->io, EPOLLIN | EPOLLOUT);
}

void sb_lg_conn_start(sb_lg_ctx *c, sb_lg_conn *cn) {
    memset(&cn->rx, 0, sizeof cn->rx);
    memset(&cn->scan, 0, sizeof cn->scan);
    cn->io.fd = -1;
    if (!cn->setup)
        cn->setup = sb_lg_setup_new();
    sb_lg_setup *s = cn->setup;
    if (c->o.target == SB_LG_TARGET_SWITCHBOARD && !s->token) {
        if (c->o.scenario == SB_LG_SC_USER) {
            char aud[512], user[32];
            snprintf(aud, sizeof aud, "%s/client/?hub=%s", c->o.url, c->o.hub);
            snprintf(user, sizeof user, "user%u", cn->index);
            s->token = sb_lg_token(c->o.access_key, aud, user);
        } else {
            s->token = sb_strdup(c->client_token);
        }
        s->path = sb_strdup("/client/");
        s->query = sb_asprintf("hub=%s", c->o.hub);
    }
    open_socket(c, cn);
}

/* ---- receiving ------------------------------------------------------------------------------- */

static void on_stamp(void *arg, uint64_t ts, uint32_t seq) {
    sb_lg_conn *cn = arg;
    sb_lg_stats *st = &cur->st;
    uint64_t now = cur->rx_ns;
    sb_lg_hist_record(&st->lat, now > ts ? now - ts : 0);
    st->received++;
    cn->received++;
    st->last_delivery_ns = now;
}

/* The hub handshake answer: "{}" then 0x1e; anything else is the service refusing us. */
static void handshake_data(sb_lg_conn *cn, const uint8_t *p, size_t n) {
    sb_lg_setup *s = cn->setup;
    const uint8_t *rs = memchr(p, 0x1e, n);
    size_t take = rs ? (size_t)(rs - p) : n;
    if (s->in.len < 1024)
        sb_buf_append(&s->in, p, take);
    if (!rs)
        return;
    if (s->in.len == 2 && memcmp(s->in.data, "{}", 2) == 0) {
        opened(cur, cn);
        size_t rest = n - take - 1;
        if (rest)
            sb_lg_scan_feed(&cn->scan, rs + 1, rest, on_stamp, cn);
    } else {
        drop(cur, cn, "handshake answer ", s->in.data);
    }
}

static void on_data(void *arg, const uint8_t *p, size_t n) {
    sb_lg_conn *cn = arg;
    if (cn->state == SB_LG_CS_OPEN)
        sb_lg_scan_feed(&cn->scan, p, n, on_stamp, cn);
    else if (cn->state == SB_LG_CS_HANDSHAKE)
        handshake_data(cn, p, n);
}

static void on_control(void *arg, int opcode, const uint8_t *p, size_t n) {
    sb_lg_conn *cn = arg;
    if (opcode == SB_WS_OP_PING) {
        sb_lg_conn_send(cur, cn, SB_WS_OP_PONG, p, n);
    } else if (opcode == SB_WS_OP_CLOSE) {
        char why[160];
        unsigned code = n >= 2 ? (unsigned)(p[0] << 8 | p[1]) : 1005;
        snprintf(why, sizeof why, "%u %.*s", code, n > 2 ? (int)(n - 2) : 0,
                 n > 2 ? (const char *)p + 2 : "");
        drop(cur, cn, "server sent close ", why);
    }
}

static const sb_lg_ws_handler ws_handler = {on_data, on_control};

static void feed_ws(sb_lg_ctx *c, sb_lg_conn *cn, const uint8_t *p, size_t n) {
    cur = c;
    if (sb_lg_ws_feed(&cn->rx, p, n, &ws_handler, cn) != SB_OK)
        drop(c, cn, "invalid WebSocket frame from the server", NULL);
}

static char *json_str(json_t *o, const char *k) {
    const char *v = json_string_value(json_object_get(o, k));
    return v ? sb_strdup(v) : NULL;
}

/* A whole HTTP response arrived during set-up.  Returns bytes that belong to the WebSocket. */
static void on_response(sb_lg_ctx *c, sb_lg_conn *cn, const sb_lg_http_resp *r, size_t total) {
    sb_lg_setup *s = cn->setup;
    const char *body = s->in.data + r->head_len;
    size_t body_len = total - r->head_len;
    if (cn->state == SB_LG_CS_NEGOTIATE) {
        json_t *j = r->status == 200 ? json_loadb(body, body_len, 0, NULL) : NULL;
        if (j) {
            s->conn_token = json_str(j, "connectionToken");
            s->conn_id = json_str(j, "connectionId");
            json_decref(j);
        }
        if (!s->conn_token) {
            char why[200];
            snprintf(why, sizeof why, "%d %.*s", r->status, (int)(body_len < 150 ? body_len : 150), body);
            drop(c, cn, "negotiate answered ", why);
            return;
        }
        if (c->conn_ids && s->conn_id)
            c->conn_ids[cn->index] = sb_strdup(s->conn_id);
        sb_buf_consume(&s->in, total);
        if (r->close) {
            /* the service did not keep the negotiate connection: connect again for the upgrade */
            sb_lg_loop_del(c, &cn->io);
            close(cn->io.fd);
            cn->io.fd = -1;
            sb_buf_reset(&s->in);
            open_socket(c, cn);
            return;
        }
        int rc = send_request(c, cn);
        if (rc != SB_OK)
            drop(c, cn, "write: ", strerror(-rc));
        return;
    }
    /* UPGRADE */
    if (r->status != 101) {
        char why[200];
        snprintf(why, sizeof why, "%d %.*s", r->status, (int)(body_len < 150 ? body_len : 150), body);
        drop(c, cn, "upgrade answered ", why);
        return;
    }
    size_t rest = s->in.len - r->head_len;
    uint8_t early[4096];
    if (rest > sizeof early) {
        drop(c, cn, "too much data right after the upgrade", NULL);
        return;
    }
    memcpy(early, s->in.data + r->head_len, rest);
    sb_buf_reset(&s->in);
    if (c->o.target == SB_LG_TARGET_NCHAN) {
        opened(c, cn);
    } else {
        char hs[64];
        int n = snprintf(hs, sizeof hs, "{\"protocol\":\"%s\",\"version\":1}\x1e",
                         sb_hubproto_name(c->o.protocol));
        cn->state = SB_LG_CS_HANDSHAKE;
        if (sb_lg_conn_send(c, cn, SB_WS_OP_TEXT, hs, (size_t)n) != SB_OK)
            return;
    }
    if (rest)
        feed_ws(c, cn, early, rest);
}

static void setup_read(sb_lg_ctx *c, sb_lg_conn *cn, const uint8_t *p, size_t n) {
    sb_lg_setup *s = cn->setup;
    sb_buf_append(&s->in, p, n);
    while (cn->state == SB_LG_CS_NEGOTIATE || cn->state == SB_LG_CS_UPGRADE) {
        sb_lg_http_resp r;
        size_t total;
        int rc = sb_lg_http_parse_head(s->in.data, s->in.len, &r);
        if (rc == SB_OK && r.status == 101)
            total = r.head_len; /* what follows is WebSocket */
        else if (rc == SB_OK)
            rc = sb_lg_http_complete(s->in.data, s->in.len, &r, &total);
        if (rc == SB_EAGAIN)
            return;
        if (rc != SB_OK) {
            drop(c, cn, "malformed HTTP response", NULL);
            return;
        }
        int was_upgrade = cn->state == SB_LG_CS_UPGRADE;
        on_response(c, cn, &r, total);
        if (was_upgrade || !cn->setup || !cn->setup->in.len)
            return;
    }
}

void sb_lg_conn_on_event(sb_lg_ctx *c, sb_lg_conn *cn, uint32_t events) {
    if (cn->state == SB_LG_CS_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(cn->io.fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            drop(c, cn, "connect: ", strerror(err));
            return;
        }
        if (!(events & EPOLLOUT))
            return;
        want_write(c, cn, 0);
        int rc = send_request(c, cn);
        if (rc != SB_OK)
            drop(c, cn, "write: ", strerror(-rc));
        return;
    }
    if ((events & EPOLLOUT) && cn->pending) {
        int rc = flush_pending(c, cn);
        if (rc != SB_OK) {
            drop(c, cn, "write: ", strerror(-rc));
            return;
        }
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {rbuf, sizeof rbuf};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t n = recvmsg(cn->io.fd, &mh, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        drop(c, cn, n == 0 ? "end of stream" : "read: ", n == 0 ? NULL : strerror(errno));
        return;
    }
    c->now = sb_lg_clock_ns();
    c->rx_ns = c->now;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
        struct timespec ts;
        memcpy(&ts, CMSG_DATA(cm), sizeof ts);
        int64_t mono = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - c->rt_minus_mono;
        if (mono > 0 && (uint64_t)mono <= c->now)
            c->rx_ns = (uint64_t)mono;
        c->rx_kernel_stamps++;
    } else {
        c->rx_user_stamps++;
    }
    if (cn->state == SB_LG_CS_NEGOTIATE || cn->state == SB_LG_CS_UPGRADE)
        setup_read(c, cn, rbuf, (size_t)n);
    else
        feed_ws(c, cn, rbuf, (size_t)n);
}
