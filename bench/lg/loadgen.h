/*
 * loadgen.h - the benchmark load generator: one process, one thread, one epoll
 * loop driving thousands of WebSocket subscribers and a few publishers against
 * Switchboard or nginx+nchan, measuring what each subscriber receives.
 *
 * The shapes, as a newcomer should read them:
 *
 *   sb_lg_opts     the command line: scenario, target, sizes, rates
 *   sb_lg_ctx      the process: options, the epoll loop, every connection, the counters
 *   sb_lg_conn     one WebSocket (subscriber, invoking client or echo client): 88 bytes in
 *                  steady state; its setup state (HTTP buffers, tokens) lives on the heap only
 *                  until the connection is open, its pending output only while a write is short
 *   sb_lg_pub      one HTTP publisher connection (REST API or nchan POST): keep-alive, pipelined
 *   sb_lg_hist     a fixed-memory log-linear latency histogram
 *
 * Every message carries its own measurement: the payload starts with
 * "~LG" + 16 hex digits of CLOCK_MONOTONIC ns at send + 8 hex digits of sequence
 * number, padded with 'x' to the scenario's payload size.  Subscribers do not decode
 * hub messages: a streaming scanner (payload.c) finds the stamps in the WebSocket
 * payload bytes, whatever the framing (JSON text, MessagePack string, raw nchan body),
 * so the receive path allocates nothing and copies nothing.
 *
 * Files (bench/lg/, built into bench/loadgen), one concept each:
 *   main.c      CLI, the scenario driver (phases), the report
 *   loop.c      epoll loop, clock, run-until-condition with a deadline
 *   conn.c      WebSocket client connections: connect, negotiate, upgrade, hub handshake,
 *               receive, pings, sending invocations / echo frames
 *   publish.c   HTTP publishers and the publishing policy (paced or flat out with a window)
 *   control.c   blocking HTTP calls for set-up only (app-server negotiate, group joins,
 *               diagnostic setting) and counting archived log records
 *   wsframe.c   I/O-free client-side WebSocket framing (masked out, unmasked in)
 *   httpresp.c  I/O-free HTTP/1.1 response head and body-length parsing
 *   payload.c   stamping payloads and the streaming stamp scanner
 *   hist.c      the histogram
 *   procstat.c  the server's CPU time and memory from /proc; RLIMIT_NOFILE
 *   selftest.c  `loadgen --self-test`: the I/O-free parts fed byte at a time
 *
 * Ownership rules:
 *   1. The ctx owns every connection (arrays allocated once at start, never moved), so
 *      epoll data pointers stay valid for the whole run.
 *   2. A connection's setup state is freed the moment the connection opens or fails;
 *      after that nothing on the receive path allocates.
 *   3. Every loop runs until a condition or a deadline, whichever comes first.
 *
 * Not here: TLS, SSE/long polling, reconnects of subscribers (a closed subscriber is a
 * counted failure, not something to hide).
 */
#ifndef SB_LOADGEN_H
#define SB_LOADGEN_H

#include <stddef.h>
#include <stdint.h>

#include "signalr/hubproto.h"
#include "util/buf.h"

/* ---- payload stamps (payload.c) ---------------------------------------------------------- */

#define SB_LG_MARKER "~LG"
#define SB_LG_MARKER_LEN 3
#define SB_LG_STAMP_LEN (SB_LG_MARKER_LEN + 16 + 8) /* the smallest payload */

/* Fill p[0..len) with a stamp placeholder and 'x' padding (len >= SB_LG_STAMP_LEN). */
void sb_lg_payload_init(char *p, size_t len);
/* Write the send time and sequence number into a payload made by sb_lg_payload_init. */
void sb_lg_payload_stamp(char *p, uint64_t ts_ns, uint32_t seq);

typedef struct sb_lg_scan {
    uint64_t ts; /* digits accumulated so far */
    uint32_t seq;
    uint8_t pos; /* 0: looking for the marker; 1..2 marker bytes matched; 3.. digits read */
} sb_lg_scan;

