/*
 * utf8.h - strict UTF-8 validation (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF), whole-buffer and incremental.
 */
#ifndef SB_UTF8_H
#define SB_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define SB_UTF8_ACCEPT 0u
#define SB_UTF8_REJECT 1u

/* Whole buffer: 1 if valid. */
int sb_utf8_valid(const void *p, size_t n);
/* Incremental: feed bytes into *state (start at SB_UTF8_ACCEPT); returns the new state.
 * SB_UTF8_REJECT is sticky; SB_UTF8_ACCEPT at the end means the text ended on a boundary. */
uint32_t sb_utf8_feed(uint32_t *state, const void *p, size_t n);

#endif
