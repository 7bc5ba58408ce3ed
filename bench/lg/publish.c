/*
 * publish.c - the publishing side of a run: what one publish is on each path,
 * and when to make the next one.
 *
 * Paths (sb_lg_publish):
 *   REST        POST /api/v1/hubs/{hub}[/groups/{g}|/users/{u}] with a bearer token whose aud
 *               is that URL, body {"target":"t","arguments":["<payload>"]}, on keep-alive
 *               connections with up to --pipeline requests in flight each; 202 = accepted
 *   NCHAN_POST  POST /pub?id=<channel> with the payload as the body (nchan answers 201/202)
 *   INVOKE      a hub invocation on an open client connection: Broadcast(payload) from one of
 *               the first --publishers clients, or Echo(payload) round robin over every client;
 *               non-blocking (no invocationId), so every frame written counts as accepted
 *   NCHAN_WS    the same over nchan: the payload as a text frame on a /pubsub WebSocket (the
 *               first --publishers clients of channel "b", or each echo client on its own)
 *
 * Policy: paced (--rate R): publish k is due at start + k / R; a publish more than 10 ms late
 * is counted, never skipped.  Flat out (--rate 0): keep at most --window publishes' worth of
 * deliveries outstanding (made but not yet received), so the server is pushed as hard as it
 * can go without its per-connection queues overflowing because of the generator.
 *
 * Accounting: every publish adds its fan-out to expected_sent at once (the window); an
 * accepted one adds it to expected (the loss figure).  A refused request, or one lost with
 * its connection, is a publish error and owes nothing.
 *
 * Steady state allocates nothing: request heads are built once per target in
 * sb_lg_publish_prepare, each publish copies head + payload into the publisher's buffer
 * (grown to its working size in the first few requests) and stamps it in place.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loadgen.h"
#include "net/ws_frame.h"
#include "util/alloc.h"
#include "util/error.h"

#define LATE_NS 10000000ull

static const char rest_prefix[] = "{\"target\":\"t\",\"arguments\":[\"";
static const char rest_suffix[] = "\"]}";

static char *msg_tmpl; /* INVOKE / nchan echo: the whole hub message (or body) to send */
static size_t msg_len;
static size_t msg_stamp; /* offset of the payload in msg_tmpl */

/* ---- set-up ---------------------------------------------------------------------------------- */

static void add_target(sb_lg_ctx *c, int i, const char *path) {
    if (c->o.target == SB_LG_TARGET_NCHAN) {
        c->targets[i] = sb_asprintf("POST %s HTTP/1.1\r\nHost: %s:%d\r\n", path, c->o.host, c->o.port);
        return;
    }
    char *aud = sb_asprintf("%s%s", c->o.url, path);
    char *tok = sb_lg_token(c->o.access_key, aud, NULL);
    c->targets[i] = sb_asprintf("POST %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
                                "Content-Type: application/json\r\n",
                                path, c->o.host, c->o.port, tok);
    sb_free(aud);
    sb_free(tok);
}

/* The invocation (or echo body) every INVOKE publish sends, with the payload's offset. */
static void build_message(sb_lg_ctx *c) {
    const char *method = c->o.scenario == SB_LG_SC_ECHO ? "Echo" : "Broadcast";
    size_t plen = (size_t)c->o.payload;
    sb_buf b;
    sb_buf_init(&b);
    if (c->o.target == SB_LG_TARGET_NCHAN) {
        msg_stamp = 0;
        sb_buf_append(&b, c->payload, plen);
    } else if (c->o.protocol == SB_HUBPROTO_JSON) {
        sb_buf_appendf(&b, "{\"type\":1,\"target\":\"%s\",\"arguments\":[\"", method);
        msg_stamp = b.len;
        sb_buf_append(&b, c->payload, plen);
        sb_buf_append(&b, "\"]}\x1e", 4);
    } else {
        /* [1, {}, nil, method, [payload]] with the VarInt length prefix */
        sb_buf body;
        sb_buf_init(&body);
        sb_buf_append(&body, "\x95\x01\x80\xc0", 4);
        sb_buf_appendc(&body, (char)(0xa0 | strlen(method)));
        sb_buf_appends(&body, method);
        sb_buf_appendc(&body, (char)0x91);
        if (plen < 32) {
            sb_buf_appendc(&body, (char)(0xa0 | plen));
        } else if (plen < 256) {
            sb_buf_appendc(&body, (char)0xd9);
            sb_buf_appendc(&body, (char)plen);
        } else {
            sb_buf_appendc(&body, (char)0xda);
            sb_buf_appendc(&body, (char)(plen >> 8));
            sb_buf_appendc(&body, (char)plen);
        }
        size_t at = body.len;
        sb_buf_append(&body, c->payload, plen);
        uint8_t v[5];
        size_t vn = sb_varint_write(v, body.len);
        sb_buf_append(&b, v, vn);
        msg_stamp = vn + at;
        sb_buf_append(&b, body.data, body.len);
        sb_buf_free(&body);
    }
    msg_len = b.len;
    msg_tmpl = sb_buf_steal(&b, NULL);
}

