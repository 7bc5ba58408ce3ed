/*
 * server.c - process lifecycle: listener, per-turn flush, sweep timer,
 * signals, graceful shutdown and graceful reload.  See server.h.
 */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth.h"
#include "diag/diag.h"
#include "diag/names.h"
#include "limits/tier.h"
#include "metrics/metrics.h"
#include "net/conn.h"
#include "service/service.h"
#include "signalr/client.h"
#include "upstream/dispatch.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/parfor.h"

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

static void on_signal(uv_signal_t *h, int signum) {
    if (signum == SIGHUP)
        sb_server_reload(h->data);
    else
        sb_server_stop(h->data);
}

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

/* ---- pid file and reload ------------------------------------------------------------------------ */

/* <data_dir>/switchboard.pid lets `switchboard reload` find the process.  Written before the loop runs. */
static char *pid_path(const char *data_dir) { return sb_asprintf("%s/switchboard.pid", data_dir); }

static void write_pid_file(sb_server *s) {
    char *path = pid_path(s->cfg.data_dir);
    FILE *f = fopen(path, "w");
    if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0)
        fprintf(stderr, "switchboard: cannot write %s: %s (switchboard reload will not find this process)\n",
                path, strerror(errno));
    sb_free(path);
}

static long read_pid_file(const char *data_dir) {
    char *path = pid_path(data_dir);
    FILE *f = fopen(path, "r");
    sb_free(path);
    long pid = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    return pid;
}

static void remove_pid_file(sb_server *s) {
    if (s->cfg.data_dir && read_pid_file(s->cfg.data_dir) == (long)getpid()) {
        char *path = pid_path(s->cfg.data_dir);
        unlink(path);
        sb_free(path);
    }
}

int sb_server_send_reload(const char *data_dir, char *err, size_t errlen) {
    long pid = read_pid_file(data_dir);
    if (pid <= 0) {
        snprintf(err, errlen, "no service runs with data dir %s (no readable switchboard.pid)", data_dir);
        return SB_ENOENT;
    }
    /* a pid file left by a crash may name an unrelated process by now: only signal a switchboard */
    char comm[64] = "", *path = sb_asprintf("/proc/%ld/comm", pid);
    FILE *f = fopen(path, "r");
    sb_free(path);
    if (f) {
        if (!fgets(comm, sizeof comm, f))
            comm[0] = '\0';
        fclose(f);
    }
    if (strncmp(comm, "switchboard", 11) != 0) {
        snprintf(err, errlen, "process %ld (from %s/switchboard.pid) is not a running switchboard", pid,
                 data_dir);
        return SB_ENOENT;
    }
    if (kill((pid_t)pid, SIGHUP) != 0) {
        snprintf(err, errlen, "cannot signal process %ld: %s", pid, strerror(errno));
        return -errno;
    }
    return SB_OK;
}

typedef struct reload_job {
    uv_work_t req;
    sb_server *srv;
    sb_config cfg;
    int rc;
    char err[512];
} reload_job;

/* Threadpool: the configuration is read off the loop (the loop never touches the disk). */
static void reload_read(uv_work_t *req) {
    reload_job *j = req->data;
    sb_config_defaults(&j->cfg);
    j->rc = j->srv->cfg.config_file ? sb_config_load_file(&j->cfg, j->srv->cfg.config_file, j->err, sizeof j->err)
                                    : SB_OK;
    if (j->rc == SB_OK)
        j->rc = sb_config_load_env(&j->cfg, j->err, sizeof j->err);
    if (j->rc == SB_OK)
        j->rc = sb_tier_check_config(&j->cfg, j->err, sizeof j->err);
}

