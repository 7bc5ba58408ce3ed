/*
 * http_multi.c - libcurl's multi interface on the libuv loop; see http_multi.h.
 *
 * Wiring (libcurl's "multi_socket" API):
 *   libcurl SOCKETFUNCTION  -> one uv_poll_t per socket (created on first
 *                              interest, stopped and closed on CURL_POLL_REMOVE,
 *                              which libcurl sends before it closes the socket)
 *   libcurl TIMERFUNCTION   -> one uv_timer_t (never calls back into libcurl
 *                              from inside the callback; a 0 ms timer runs on
 *                              the next loop turn)
 *   uv_poll / uv_timer fire -> curl_multi_socket_action, then drain
 *                              curl_multi_info_read: finished transfers leave
 *                              the multi, free slots take queued calls, and
 *                              on_done runs (outside any libcurl callback).
 *
 * Easy handles are reused (curl_easy_reset) up to max_active of them; the
 * connection cache lives in the multi handle, so keep-alive connections
 * survive a handle's reset.
 *
 * Retries wait on one uv_timer_t armed for the earliest due call (the
 * retrying list is kept sorted by due time): no per-call timers.
 */
#include "upstream/http_multi.h"

#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/error.h"

#define RETRY_BASE_MS 100
#define RETRY_CAP_MS 2000

typedef struct sock_ctx {
    uv_poll_t poll;
    struct sb_http_multi *m;
    curl_socket_t fd;
    sb_list link; /* in m->socks */
} sock_ctx;

struct sb_http_multi {
    uv_loop_t *loop;
    CURLM *curl;
    uv_timer_t curl_timer;
    uv_timer_t retry_timer;
    sb_list active, queued, retrying, socks;
    size_t nactive, nqueued, nretrying;
    size_t max_active, max_queued;
    CURL **spare; /* reset easy handles ready for reuse */
    size_t nspare;
    uint64_t retries;
    uint64_t rng;
    int closing;
    int open_handles; /* uv handles not yet closed; the multi is freed when this reaches 0 after close */
};

static uint64_t now_ms(const sb_http_multi *m) {
    return uv_now(m->loop);
}

static uint64_t next_random(sb_http_multi *m) {
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    return m->rng;
}

static void maybe_free(sb_http_multi *m) {
    if (!m->closing || m->open_handles)
        return;
    sb_free(m->spare);
    sb_free(m);
}

static void on_handle_closed(uv_handle_t *h) {
    sb_http_multi *m = h->data;
    m->open_handles--;
    maybe_free(m);
}

static void on_sock_closed(uv_handle_t *h) {
    sock_ctx *sc = h->data;
    sb_http_multi *m = sc->m;
    sb_free(sc);
    m->open_handles--;
    maybe_free(m);
}

static void sock_close(sock_ctx *sc) {
    sb_list_remove(&sc->link);
    uv_poll_stop(&sc->poll);
    uv_close((uv_handle_t *)&sc->poll, on_sock_closed);
}

/* ---- calls ----------------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *data) {
    sb_http_call *call = data;
    size_t n = size * nmemb;
    if (!call->max_response)
        return n;
    if (call->response.len + n > call->max_response) {
        call->too_large = 1;
        return 0; /* anything but n aborts the transfer */
    }
    sb_buf_append(&call->response, p, n);
    return n;
}

static void reset_result(sb_http_call *call) {
    call->outcome = SB_HTTP_RESPONSE;
    call->status = 0;
    sb_buf_free(&call->response);
    call->error[0] = '\0';
    call->too_large = 0;
}

static void release_easy(sb_http_multi *m, CURL *e) {
    if (m->nspare < m->max_active && !m->closing) {
        curl_easy_reset(e);
        m->spare[m->nspare++] = e;
    } else {
        curl_easy_cleanup(e);
    }
}

/* Hand the call to libcurl.  SB_EIO if libcurl refuses it (nothing started). */
static int start(sb_http_multi *m, sb_http_call *call) {
    CURL *e = m->nspare ? m->spare[--m->nspare] : curl_easy_init();
    if (!e)
        return SB_ENOMEM;
    reset_result(call);
    uint64_t now = now_ms(m);
    long remaining = call->deadline_ms > now ? (long)(call->deadline_ms - now) : 1;
    curl_easy_setopt(e, CURLOPT_URL, call->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, call->body ? call->body : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, remaining);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(e, CURLOPT_PRIVATE, call);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->error);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "switchboard");
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (curl_multi_add_handle(m->curl, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        return SB_EIO;
    }
    call->easy = e;
    call->attempts++;
    sb_list_insert_tail(&m->active, &call->link);
    m->nactive++;
    return SB_OK;
}

static void finish(sb_http_call *call) {
    call->on_done(call);
}

static void fail_unstarted(sb_http_call *call, sb_http_outcome outcome, const char *why) {
    reset_result(call);
    call->outcome = outcome;
    snprintf(call->error, sizeof call->error, "%s", why);
    finish(call);
}

