/*
 * error.h - the one error model of Switchboard.
 *
 * Every fallible function returns an int: 0 (SB_OK) on success, a negative
 * errno-style code on failure.  Codes that errno does not have are added in the
 * SB_ERRORS X-macro below with values far away from errno's range; the same
 * table generates sb_strerror() so a code is never shown as a bare number.
 *
 * Incremental parsers use three outcomes (nginx style): SB_OK (one item
 * produced), SB_EAGAIN (need more bytes, nothing consumed past the partial
 * item) and any other negative code (the input is invalid; the caller closes).
 */
#ifndef SB_ERROR_H
#define SB_ERROR_H

#include <errno.h>

#define SB_OK 0

/* name, value, text */
#define SB_ERRORS(X)                                                                                     \
    X(SB_EAGAIN, -EAGAIN, "need more data")                                                              \
    X(SB_ENOMEM, -ENOMEM, "out of memory")                                                               \
    X(SB_EINVAL, -EINVAL, "invalid argument")                                                            \
    X(SB_ENOENT, -ENOENT, "not found")                                                                   \
    X(SB_EEXIST, -EEXIST, "already exists")                                                              \
    X(SB_E2BIG, -E2BIG, "too large")                                                                     \
    X(SB_EIO, -EIO, "i/o error")                                                                         \
    X(SB_EPROTO, -EPROTO, "protocol error")                                                              \
    X(SB_EPERM, -EPERM, "not permitted")                                                                 \
    X(SB_ENOSPC, -ENOSPC, "queue full")                                                                  \
    X(SB_ECANCELED, -ECANCELED, "canceled")                                                              \
    X(SB_ETIMEDOUT, -ETIMEDOUT, "timed out")                                                             \
    X(SB_EUTF8, -4001, "invalid UTF-8")                                                                  \
    X(SB_EAUTH, -4002, "authentication failed")                                                          \
    X(SB_ETHROTTLED, -4003, "throttled")                                                                 \
    X(SB_ECLOSED, -4004, "connection closed")

enum sb_error_code {
#define SB__ERR_ENUM(name, val, text) name##_CODE = (val),
    SB_ERRORS(SB__ERR_ENUM)
#undef SB__ERR_ENUM
};

#define SB_EAGAIN (-EAGAIN)
#define SB_ENOMEM (-ENOMEM)
#define SB_EINVAL (-EINVAL)
#define SB_ENOENT (-ENOENT)
#define SB_EEXIST (-EEXIST)
#define SB_E2BIG (-E2BIG)
#define SB_EIO (-EIO)
#define SB_EPROTO (-EPROTO)
#define SB_EPERM (-EPERM)
#define SB_ENOSPC (-ENOSPC)
#define SB_ECANCELED (-ECANCELED)
#define SB_ETIMEDOUT (-ETIMEDOUT)
#define SB_EUTF8 (-4001)
#define SB_EAUTH (-4002)
#define SB_ETHROTTLED (-4003)
#define SB_ECLOSED (-4004)

/* Human-readable text for an error code; never NULL. */
const char *sb_strerror(int code);

#endif