typedef void (*sb_lg_stamp_cb)(void *arg, uint64_t ts_ns, uint32_t seq);
/* Scan bytes of a stream (any split) and call cb once per complete stamp. */
void sb_lg_scan_feed(sb_lg_scan *s, const uint8_t *p, size_t n, sb_lg_stamp_cb cb, void *arg);

/* ---- latency histogram (hist.c) --------------------------------------------------------- */

/* Values below 128 ns are exact; above, 64 sub-buckets per power of two (< 1.6 % error). */
#define SB_LG_HIST_BUCKETS (59 * 64)

typedef struct sb_lg_hist {
    uint64_t count;
    uint64_t max;
    uint64_t buckets[SB_LG_HIST_BUCKETS];
} sb_lg_hist;

void sb_lg_hist_reset(sb_lg_hist *h);
void sb_lg_hist_record(sb_lg_hist *h, uint64_t value);
/* The value at quantile q (0..1): the midpoint of its bucket, exact for the maximum.  0 if empty. */
uint64_t sb_lg_hist_quantile(const sb_lg_hist *h, double q);

/* ---- client-side WebSocket framing (wsframe.c) ------------------------------------------ */

#define SB_LG_WS_MAX_HEADER 14 /* 2 + 8 extended length + 4 mask key */

/* Write one final masked client frame into out (room for len + SB_LG_WS_MAX_HEADER); returns its size. */
size_t sb_lg_ws_frame(uint8_t *out, int opcode, const void *payload, size_t len, uint32_t mask);

typedef struct sb_lg_ws_handler {
    /* a chunk of a data frame's payload (text, binary or continuation); any split */
    void (*on_data)(void *arg, const uint8_t *p, size_t n);
    /* a whole control frame (close, ping, pong), payload <= 125 bytes */
    void (*on_control)(void *arg, int opcode, const uint8_t *p, size_t n);
} sb_lg_ws_handler;

/* Receive state of server frames; 32 bytes, no storage until a control frame is split. */
typedef struct sb_lg_wsrx {
    uint64_t left;    /* payload bytes still to come in the current frame */
    uint8_t *ctl;     /* a split control frame's payload being gathered (heap, rare) */
    uint8_t hdr[10];  /* frame header being gathered */
    uint8_t hdr_len;  /* bytes of hdr filled; 0 between frames */
    uint8_t opcode;   /* of the current frame */
    uint8_t ctl_len;  /* bytes gathered in ctl */
    uint8_t in_frame; /* header complete, payload in progress */
} sb_lg_wsrx;

/* Feed server bytes.  SB_OK, or SB_EPROTO for a frame no server may send (reserved bits,
 * unknown opcode, control frame over 125 bytes or fragmented, 64-bit length with the top bit). */
int sb_lg_ws_feed(sb_lg_wsrx *rx, const uint8_t *p, size_t n, const sb_lg_ws_handler *h, void *arg);
void sb_lg_ws_free(sb_lg_wsrx *rx);

/* ---- HTTP responses (httpresp.c) -------------------------------------------------------- */

typedef struct sb_lg_http_resp {
    int status;
    size_t head_len;          /* bytes of status line + headers + blank line */
    long long content_length; /* -1 if absent */
    int chunked;
    int close; /* "Connection: close" */
} sb_lg_http_resp;

/* Parse a response head at p.  SB_OK with *r, SB_EAGAIN if the blank line has not arrived,
 * SB_EPROTO if it is not HTTP/1.x or too long (> 64 KB). */
int sb_lg_http_parse_head(const char *p, size_t len, sb_lg_http_resp *r);
/* Length of the whole response (head + body) if complete: SB_OK with *total, SB_EAGAIN if the
 * body has not fully arrived, SB_EPROTO for a bad chunked body.  A response with neither
 * Content-Length nor chunked encoding has an empty body (the only kind our servers send
 * without a length is 101 and 204). */
