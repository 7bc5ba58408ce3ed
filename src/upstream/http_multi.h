/*
 * http_multi.h - outbound HTTP POSTs on the event loop: libcurl's multi
 * interface driven by libuv (curl_multi_socket_action with a uv_poll_t per
 * socket libcurl asks for and one uv_timer_t for libcurl's timeout), so a
 * call never blocks the loop.  DNS goes through libcurl's threaded resolver.
 *
 * Knows nothing about SignalR: the caller describes a call (URL, headers,
 * body, timeout, how much of the answer to keep, how many attempts) and gets
 * exactly one on_done with the outcome.  Connections to an upstream are kept
 * alive and reused between calls by libcurl's connection cache.
 *
 * Bounds: at most max_active calls run at once; further calls wait in a FIFO
 * of at most max_queued, beyond which submit refuses.  A call's timeout runs
 * from when it (or its retry) is submitted, so time spent queued counts: every
 * call ends within attempts x (timeout + backoff).  Response bodies are kept
 * up to the call's max_response.
 *
 * Retries (max_attempts > 1): after a transport error, a timeout, or status
 * 408, 429 or 5xx, the call waits a full-jitter backoff (base 100 ms,
 * doubling, cap 2 s) and goes again; a closing multi retries nothing.
 *
 * Lifetime rules:
 *  1. An error return from submit means on_done will never be called.
 *  2. on_done runs on the loop, never inside a libcurl callback, so it may
 *     submit new calls.  After on_done the multi holds nothing of the call.
 *  3. The caller owns the call and everything it points at (URL, header
 *     list, body) until on_done.
 *  4. sb_http_multi_close() ends every call with SB_HTTP_CANCELLED (their
 *     on_done run inside it), releases libcurl and closes the libuv handles;
 *     the multi frees itself once the last handle is closed.
 */
#ifndef SB_HTTP_MULTI_H
#define SB_HTTP_MULTI_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/buf.h"
#include "util/list.h"

typedef struct sb_http_multi sb_http_multi;

typedef enum sb_http_outcome {
    SB_HTTP_RESPONSE = 0, /* an HTTP answer arrived: status and response are set */
    SB_HTTP_TIMEOUT,      /* no answer within the timeout */
    SB_HTTP_UNREACHABLE,  /* refused, reset, DNS, TLS, ...: error says which */
    SB_HTTP_TOO_LARGE,    /* the answer's body exceeded max_response */
    SB_HTTP_CANCELLED,    /* the multi was closed first */
} sb_http_outcome;

typedef struct sb_http_call sb_http_call;
struct sb_http_call {
    /* the request (caller-owned until on_done) */
    const char *url;
    struct curl_slist *headers;
    const char *body;
    size_t body_len;
    long timeout_ms;     /* per attempt, queueing included */
    size_t max_response; /* body bytes kept; more ends the call as SB_HTTP_TOO_LARGE.  0: discard the body */
    int max_attempts;    /* 1 = no retries */
    void (*on_done)(sb_http_call *call);
    void *data;
    /* the result, valid in on_done */
    sb_http_outcome outcome;
    long status;
    sb_buf response;
    char error[CURL_ERROR_SIZE]; /* human-readable reason for TIMEOUT / UNREACHABLE */
    int attempts;                /* made so far */
    /* internal */
    CURL *easy;
    sb_list link;         /* in the multi's queued, retrying or active list */
    uint64_t deadline_ms; /* this attempt's end (loop clock) */
    uint64_t due_ms;      /* retrying: when to go again */
    int too_large;
};

sb_http_multi *sb_http_multi_new(uv_loop_t *loop, size_t max_active, size_t max_queued);
/* Start (or queue) a call.  SB_ENOSPC: the queue is full; SB_ECANCELED: the multi is closing. */
int sb_http_multi_submit(sb_http_multi *m, sb_http_call *call);
/* Calls running / waiting for a slot / waiting to retry. */
size_t sb_http_multi_active(const sb_http_multi *m);
size_t sb_http_multi_queued(const sb_http_multi *m);
size_t sb_http_multi_retrying(const sb_http_multi *m);
/* Retries started so far. */
uint64_t sb_http_multi_retries(const sb_http_multi *m);
/* Cancel everything and close (rule 4).  m must not be used afterwards. */
void sb_http_multi_close(sb_http_multi *m);

#endif
