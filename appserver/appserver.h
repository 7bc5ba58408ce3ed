/*
 * appserver.h - the reference app server: a small stand-in for an ASP.NET Core
 * app using the Microsoft.Azure.SignalR SDK, so the service (default mode) can
 * be tested and benchmarked end to end: client -> service -> app server ->
 * service -> client.
 *
 * The shapes, as a newcomer should read them:
 *
 *   sb_app          the process: configuration, the loop, the hubs, the negotiate listener, the log
 *   sb_app_hub      one hub ("container" in the SDK): its server connections, its clients, its
 *                   pending acks, its "d-m" messaging-log flag
 *   sb_app_sconn    one server connection (a WebSocket to {Endpoint}/server/?hub=h) and its
 *                   reconnect state; lives as long as the hub, the WebSocket comes and goes
 *   sb_app_client   one client connection the service routed to us (OpenConnection .. Close)
 *
 * Files, one concept each:
 *   main.c          CLI, start-up line, signals, graceful stop
 *   connstr.c       the ASRS connection string
 *   ws_client_frame.c  I/O-free client-side WebSocket framing (masked out, unmasked in)
 *   wsclient.c      a WebSocket client connection over libuv (connect, upgrade, frames)
 *   server_conn.c   the service protocol on one server connection: handshake, keep-alive,
 *                   reconnect with backoff, dispatch of what the service sends
 *   client_conn.c   client connections: hub handshake, splitting and decoding hub messages
 *   hub_methods.c   the hub methods clients invoke (Echo, Broadcast, JoinGroup, ...)
 *   outbound.c      building app -> service messages: payloads per protocol, tracing ids, log lines
 *   acks.c          ack-able operations waiting for the service's Ack
 *   args.c          invocation arguments of either hub protocol as jansson values
 *   msglog.c        tracing ids and the SDK's messaging-log lines (--log FILE)
 *   negotiate.c     the tiny HTTP server: POST /{hub}/negotiate with CORS
 *
 * Ownership rules:
 *   1. sb_app owns the hubs; a hub owns its server connections (an array, never moved) and its
 *      clients (dict by connection id).  Nothing outlives the hub.
 *   2. A wsclient (sb_wsc) frees itself after it reports on_closed; the server connection drops
 *      its pointer in that callback and never touches it again.
 *   3. Anything that waits (an ack, a write completion) refers to a client by its connection id
 *      and looks it up again when it fires: the client may be gone by then.
 *   4. Strings in a decoded sb_svc_msg live until sb_svc_msg_clear(); a client copies what it keeps.
 *
 * One process, one libuv loop, no threads.
 */
#ifndef SB_APPSERVER_H
#define SB_APPSERVER_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <uv.h>

#include "net/ws_frame.h"
#include "service/svcproto.h"
#include "signalr/hubproto.h"
#include "util/buf.h"
#include "util/dict.h"
#include "util/list.h"

/* ---- timing and limits (the SDK's defaults where it has one) ---------------- */

#define SB_APP_DEFAULT_CONNECTIONS 5
#define SB_APP_TICK_MS 100              /* one timer drives keep-alive, timeouts, reconnects, acks */
#define SB_APP_KEEPALIVE_MS 5000        /* our "#clientInHub" ping */
#define SB_APP_SERVICE_TIMEOUT_MS 30000 /* nothing received for this long: reconnect */
#define SB_APP_HANDSHAKE_TIMEOUT_MS 15000
#define SB_APP_ACK_TIMEOUT_MS 10000
#define SB_APP_BACKOFF_FIRST_MS 1000
#define SB_APP_BACKOFF_MAX_MS 60000
#define SB_APP_STOP_GRACE_MS 1000 /* how long a stop waits for "finack" */
#define SB_APP_TOKEN_LIFETIME_S 3600
#define SB_APP_MAX_SERVICE_MESSAGE ((size_t)64 << 20) /* one service-protocol message from the service */
#define SB_APP_MAX_CLIENT_MESSAGE ((size_t)4 << 20)   /* one hub message from a client */
#define SB_APP_MAX_WRITE_QUEUE ((size_t)256 << 20)    /* bytes queued to one server connection */

