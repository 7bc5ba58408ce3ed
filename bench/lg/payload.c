/*
 * payload.c - the measurement every benchmark message carries, and the
 * streaming scanner that finds it again on the receiving side.
 *
 * Format: "~LG" + 16 lowercase hex digits (send time, CLOCK_MONOTONIC ns) +
 * 8 hex digits (sequence number) + 'x' padding.  Only characters that need no
 * escaping in JSON and no conversion in MessagePack, so the bytes a subscriber
 * receives contain the stamp verbatim whatever hub protocol or server carried it.
 *
 * The scanner is a three-byte-marker state machine with 16 bytes of state per
 * connection: frames and reads may split a stamp anywhere.  It skips to the next
 * '~' with memchr, so 2 KB of padding costs one vectorised scan.  A marker
 * followed by something that is not a hex digit is not a stamp and is dropped
 * (the scanner resynchronises on that byte).
 *
 * Called by: publish.c / conn.c (stamping), conn.c (scanning), selftest.c.
 */
#include <string.h>

#include "loadgen.h"

static const char hexdigits[] = "0123456789abcdef";

void sb_lg_payload_init(char *p, size_t len) {
    memset(p, 'x', len);
    memcpy(p, SB_LG_MARKER, SB_LG_MARKER_LEN);
    sb_lg_payload_stamp(p, 0, 0);
}

void sb_lg_payload_stamp(char *p, uint64_t ts_ns, uint32_t seq) {
    char *d = p + SB_LG_MARKER_LEN;
    for (int i = 15; i >= 0; i--, ts_ns >>= 4)
        d[i] = hexdigits[ts_ns & 15];
    d += 16;
    for (int i = 7; i >= 0; i--, seq >>= 4)
        d[i] = hexdigits[seq & 15];
}

static inline int hexval(uint8_t ch) {
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

void sb_lg_scan_feed(sb_lg_scan *s, const uint8_t *p, size_t n, sb_lg_stamp_cb cb, void *arg) {
    const uint8_t *end = p + n;
    while (p < end) {
        if (s->pos == 0) {
            const uint8_t *t = memchr(p, SB_LG_MARKER[0], (size_t)(end - p));
            if (!t)
                return;
            p = t + 1;
            s->pos = 1;
            continue;
        }
        uint8_t ch = *p;
        if (s->pos < SB_LG_MARKER_LEN) {
            if (ch == (uint8_t)SB_LG_MARKER[s->pos]) {
                s->pos++;
                s->ts = 0;
                s->seq = 0;
                p++;
            } else {
                s->pos = 0; /* re-examine this byte as a possible marker start */
            }
            continue;
        }
        int v = hexval(ch);
        if (v < 0) {
            s->pos = 0;
            continue;
        }
        if (s->pos < SB_LG_MARKER_LEN + 16)
            s->ts = (s->ts << 4) | (uint64_t)v;
        else
            s->seq = (s->seq << 4) | (uint32_t)v;
        p++;
        if (++s->pos == SB_LG_STAMP_LEN) {
            s->pos = 0;
            cb(arg, s->ts, s->seq);
        }
    }
}
