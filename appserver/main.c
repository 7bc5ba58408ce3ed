/*
 * main.c - switchboard-appserver: the command line, start-up, the tick that
 * drives every timer, and the graceful stop.
 *
 *   switchboard-appserver --connection-string "Endpoint=http://127.0.0.1:PORT;AccessKey=KEY;Version=1.0;"
 *                         [--listen 127.0.0.1:0] [--hub chat]... [--connections 5]
 *                         [--log FILE] [--server-id ID]
 *
 * Start-up contract (tests wait on it): exactly one line on stdout,
 * "appserver: listening on http://HOST:PORT", printed once the negotiate
 * listener is up AND every hub has at least one handshaken server connection.
 * Diagnostics go to stderr.
 *
 * Stop (SIGTERM/SIGINT): no new negotiations, the "shutdown"/"fin:0" ping on
 * every ready server connection, then - after every "finack" or 1 s, whichever
 * comes first - close the WebSockets, fail pending acks, close the tick; the
 * loop then runs dry and the process exits 0.  Further signals during that
 * last second are absorbed.
 */
#include <ctype.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "appserver.h"
#include "util/alloc.h"
#include "util/error.h"

static const char usage_text[] =
    "usage: switchboard-appserver --connection-string "
    "\"Endpoint=http://HOST:PORT;AccessKey=KEY;Version=1.0;\"\n"
    "                             [--listen 127.0.0.1:0] [--hub chat]... [--connections 5]\n"
    "                             [--log FILE] [--server-id ID]\n"
    "\n"
    "A reference app server for switchboard's default mode (what an ASP.NET Core app with the\n"
    "Microsoft.Azure.SignalR SDK does): server connections per hub, POST /{hub}/negotiate for clients,\n"
    "and the hub methods Echo, Broadcast, SendToUser, SendToGroup, SendToConnection, JoinGroup,\n"
    "LeaveGroup, JoinAndSendNoAwait, JoinAndSendAwait, AddUserToGroup, Close, GetConnectionId.\n"
    "\n"
    "  --connection-string S  the service's connection string (required)\n"
    "  --listen HOST:PORT     negotiate endpoint (default 127.0.0.1:0: a free port)\n"
    "  --hub NAME             a hub to serve; repeatable (default: chat)\n"
    "  --connections N        server connections per hub (default 5)\n"
    "  --log FILE             append messaging-log lines (the SDK's texts) to FILE\n"
    "  --server-id ID         X-ASRS-Server-Id (default <hostname>_<random hex>)\n";

uint64_t sb_app_now_ms(sb_app *app) {
    return uv_now(app->loop);
}

sb_app_hub *sb_app_hub_find(sb_app *app, const char *name, size_t len) {
    for (size_t i = 0; i < app->nhubs; i++)
        if (strlen(app->hubs[i].name) == len && strncasecmp(app->hubs[i].name, name, len) == 0)
            return &app->hubs[i];
    return NULL;
}

static void listen_host(const char *spec, char *out, size_t cap) {
    const char *colon = strrchr(spec, ':');
    size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, spec, n);
    out[n] = '\0';
}

void sb_app_check_ready(sb_app *app) {
    if (app->announced || app->stopping || !app->http)
        return;
    for (size_t i = 0; i < app->nhubs; i++)
        if (!sb_app_hub_ready(&app->hubs[i]))
            return;
    char host[256];
    listen_host(app->listen_spec, host, sizeof host);
    printf("appserver: listening on http://%s:%d\n", host, app->http_port);
    fflush(stdout);
    app->announced = 1;
}

/* ---- stop ------------------------------------------------------------------------- */

static void finish_stop(sb_app *app) {
    for (size_t i = 0; i < app->nhubs; i++) {
        sb_app_hub *hub = &app->hubs[i];
        for (size_t k = 0; k < hub->nconns; k++)
            sb_app_sconn_close(&hub->conns[k]);
        sb_app_ack_fail_all(hub);
    }
    uv_timer_stop(&app->tick);
    uv_close((uv_handle_t *)&app->tick, NULL);
    /* keep catching signals while the WebSockets close (a second SIGTERM must not kill us with 143),
     * without keeping the loop alive; main() closes them once the loop has run dry */
    uv_unref((uv_handle_t *)&app->sigterm);
    uv_unref((uv_handle_t *)&app->sigint);
}