/* ---- connection string (connstr.c) -------------------------------------------- */

typedef struct sb_app_endpoint {
    char *url;  /* scheme://host[:port][/path], no trailing '/': the "{Endpoint}" of every URL we build */
    char *host; /* for the TCP connect and the Host header (no brackets) */
    int port;
    char *path; /* "" or "/prefix" */
} sb_app_endpoint;

typedef struct sb_app_connstr {
    sb_app_endpoint server; /* ServerEndpoint, else Endpoint (+Port) */
    char *client_url;       /* ClientEndpoint, else Endpoint (+Port): where negotiate redirects clients */
    char *access_key;
} sb_app_connstr;

/*
 * Parse "Endpoint=http://host;AccessKey=K;Version=1.0;" by the ASRS rules: ';'-separated
 * key=value pairs split at the first '=', keys case-insensitive, whitespace trimmed, duplicate
 * keys rejected; Endpoint and AccessKey required; optional Port (1-65535, overrides the
 * endpoint's port), Version (1.x), ClientEndpoint, ServerEndpoint.  Only http endpoints.
 * SB_EINVAL with *err a static text on failure (out is then empty).
 */
int sb_app_connstr_parse(const char *s, sb_app_connstr *out, const char **err);
void sb_app_connstr_free(sb_app_connstr *cs);
/* Split an http URL into an endpoint; port_override > 0 replaces its port. */
int sb_app_endpoint_parse(const char *url, int port_override, sb_app_endpoint *out, const char **err);
void sb_app_endpoint_free(sb_app_endpoint *e);

/* ---- client-side WebSocket framing (ws_client_frame.c) ----------------------- */

/* Parser of server frames (unmasked).  Events reuse sb_ws_event from net/ws_frame.h. */
typedef struct sb_wscf_parser {
    size_t max_message;
    sb_buf msg;     /* data message being reassembled */
    int msg_opcode; /* TEXT/BINARY of the message in progress, 0 if none */
    sb_buf ctl;     /* control frame payload */
    int emitted;    /* an event points into msg/ctl: reset them on the next call */
    uint16_t error_close_code;
    const char *error;
    /* private */
    uint8_t hdr[10];
    size_t hdr_len;
    uint64_t frame_len, frame_got;
    int frame_opcode, frame_fin, in_payload;
} sb_wscf_parser;

void sb_wscf_parser_init(sb_wscf_parser *p, size_t max_message);
void sb_wscf_parser_free(sb_wscf_parser *p);
/*
 * Same contract as sb_ws_parse(): SB_OK with *ev (valid until the next call) and *consumed,
 * SB_EAGAIN when all input was used, or SB_EPROTO / SB_E2BIG / SB_EUTF8 with error_close_code
 * and error set.  Masked frames, reserved bits, unknown opcodes, fragmented or long control
 * frames and continuations without a start are protocol errors.
 */
int sb_wscf_parse(sb_wscf_parser *p, const uint8_t *data, size_t len, size_t *consumed, sb_ws_event *ev);
/* Append one final, masked client frame (header, mask key, masked payload) to out. */
void sb_wscf_build(sb_buf *out, int opcode, const void *payload, size_t len, uint32_t mask);

/* ---- WebSocket client connection (wsclient.c) --------------------------------- */

typedef struct sb_wsc sb_wsc;

typedef struct sb_wsc_handler {
    void (*on_open)(sb_wsc *ws, void *user);
    /* one whole data message (text or binary) */
    void (*on_message)(sb_wsc *ws, void *user, const uint8_t *data, size_t len);
    /* exactly once, after every handle is closed; ws is freed when this returns */
    void (*on_closed)(sb_wsc *ws, void *user, const char *reason);
} sb_wsc_handler;