/* Free slots take queued calls; a call whose deadline passed while it waited ends as a timeout. */
static void pump(sb_http_multi *m) {
    while (!m->closing && m->nactive < m->max_active && m->nqueued) {
        sb_http_call *call = sb_container_of(m->queued.next, sb_http_call, link);
        sb_list_remove(&call->link);
        m->nqueued--;
        if (call->deadline_ms <= now_ms(m)) {
            fail_unstarted(call, SB_HTTP_TIMEOUT, "Timed out waiting for a free upstream connection slot");
            continue;
        }
        if (start(m, call) != SB_OK)
            fail_unstarted(call, SB_HTTP_UNREACHABLE, "The HTTP client refused the request");
    }
}

static void arm_retry_timer(sb_http_multi *m);

static void schedule_retry(sb_http_multi *m, sb_http_call *call) {
    uint64_t backoff = RETRY_BASE_MS;
    for (int i = 1; i < call->attempts && backoff < RETRY_CAP_MS; i++)
        backoff *= 2;
    if (backoff > RETRY_CAP_MS)
        backoff = RETRY_CAP_MS;
    call->due_ms = now_ms(m) + next_random(m) % (backoff + 1);
    /* keep the list sorted by due time: walk back from the tail */
    sb_list *pos = m->retrying.prev;
    while (pos != &m->retrying && sb_container_of(pos, sb_http_call, link)->due_ms > call->due_ms)
        pos = pos->prev;
    sb_list_insert_tail(pos->next, &call->link); /* i.e. insert after pos */
    m->nretrying++;
    m->retries++;
    arm_retry_timer(m);
}

static int retryable(const sb_http_call *call) {
    switch (call->outcome) {
    case SB_HTTP_TIMEOUT:
    case SB_HTTP_UNREACHABLE:
        return 1;
    case SB_HTTP_RESPONSE:
        return call->status == 408 || call->status == 429 || call->status >= 500;
    default:
        return 0;
    }
}

static void check_done(sb_http_multi *m) {
    CURLMsg *msg;
    int left;
    while (m->curl && (msg = curl_multi_info_read(m->curl, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *e = msg->easy_handle;
        CURLcode rc = msg->data.result; /* msg is invalid once the handle leaves the multi */
        sb_http_call *call = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&call);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &call->status);
        curl_multi_remove_handle(m->curl, e);
        release_easy(m, e);
        call->easy = NULL;
        sb_list_remove(&call->link);
        m->nactive--;
        if (rc == CURLE_OK)
            call->outcome = SB_HTTP_RESPONSE;
        else if (call->too_large)
            call->outcome = SB_HTTP_TOO_LARGE;
        else if (rc == CURLE_OPERATION_TIMEDOUT)
            call->outcome = SB_HTTP_TIMEOUT;
        else
            call->outcome = SB_HTTP_UNREACHABLE;
        if (rc != CURLE_OK && !call->error[0])
            snprintf(call->error, sizeof call->error, "%s", curl_easy_strerror(rc));
        pump(m);
        if (!m->closing && call->attempts < call->max_attempts && retryable(call))
            schedule_retry(m, call);
        else
            finish(call);
    }
}

static void on_retry_timer(uv_timer_t *t) {
    sb_http_multi *m = t->data;
    uint64_t now = now_ms(m);
    while (!m->closing && m->nretrying) {
        sb_http_call *call = sb_container_of(m->retrying.next, sb_http_call, link);
        if (call->due_ms > now)
            break;
        sb_list_remove(&call->link);
        m->nretrying--;
        call->deadline_ms = now + (uint64_t)call->timeout_ms;
        /* a retry was admitted once: it may queue past max_queued rather than be dropped */
        sb_list_insert_tail(&m->queued, &call->link);
        m->nqueued++;
    }
    pump(m);
    arm_retry_timer(m);
}

static void arm_retry_timer(sb_http_multi *m) {
    if (m->closing || !m->nretrying) {
        uv_timer_stop(&m->retry_timer);
        return;
    }
    uint64_t due = sb_container_of(m->retrying.next, sb_http_call, link)->due_ms, now = now_ms(m);
    uv_timer_start(&m->retry_timer, on_retry_timer, due > now ? due - now : 0, 0);
}

/* ---- libcurl callbacks ----------------------------------------------------------------------- */

static void on_poll(uv_poll_t *h, int status, int events) {
    sock_ctx *sc = h->data;
    sb_http_multi *m = sc->m;
    int flags = status < 0 ? CURL_CSELECT_ERR
                           : ((events & UV_READABLE) ? CURL_CSELECT_IN : 0) |
                                 ((events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0);
    int running;
    curl_multi_socket_action(m->curl, sc->fd, flags, &running); /* may close sc (uv_close: memory stays) */
    check_done(m);
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp) {
    sb_http_multi *m = userp;
    sock_ctx *sc = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sc) {
            curl_multi_assign(m->curl, fd, NULL);
            sock_close(sc);
        }
        return 0;
    }
    if (m->closing)
        return 0;
    if (!sc) {
        sc = sb_calloc(1, sizeof *sc);
        if (uv_poll_init_socket(m->loop, &sc->poll, fd) != 0) {
            sb_free(sc);
            return -1; /* libcurl fails the transfer */
        }
        sc->m = m;
        sc->fd = fd;
        sc->poll.data = sc;
        m->open_handles++;
        sb_list_insert_tail(&m->socks, &sc->link);
        curl_multi_assign(m->curl, fd, sc);
    }
    int events = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&sc->poll, events, on_poll);
    return 0;
}