static void begin_stop(sb_app *app) {
    if (app->stopping)
        return;
    app->stopping = 1;
    app->stop_deadline_ms = sb_app_now_ms(app) + SB_APP_STOP_GRACE_MS;
    sb_app_http_stop(app);
    for (size_t i = 0; i < app->nhubs; i++)
        for (size_t k = 0; k < app->hubs[i].nconns; k++)
            sb_app_sconn_begin_stop(&app->hubs[i].conns[k]);
}

static int all_finacked(sb_app *app) {
    for (size_t i = 0; i < app->nhubs; i++)
        for (size_t k = 0; k < app->hubs[i].nconns; k++) {
            const sb_app_sconn *sc = &app->hubs[i].conns[k];
            if (sc->ws && !sc->finack)
                return 0;
        }
    return 1;
}

static void on_signal(uv_signal_t *s, int signum) {
    begin_stop(s->data);
}

static void on_tick(uv_timer_t *t) {
    sb_app *app = t->data;
    uint64_t now = sb_app_now_ms(app);
    if (app->stopping) {
        if (now >= app->stop_deadline_ms || all_finacked(app))
            finish_stop(app);
        return;
    }
    for (size_t i = 0; i < app->nhubs; i++) {
        sb_app_hub *hub = &app->hubs[i];
        for (size_t k = 0; k < hub->nconns; k++)
            sb_app_sconn_tick(&hub->conns[k], now);
        sb_app_ack_sweep(hub, now);
    }
}

/* ---- start-up ---------------------------------------------------------------------- */