static void reload_apply(uv_work_t *req, int status) {
    reload_job *j = req->data;
    sb_server *s = j->srv;
    s->reloading = 0;
    if (s->stopping) {
        /* the stop closes everything itself */
    } else if (status != 0 || j->rc != SB_OK) { /* a bad edit must not drop every client for nothing */
        fprintf(stderr, "switchboard: reload: configuration not applied: %s; nothing reloaded\n",
                status != 0 ? uv_strerror(status) : j->err);
    } else {
        /* the settings a running service can change; the others need a restart */
        s->cfg.tier = j->cfg.tier;
        s->cfg.units = j->cfg.units;
        s->cfg.free_tier_daily_messages = j->cfg.free_tier_daily_messages;
        s->cfg.max_connections = j->cfg.max_connections;
        s->cfg.max_diagnostic_clients = j->cfg.max_diagnostic_clients;
        sb_client_close_all(s, SB_CLOSE_SERVICE_RELOAD, SB_MSG_SERVICE_RELOADING);
        sb_diag_reopen(s);
        fprintf(stderr, "switchboard: reloaded (tier %s, %ld units)\n", sb_tier_name((sb_tier)s->cfg.tier),
                sb_tier_units(&s->cfg));
    }
    sb_config_free(&j->cfg);
    sb_free(j);
}

void sb_server_reload(sb_server *s) {
    if (s->stopping || s->reloading)
        return;
    fprintf(stderr, "switchboard: reloading\n");
    reload_job *j = sb_calloc(1, sizeof *j);
    j->srv = s;
    j->req.data = j;
    s->reloading = 1;
    if (uv_queue_work(s->loop, &j->req, reload_read, reload_apply) != 0) {
        s->reloading = 0;
        sb_free(j);
    }
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
    char err[512];
    if (sb_tier_check_config(&s->cfg, err, sizeof err) != SB_OK) { /* before anything is bound or started */
        fprintf(stderr, "switchboard: %s\n", err);
        return SB_EINVAL;
    }
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
    if ((rc = sb_metrics_start(s)) != SB_OK || (rc = sb_upstream_start(s)) != SB_OK) {
        /* the last fallible steps: they own loop handles from here */
        sb_metrics_stop(s);
        uv_close((uv_handle_t *)&s->listener, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
        return rc;
    }

    /* the parallel flush's write threads: without them every write happens on the loop, which still works */
    int nthreads = (int)s->cfg.write_threads;
    if (nthreads < 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = cores > 8 ? 7 : cores > 1 ? (int)cores - 1 : 0;
    }
    if (nthreads > 0 && (rc = sb_parfor_start(&s->flush_pool, nthreads)) != SB_OK) {
        fprintf(stderr, "switchboard: write threads not started (%s); the event loop writes alone\n", sb_strerror(rc));
        s->flush_pool = NULL;
    }

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
    uv_signal_init(loop, &s->sig_hup);
    s->sig_int.data = s->sig_term.data = s->sig_hup.data = s;
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);
    uv_signal_start(&s->sig_hup, on_signal, SIGHUP);
    write_pid_file(s);
    uv_timer_init(loop, &s->stop_timer);
    s->stop_timer.data = s;
    return SB_OK;
}

static void close_handles(sb_server *s) {
    uv_close((uv_handle_t *)&s->flush_check, NULL);
    uv_close((uv_handle_t *)&s->sweep_timer, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_hup, NULL);
    uv_close((uv_handle_t *)&s->stop_timer, NULL);
    sb_metrics_stop(s); /* after the last close: the final minute holds every connection's end */
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
    /* upstream calls the stop caused (disconnected events) get the same grace as the sockets */
    if ((!sb_list_empty(&s->conns) || sb_upstream_pending(s)) && s->stop_elapsed_ms < STOP_GRACE_MS)
        return;
    sb_upstream_stop(s); /* cancels what is left and closes its handles */
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
    uv_signal_stop(&s->sig_hup);
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
    sb_metrics_free(s); /* after the writer ran its last store job */
    remove_pid_file(s);
    sb_upstream_free(s);
    sb_router_free(&s->router);
    sb_service_free(s);
    sb_parfor_stop(s->flush_pool);
    sb_free(s->flush_jobs);
    sb_free(s->flush_ptrs);
    for (size_t i = 0; i < s->naccess_keys; i++)
        sb_free(s->access_keys[i]);
    sb_free(s->endpoint);
    sb_config_free(&s->cfg);
}
