/*
 * conn.c - accepted sockets: reading, the coalesced write path, closing.
 * See conn.h for the lifetime rules.
 *
 * Reads go into c->in and are handed to the current protocol (HTTP parser,
 * WebSocket framing, or - for SSE and parked long polls - only end-of-stream
 * detection).  Writes are queued and flushed once per loop turn from a
 * uv_check handle: every queued buffer of a connection goes out in one
 * uv_try_write/uv_write of up to IOV batch entries, and a turn with many
 * sockets to write shares the syscalls with the write threads (see the
 * parallel flush below).
 */
#include "net/conn.h"
#include "metrics/metrics.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "net/fault.h"
#include "net/http.h"
#include "net/ws.h"
#include "server.h"
#include "signalr/client.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/parfor.h"

#define IOV_BATCH 64
#define READ_CHUNK 65536
/* Input held while an asynchronous answer is pending (pipelined requests, a client that keeps sending). */
#define MAX_HELD_INPUT (256 * 1024)
/* Lingering close of an HTTP connection: how long and how much input to drain. */
#define LINGER_MS 2000
#define LINGER_MAX_BYTES (4 * 1024 * 1024)

typedef struct write_req {
    uv_write_t req;
    sb_conn *conn;
    size_t n;
    size_t bytes;
    sb_shbuf *bufs[IOV_BATCH];
} write_req;

static void conn_free(sb_conn *c) {
    sb_outq_clear(&c->out);
    sb_buf_free(&c->in);
    if (c->http) {
        sb_http_parser_free(c->http);
        sb_free(c->http);
    }
    if (c->ws) {
        sb_ws_parser_free(c->ws);
        sb_free(c->ws);
    }
    sb_free(c->origin);
    sb_free(c);
}

static void on_close(uv_handle_t *h) {
    sb_conn *c = h->data;
    c->handle_closed = 1;
    if (c->holds == 0)
        conn_free(c);
}

void sb_conn_release(sb_conn *c) {
    if (--c->holds == 0 && c->handle_closed)
        conn_free(c);
}

void sb_conn_close(sb_conn *c) {
    if (c->closing)
        return;
    c->closing = 1;
    if (c->write_pending) {
        sb_list_remove(&c->pending_link);
        c->write_pending = 0;
    }
    sb_list_remove(&c->all_link);
    if (c->client) {
        sb_client *cl = c->client;
        c->client = NULL;
        sb_client_transport_lost(cl, c);
    }
    if (c->on_lost)
        c->on_lost(c);
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_shutdown(uv_shutdown_t *req, int status) { sb_free(req); }

/* All output is written: close now, or (HTTP) shut down the write side and drain input first. */
static void finish_close(sb_conn *c) {
    if (c->kind != SB_CONN_HTTP || c->lingering) {
        sb_conn_close(c);
        return;
    }
    uv_shutdown_t *req = sb_malloc(sizeof(*req));
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        sb_free(req);
        sb_conn_close(c);
        return;
    }
    c->lingering = 1;
    c->linger_deadline_ms = sb_now_ms(c->srv) + LINGER_MS;
    sb_buf_free(&c->in);
}

void sb_conn_close_after_flush(sb_conn *c) {
    if (c->closing)
        return;
    c->close_after_flush = 1;
    if (!c->out.bytes && !c->inflight)
        finish_close(c);
}

void sb_conn_sweep(sb_server *srv) {
    uint64_t now = sb_now_ms(srv);
    sb_list *pos, *tmp;
    sb_list_foreach_safe(pos, tmp, &srv->conns) {
        sb_conn *c = sb_container_of(pos, sb_conn, all_link);
        if (c->lingering && now >= c->linger_deadline_ms)
            sb_conn_close(c);
    }
}

static void mark_pending(sb_conn *c) {
    if (!c->write_pending && !c->closing) {
        c->write_pending = 1;
        sb_list_insert_tail(&c->srv->pending_writes, &c->pending_link);
    }
}

int sb_conn_write(sb_conn *c, sb_shbuf *b) {
    if (c->closing)
        return SB_ECLOSED;
    if (sb_conn_backlog(c) + b->len > (size_t)c->srv->cfg.max_output_queue_bytes && sb_conn_backlog(c) > 0)
        return SB_ENOSPC;
    sb_outq_push(&c->out, b);
    mark_pending(c);
    return SB_OK;
}

void sb_conn_write_copy(sb_conn *c, const void *p, size_t n) {
    if (c->closing)
        return;
    sb_shbuf *b = sb_shbuf_from(p, n);
    sb_outq_push(&c->out, b);
    sb_shbuf_unref(b);
    mark_pending(c);
}

static void flush(sb_conn *c);

/* A peer that hangs up or stalls is its own business; any other write error
 * is ours, and the client is told so (Internal server transient error). */
static void write_failed(sb_conn *c, int err) {
    switch (err) {
    case UV_EPIPE:
    case UV_ECONNRESET:
    case UV_ECANCELED:
    case UV_ENOTCONN:
    case UV_ETIMEDOUT:
    case UV_EOF:
        break;
    default:
        c->internal_error = 1;
    }
    sb_conn_close(c);
}

