/*
 * base64.h - base64 (RFC 4648 section 4) and base64url (section 5, no padding)
 * encoding and decoding.  Encoders append to an sb_buf; decoders append too
 * and return SB_EINVAL on any character outside the alphabet, misplaced or
 * surplus '=', an impossible length (4k+1) or non-zero leftover bits, leaving
 * the buffer as it was (one spelling per byte string: JWT signatures rely on it).
 */
#ifndef SB_BASE64_H
#define SB_BASE64_H

#include <stddef.h>

#include "util/buf.h"

void sb_base64_encode(const void *p, size_t n, sb_buf *out);
void sb_base64url_encode(const void *p, size_t n, sb_buf *out);
/* Into a caller's array with room for SB_BASE64URL_LEN(n) characters, no terminator; returns the length. */
#define SB_BASE64URL_LEN(n) (((n) * 4 + 2) / 3)
size_t sb_base64url_encode_to(const void *p, size_t n, char *out);
/* Decoding accepts input with or without '=' padding. */
int sb_base64_decode(const char *s, size_t n, sb_buf *out);
int sb_base64url_decode(const char *s, size_t n, sb_buf *out);

#endif