typedef struct sb_wsc_request {
    const struct sockaddr *addr; /* resolved once at start-up */
    const char *host_header;     /* "host:port" */
    const char *target;          /* "/server/?hub=chat&cid=..." */
    const char *extra_headers;   /* "Name: value\r\n" lines, may be NULL */
    size_t max_message;
} sb_wsc_request;

/* Start connecting; never NULL.  Every failure, even an immediate one, is reported by on_closed. */
sb_wsc *sb_wsc_connect(uv_loop_t *loop, const sb_wsc_request *req, const sb_wsc_handler *h, void *user);
/* Called once the frame has left (status 0) or can never leave (negative libuv status). */
typedef void (*sb_wsc_written_cb)(void *arg, int status);
/*
 * Send one masked frame.  SB_OK: the frame is handed to libuv; cb (if any) will be called.
 * SB_ECLOSED (not open) / SB_ENOSPC (write queue over its bound: the connection is being
 * closed) / SB_EIO: nothing was sent and cb will never be called.
 */
int sb_wsc_send(sb_wsc *ws, int opcode, const void *data, size_t len, sb_wsc_written_cb cb, void *arg);
/* Start the closing handshake (or abort a connect in progress).  Idempotent; on_closed follows. */
void sb_wsc_close(sb_wsc *ws, uint16_t code, const char *reason);
int sb_wsc_is_open(const sb_wsc *ws);

/* ---- the app -------------------------------------------------------------------- */

typedef struct sb_app sb_app;
typedef struct sb_app_hub sb_app_hub;
typedef struct sb_app_client sb_app_client;

enum sb_app_sconn_state {
    SB_APP_SCONN_IDLE,        /* waiting for the next (re)connect attempt */
    SB_APP_SCONN_CONNECTING,  /* TCP + WebSocket upgrade */
    SB_APP_SCONN_HANDSHAKING, /* HandshakeRequest sent */
    SB_APP_SCONN_READY,
    SB_APP_SCONN_STOPPED,
};

typedef struct sb_app_sconn {
    sb_app_hub *hub;
    int index;
    int state; /* enum sb_app_sconn_state */
    sb_wsc *ws;
    char cid[37];        /* the cid query parameter of the current attempt */
    int unusable;        /* a ServiceError arrived: no more writes on this connection */
    int finack;          /* the service acknowledged our "shutdown" ping */
    sb_buf in;           /* service-protocol bytes not yet a whole message */
    uint64_t started_ms; /* when the current attempt began */
    uint64_t last_recv_ms, last_ping_ms, retry_at_ms;
    unsigned attempts; /* failed attempts since the last handshake (backoff exponent) */
    size_t nclients;
} sb_app_sconn;

struct sb_app_hub {
    sb_app *app;
    char *name;  /* as given on the command line */
    char *lname; /* lower case: the hub query parameter */
    sb_app_sconn *conns;
    size_t nconns;
    size_t rr;           /* round-robin cursor for picking a connection */
    sb_dict clients;     /* connection id -> sb_app_client */
    int message_log;     /* "d-m" = 1: stamp tracing ids on everything (SDK EnableMessageLog) */
    int32_t next_ack_id; /* per hub, from 1 as in the SDK */
    sb_dict acks;        /* decimal ack id -> struct sb_app_ack */
};

struct sb_app_client {
    sb_app_hub *hub;
    sb_app_sconn *sconn; /* the server connection the client arrived on */
    char *id;
    char *user;        /* NULL for anonymous */
    char *instance_id; /* Asrs-Instance-Id, for the "offline" ping; may be NULL */
    sb_hub_protocol protocol;
    int diagnostic; /* Asrs-Is-Diagnostic-Client: true */
    int handshaken;
    int busy;  /* its messages are being dispatched: forgetting it only marks it dead */
    int dead;  /* forgotten while busy; freed when the dispatch loop ends */
    sb_buf in; /* client bytes not yet a whole hub message */
};