static void on_curl_timeout(uv_timer_t *t) {
    sb_http_multi *m = t->data;
    int running;
    curl_multi_socket_action(m->curl, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(m);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
    sb_http_multi *m = userp;
    if (timeout_ms < 0 || m->closing)
        uv_timer_stop(&m->curl_timer);
    else
        uv_timer_start(&m->curl_timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- public ---------------------------------------------------------------------------------- */

sb_http_multi *sb_http_multi_new(uv_loop_t *loop, size_t max_active, size_t max_queued) {
    sb_http_multi *m = sb_calloc(1, sizeof *m);
    m->loop = loop;
    m->max_active = max_active ? max_active : 1;
    m->max_queued = max_queued;
    m->spare = sb_calloc(m->max_active, sizeof *m->spare);
    m->rng = (uint64_t)(uintptr_t)m ^ (uv_hrtime() << 1) ^ 0x9E3779B97F4A7C15u;
    if (!m->rng)
        m->rng = 1;
    sb_list_init(&m->active);
    sb_list_init(&m->queued);
    sb_list_init(&m->retrying);
    sb_list_init(&m->socks);
    m->curl = curl_multi_init();
    if (!m->curl) {
        fprintf(stderr, "switchboard: upstream: libcurl multi handle: out of memory\n");
        abort();
    }
    curl_multi_setopt(m->curl, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(m->curl, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->curl, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(m->curl, CURLMOPT_TIMERDATA, m);
    curl_multi_setopt(m->curl, CURLMOPT_MAXCONNECTS, (long)m->max_active);
    uv_timer_init(loop, &m->curl_timer);
    uv_timer_init(loop, &m->retry_timer);
    m->curl_timer.data = m->retry_timer.data = m;
    m->open_handles = 2;
    return m;
}

int sb_http_multi_submit(sb_http_multi *m, sb_http_call *call) {
    if (m->closing)
        return SB_ECANCELED;
    sb_buf_init(&call->response);
    call->easy = NULL;
    call->attempts = 0;
    call->deadline_ms = now_ms(m) + (uint64_t)call->timeout_ms;
    if (m->nactive < m->max_active && !m->nqueued)
        return start(m, call);
    if (m->nqueued >= m->max_queued)
        return SB_ENOSPC;
    sb_list_insert_tail(&m->queued, &call->link);
    m->nqueued++;
    return SB_OK;
}

size_t sb_http_multi_active(const sb_http_multi *m) {
    return m->nactive;
}
size_t sb_http_multi_queued(const sb_http_multi *m) {
    return m->nqueued;
}
size_t sb_http_multi_retrying(const sb_http_multi *m) {
    return m->nretrying;
}
uint64_t sb_http_multi_retries(const sb_http_multi *m) {
    return m->retries;
}

static void cancel_list(sb_list *head, size_t *count) {
    while (!sb_list_empty(head)) {
        sb_http_call *call = sb_container_of(head->next, sb_http_call, link);
        sb_list_remove(&call->link);
        (*count)--;
        fail_unstarted(call, SB_HTTP_CANCELLED, "The service is shutting down");
    }
}

void sb_http_multi_close(sb_http_multi *m) {
    if (m->closing)
        return;
    m->closing = 1;
    uv_timer_stop(&m->retry_timer);
    while (!sb_list_empty(&m->active)) {
        sb_http_call *call = sb_container_of(m->active.next, sb_http_call, link);
        sb_list_remove(&call->link);
        m->nactive--;
        curl_multi_remove_handle(m->curl, call->easy);
        curl_easy_cleanup(call->easy);
        call->easy = NULL;
        fail_unstarted(call, SB_HTTP_CANCELLED, "The service is shutting down");
    }
    cancel_list(&m->queued, &m->nqueued);
    cancel_list(&m->retrying, &m->nretrying);
    /* Our polls go first, while libcurl's sockets are still open; libcurl then closes them. */
    while (!sb_list_empty(&m->socks)) {
        sock_ctx *sc = sb_container_of(m->socks.next, sock_ctx, link);
        curl_multi_assign(m->curl, sc->fd, NULL);
        sock_close(sc);
    }
    curl_multi_cleanup(m->curl);
    m->curl = NULL;
    for (size_t i = 0; i < m->nspare; i++)
        curl_easy_cleanup(m->spare[i]);
    m->nspare = 0;
    uv_close((uv_handle_t *)&m->curl_timer, on_handle_closed);
    uv_close((uv_handle_t *)&m->retry_timer, on_handle_closed);
}
