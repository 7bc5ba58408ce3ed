/*
 * acks.c - ack-able operations (JoinGroupWithAck, LeaveGroupWithAck,
 * UserJoinGroupWithAck, ...) waiting for the service's Ack, per hub.
 *
 * As in the SDK (AckHandler): ack ids are per container (hub), ints from 1;
 * a wait that gets no Ack within 10 s fails; Ok and NotFound are both a normal
 * end (NotFound only means "nothing to do"), anything else is a failure.
 * "Succeeded/Failed to send message {id}." is logged when the wait ends, for
 * waits whose message carried a tracing id.
 *
 * Invariant: every wait's callback runs exactly once, and never from inside
 * an iteration of the table (callbacks may add new waits).
 */
#include <inttypes.h>
#include <stdio.h>

#include "appserver.h"
#include "util/alloc.h"

typedef struct sb_app_ack {
    int32_t id;
    int has_tracing;
    uint64_t tracing_id;
    uint64_t started_ms;
    sb_app_ack_cb done;
    void *arg;
} sb_app_ack;

static size_t key_of(int32_t id, char out[16]) {
    return (size_t)snprintf(out, 16, "%" PRId32, id);
}

int32_t sb_app_ack_add(sb_app_hub *hub, uint64_t tracing_id, int has_tracing, sb_app_ack_cb done, void *arg) {
    sb_app_ack *a = sb_calloc(1, sizeof *a);
    char key[16];
    do {
        if (hub->next_ack_id <= 0)
            hub->next_ack_id = 1; /* wrapped (or first use) */
        a->id = hub->next_ack_id++;
    } while (sb_dict_get(&hub->acks, key, key_of(a->id, key)));
    a->has_tracing = has_tracing;
    a->tracing_id = tracing_id;
    a->started_ms = sb_app_now_ms(hub->app);
    a->done = done;
    a->arg = arg;
    sb_dict_set(&hub->acks, key, key_of(a->id, key), a);
    return a->id;
}

static void finish(sb_app_hub *hub, sb_app_ack *a, int status, const char *message, int log) {
    if (log && a->has_tracing) {
        if (status == SB_SVC_ACK_OK || status == SB_SVC_ACK_NOT_FOUND)
            sb_app_log(hub->app, "Succeeded to send message %" PRIu64 ".", a->tracing_id);
        else
            sb_app_log(hub->app, "Failed to send message %" PRIu64 ".", a->tracing_id);
    }
    if (a->done)
        a->done(a->arg, status, message);
    sb_free(a);
}

void sb_app_ack_resolve(sb_app_hub *hub, int32_t ack_id, int status, const char *message) {
    char key[16];
    sb_app_ack *a = sb_dict_del(&hub->acks, key, key_of(ack_id, key));
    if (a)
        finish(hub, a, status, message ? message : "", 1);
}

void sb_app_ack_abandon(sb_app_hub *hub, int32_t ack_id) {
    char key[16];
    sb_app_ack *a = sb_dict_del(&hub->acks, key, key_of(ack_id, key));
    if (a)
        finish(hub, a, 0, "The message could not be sent to the service.", 0);
}

void sb_app_ack_sweep(sb_app_hub *hub, uint64_t now) {
    if (!sb_dict_count(&hub->acks))
        return;
    size_t n = 0, cap = 16;
    sb_app_ack **expired = sb_malloc(cap * sizeof *expired);
    sb_dict_iter it;
    sb_dict_iter_init(&it, &hub->acks);
    sb_dict_entry *e;
    while ((e = sb_dict_next(&it))) {
        sb_app_ack *a = e->value;
        if (now - a->started_ms < SB_APP_ACK_TIMEOUT_MS)
            continue;
        if (n == cap)
            expired = sb_realloc(expired, (cap *= 2) * sizeof *expired);
        expired[n++] = a;
        sb_dict_del(&hub->acks, e->key, e->klen);
    }
    for (size_t i = 0; i < n; i++)
        finish(hub, expired[i], 0, "Timed out waiting for the service's ack.", 1);
    sb_free(expired);
}

void sb_app_ack_fail_all(sb_app_hub *hub) {
    for (;;) {
        sb_dict_iter it;
        sb_dict_iter_init(&it, &hub->acks);
        sb_dict_entry *e = sb_dict_next(&it);
        if (!e)
            break;
        sb_app_ack *a = sb_dict_del(&hub->acks, e->key, e->klen);
        finish(hub, a, 0, "The app server is stopping.", 0);
    }
}
