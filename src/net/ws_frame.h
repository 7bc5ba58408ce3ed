/*
 * ws_frame.h - I/O-free WebSocket (RFC 6455) server-side framing.
 *
 * Owns: the upgrade handshake's Sec-WebSocket-Accept value, parsing client
 * frames into whole messages (reassembling fragments, unmasking, validating
 * UTF-8 of text messages and close reasons, enforcing the message size limit),
 * and writing server frame headers.
 *
 * Hand-written rather than using wslay: the broadcast path frames a message
 * ONCE into a shared buffer that every recipient's queue references (server
 * frames are unmasked, so the bytes are identical for all), which wslay's
 * per-connection event queue cannot express; and the parser must be I/O-free
 * to be fuzzed.  It is small.
 *
 * Not here: sockets, queues, the SignalR protocol (net/ws.c, signalr/).
 */
#ifndef SB_WS_FRAME_H
#define SB_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

enum sb_ws_opcode {
    SB_WS_OP_CONT = 0x0,
    SB_WS_OP_TEXT = 0x1,
    SB_WS_OP_BINARY = 0x2,
    SB_WS_OP_CLOSE = 0x8,
    SB_WS_OP_PING = 0x9,
    SB_WS_OP_PONG = 0xA,
};

enum sb_ws_close_code {
    SB_WS_CLOSE_NORMAL = 1000,
    SB_WS_CLOSE_GOING_AWAY = 1001,
    SB_WS_CLOSE_PROTOCOL_ERROR = 1002,
    SB_WS_CLOSE_UNSUPPORTED = 1003,
    SB_WS_CLOSE_NO_STATUS = 1005,
    SB_WS_CLOSE_INVALID_DATA = 1007, /* e.g. invalid UTF-8 in a text message */
    SB_WS_CLOSE_POLICY = 1008,
    SB_WS_CLOSE_TOO_BIG = 1009,
    SB_WS_CLOSE_INTERNAL_ERROR = 1011,
};

/* One parsed event: a whole data message, or a control frame. */
typedef struct sb_ws_event {
    int opcode;          /* TEXT, BINARY (whole reassembled message), CLOSE, PING or PONG */
    sb_slice payload;    /* valid until the next sb_ws_parse call; unmasked */
    uint16_t close_code; /* CLOSE only: 1005 when the frame had no body */
    sb_slice close_reason;
} sb_ws_event;

typedef struct sb_ws_parser {
    size_t max_message; /* limit on a reassembled data message */
    sb_buf msg;         /* fragments being reassembled */
    int msg_opcode;     /* TEXT/BINARY of the message in progress, 0 if none */
    sb_buf ctl;         /* control frame payload */
    uint16_t error_close_code; /* close code to send after an error return */
    const char *error;         /* reason after an error return */
    /* private incremental state */
    int state;
    uint8_t hdr[14];
    size_t hdr_len;
    uint64_t frame_len;
    uint64_t frame_got;
    int frame_opcode;
    int frame_fin;
    uint8_t mask[4];
    uint32_t utf8_state; /* incremental UTF-8 validation of a text message */
} sb_ws_parser;

void sb_ws_parser_init(sb_ws_parser *p, size_t max_message);
void sb_ws_parser_free(sb_ws_parser *p);
/*
 * 1 when the parser is between frames with no message in progress and no
 * error: it then holds nothing the next byte needs (only payload storage of
 * events already returned), so a caller done with those events may free it
 * and start a new one when bytes arrive (idle connections keep no parser).
 */
int sb_ws_parser_idle(const sb_ws_parser *p);
/*
 * Consume input.  Returns SB_OK with *ev filled when an event is complete
 * (*consumed bytes used; call again with the rest), SB_EAGAIN when all input was
 * consumed without completing an event, or a negative error (SB_EPROTO,
 * SB_EUTF8, SB_E2BIG) with p->error_close_code / p->error set; the caller then
 * sends a close frame with that code and closes.  Unmasked client frames,
 * reserved bits, unknown opcodes, fragmented or oversized (>125) control
 * frames, a continuation without a start, and bad close codes are protocol
 * errors.
 */
int sb_ws_parse(sb_ws_parser *p, const uint8_t *data, size_t len, size_t *consumed, sb_ws_event *ev);

/* Write a final, unmasked server frame header for a payload of len bytes into out (<= 10 bytes);
 * returns the header length. */
size_t sb_ws_frame_header(uint8_t out[10], int opcode, uint64_t len);
/* A whole server frame (header + payload) in a new shared buffer. */
sb_shbuf *sb_ws_frame_build(int opcode, const void *payload, size_t len);
/* A close frame with code and reason (reason truncated to fit 125 bytes on a UTF-8 boundary). */
sb_shbuf *sb_ws_close_frame(uint16_t code, const char *reason);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA1(key + GUID)); out gets 28 chars + NUL. */
void sb_ws_accept_key(const char *key, size_t key_len, char out[29]);

#endif
