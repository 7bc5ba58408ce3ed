/*
 * base64.c - base64 and base64url codecs; see base64.h.
 *
 * Owns: the two alphabets and one strict decoder shared by both.  Callers are
 * the JWT code (base64url segments), the connection-string and access-key
 * handling (standard base64) and anything that needs a binary-safe text form.
 *
 * Decoding is strict on purpose, because a JWT signature must have exactly one
 * spelling: characters outside the chosen alphabet, '=' anywhere but the end,
 * a padded input whose length is not a multiple of 4, a length that no encoder
 * can produce (4k+1 characters) and non-zero bits left over in the last
 * character are all SB_EINVAL.  Whitespace is not skipped.  On failure *out is
 * left exactly as it was.
 *
 * Not here: line wrapping (MIME), streaming, and any lenient mode.
 */
#include "util/base64.h"

#include <stdint.h>

#include "util/error.h"

static const char std_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Encode n bytes at p into d (room for (n + 2) / 3 * 4 characters, no terminator); returns the end. */
static char *encode_to(const char *alphabet, int pad, const void *p, size_t n, char *d) {
    const unsigned char *s = p;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *d++ = alphabet[v >> 18];
        *d++ = alphabet[(v >> 12) & 63];
        *d++ = alphabet[(v >> 6) & 63];
        *d++ = alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        *d++ = alphabet[v >> 18];
        *d++ = alphabet[(v >> 12) & 63];
        if (pad) {
            *d++ = '=';
            *d++ = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        *d++ = alphabet[v >> 18];
        *d++ = alphabet[(v >> 12) & 63];
        *d++ = alphabet[(v >> 6) & 63];
        if (pad)
            *d++ = '=';
    }
    return d;
}

static void encode(const char *alphabet, int pad, const void *p, size_t n, sb_buf *out) {
    sb_buf_reserve(out, (n + 2) / 3 * 4);
    out->len = (size_t)(encode_to(alphabet, pad, p, n, out->data + out->len) - out->data);
    out->data[out->len] = '\0';
}

void sb_base64_encode(const void *p, size_t n, sb_buf *out) {
    encode(std_alphabet, 1, p, n, out);
}

void sb_base64url_encode(const void *p, size_t n, sb_buf *out) {
    encode(url_alphabet, 0, p, n, out);
}

size_t sb_base64url_encode_to(const void *p, size_t n, char *out) {
    return (size_t)(encode_to(url_alphabet, 0, p, n, out) - out);
}

/* Value of c in the alphabet whose two last characters are c62 and c63, or -1. */
static int sextet(unsigned char c, char c62, char c63) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (unsigned char)c62)
        return 62;
    if (c == (unsigned char)c63)
        return 63;
    return -1;
}

static int decode(char c62, char c63, const char *s, size_t n, sb_buf *out) {
    size_t pad = 0;
    if (n > 0 && s[n - 1] == '=') {
        pad = (n > 1 && s[n - 2] == '=') ? 2 : 1;
        n -= pad;
    }
    size_t tail = n % 4;
    /* One leftover character carries 6 bits: no byte can end there.  Padding must complete the last
     * quantum exactly (two pads after 2 characters, one after 3), which also makes a padded length 4k. */
    if (tail == 1 || (pad && pad != 4 - tail))
        return SB_EINVAL;

    size_t start = out->len;
    sb_buf_reserve(out, n / 4 * 3 + 2);
    unsigned char *d = (unsigned char *)out->data + start;
    uint32_t acc = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        int v = sextet((unsigned char)s[i], c62, c63);
        if (v < 0)
            goto bad;
        acc = acc << 6 | (uint32_t)v;
        if (i % 4 == 3) {
            *d++ = (unsigned char)(acc >> 16);
            *d++ = (unsigned char)(acc >> 8);
            *d++ = (unsigned char)acc;
            acc = 0;
        }
    }
    if (tail == 2) {
        if (acc & 0xf) /* 12 bits read, 8 used: the other 4 must be zero */
            goto bad;
        *d++ = (unsigned char)(acc >> 4);
    } else if (tail == 3) {
        if (acc & 0x3) /* 18 bits read, 16 used */
            goto bad;
        *d++ = (unsigned char)(acc >> 10);
        *d++ = (unsigned char)(acc >> 2);
    }
    out->len = (size_t)((char *)d - out->data);
    out->data[out->len] = '\0';
    return SB_OK;
bad:
    out->len = start;
    out->data[start] = '\0';
    return SB_EINVAL;
}

int sb_base64_decode(const char *s, size_t n, sb_buf *out) {
    return decode('+', '/', s, n, out);
}

int sb_base64url_decode(const char *s, size_t n, sb_buf *out) {
    return decode('-', '_', s, n, out);
}