static void pub_connect(sb_lg_ctx *c, sb_lg_pub *p) {
    int in_progress;
    int fd = sb_lg_tcp_connect(c->o.host, c->o.port, NULL, &in_progress);
    p->connected = 0;
    p->want_out = 0;
    p->outstanding = 0;
    p->ring_head = 0;
    sb_buf_reset(&p->out);
    p->out_off = 0;
    sb_buf_reset(&p->in);
    if (fd < 0) {
        p->io.fd = -1;
        sb_lg_note_error(c, "publisher %d: connect: %s", p->index, strerror(-fd));
        return;
    }
    p->io.fd = fd;
    p->io.kind = SB_LG_IO_PUB;
    sb_lg_loop_add(c, &p->io, EPOLLIN | EPOLLOUT);
}

/* The publish target connection i belongs to: its group, its user, or the one broadcast target. */
static int target_of(const sb_lg_ctx *c, int i) {
    switch (c->o.scenario) {
    case SB_LG_SC_GROUP:
        return i / c->o.group_size;
    case SB_LG_SC_USER:
        return i;
    default:
        return 0;
    }
}

static void target_path(const sb_lg_ctx *c, int t, char *path, size_t len) {
    int group = c->o.scenario == SB_LG_SC_GROUP, user = c->o.scenario == SB_LG_SC_USER;
    if (c->o.target == SB_LG_TARGET_NCHAN) {
        if (group || user)
            snprintf(path, len, "/pub?id=%c%d", group ? 'g' : 'u', t);
        else
            snprintf(path, len, "/pub?id=b");
    } else if (group) {
        snprintf(path, len, "/api/v1/hubs/%s/groups/g%d", c->o.hub, t);
    } else if (user) {
        snprintf(path, len, "/api/v1/hubs/%s/users/user%d", c->o.hub, t);
    } else {
        snprintf(path, len, "/api/v1/hubs/%s", c->o.hub);
    }
}

void sb_lg_publish_prepare(sb_lg_ctx *c) {
    c->ntargets = c->o.scenario == SB_LG_SC_GROUP  ? (c->nconns + c->o.group_size - 1) / c->o.group_size
                  : c->o.scenario == SB_LG_SC_USER ? c->nconns
                                                   : 1;
    c->targets = sb_calloc((size_t)c->ntargets, sizeof *c->targets);
    c->target_fanout = sb_calloc((size_t)c->ntargets, sizeof *c->target_fanout);
    for (int i = 0; i < c->nconns; i++)
        if (c->conns[i].state == SB_LG_CS_OPEN)
            c->target_fanout[target_of(c, i)]++;
    if (c->o.scenario == SB_LG_SC_ECHO)
        c->target_fanout[0] = 1;
    if (!sb_lg_publish_ws(c->o.publish)) {
        for (int t = 0; t < c->ntargets; t++) {
            char path[256];
            target_path(c, t, path, sizeof path);
            add_target(c, t, path);
        }
        c->npubs = c->o.publishers;
        c->pubs = sb_calloc((size_t)c->npubs, sizeof *c->pubs);
        for (int i = 0; i < c->npubs; i++) {
            sb_lg_pub *p = &c->pubs[i];
            p->index = i;
            p->fanout = sb_calloc((size_t)c->o.pipeline, sizeof *p->fanout);
            sb_buf_init(&p->out);
            sb_buf_init(&p->in);
            pub_connect(c, p);
        }
    } else {
        build_message(c);
    }
}

/* ---- publishing ------------------------------------------------------------------------------ */

static void flush_pub(sb_lg_ctx *c, sb_lg_pub *p);

