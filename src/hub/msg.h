/*
 * msg.h - one message on its way to many recipients, encoded lazily and once.
 *
 * A fan-out builds an sb_msg on the stack from its source - a target and JSON
 * arguments (REST API), or payloads already encoded per hub protocol (an app
 * server's service message) - and hands it to each recipient.  The first
 * recipient that needs a given wire form (WebSocket text frame of the JSON
 * encoding, WebSocket binary frame of the MessagePack encoding, an SSE event,
 * or the bare bytes for long polling) causes it to be built into a refcounted
 * sb_shbuf; every later recipient of that form shares the same bytes.  So a
 * broadcast to N clients costs at most one encoding per protocol and one
 * framing per transport, whatever N is.
 *
 * Messaging logs: the deliveries of a traced message (tracing_id != 0) are
 * logged as one fan-out record (diag.h); log_fanout is its handle, set by the
 * first logged delivery.  A message is delivered within one loop turn and
 * sb_msg_release() forgets the handle, so it never outlives that turn.
 *
 * Ownership: sb_msg_release() drops the message's references; queues that
 * took a buffer keep theirs.
 */
#ifndef SB_MSG_H
#define SB_MSG_H

#include <jansson.h>
#include <stdint.h>

#include "signalr/hubproto.h"
#include "util/buf.h"

typedef enum sb_wire {
    SB_WIRE_WS_JSON = 0,  /* text frame */
    SB_WIRE_WS_MSGPACK,   /* binary frame */
    SB_WIRE_SSE_JSON,     /* data: lines */
    SB_WIRE_RAW_JSON,     /* bare payload (long polling) */
    SB_WIRE_RAW_MSGPACK,
    SB_WIRE_COUNT
} sb_wire;

typedef struct sb_msg {
    /* source: either target+arguments, or payload[] given by the producer */
    const char *target;
    json_t *arguments; /* borrowed */
    sb_shbuf *payload[SB_HUBPROTO_COUNT]; /* framed hub message per protocol (owned refs) */
    sb_shbuf *wire[SB_WIRE_COUNT];        /* owned refs, built on demand */
    uint64_t tracing_id;                  /* 0 = none */
    int is_ping;                          /* not counted as a message in metrics */
    void *log_fanout;                     /* messaging-log handle of its deliveries; NULL until the first */
} sb_msg;

/* A non-blocking Invocation {target, arguments}. */
void sb_msg_init_invocation(sb_msg *m, const char *target, json_t *arguments);
/* Already-framed payloads per protocol (either may be NULL if no client of that protocol can receive it). */
void sb_msg_init_payloads(sb_msg *m, const void *json, size_t json_len, const void *msgpack, size_t msgpack_len);
/* The framed hub message for protocol p (NULL if it cannot be produced). */
sb_shbuf *sb_msg_payload(sb_msg *m, sb_hub_protocol p);
/* The bytes for wire form w (NULL if no payload for its protocol). */
sb_shbuf *sb_msg_wire(sb_msg *m, sb_wire w);
void sb_msg_release(sb_msg *m);

/* Frame an already-encoded payload for an SSE stream ("data: " lines, blank line). */
sb_shbuf *sb_sse_frame(const void *payload, size_t len);

#endif
