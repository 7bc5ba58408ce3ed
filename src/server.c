/*
 * server.c - process lifecycle: listener, per-turn flush, sweep timer,
 * signals and graceful shutdown.  See server.h.
 */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/auth.h"
#include "diag/diag.h"
#include "diag/names.h"
#include "net/conn.h"
#include "service/service.h"
#include "signalr/client.h"
#include "util/alloc.h"
#include "util/error.h"

#define STOP_GRACE_MS 3000
#define STOP_POLL_MS 20

/* Once per loop turn, after all I/O callbacks: write what the turn queued, hand its log records over. */
static void on_flush_check(uv_check_t *h) {
    sb_server *s = h->data;
    sb_conn_flush_pending(s);
    sb_diag_flush_turn(s);
}

static void on_sweep(uv_timer_t *t) {
    sb_server *s = t->data;
    sb_client_sweep(s);
    sb_service_sweep(s);
    sb_conn_sweep(s);
    /* "collect all" messaging logs: app servers stamp tracing ids while it is on (the d-m ping) */
    sb_service_set_message_logging(s, sb_diag_collecting(s) && sb_diag_type_enabled(s, SB_LOGT_MESSAGING));
}

static void on_connection(uv_stream_t *listener, int status) {
    sb_server *s = listener->data;
    if (status < 0 || s->stopping)
        return;
    sb_conn_accept(s, listener);
}

static void on_signal(uv_signal_t *h, int signum) { sb_server_stop(h->data); }

/* mkdir -p */
static int make_dirs(const char *path) {
    char *p = sb_strdup(path);
    for (char *q = p + 1; *q; q++) {
        if (*q != '/')
            continue;
        *q = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            sb_free(p);
            return -e;
        }
        *q = '/';
    }
    int rc = mkdir(p, 0755) != 0 && errno != EEXIST ? -errno : 0;
    sb_free(p);
    return rc;
}

/* "HOST:PORT" or "[V6]:PORT" */
static int parse_listen(const char *spec, char *host, size_t hostlen, int *port) {
    const char *colon = strrchr(spec, ':');
    if (!colon)
        return SB_EINVAL;
    const char *h = spec;
    size_t hl = (size_t)(colon - spec);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    if (hl == 0 || hl >= hostlen)
        return SB_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535 || end == colon + 1)
        return SB_EINVAL;
    *port = (int)p;
    return SB_OK;
}

int sb_server_init(sb_server *s, uv_loop_t *loop) {
    s->loop = loop;
    s->mode = s->cfg.mode;
    sb_list_init(&s->conns);
    sb_list_init(&s->pending_writes);
    sb_router_init(&s->router, s);
    sb_service_init(s);

    int rc = make_dirs(s->cfg.data_dir);
    if (rc < 0) {
        fprintf(stderr, "switchboard: cannot create data dir %s: %s\n", s->cfg.data_dir, strerror(-rc));
        return rc;
    }
    if ((rc = sb_auth_load_keys(s)) != SB_OK)
        return rc;
    if ((rc = sb_diag_start(s)) != SB_OK)
        return rc;

    char host[256];
    int port;
    if (parse_listen(s->cfg.listen, host, sizeof host, &port) != SB_OK) {
        fprintf(stderr, "switchboard: listen: '%s' is not HOST:PORT\n", s->cfg.listen);
        return SB_EINVAL;
    }
    struct sockaddr_storage addr;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0) {
        fprintf(stderr, "switchboard: listen: '%s' is not an IP address\n", host);
        return SB_EINVAL;
    }
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    if ((rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&s->listener, 4096, on_connection)) != 0) {
        fprintf(stderr, "switchboard: cannot listen on %s: %s\n", s->cfg.listen, uv_strerror(rc));
        uv_close((uv_handle_t *)&s->listener, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
        return rc;
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen);
    s->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    if (s->cfg.public_endpoint && s->cfg.public_endpoint[0]) {
        s->endpoint = sb_strdup(s->cfg.public_endpoint);
        size_t n = strlen(s->endpoint);
        while (n && s->endpoint[n - 1] == '/')
            s->endpoint[--n] = '\0';
    } else {
        s->endpoint = strchr(host, ':') ? sb_asprintf("http://[%s]:%d", host, s->port)
                                        : sb_asprintf("http://%s:%d", host, s->port);
    }
    snprintf(s->resource_id, sizeof s->resource_id,
             "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.SignalRService/SignalR/%s", s->cfg.subscription_id,
             s->cfg.resource_group, s->cfg.resource_name);

    uv_check_init(loop, &s->flush_check);
    s->flush_check.data = s;
    uv_check_start(&s->flush_check, on_flush_check);

    /* one sweep for every client: fine enough for the shortest configured timeout */
    long tick = s->cfg.keep_alive_interval_ms;
    if (s->cfg.client_timeout_ms < tick)
        tick = s->cfg.client_timeout_ms;
    if (s->cfg.handshake_timeout_ms < tick)
        tick = s->cfg.handshake_timeout_ms;
    tick /= 4;
    if (tick < 25)
        tick = 25;
    if (tick > 1000)
        tick = 1000;
    uv_timer_init(loop, &s->sweep_timer);
    s->sweep_timer.data = s;
    uv_timer_start(&s->sweep_timer, on_sweep, (uint64_t)tick, (uint64_t)tick);

    uv_signal_init(loop, &s->sig_int);
    uv_signal_init(loop, &s->sig_term);
    s->sig_int.data = s->sig_term.data = s;
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);
    uv_timer_init(loop, &s->stop_timer);
    s->stop_timer.data = s;
    return SB_OK;
}