/* Requests the connection took with it: they owe nothing, and count as errors. */
static void pub_lost(sb_lg_ctx *c, sb_lg_pub *p, const char *why) {
    if (p->outstanding)
        sb_lg_note_error(c, "publisher %d lost %d requests: %s", p->index, p->outstanding, why);
    while (p->outstanding) {
        c->st.expected_sent -= p->fanout[p->ring_head];
        c->st.publish_errors++;
        p->ring_head = (p->ring_head + 1) % c->o.pipeline;
        p->outstanding--;
    }
    if (p->io.fd >= 0) {
        sb_lg_loop_del(c, &p->io);
        close(p->io.fd);
    }
    if (c->publishing)
        pub_connect(c, p);
    else
        p->io.fd = -1;
}

static sb_lg_pub *free_publisher(sb_lg_ctx *c) {
    for (int k = 0; k < c->npubs; k++) {
        sb_lg_pub *p = &c->pubs[(c->rr + (uint32_t)k) % (uint32_t)c->npubs];
        if (p->connected && p->outstanding < c->o.pipeline)
            return p;
    }
    return NULL;
}

static int publish_http(sb_lg_ctx *c) {
    sb_lg_pub *p = free_publisher(c);
    if (!p)
        return 0;
    uint32_t t = c->ntargets > 1 ? c->rr % (uint32_t)c->ntargets : 0;
    uint32_t fanout = c->target_fanout[t];
    size_t plen = (size_t)c->o.payload;
    int rest = c->o.target == SB_LG_TARGET_SWITCHBOARD;
    size_t body_len = rest ? sizeof rest_prefix - 1 + plen + sizeof rest_suffix - 1 : plen;
    sb_buf *o = &p->out;
    sb_buf_appends(o, c->targets[t]);
    if (rest && c->o.tracing)
        sb_buf_appendf(o, "X-ASRS-Message-Tracing-Id: %llu\r\n", (unsigned long long)c->seq + 1);
    sb_buf_appendf(o, "Content-Length: %zu\r\n\r\n", body_len);
    if (rest)
        sb_buf_append(o, rest_prefix, sizeof rest_prefix - 1);
    size_t at = o->len;
    sb_buf_append(o, c->payload, plen);
    if (rest)
        sb_buf_append(o, rest_suffix, sizeof rest_suffix - 1);
    sb_lg_payload_stamp(o->data + at, sb_lg_clock_ns(), (uint32_t)c->seq);
    p->fanout[(p->ring_head + p->outstanding) % c->o.pipeline] = fanout;
    p->outstanding++;
    c->rr++;
    c->seq++;
    c->st.sent++;
    c->st.expected_sent += fanout;
    return 1;
}

static int publish_invoke(sb_lg_ctx *c) {
    int limit = c->o.scenario == SB_LG_SC_ECHO ? c->nconns
                                               : (c->o.publishers < c->nconns ? c->o.publishers : c->nconns);
    for (int k = 0; k < limit; k++) {
        sb_lg_conn *cn = &c->conns[c->rr++ % (uint32_t)limit];
        if (cn->state != SB_LG_CS_OPEN)
            continue;
        uint32_t fanout = c->o.scenario == SB_LG_SC_ECHO ? 1 : (uint32_t)c->open;
        sb_lg_payload_stamp(msg_tmpl + msg_stamp, sb_lg_clock_ns(), (uint32_t)c->seq);
        int opcode = c->o.target == SB_LG_TARGET_SWITCHBOARD && c->o.protocol == SB_HUBPROTO_MSGPACK
                         ? SB_WS_OP_BINARY
                         : SB_WS_OP_TEXT;
        if (sb_lg_conn_send(c, cn, opcode, msg_tmpl, msg_len) != SB_OK)
            continue;
        c->seq++;
        c->st.sent++;
        c->st.accepted++;
        c->st.expected_sent += fanout;
        c->st.expected += fanout;
        return 1;
    }
    return 0;
}

static int publish_one(sb_lg_ctx *c) {
    return c->pubs ? publish_http(c) : publish_invoke(c);
}

/* Deliveries the next publish would owe (the window is counted in whole publishes). */
static uint64_t next_fanout(sb_lg_ctx *c) {
    if (!c->pubs)
        return c->o.scenario == SB_LG_SC_ECHO ? 1 : (uint64_t)(c->open ? c->open : 1);
    uint32_t t = c->ntargets > 1 ? c->rr % (uint32_t)c->ntargets : 0;
    return c->target_fanout[t] ? c->target_fanout[t] : 1;
}