static void on_write(uv_write_t *req, int status) {
    write_req *w = (write_req *)req;
    sb_conn *c = w->conn;
    for (size_t i = 0; i < w->n; i++)
        sb_shbuf_unref(w->bufs[i]);
    c->inflight -= w->bytes;
    sb_free(w);
    if (c->closing)
        return;
    if (status < 0) {
        write_failed(c, status);
        return;
    }
    if (c->out.bytes)
        flush(c);
    else if (c->close_after_flush && !c->inflight)
        finish_close(c);
}

/* A test build may make this write fail as an internal fault would (net/fault.h). */
static int fault_injected(sb_conn *c) {
    int injected = c->out.count ? sb_fault_socket_write(c) : 0;
    if (injected)
        write_failed(c, injected);
    return injected;
}

static void flush_queued(sb_conn *c);

static void flush(sb_conn *c) {
    if (!fault_injected(c))
        flush_queued(c);
}

/* Everything queued: the kernel first (uv_try_write), the rest through uv_write. */
/* The first (at most IOV_BATCH) queued buffers as an iovec; returns their count, *total their bytes.  Reads
 * the queue only, so a write thread may call it (parallel flush).  uv_buf_t is laid out like struct iovec on
 * Unix, which libuv documents, so the same array serves uv_try_write and writev. */
static size_t queued_iov(const sb_conn *c, uv_buf_t *iov, size_t *total) {
    size_t n = c->out.count < IOV_BATCH ? c->out.count : IOV_BATCH;
    *total = 0;
    for (size_t i = 0; i < n; i++) {
        sb_shbuf *b = sb_outq_at(&c->out, i);
        size_t off = i == 0 ? c->out.off : 0;
        iov[i] = uv_buf_init(b->data + off, (unsigned)(b->len - off));
        *total += b->len - off;
    }
    return n;
}

static void flush_queued(sb_conn *c) {
    while (c->out.count && !c->closing) {
        uv_buf_t iov[IOV_BATCH];
        size_t total, n = queued_iov(c, iov, &total);
        /* Try the kernel first: most writes complete at once and need no request. */
        if (!c->inflight) {
            int wr = uv_try_write((uv_stream_t *)&c->tcp, iov, (unsigned)n);
            if (wr > 0) {
                sb_outq_consume(&c->out, (size_t)wr);
                if ((size_t)wr == total)
                    continue;
                /* partial: hand the rest to uv_write below */
                continue;
            }
            if (wr < 0 && wr != UV_EAGAIN && wr != UV_ENOSYS) {
                write_failed(c, wr);
                return;
            }
        }
        write_req *w = sb_malloc(sizeof(*w));
        w->conn = c;
        w->n = n;
        w->bytes = total;
        for (size_t i = 0; i < n; i++)
            w->bufs[i] = sb_shbuf_ref(sb_outq_at(&c->out, i));
        /* the iov already points at the right offsets; the queue forgets these bytes now */
        sb_outq_consume(&c->out, total);
        c->inflight += total;
        int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, iov, (unsigned)n, on_write);
        if (rc < 0) {
            for (size_t i = 0; i < n; i++)
                sb_shbuf_unref(w->bufs[i]);
            c->inflight -= total;
            sb_free(w);
            sb_conn_close(c);
            return;
        }
        return; /* the rest (if any) goes out from on_write */
    }
    if (!c->closing && c->close_after_flush && !c->inflight && !c->out.bytes)
        finish_close(c);
}

/*
 * Parallel flush.  A turn that has many sockets to write (a broadcast) spends
 * most of its time in write syscalls, several microseconds each here.  The
 * syscalls are spread over the write threads (util/parfor.h) while all state
 * stays on the loop thread:
 *   1. gather (loop): take every pending socket that has output and no write
 *      in flight; note its fd;
 *   2. write (any thread): writev() of the queued buffers, reading the queue
 *      and writing only the job's own result;
 *   3. apply (loop): consume what was written, report errors, and send the
 *      rest the ordinary way (uv_write when the kernel buffer is full).
 * The loop thread does not touch the gathered sockets' queues during step 2,
 * and nothing frees a socket before its uv_close callback, so the pointers
 * stay valid throughout.  Fewer sockets than PARALLEL_MIN are written the
 * ordinary way: waking a thread would cost more than it saves.
 */
#define PARALLEL_MIN 64
#define PARALLEL_CHUNK 16

typedef struct flush_job {
    sb_conn *c;
    int fd;
    ssize_t result; /* bytes written, or a negative errno */
} flush_job;

static void write_job(void *arg) {
    flush_job *j = arg;
    uv_buf_t iov[IOV_BATCH];
    size_t total, n = queued_iov(j->c, iov, &total);
    ssize_t r;
    do
        r = writev(j->fd, (const struct iovec *)iov, (int)n);
    while (r < 0 && errno == EINTR);
    j->result = r < 0 ? -errno : r;
}