int sb_lg_http_complete(const char *p, size_t len, const sb_lg_http_resp *r, size_t *total);

/* ---- /proc and limits (procstat.c) -------------------------------------------------------- */

typedef struct sb_lg_procstat {
    int ok;
    double cpu_s; /* utime + stime, seconds */
    long rss_kb;  /* VmRSS */
    long hwm_kb;  /* VmHWM */
} sb_lg_procstat;

/* Read pid's CPU time and memory; ok = 0 if the process cannot be read. */
sb_lg_procstat sb_lg_procstat_read(int pid);
/* Raise RLIMIT_NOFILE to its hard limit; returns the new soft limit. */
long sb_lg_raise_nofile(void);

/* ---- the run ----------------------------------------------------------------------------- */

typedef enum sb_lg_scenario {
    SB_LG_SC_BROADCAST,
    SB_LG_SC_GROUP,
    SB_LG_SC_USER,
    SB_LG_SC_ECHO,
    SB_LG_SC_CONNECT,
} sb_lg_scenario;

typedef enum sb_lg_target {
    SB_LG_TARGET_SWITCHBOARD,
    SB_LG_TARGET_NCHAN,
} sb_lg_target;

typedef enum sb_lg_publish {
    SB_LG_PUBLISH_REST,       /* Switchboard REST API (serverless) */
    SB_LG_PUBLISH_INVOKE,     /* hub invocations through the app server (default mode) */
    SB_LG_PUBLISH_NCHAN_POST, /* nchan HTTP POST */
    SB_LG_PUBLISH_NCHAN_WS,   /* frames on nchan /pubsub WebSockets (echo, or --via ws) */
} sb_lg_publish;

/* Publishes travel over WebSocket client connections rather than HTTP requests. */
static inline int sb_lg_publish_ws(sb_lg_publish p) {
    return p == SB_LG_PUBLISH_INVOKE || p == SB_LG_PUBLISH_NCHAN_WS;
}

typedef struct sb_lg_opts {
    sb_lg_scenario scenario;
    sb_lg_target target;
    sb_lg_publish publish;
    const char *url; /* http://host:port of the service or nginx */
    char host[64];   /* numeric IPv4 of url */
    int port;
    const char *appserver; /* http://host:port of the app server: default mode */
    char app_host[64];
    int app_port;
    const char *access_key;
    const char *hub;
    sb_hub_protocol protocol;
    int subscribers;
    int payload;
    double rate;     /* messages per second over all publishers; 0 = flat out */
    double duration; /* seconds of publishing (connect: of holding) */
    int publishers;  /* HTTP publisher connections, or invoking clients */
    int pipeline;    /* requests in flight per HTTP publisher */
    int window;      /* flat out: messages published but not yet fully delivered */
    int group_size;
    int connect_concurrency;
    int logs;             /* create a diagnostic setting (allLogs) before the run */
    int tracing;          /* stamp REST sends with X-ASRS-Message-Tracing-Id */
    const char *logs_dir; /* count MessageSentToClient records under it afterwards */
    int server_pid;
    int app_pid;    /* the app server's, for its CPU time (default mode) */
    int source_ips; /* bind subscribers round-robin to 127.0.0.1..N */
    int user_clock; /* time arrivals when we read them, not when the kernel received them */
} sb_lg_opts;

/* Common head of everything registered with epoll. */
enum sb_lg_io_kind { SB_LG_IO_CONN = 1, SB_LG_IO_PUB = 2 };
typedef struct sb_lg_io {
    int fd;
    uint8_t kind;
} sb_lg_io;

