/*
 * utf8.c - strict UTF-8 validation as a small deterministic automaton.
 *
 * Owns: the one definition of "valid UTF-8" used by the WebSocket parser
 * (text messages, close reasons) and by anything else that must reject bad
 * text before it reaches JSON or a log.
 *
 * Invariants: the state is a single uint32_t so callers can keep it in their
 * own structs and resume across buffer boundaries; ACCEPT (0) means "on a
 * character boundary", REJECT (1) is sticky, every other value names which
 * continuation bytes may come next.  The range-restricted states after E0, ED,
 * F0 and F4 are what rule out overlongs, surrogates and code points above
 * U+10FFFF without ever decoding a code point.
 *
 * Speed: text on the hot path is mostly ASCII JSON, so while on a boundary the
 * scanner skips eight ASCII bytes at a time; the per-byte switch only runs for
 * multi-byte sequences.
 *
 * Not here: decoding, normalisation, replacement of bad sequences.
 */
#include "util/utf8.h"

#include <string.h>

enum {
    ST_ACCEPT = SB_UTF8_ACCEPT,
    ST_REJECT = SB_UTF8_REJECT,
    ST_CONT1, /* one more 80..BF */
    ST_CONT2, /* two more 80..BF */
    ST_CONT3, /* three more 80..BF */
    ST_E0,    /* A0..BF then one more: shorter would be an overlong */
    ST_ED,    /* 80..9F then one more: A0..BF would be a surrogate */
    ST_F0,    /* 90..BF then two more: shorter would be an overlong */
    ST_F4,    /* 80..8F then two more: higher would pass U+10FFFF */
};

static inline uint32_t in_range(unsigned b, unsigned lo, unsigned hi, uint32_t next) {
    return b >= lo && b <= hi ? next : ST_REJECT;
}

static inline uint32_t step(uint32_t s, unsigned b) {
    switch (s) {
    case ST_ACCEPT:
        if (b < 0x80)
            return ST_ACCEPT;
        if (b < 0xC2) /* stray continuation, or C0/C1 which only start overlongs */
            return ST_REJECT;
        if (b < 0xE0)
            return ST_CONT1;
        if (b == 0xE0)
            return ST_E0;
        if (b == 0xED)
            return ST_ED;
        if (b < 0xF0)
            return ST_CONT2;
        if (b == 0xF0)
            return ST_F0;
        if (b < 0xF4)
            return ST_CONT3;
        if (b == 0xF4)
            return ST_F4;
        return ST_REJECT;
    case ST_CONT1:
        return in_range(b, 0x80, 0xBF, ST_ACCEPT);
    case ST_CONT2:
        return in_range(b, 0x80, 0xBF, ST_CONT1);
    case ST_CONT3:
        return in_range(b, 0x80, 0xBF, ST_CONT2);
    case ST_E0:
        return in_range(b, 0xA0, 0xBF, ST_CONT1);
    case ST_ED:
        return in_range(b, 0x80, 0x9F, ST_CONT1);
    case ST_F0:
        return in_range(b, 0x90, 0xBF, ST_CONT2);
    case ST_F4:
        return in_range(b, 0x80, 0x8F, ST_CONT2);
    default:
        return ST_REJECT;
    }
}

uint32_t sb_utf8_feed(uint32_t *state, const void *p, size_t n) {
    const unsigned char *s = p, *end = s + n;
    uint32_t st = *state;
    while (s < end && st != ST_REJECT) {
        if (st == ST_ACCEPT) {
            while (end - s >= 8) {
                uint64_t w;
                memcpy(&w, s, 8);
                if (w & 0x8080808080808080ull)
                    break;
                s += 8;
            }
            if (s == end)
                break;
        }
        st = step(st, *s++);
    }
    *state = st;
    return st;
}

int sb_utf8_valid(const void *p, size_t n) {
    uint32_t st = SB_UTF8_ACCEPT;
    return sb_utf8_feed(&st, p, n) == SB_UTF8_ACCEPT;
}