static void flush_parallel(sb_server *srv) {
    while (!sb_list_empty(&srv->pending_writes)) {
        size_t n = 0;
        while (!sb_list_empty(&srv->pending_writes)) {
            sb_conn *c = sb_container_of(srv->pending_writes.next, sb_conn, pending_link);
            sb_list_remove(&c->pending_link);
            c->write_pending = 0;
            uv_os_fd_t fd;
            if (c->inflight || fault_injected(c))
                continue;
            if (!c->out.count || uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0) {
                flush_queued(c); /* nothing to write (a close after flush), or no fd: the ordinary path */
                continue;
            }
            if (n == srv->flush_jobs_cap) {
                srv->flush_jobs_cap = srv->flush_jobs_cap ? 2 * srv->flush_jobs_cap : 256;
                srv->flush_jobs = sb_realloc(srv->flush_jobs, srv->flush_jobs_cap * sizeof(flush_job));
                srv->flush_ptrs = sb_realloc(srv->flush_ptrs, srv->flush_jobs_cap * sizeof(void *));
            }
            flush_job *j = &((flush_job *)srv->flush_jobs)[n];
            j->c = c;
            j->fd = fd;
            j->result = 0;
            n++;
        }
        flush_job *jobs = srv->flush_jobs;
        if (n < PARALLEL_MIN) {
            for (size_t i = 0; i < n; i++)
                flush_queued(jobs[i].c);
            continue;
        }
        for (size_t i = 0; i < n; i++) /* now that the job array has stopped moving */
            srv->flush_ptrs[i] = &jobs[i];
        sb_parfor_run(srv->flush_pool, srv->flush_ptrs, n, PARALLEL_CHUNK, write_job);
        /* apply may close sockets, whose clients may queue output on other sockets: the outer loop takes those */
        for (size_t i = 0; i < n; i++) {
            sb_conn *c = jobs[i].c;
            if (c->closing)
                continue;
            if (jobs[i].result > 0) {
                sb_outq_consume(&c->out, (size_t)jobs[i].result);
            } else if (jobs[i].result < 0 && jobs[i].result != -EAGAIN) {
                write_failed(c, (int)jobs[i].result); /* libuv's codes are negative errnos */
                continue;
            }
            flush_queued(c); /* the rest, the close after flush, or nothing */
        }
    }
}

void sb_conn_flush_pending(sb_server *srv) {
    if (sb_parfor_threads(srv->flush_pool)) {
        flush_parallel(srv);
        return;
    }
    while (!sb_list_empty(&srv->pending_writes)) {
        sb_conn *c = sb_container_of(srv->pending_writes.next, sb_conn, pending_link);
        sb_list_remove(&c->pending_link);
        c->write_pending = 0;
        if (!c->inflight)
            flush(c);
    }
}

/*
 * One read buffer for the whole loop: libuv calls alloc and read back to back
 * on this thread, so idle connections hold no receive buffer at all (memory
 * per idle connection matters at tens of thousands of sockets).  Bytes a
 * handler leaves unconsumed are kept in c->in, whose storage is freed as soon
 * as it is empty again: a malloc per read is cheap next to the read itself,
 * and a buffer kept for reuse would be held by every idle connection.
 */
static char read_buf[READ_CHUNK];

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    buf->base = read_buf;
    buf->len = sizeof read_buf;
}

static void shrink_input(sb_conn *c) {
    if (!c->closing && c->in.len == 0)
        sb_buf_free(&c->in);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    sb_conn *c = s->data;
    if (c->closing)
        return;
    if (nread < 0) {
        sb_conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (c->close_after_flush) {
        /* answered and closing: what the peer still sends is drained, not processed */
        c->linger_discarded += (uint32_t)nread;
        if (c->linger_discarded > LINGER_MAX_BYTES)
            sb_conn_close(c);
        return;
    }
    sb_buf_append(&c->in, buf->base, (size_t)nread);
    sb_metrics_inbound(c->srv, (size_t)nread);
    switch (c->kind) {
    case SB_CONN_HTTP:
        if (c->busy) {
            if (c->in.len > MAX_HELD_INPUT)
                sb_conn_close(c);
            return;
        }
        sb_http_on_data(c);
        shrink_input(c);
        break;
    case SB_CONN_WS:
        sb_ws_on_data(c);
        shrink_input(c);
        break;
    case SB_CONN_SSE:
    case SB_CONN_LP:
        /* the client sends nothing on these sockets; hold a little, refuse a flood */
        if (c->in.len > MAX_HELD_INPUT)
            sb_conn_close(c);
        break;
    }
}

void sb_conn_accept(sb_server *srv, uv_stream_t *listener) {
    sb_conn *c = sb_calloc(1, sizeof(*c));
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)sb_free);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    c->peer_ip[0] = '\0';
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, c->peer_ip, sizeof c->peer_ip);
        else if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer_ip, sizeof c->peer_ip);
    }
    sb_buf_init(&c->in); /* the HTTP parser comes with the first request's bytes (net/http.c) */
    sb_outq_init(&c->out);
    sb_list_init(&c->pending_link);
    sb_list_insert_tail(&srv->conns, &c->all_link);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}