void sb_lg_publish_drive(sb_lg_ctx *c) {
    if (c->o.rate > 0) {
        double elapsed = (double)(c->now - c->publish_start_ns) / 1e9;
        uint64_t due = (uint64_t)(elapsed * c->o.rate) + 1;
        while (c->seq < due) {
            uint64_t at = c->publish_start_ns + (uint64_t)((double)c->seq * 1e9 / c->o.rate);
            if (!publish_one(c))
                break;
            if (c->now > at + LATE_NS)
                c->st.late_sends++;
        }
    } else {
        for (;;) {
            int64_t in_flight = (int64_t)c->st.expected_sent - (int64_t)c->st.received;
            int64_t fanout = (int64_t)next_fanout(c);
            if (in_flight + fanout > (int64_t)c->o.window * fanout || !publish_one(c))
                break;
        }
    }
    for (int i = 0; i < c->npubs; i++)
        if (c->pubs[i].out.len > c->pubs[i].out_off)
            flush_pub(c, &c->pubs[i]);
}

/* ---- publisher connections ------------------------------------------------------------------- */

static void flush_pub(sb_lg_ctx *c, sb_lg_pub *p) {
    while (p->out_off < p->out.len) {
        ssize_t w = send(p->io.fd, p->out.data + p->out_off, p->out.len - p->out_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            if (!p->want_out)
                sb_lg_loop_mod(c, &p->io, EPOLLIN | EPOLLOUT);
            p->want_out = 1;
            return;
        }
        if (w < 0) {
            pub_lost(c, p, strerror(errno));
            return;
        }
        p->out_off += (size_t)w;
    }
    p->out.len = 0; /* keep the storage: the next requests reuse it */
    p->out_off = 0;
    if (p->want_out)
        sb_lg_loop_mod(c, &p->io, EPOLLIN);
    p->want_out = 0;
}

static void on_answer(sb_lg_ctx *c, sb_lg_pub *p, const sb_lg_http_resp *r, const char *body, size_t blen) {
    if (!p->outstanding) {
        sb_lg_note_error(c, "publisher %d: an answer to no request (status %d)", p->index, r->status);
        return;
    }
    uint32_t fanout = p->fanout[p->ring_head];
    p->ring_head = (p->ring_head + 1) % c->o.pipeline;
    p->outstanding--;
    if (r->status >= 200 && r->status < 300) {
        c->st.accepted++;
        c->st.expected += fanout;
    } else {
        c->st.publish_errors++;
        c->st.expected_sent -= fanout;
        sb_lg_note_error(c, "publish answered %d %.*s", r->status, (int)(blen < 160 ? blen : 160), body);
    }
}

void sb_lg_pub_on_event(sb_lg_ctx *c, sb_lg_pub *p, uint32_t events) {
    if (!p->connected) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(p->io.fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            sb_lg_note_error(c, "publisher %d: connect: %s", p->index, strerror(err));
            sb_lg_loop_del(c, &p->io);
            close(p->io.fd);
            p->io.fd = -1;
            return;
        }
        if (!(events & EPOLLOUT))
            return;
        p->connected = 1;
        sb_lg_loop_mod(c, &p->io, EPOLLIN);
        return;
    }
    if (events & EPOLLOUT)
        flush_pub(c, p);
    if (p->io.fd < 0 || !(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    char tmp[65536];
    ssize_t n = recv(p->io.fd, tmp, sizeof tmp, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        pub_lost(c, p, n == 0 ? "the server closed the connection" : strerror(errno));
        return;
    }
    sb_buf_append(&p->in, tmp, (size_t)n);
    size_t off = 0;
    int closing = 0;
    while (off < p->in.len) {
        sb_lg_http_resp r;
        size_t total;
        int rc = sb_lg_http_parse_head(p->in.data + off, p->in.len - off, &r);
        if (rc == SB_OK)
            rc = sb_lg_http_complete(p->in.data + off, p->in.len - off, &r, &total);
        if (rc == SB_EAGAIN)
            break;
        if (rc != SB_OK) {
            pub_lost(c, p, "malformed HTTP response");
            return;
        }
        on_answer(c, p, &r, p->in.data + off + r.head_len, total - r.head_len);
        off += total;
        if (r.close) {
            closing = 1;
            break;
        }
    }
    sb_buf_consume(&p->in, off);
    if (closing)
        pub_lost(c, p, "the server answered Connection: close");
}

int sb_lg_publish_idle(sb_lg_ctx *c) {
    for (int i = 0; i < c->npubs; i++)
        if (c->pubs[i].io.fd >= 0 && (!c->pubs[i].connected || c->pubs[i].outstanding))
            return 0;
    return 1;
}