enum sb_lg_conn_state {
    SB_LG_CS_IDLE = 0,   /* not started */
    SB_LG_CS_CONNECTING, /* TCP connect in progress */
    SB_LG_CS_NEGOTIATE,  /* POST /client/negotiate sent */
    SB_LG_CS_UPGRADE,    /* GET ... Upgrade: websocket sent */
    SB_LG_CS_HANDSHAKE,  /* hub handshake sent, waiting for {} */
    SB_LG_CS_OPEN,
    SB_LG_CS_FAILED, /* never opened */
    SB_LG_CS_CLOSED, /* opened, then closed */
};

/* What a connection needs until it is open (heap; ownership rule 2). */
typedef struct sb_lg_setup {
    sb_buf in;        /* bytes of the response (or hub handshake answer) being read */
    char *token;      /* bearer token for the service */
    char *path;       /* client endpoint path, "/client/" (from the app server's url in default mode) */
    char *query;      /* its query without '?', "hub=chat" */
    char *conn_token; /* negotiate answer: connectionToken (goes into the connect URL) */
    char *conn_id;    /* negotiate answer: connectionId (group joins address it) */
} sb_lg_setup;

struct sb_lg_pending;

typedef struct sb_lg_conn {
    sb_lg_io io;
    uint8_t state;
    uint32_t index;
    uint32_t received;
    sb_lg_wsrx rx;
    sb_lg_scan scan;
    struct sb_lg_setup *setup;     /* heap, until open or failed */
    struct sb_lg_pending *pending; /* heap, while a write is short */
} sb_lg_conn;

typedef struct sb_lg_pub {
    sb_lg_io io;
    int index;
    int connected;
    int want_out;     /* EPOLLOUT is armed: a write was short */
    int outstanding;  /* requests written or queued, not yet answered */
    uint32_t *fanout; /* ring of the expected deliveries of each outstanding request */
    int ring_head;
    sb_buf out; /* requests not yet written */
    size_t out_off;
    sb_buf in; /* response bytes not yet parsed */
} sb_lg_pub;

typedef struct sb_lg_stats {
    uint64_t sent;           /* publishes made (requests written, frames sent) */
    uint64_t accepted;       /* publishes the server accepted (2xx; every frame for WebSocket paths) */
    uint64_t publish_errors; /* non-2xx answers, or requests lost with their connection */
    uint64_t expected;       /* deliveries the accepted publishes owe */
    uint64_t expected_sent;  /* deliveries owed by every publish made (window accounting) */
    uint64_t received;       /* stamps received by subscribers */
    uint64_t opened, failed, closed;
    uint64_t late_sends; /* paced: publishes more than 10 ms behind schedule */
    uint64_t last_delivery_ns;
    sb_lg_hist lat;
    char first_error[256];
} sb_lg_stats;

typedef struct sb_lg_ctx {
    sb_lg_opts o;
    int ep;
    uint64_t now;          /* CLOCK_MONOTONIC ns, refreshed by the loop */
    uint64_t rx_ns;        /* arrival time of the bytes being scanned (CLOCK_MONOTONIC ns) */
    int64_t rt_minus_mono; /* CLOCK_REALTIME - CLOCK_MONOTONIC, to convert kernel receive timestamps */
    uint64_t rx_kernel_stamps, rx_user_stamps; /* reads timed by the kernel / by us */
    sb_lg_conn *conns;
    int nconns;
    int next_start; /* next connection to start */
    int connecting; /* started, not yet open or failed */
    int open;       /* currently open */
    sb_lg_pub *pubs;
    int npubs;
    /* publishing */
    int publishing;
    uint64_t publish_start_ns, publish_end_ns;
    uint64_t seq;
    uint32_t rr;   /* round robin over targets / invoking clients */
    char *payload; /* the payload template, opts.payload bytes */
    /* tokens and prebuilt request heads (set-up; kept for the run) */
    char *client_token; /* one token for every subscriber unless per-user */
    char **targets;     /* per publish target: request head up to the headers' end (no blank line) */
    int ntargets;
    uint32_t *target_fanout; /* deliveries one publish to target i owes */
    char **conn_ids;         /* group scenario: each connection's id from negotiate, for the joins */
    uint64_t ping_epoch_ns;  /* pings are due from 15 s after this */
    uint64_t pings_sent;
    sb_lg_stats st;
} sb_lg_ctx;

