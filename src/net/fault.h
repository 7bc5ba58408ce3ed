/*
 * fault.h - fault injection for tests of the paths real faults take.
 *
 * Some failures cannot be provoked from outside the process: a socket write
 * that fails for a reason that is not the peer's doing (ENOBUFS, ENOMEM, EIO)
 * is the service's own fault and must close the client with "Internal server
 * transient error" and the ServiceTransientError close category.  The test
 * binary (make $(BUILD)/switchboard-faults: conn.c and fault.c compiled again
 * with SB_FAULT_INJECTION) has the real hook, triggered by an environment
 * variable (fault.c says which and how); ordinary builds get the inline no-op
 * below, so the shipped binary has no hook, no setting and no cost.
 *
 * Call sites ask right before the real operation and, on a nonzero answer,
 * treat it exactly like the real call failing with that (negative libuv)
 * error code.
 */
#ifndef SB_NET_FAULT_H
#define SB_NET_FAULT_H

struct sb_conn;

#ifdef SB_FAULT_INJECTION
/* 0, or the negative libuv error a write on c should fail with now. */
int sb_fault_socket_write(const struct sb_conn *c);
#else
static inline int sb_fault_socket_write(const struct sb_conn *c) {
    (void)c;
    return 0;
}
#endif

#endif