static int resolve_service(sb_app *app) {
    const sb_app_endpoint *ep = &app->cs.server;
    char port[8];
    snprintf(port, sizeof port, "%d", ep->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(ep->host, port, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, "appserver: cannot resolve %s: %s\n", ep->host, gai_strerror(rc));
        return SB_EINVAL;
    }
    memcpy(&app->service_addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    int v6 = strchr(ep->host, ':') != NULL;
    app->host_header = sb_asprintf("%s%s%s:%d", v6 ? "[" : "", ep->host, v6 ? "]" : "", ep->port);
    return SB_OK;
}

static char *default_server_id(void) {
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    uint8_t r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        abort(); /* the kernel's CSPRNG is not optional */
    sb_buf b;
    sb_buf_init(&b);
    sb_buf_appendf(&b, "%s_", host);
    for (int i = 0; i < 16; i++)
        sb_buf_appendf(&b, "%02x", r[i]);
    return sb_buf_steal(&b, NULL);
}

static void add_hub(sb_app *app, const char *name) {
    app->hubs = sb_realloc(app->hubs, (app->nhubs + 1) * sizeof *app->hubs);
    sb_app_hub *hub = &app->hubs[app->nhubs++];
    memset(hub, 0, sizeof *hub);
    hub->name = sb_strdup(name);
    hub->lname = sb_strdup(name);
    for (char *p = hub->lname; *p; p++)
        *p = (char)tolower((unsigned char)*p);
}

static int hub_name_ok(const char *s) {
    if (!isalpha((unsigned char)*s) || strlen(s) > 128)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
            return 0;
    return 1;
}

static void app_free(sb_app *app) {
    for (size_t i = 0; i < app->nhubs; i++) {
        sb_app_hub *hub = &app->hubs[i];
        sb_dict_iter it;
        sb_dict_iter_init(&it, &hub->clients);
        sb_dict_entry *e;
        while ((e = sb_dict_next(&it)))
            sb_app_client_forget(e->value);
        sb_app_ack_fail_all(hub);
        for (size_t k = 0; k < hub->nconns; k++)
            sb_app_sconn_free(&hub->conns[k]);
        sb_free(hub->conns);
        sb_dict_free(&hub->clients);
        sb_dict_free(&hub->acks);
        sb_free(hub->name);
        sb_free(hub->lname);
    }
    sb_free(app->hubs);
    sb_app_connstr_free(&app->cs);
    sb_free(app->host_header);
    sb_free(app->server_id);
    sb_free(app->listen_spec);
    sb_app_log_close(app);
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"connection-string", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"hub", required_argument, NULL, 'h'},
        {"connections", required_argument, NULL, 'n'},
        {"log", required_argument, NULL, 'L'},
        {"server-id", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'H'},
        {NULL, 0, NULL, 0},
    };
    sb_app app;
    memset(&app, 0, sizeof app);
    app.conns_per_hub = SB_APP_DEFAULT_CONNECTIONS;
    const char *connstr = NULL, *log_path = NULL;
    int o, rc = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            connstr = optarg;
            break;
        case 'l':
            sb_free(app.listen_spec);
            app.listen_spec = sb_strdup(optarg);
            break;
        case 'h':
            if (!hub_name_ok(optarg)) {
                fprintf(stderr, "appserver: invalid hub name '%s'\n", optarg);
                goto out;
            }
            if (sb_app_hub_find(&app, optarg, strlen(optarg))) {
                fprintf(stderr, "appserver: hub '%s' given twice\n", optarg);
                goto out;
            }
            add_hub(&app, optarg);
            break;
        case 'n': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > 1000) {
                fprintf(stderr, "appserver: --connections must be 1-1000\n");
                goto out;
            }
            app.conns_per_hub = (size_t)n;
            break;
        }
        case 'L':
            log_path = optarg;
            break;
        case 's':
            sb_free(app.server_id);
            app.server_id = sb_strdup(optarg);
            break;
        case 'H':
            fputs(usage_text, stdout);
            rc = 0;
            goto out;
        default:
            fputs(usage_text, stderr);
            rc = 2;
            goto out;
        }
    }
    if (optind < argc || !connstr) {
        fputs(usage_text, stderr);
        rc = 2;
        goto out;
    }
    const char *err = NULL;
    if (sb_app_connstr_parse(connstr, &app.cs, &err) != SB_OK) {
        fprintf(stderr, "appserver: invalid connection string: %s\n", err);
        goto out;
    }
    if (resolve_service(&app) != SB_OK)
        goto out;
    if (log_path && sb_app_log_open(&app, log_path) != SB_OK) {
        fprintf(stderr, "appserver: cannot open log file %s\n", log_path);
        goto out;
    }
    if (!app.listen_spec)
        app.listen_spec = sb_strdup("127.0.0.1:0");
    if (!app.server_id)
        app.server_id = default_server_id();
    if (!app.nhubs)
        add_hub(&app, "chat");
    sb_app_tracing_init(&app);
    signal(SIGPIPE, SIG_IGN);

    app.loop = uv_default_loop();
    for (size_t i = 0; i < app.nhubs; i++) {
        sb_app_hub *hub = &app.hubs[i];
        hub->app = &app;
        sb_dict_init(&hub->clients);
        sb_dict_init(&hub->acks);
        hub->nconns = app.conns_per_hub;
        hub->conns = sb_calloc(hub->nconns, sizeof *hub->conns);
        for (size_t k = 0; k < hub->nconns; k++)
            sb_app_sconn_init(&hub->conns[k], hub, (int)k);
    }
    if (sb_app_http_start(&app, app.listen_spec) != SB_OK) {
        uv_run(app.loop, UV_RUN_DEFAULT); /* let the failed listener close */
        goto out;
    }
    uv_timer_init(app.loop, &app.tick);
    app.tick.data = &app;
    uv_timer_start(&app.tick, on_tick, 0, SB_APP_TICK_MS);
    uv_signal_init(app.loop, &app.sigterm);
    uv_signal_init(app.loop, &app.sigint);
    app.sigterm.data = app.sigint.data = &app;
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_run(app.loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&app.sigterm, NULL);
    uv_close((uv_handle_t *)&app.sigint, NULL);
    uv_run(app.loop, UV_RUN_DEFAULT);
    rc = 0;
out:
    app_free(&app);
    if (app.loop)
        uv_loop_close(app.loop);
    return rc;
}