/* loop.c */
uint64_t sb_lg_clock_ns(void);
int sb_lg_loop_init(sb_lg_ctx *c);
void sb_lg_loop_add(sb_lg_ctx *c, sb_lg_io *io, uint32_t events);
void sb_lg_loop_mod(sb_lg_ctx *c, sb_lg_io *io, uint32_t events);
void sb_lg_loop_del(sb_lg_ctx *c, sb_lg_io *io);
/* Run the loop until done(c) is true or deadline (CLOCK_MONOTONIC ns) passes; 1 if done. */
int sb_lg_run_until(sb_lg_ctx *c, int (*done)(sb_lg_ctx *c), uint64_t deadline_ns);
/* A connected non-blocking TCP socket to host:port (bound to src_ip if non-NULL); -errno. */
int sb_lg_tcp_connect(const char *host, int port, const char *src_ip, int *in_progress);
/* Note the first failure text of the run (kept for the report). */
void sb_lg_note_error(sb_lg_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* conn.c */
void sb_lg_conn_start(sb_lg_ctx *c, sb_lg_conn *cn);
void sb_lg_conn_on_event(sb_lg_ctx *c, sb_lg_conn *cn, uint32_t events);
/* Send one data frame (hub message or nchan body) on an open connection; 0 or -errno. */
int sb_lg_conn_send(sb_lg_ctx *c, sb_lg_conn *cn, int opcode, const void *p, size_t n);
/* Keep-alive: a hub Ping (SignalR) or a WebSocket ping frame (nchan). */
void sb_lg_conn_ping(sb_lg_ctx *c, sb_lg_conn *cn);
sb_lg_setup *sb_lg_setup_new(void);
void sb_lg_setup_free(sb_lg_setup *s);

/* publish.c */
/* Count each target's fan-out, build per-target request heads and tokens, open the HTTP
 * publishers (or build the message WebSocket publishes send). */
void sb_lg_publish_prepare(sb_lg_ctx *c);
void sb_lg_pub_on_event(sb_lg_ctx *c, sb_lg_pub *p, uint32_t events);
/* Publish whatever is due now (paced) or the window allows (flat out). */
void sb_lg_publish_drive(sb_lg_ctx *c);
/* Publishers connected and nothing outstanding. */
int sb_lg_publish_idle(sb_lg_ctx *c);

/* control.c */
typedef struct sb_lg_http_client {
    char host[64];
    int port;
    int fd;
    sb_buf in;
} sb_lg_http_client;
void sb_lg_http_client_init(sb_lg_http_client *h, const char *host, int port);
void sb_lg_http_client_free(sb_lg_http_client *h);
/* One blocking request on a keep-alive connection (reconnects as needed; 10 s timeout).
 * Returns the status (>= 100) with the body in *body (reset first), or -errno. */
int sb_lg_http_call(sb_lg_http_client *h, const char *method, const char *target, const char *headers,
                    const char *body, size_t body_len, sb_buf *resp_body);
/* A JWT for aud (and nameid user if non-NULL), HS256 with the access key, valid 2 hours. */
char *sb_lg_token(const char *access_key, const char *aud, const char *user);
/* PUT the "bench" diagnostic setting routing allLogs to storage account "local". */
int sb_lg_create_diag_setting(sb_lg_ctx *c);
typedef struct sb_lg_log_count {
    long long sent_to_client; /* MessageSentToClient records */
    long long dropped;        /* records the service's LogRecordsDropped warnings say it dropped */
} sb_lg_log_count;
/* Count the archived records in every file under dir; -errno if dir is unreadable. */
int sb_lg_count_log_records(const char *dir, sb_lg_log_count *out);

/* selftest.c */
int sb_lg_selftest(void);

#endif