static void close_handles(sb_server *s) {
    uv_close((uv_handle_t *)&s->flush_check, NULL);
    uv_close((uv_handle_t *)&s->sweep_timer, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->stop_timer, NULL);
}

static void on_stop_tick(uv_timer_t *t) {
    sb_server *s = t->data;
    /* idle keep-alive sockets have nothing to finish */
    sb_list *pos, *tmp;
    sb_list_foreach_safe(pos, tmp, &s->conns) {
        sb_conn *c = sb_container_of(pos, sb_conn, all_link);
        if (c->kind == SB_CONN_HTTP && !c->busy && !c->out.bytes && !c->inflight)
            sb_conn_close(c);
    }
    s->stop_elapsed_ms += STOP_POLL_MS;
    if (!sb_list_empty(&s->conns) && s->stop_elapsed_ms < STOP_GRACE_MS)
        return;
    sb_list_foreach_safe(pos, tmp, &s->conns) sb_conn_close(sb_container_of(pos, sb_conn, all_link));
    uv_timer_stop(t);
    close_handles(s);
}

void sb_server_stop(sb_server *s) {
    if (s->stopping)
        return;
    s->stopping = 1;
    fprintf(stderr, "switchboard: shutting down\n");
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_signal_stop(&s->sig_int);
    uv_signal_stop(&s->sig_term);
    sb_client_close_all(s, SB_CLOSE_SERVICE_RELOAD, SB_MSG_SERVICE_RELOADING);
    sb_service_stop(s);
    uv_timer_start(&s->stop_timer, on_stop_tick, STOP_POLL_MS, STOP_POLL_MS);
}

int sb_server_run(sb_server *s) {
    printf("switchboard: listening on %s, mode %s, connection string: Endpoint=%s;AccessKey=%s;Version=1.0;\n",
           s->endpoint, s->mode == SB_MODE_SERVERLESS ? "serverless" : "default", s->endpoint, s->access_keys[0]);
    fflush(stdout);
    uv_run(s->loop, UV_RUN_DEFAULT);
    sb_diag_stop(s); /* every record produced until the last close is on disk before exit */
    return 0;
}

void sb_server_free(sb_server *s) {
    sb_diag_stop(s);
    sb_router_free(&s->router);
    sb_service_free(s);
    for (size_t i = 0; i < s->naccess_keys; i++)
        sb_free(s->access_keys[i]);
    sb_free(s->endpoint);
    sb_config_free(&s->cfg);
}