struct sb_app {
    uv_loop_t *loop;
    sb_app_connstr cs;
    struct sockaddr_storage service_addr;
    char *host_header;
    char *server_id;
    sb_app_hub *hubs;
    size_t nhubs;
    size_t conns_per_hub;
    char *listen_spec;
    int http_port;
    int announced; /* the start-up line has been printed */
    int stopping;
    uint64_t stop_deadline_ms;
    uv_timer_t tick;
    uv_signal_t sigterm, sigint;
    void *http; /* negotiate.c state */
    FILE *log;
    uint64_t tracing_prefix;
    uint32_t tracing_counter;
};

uint64_t sb_app_now_ms(sb_app *app);
/* Print the start-up line once the listener is up and every hub has a ready connection. */
void sb_app_check_ready(sb_app *app);
/* The hub named name (case-insensitive), or NULL. */
sb_app_hub *sb_app_hub_find(sb_app *app, const char *name, size_t len);

/* ---- messaging log and tracing ids (msglog.c) -------------------------------- */

/* Open --log FILE for appending; SB_EIO if it cannot be opened. */
int sb_app_log_open(sb_app *app, const char *path);
void sb_app_log_close(sb_app *app);
/* One line "<ISO-8601 UTC with ms>Z <text>" when --log is set; no-op otherwise. */
void sb_app_log(sb_app *app, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Random 28-bit per-process prefix << 32 | counter from 0 (MessageWithTracingIdHelper). */
void sb_app_tracing_init(sb_app *app);
uint64_t sb_app_tracing_next(sb_app *app);

/* ---- server connections (server_conn.c) --------------------------------------- */

void sb_app_sconn_init(sb_app_sconn *sc, sb_app_hub *hub, int index);
void sb_app_sconn_free(sb_app_sconn *sc);
/* Timers: connect when due, keep-alive ping, handshake and liveness timeouts. */
void sb_app_sconn_tick(sb_app_sconn *sc, uint64_t now);
/* Encode and send one service message.  Returns sb_wsc_send()'s code (cb only on SB_OK). */
int sb_app_sconn_send(sb_app_sconn *sc, const sb_svc_msg *m, sb_wsc_written_cb cb, void *arg);
int sb_app_sconn_usable(const sb_app_sconn *sc);
/* Stop: send the graceful "shutdown" ping (fin:0) when ready; no reconnects after this. */
void sb_app_sconn_begin_stop(sb_app_sconn *sc);
/* Close the WebSocket now (stop path). */
void sb_app_sconn_close(sb_app_sconn *sc);
/*
 * A usable connection of the hub: `prefer` if usable, else the next usable one in round-robin
 * order that is not `avoid` (avoid only when nothing else is usable).  NULL if none.
 */
sb_app_sconn *sb_app_hub_pick(sb_app_hub *hub, sb_app_sconn *prefer, sb_app_sconn *avoid);
int sb_app_hub_ready(const sb_app_hub *hub);

/* ---- client connections (client_conn.c) --------------------------------------- */

void sb_app_client_open(sb_app_sconn *sc, const sb_svc_msg *m);
void sb_app_client_data(sb_app_sconn *sc, const sb_svc_msg *m);
/* The service says the client is gone (CloseConnection from the service). */
void sb_app_client_closed(sb_app_sconn *sc, const sb_svc_msg *m);
/* The client asked for stateful reconnect handling: drop half-received bytes. */
void sb_app_client_reconnected(sb_app_sconn *sc, const sb_svc_msg *m);
/* Forget a client without telling the service. */
void sb_app_client_forget(sb_app_client *cl);
/* Forget every client that came on this server connection (the connection dropped). */
void sb_app_clients_drop_conn(sb_app_sconn *sc);
/* Forget every client of the hub served by that service instance ("offline" ping). */
void sb_app_clients_offline(sb_app_hub *hub, const char *instance_id);
sb_app_client *sb_app_client_find(sb_app_hub *hub, const char *id);
/* Send framed hub bytes to the client as ConnectionData on its server connection. */
int sb_app_client_send_raw(sb_app_client *cl, const void *data, size_t len);
/* Send a Completion in the client's protocol: error XOR result (result NULL = null). */
void sb_app_client_complete(sb_app_client *cl, const char *invocation_id, const char *error, json_t *result);

/* ---- hub methods (hub_methods.c) ------------------------------------------------ */

/* Run the invocation m (already decoded) from client cl with arguments args (a json array). */
void sb_app_invoke(sb_app_client *cl, const sb_hub_msg *m, json_t *args);

/* ---- outbound messages (outbound.c) --------------------------------------------- */

/*
 * Where a message comes from, which decides tracing and the connection it travels on:
 * via = the caller's server connection (NULL: any); diagnostic = caused by a diagnostic client.
 */
typedef struct sb_app_origin {
    sb_app_hub *hub;
    sb_app_sconn *via;
    int diagnostic;
} sb_app_origin;

/* Fill the payloads map with the framed Invocation (no invocationId) in both protocols. */
void sb_app_payloads_build(sb_svc_msg *m, const char *target, json_t *args);
void sb_app_payloads_free(sb_svc_msg *m);

/*
 * Send a data message (types 7, 8, 10, 13) or CloseConnection (5), built by the caller
 * without tracing id: stamps one when the origin asks for it, writes the "Start to ..." line,
 * sends, and writes "Succeeded/Failed to send message".  `then`, if set, runs once the frame
 * has left (or failed) - used to order a second message after this one.  Returns the send code.
 */
int sb_app_send(const sb_app_origin *o, sb_svc_msg *m, sb_wsc_written_cb then, void *then_arg);

/*
 * Send an ack-able message (types 18, 19, 26, 27) with a new ack id; done(arg, status, message)
 * runs exactly once: with the Ack's status, or 0 when it timed out, could not be sent, or the
 * app is stopping.  Logs "Start ..." and, on the ack, "Succeeded/Failed to send message".
 */
typedef void (*sb_app_ack_cb)(void *arg, int status, const char *message);
void sb_app_send_with_ack(const sb_app_origin *o, sb_svc_msg *m, sb_app_ack_cb done, void *arg);

/* ---- acks (acks.c) -------------------------------------------------------------- */

/* Register a wait; returns the ack id to put in the message. */
int32_t sb_app_ack_add(sb_app_hub *hub, uint64_t tracing_id, int has_tracing, sb_app_ack_cb done, void *arg);
/* The Ack arrived (unknown ids are ignored). */
void sb_app_ack_resolve(sb_app_hub *hub, int32_t ack_id, int status, const char *message);
/* Fail the wait with status 0 without logging (it was never sent). */
void sb_app_ack_abandon(sb_app_hub *hub, int32_t ack_id);
/* Time out waits older than SB_APP_ACK_TIMEOUT_MS. */
void sb_app_ack_sweep(sb_app_hub *hub, uint64_t now);
/* Fail every wait (stop). */
void sb_app_ack_fail_all(sb_app_hub *hub);

/* ---- invocation arguments (args.c) --------------------------------------------- */

/*
 * The arguments of a decoded Invocation body (m->raw) as a new json array reference.
 * MessagePack values map to JSON: nil null, bool, ints (uint64 above INT64_MAX as real),
 * floats real (NaN/inf null), str string (invalid UTF-8 null), bin base64 string, arrays,
 * maps with string or integer keys (others skipped), ext null.  NULL if the body is not an
 * invocation with an arguments array.
 */
json_t *sb_app_args_decode(sb_hub_protocol p, sb_slice raw);

/* ---- negotiate HTTP server (negotiate.c) --------------------------------------- */

/* Listen on "host:port"; SB_OK and app->http_port set, or a negative code with a message on stderr. */
int sb_app_http_start(sb_app *app, const char *listen_spec);
/* Stop accepting and close every HTTP connection. */
void sb_app_http_stop(sb_app *app);

#endif
