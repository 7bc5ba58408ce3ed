/*
 * fault.c - the test build's fault injection (see fault.h).
 *
 * Compiled to nothing unless SB_FAULT_INJECTION is defined: the library and
 * the shipped binary carry no hook.  `make $(BUILD)/switchboard-faults`
 * compiles this file and net/conn.c again with the define and links them
 * ahead of the library.
 *
 * The one fault: SWITCHBOARD_FAULT_WRITE_USER=<user id> (read once, at the
 * first write) makes one socket write fail with UV_ENOBUFS - a failure that
 * is the service's, not the peer's.  The write chosen is the first one to a
 * WebSocket whose client has that user id, has completed its hub handshake,
 * and already had its handshake response written: the response is queued in
 * the same loop turn the client becomes connected, so the first flush seen
 * in the connected state carries it and is let through (the client's start()
 * resolves), and the next flush - a message sent to the client - fails.  It
 * fires once per process, so a test can count exactly one
 * ServiceTransientError close and a reconnect of the same user is healthy.
 *
 * Why these rules: the trigger is named by the test (no configuration-table
 * setting, nothing a deployment could switch on), and it never depends on
 * timing.  Not here: faults of other operations (reads, accepts, files).
 */
#include "net/fault.h"

#ifdef SB_FAULT_INJECTION

#include <stdlib.h>
#include <string.h>

#include "hub/hub.h"
#include "net/conn.h"

static int loaded;
static const char *fault_user;    /* NULL: no fault requested */
static char armed[SB_ID_LEN + 1]; /* connectionId whose handshake response went out */
static int fired;

int sb_fault_socket_write(const sb_conn *c) {
    if (!loaded) {
        const char *u = getenv("SWITCHBOARD_FAULT_WRITE_USER");
        fault_user = u && *u ? u : NULL;
        loaded = 1;
    }
    if (!fault_user || fired || c->kind != SB_CONN_WS)
        return 0;
    const sb_client *cl = c->client;
    if (!cl || cl->state != SB_CLIENT_CONNECTED || !cl->user_id || strcmp(cl->user_id, fault_user) != 0)
        return 0;
    if (strcmp(armed, cl->id) != 0) { /* this flush carries the handshake response */
        memcpy(armed, cl->id, sizeof armed);
        return 0;
    }
    fired = 1;
    return UV_ENOBUFS;
}

#else

/* ISO C wants at least one declaration in a translation unit. */
typedef int sb_fault_injection_off;

#endif
