/*
 * main.c - `loadgen`: the command line, the phases of one benchmark run, and
 * its report.  See loadgen.h for the design and bench/README.md for usage.
 *
 * Phases (each bounded by a deadline):
 *   1. set-up: raise RLIMIT_NOFILE, sample the server, optionally create the
 *      diagnostic setting, negotiate at the app server (default mode)
 *   2. connect: every client connection, --connect-concurrency at a time; the
 *      connect rate is opened connections / (last open - first start)
 *   3. group joins (REST, group scenario), publisher connections
 *   4. publish for --duration seconds (connect scenario: hold the connections)
 *   5. drain: until every accepted publish is delivered, or 3 s without progress
 *   6. sample the server again, count archived log records, report
 *
 * Output: a human-readable summary, then one line "RESULT key=value ..." that
 * bench/run.sh parses.  Exit status: 0 when the run completed, 1 on bad usage or
 * when no connection could be opened, 3 with --check when anything was lost,
 * dropped or refused, or nothing was delivered.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"
#include "util/alloc.h"
#include "util/error.h"

#define SEC 1000000000ull
#define DRAIN_IDLE_NS (3 * SEC)
#define DRAIN_MAX_NS (15 * SEC)
#define LOG_COUNT_MAX_NS (30 * SEC)

static sb_lg_ctx ctx; /* static: large (the histogram), one per process */

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: loadgen --scenario broadcast|group|user|echo|connect --target switchboard|nchan --url URL\n"
        "               [--access-key K] [--appserver URL] [--hub chat] [--protocol json|messagepack]\n"
        "               [--subscribers N] [--payload BYTES] [--rate MSG_PER_S (0 = flat out)] [--duration "
        "S]\n"
        "               [--publishers N] [--pipeline N] [--window N] [--group-size N]\n"
        "               [--via http|ws] [--connect-concurrency N] [--source-ips N]\n"
        "               [--server-pid PID] [--app-pid PID] [--logs] [--tracing] [--logs-dir DIR]\n"
        "               [--user-clock] [--check]\n"
        "       loadgen --self-test | --free-port\n");
}

static int parse_http_url(const char *url, char *host, size_t hostlen, int *port) {
    if (strncmp(url, "http://", 7) != 0)
        return SB_EINVAL;
    const char *h = url + 7, *colon = strchr(h, ':');
    if (!colon || (size_t)(colon - h) >= hostlen)
        return SB_EINVAL;
    memcpy(host, h, (size_t)(colon - h));
    host[colon - h] = '\0';
    if (!strcmp(host, "localhost"))
        snprintf(host, hostlen, "127.0.0.1");
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (p <= 0 || p > 65535 || (*end && *end != '/'))
        return SB_EINVAL;
    *port = (int)p;
    struct in_addr a;
    return inet_pton(AF_INET, host, &a) == 1 ? SB_OK : SB_EINVAL;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl))
        return 1;
    printf("%d\n", ntohs(sa.sin_port));
    close(fd);
    return 0;
}

static double cpu_self_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* ---- options ------------------------------------------------------------------------------------ */

static int parse_args(int argc, char **argv, sb_lg_opts *o, int *check) {
    enum {
        O_SCENARIO = 256,
        O_TARGET,
        O_URL,
        O_KEY,
        O_APP,
        O_HUB,
        O_PROTO,
        O_SUBS,
        O_PAYLOAD,
        O_RATE,
        O_DURATION,
        O_PUBS,
        O_PIPE,
        O_WINDOW,
        O_GROUP,
        O_CONC,
        O_SRC,
        O_PID,
        O_APP_PID,
        O_LOGS,
        O_TRACING,
        O_LOGSDIR,
        O_CHECK,
        O_VIA,
        O_USER_CLOCK
    };
    static const struct option opts[] = {{"scenario", 1, 0, O_SCENARIO},
                                         {"target", 1, 0, O_TARGET},
                                         {"url", 1, 0, O_URL},
                                         {"access-key", 1, 0, O_KEY},
                                         {"appserver", 1, 0, O_APP},
                                         {"hub", 1, 0, O_HUB},
                                         {"protocol", 1, 0, O_PROTO},
                                         {"subscribers", 1, 0, O_SUBS},
                                         {"payload", 1, 0, O_PAYLOAD},
                                         {"rate", 1, 0, O_RATE},
                                         {"duration", 1, 0, O_DURATION},
                                         {"publishers", 1, 0, O_PUBS},
                                         {"pipeline", 1, 0, O_PIPE},
                                         {"window", 1, 0, O_WINDOW},
                                         {"group-size", 1, 0, O_GROUP},
                                         {"connect-concurrency", 1, 0, O_CONC},
                                         {"source-ips", 1, 0, O_SRC},
                                         {"server-pid", 1, 0, O_PID},
                                         {"logs", 0, 0, O_LOGS},
                                         {"tracing", 0, 0, O_TRACING},
                                         {"logs-dir", 1, 0, O_LOGSDIR},
                                         {"check", 0, 0, O_CHECK},
                                         {"via", 1, 0, O_VIA},
                                         {"app-pid", 1, 0, O_APP_PID},
                                         {"user-clock", 0, 0, O_USER_CLOCK},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->url = "http://127.0.0.1:8080";
    o->hub = "chat";
    o->subscribers = 1000;
    o->payload = 64;
    o->duration = 10;
    o->publishers = 2;
    o->pipeline = 8;
    o->window = -1;
    o->group_size = 10;
    o->connect_concurrency = 256;
    o->source_ips = 16; /* the kernel's ephemeral port search slows down as one source IP fills up */
    int target_set = 0, via_ws = -1, opt;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case O_SCENARIO:
            if (!strcmp(optarg, "broadcast"))
                o->scenario = SB_LG_SC_BROADCAST;
            else if (!strcmp(optarg, "group"))
                o->scenario = SB_LG_SC_GROUP;
            else if (!strcmp(optarg, "user"))
                o->scenario = SB_LG_SC_USER;
            else if (!strcmp(optarg, "echo"))
                o->scenario = SB_LG_SC_ECHO;
            else if (!strcmp(optarg, "connect"))
                o->scenario = SB_LG_SC_CONNECT;
            else
                return SB_EINVAL;
            break;
        case O_TARGET:
            if (!strcmp(optarg, "switchboard"))
                o->target = SB_LG_TARGET_SWITCHBOARD;
            else if (!strcmp(optarg, "nchan"))
                o->target = SB_LG_TARGET_NCHAN;
            else
                return SB_EINVAL;
            target_set = 1;
            break;
        case O_URL:
            o->url = optarg;
            break;
        case O_KEY:
            o->access_key = optarg;
            break;
        case O_APP:
            o->appserver = optarg;
            break;
        case O_HUB:
            o->hub = optarg;
            break;
        case O_PROTO:
            if (!strcmp(optarg, "json"))
                o->protocol = SB_HUBPROTO_JSON;
            else if (!strcmp(optarg, "messagepack") || !strcmp(optarg, "msgpack"))
                o->protocol = SB_HUBPROTO_MSGPACK;
            else
                return SB_EINVAL;
            break;
        case O_SUBS:
            o->subscribers = atoi(optarg);
            break;
        case O_PAYLOAD:
            o->payload = atoi(optarg);
            break;
        case O_RATE:
            o->rate = atof(optarg);
            break;
        case O_DURATION:
            o->duration = atof(optarg);
            break;
        case O_PUBS:
            o->publishers = atoi(optarg);
            break;
        case O_PIPE:
            o->pipeline = atoi(optarg);
            break;
        case O_WINDOW:
            o->window = atoi(optarg);
            break;
        case O_GROUP:
            o->group_size = atoi(optarg);
            break;
        case O_CONC:
            o->connect_concurrency = atoi(optarg);
            break;
        case O_SRC:
            o->source_ips = atoi(optarg);
            break;
        case O_PID:
            o->server_pid = atoi(optarg);
            break;
        case O_LOGS:
            o->logs = 1;
            break;
        case O_TRACING:
            o->tracing = 1;
            break;
        case O_LOGSDIR:
            o->logs_dir = optarg;
            break;
        case O_CHECK:
            *check = 1;
            break;
        case O_APP_PID:
            o->app_pid = atoi(optarg);
            break;
        case O_USER_CLOCK:
            o->user_clock = 1;
            break;
        case O_VIA:
            if (!strcmp(optarg, "http"))
                via_ws = 0;
            else if (!strcmp(optarg, "ws"))
                via_ws = 1;
            else
                return SB_EINVAL;
            break;
        default:
            return SB_EINVAL;
        }
    }
    if (!target_set || optind < argc)
        return SB_EINVAL;
    if (parse_http_url(o->url, o->host, sizeof o->host, &o->port) != SB_OK) {
        fprintf(stderr, "loadgen: --url must be http://IPv4:PORT\n");
        return SB_EINVAL;
    }
    size_t ul = strlen(o->url);
    if (ul && o->url[ul - 1] == '/') {
        fprintf(stderr, "loadgen: --url takes no trailing '/'\n");
        return SB_EINVAL;
    }
    if (o->appserver && parse_http_url(o->appserver, o->app_host, sizeof o->app_host, &o->app_port) != SB_OK)
        return SB_EINVAL;
    if (o->subscribers < 1 || o->payload < SB_LG_STAMP_LEN || o->payload > 60000 || o->duration <= 0 ||
        o->duration > 3600 || o->publishers < 1 || o->pipeline < 1 || o->group_size < 1 ||
        o->connect_concurrency < 1 || o->rate < 0 || o->source_ips < 1 || o->source_ips > 254) {
        fprintf(stderr, "loadgen: an option is out of range (payload >= %d bytes)\n", SB_LG_STAMP_LEN);
        return SB_EINVAL;
    }
    if (!*o->hub ||
        strspn(o->hub, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != strlen(o->hub)) {
        fprintf(stderr, "loadgen: --hub takes letters, digits and '_' (it goes into URLs unescaped)\n");
        return SB_EINVAL;
    }
    if (o->target == SB_LG_TARGET_SWITCHBOARD && !o->access_key) {
        fprintf(stderr, "loadgen: --access-key is required for switchboard\n");
        return SB_EINVAL;
    }
    if (via_ws < 0)
        via_ws = o->scenario == SB_LG_SC_ECHO || (o->target == SB_LG_TARGET_SWITCHBOARD && o->appserver);
    if (o->target == SB_LG_TARGET_NCHAN) {
        o->publish = via_ws ? SB_LG_PUBLISH_NCHAN_WS : SB_LG_PUBLISH_NCHAN_POST;
    } else if (via_ws != !!o->appserver) {
        fprintf(stderr, "loadgen: against switchboard, publishing over WebSocket (hub invocations) needs the "
                        "app server (--appserver, default mode) and the REST API needs serverless mode\n");
        return SB_EINVAL;
    } else {
        o->publish = via_ws ? SB_LG_PUBLISH_INVOKE : SB_LG_PUBLISH_REST;
    }
    if (o->scenario == SB_LG_SC_ECHO && !via_ws) {
        fprintf(stderr, "loadgen: echo is a WebSocket round trip (--via ws)\n");
        return SB_EINVAL;
    }
    if (via_ws && (o->scenario == SB_LG_SC_GROUP || o->scenario == SB_LG_SC_USER)) {
        fprintf(stderr, "loadgen: group and user scenarios publish over HTTP (REST API, nchan POST)\n");
        return SB_EINVAL;
    }
    if (o->window < 0) {
        /* publishes in flight: enough to keep every recipient's queue busy, few enough that no
         * server's per-connection queue limit is reached because of the generator */
        o->window = o->scenario == SB_LG_SC_BROADCAST ? 32 : o->scenario == SB_LG_SC_GROUP ? 256 : 2048;
    }
    return SB_OK;
}

/* ---- phases -------------------------------------------------------------------------------------- */

/* Default mode: every client negotiates at the app server first (blocking, before the clock runs). */
static int app_negotiate(sb_lg_ctx *c) {
    sb_lg_http_client h;
    sb_lg_http_client_init(&h, c->o.app_host, c->o.app_port);
    sb_buf body;
    sb_buf_init(&body);
    int rc = SB_OK;
    for (int i = 0; i < c->nconns && rc == SB_OK; i++) {
        char target[256];
        snprintf(target, sizeof target, "/%s/negotiate?user=user%d", c->o.hub, i);
        int st = sb_lg_http_call(&h, "POST", target, NULL, NULL, 0, &body);
        json_t *j = st == 200 ? json_loadb(body.data, body.len, 0, NULL) : NULL;
        const char *url = json_string_value(json_object_get(j, "url"));
        const char *tok = json_string_value(json_object_get(j, "accessToken"));
        const char *path = url && !strncmp(url, "http://", 7) ? strchr(url + 7, '/') : NULL;
        const char *q = path ? strchr(path, '?') : NULL;
        if (!tok || !q) {
            fprintf(stderr, "loadgen: app server negotiate answered %d %.200s\n", st,
                    st > 0 ? body.data : sb_strerror(st));
            rc = SB_EPROTO;
        } else {
            sb_lg_setup *s = sb_lg_setup_new();
            s->token = sb_strdup(tok);
            s->path = sb_strndup(path, (size_t)(q - path));
            s->query = sb_strdup(q + 1);
            c->conns[i].setup = s;
        }
        json_decref(j);
    }
    sb_buf_free(&body);
    sb_lg_http_client_free(&h);
    return rc;
}

static int connects_done(sb_lg_ctx *c) {
    return c->next_start == c->nconns && c->connecting == 0;
}

/* Serverless group scenario: put connection i into group g<i / group_size> over REST. */
static int join_groups(sb_lg_ctx *c) {
    sb_lg_http_client h;
    sb_lg_http_client_init(&h, c->o.host, c->o.port);
    int bad = 0;
    for (int i = 0; i < c->nconns; i++) {
        if (c->conns[i].state != SB_LG_CS_OPEN || !c->conn_ids[i])
            continue;
        char path[512];
        snprintf(path, sizeof path, "/api/v1/hubs/%s/groups/g%d/connections/%s", c->o.hub,
                 i / c->o.group_size, c->conn_ids[i]);
        char *aud = sb_asprintf("%s%s", c->o.url, path);
        char *tok = sb_lg_token(c->o.access_key, aud, NULL);
        char *hdr = sb_asprintf("Authorization: Bearer %s\r\n", tok);
        int st = sb_lg_http_call(&h, "PUT", path, hdr, NULL, 0, NULL);
        if (st < 200 || st >= 300) {
            if (!bad++)
                sb_lg_note_error(c, "group join answered %d", st);
        }
        sb_free(aud);
        sb_free(tok);
        sb_free(hdr);
    }
    sb_lg_http_client_free(&h);
    return bad ? SB_EIO : SB_OK;
}

static int pubs_connected(sb_lg_ctx *c) {
    for (int i = 0; i < c->npubs; i++)
        if (!c->pubs[i].connected && c->pubs[i].io.fd >= 0)
            return 0;
    return 1;
}

static int drained(sb_lg_ctx *c) {
    if (sb_lg_publish_idle(c) && c->st.received >= c->st.expected)
        return 1;
    uint64_t last = c->st.last_delivery_ns > c->publish_end_ns ? c->st.last_delivery_ns : c->publish_end_ns;
    return c->now > last + DRAIN_IDLE_NS;
}

static void sleep_ns(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / SEC), (long)(ns % SEC)};
    nanosleep(&ts, NULL);
}

/* Archived records trail the deliveries (a writer thread batches them): wait until the count stops moving. */
static sb_lg_log_count wait_for_log_records(const char *dir, uint64_t want) {
    uint64_t start = sb_lg_clock_ns(), changed = start;
    sb_lg_log_count n = {-1, 0};
    long long last = -1;
    while (sb_lg_clock_ns() < start + LOG_COUNT_MAX_NS) {
        if (sb_lg_count_log_records(dir, &n) != SB_OK)
            n.sent_to_client = -1;
        if (n.sent_to_client >= 0 && (uint64_t)n.sent_to_client >= want)
            break;
        if (n.sent_to_client != last) {
            last = n.sent_to_client;
            changed = sb_lg_clock_ns();
        } else if (sb_lg_clock_ns() > changed + 3 * SEC) {
            break;
        }
        sleep_ns(SEC / 2);
    }
    return n;
}

static const char *scenario_name(sb_lg_scenario s) {
    static const char *names[] = {"broadcast", "group", "user", "echo", "connect"};
    return names[s];
}

/* ---- main ------------------------------------------------------------------------------------------ */

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--self-test"))
        return sb_lg_selftest() == SB_OK ? 0 : 1;
    if (argc == 2 && !strcmp(argv[1], "--free-port"))
        return free_port();
    sb_lg_ctx *c = &ctx;
    int check = 0;
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (parse_args(argc, argv, &c->o, &check) != SB_OK) {
        usage(stderr);
        return 1;
    }
    sb_lg_opts *o = &c->o;
    long nofile = sb_lg_raise_nofile();
    if (nofile > 0 && o->subscribers + o->publishers + 16 > nofile) {
        fprintf(stderr, "loadgen: %d connections need more than the open-file limit %ld\n", o->subscribers,
                nofile);
        return 1;
    }
    if (sb_lg_loop_init(c) != SB_OK)
        return 1;
    c->nconns = o->subscribers;
    c->conns = sb_calloc((size_t)c->nconns, sizeof *c->conns);
    for (int i = 0; i < c->nconns; i++) {
        c->conns[i].index = (uint32_t)i;
        c->conns[i].io.fd = -1;
    }
    c->payload = sb_malloc((size_t)o->payload);
    sb_lg_payload_init(c->payload, (size_t)o->payload);
    sb_lg_hist_reset(&c->st.lat);

    sb_lg_procstat before = sb_lg_procstat_read(o->server_pid);
    if (o->logs && o->target == SB_LG_TARGET_SWITCHBOARD) {
        if (sb_lg_create_diag_setting(c) != SB_OK)
            return 1;
        sleep_ns(SEC + SEC / 5); /* the service applies settings within 1 s */
    }
    if (o->target == SB_LG_TARGET_SWITCHBOARD) {
        char *aud = sb_asprintf("%s/client/?hub=%s", o->url, o->hub);
        c->client_token = sb_lg_token(o->access_key, aud, "bench");
        sb_free(aud);
        if (o->scenario == SB_LG_SC_GROUP)
            c->conn_ids = sb_calloc((size_t)c->nconns, sizeof *c->conn_ids);
    }
    if (o->publish == SB_LG_PUBLISH_INVOKE && app_negotiate(c) != SB_OK)
        return 1;

    /* connect */
    uint64_t t_conn = sb_lg_clock_ns();
    sb_lg_procstat conn_before = sb_lg_procstat_read(o->server_pid);
    c->ping_epoch_ns = t_conn;
    uint64_t conn_deadline = t_conn + (uint64_t)(30 + c->nconns / 500) * SEC;
    sb_lg_run_until(c, connects_done, conn_deadline);
    uint64_t t_connected = c->now;
    sb_lg_procstat conn_after = sb_lg_procstat_read(o->server_pid);
    double connect_s = (double)(t_connected - t_conn) / 1e9;
    printf("connect: %llu of %d open, %llu failed in %.3f s (%.0f/s)%s\n", (unsigned long long)c->st.opened,
           c->nconns, (unsigned long long)c->st.failed, connect_s, (double)c->st.opened / connect_s,
           connects_done(c) ? "" : " (deadline reached)");
    if (!c->st.opened) {
        fprintf(stderr, "loadgen: no connection opened: %s\n", c->st.first_error);
        return 1;
    }
    if (o->scenario == SB_LG_SC_GROUP && o->target == SB_LG_TARGET_SWITCHBOARD)
        join_groups(c);

    double lg_cpu0 = cpu_self_s();
    sb_lg_procstat run_before = sb_lg_procstat_read(o->server_pid);
    sb_lg_procstat app_before = sb_lg_procstat_read(o->app_pid);
    double wall_s;
    if (o->scenario == SB_LG_SC_CONNECT) {
        uint64_t t0 = sb_lg_clock_ns();
        sb_lg_run_until(c, NULL, t0 + (uint64_t)(o->duration * 1e9));
        wall_s = (double)(c->now - t0) / 1e9;
    } else {
        sb_lg_publish_prepare(c);
        sb_lg_run_until(c, pubs_connected, sb_lg_clock_ns() + 5 * SEC);
        run_before = sb_lg_procstat_read(o->server_pid);
        app_before = sb_lg_procstat_read(o->app_pid);
        c->publish_start_ns = sb_lg_clock_ns();
        c->publishing = 1;
        sb_lg_run_until(c, NULL, c->publish_start_ns + (uint64_t)(o->duration * 1e9));
        c->publishing = 0;
        c->publish_end_ns = c->now;
        sb_lg_run_until(c, drained, c->now + DRAIN_MAX_NS);
        wall_s = (double)(c->now - c->publish_start_ns) / 1e9;
    }
    sb_lg_procstat after = sb_lg_procstat_read(o->server_pid);
    sb_lg_procstat app_after = sb_lg_procstat_read(o->app_pid);
    double app_cpu_s = app_after.ok && app_before.ok ? app_after.cpu_s - app_before.cpu_s : -1;
    double lg_cpu = cpu_self_s() - lg_cpu0;
    sb_lg_log_count logs = {-1, 0};
    if (o->logs_dir)
        logs = wait_for_log_records(o->logs_dir, c->st.expected);
    long long log_records = logs.sent_to_client;

    /* report */
    sb_lg_stats *st = &c->st;
    long long loss = (long long)st->expected - (long long)st->received;
    double deliver_s = st->last_delivery_ns > c->publish_start_ns
                           ? (double)(st->last_delivery_ns - c->publish_start_ns) / 1e9
                           : 0;
    double dps = deliver_s > 0 ? (double)st->received / deliver_s : 0;
    double pub_s = (double)(c->publish_end_ns - c->publish_start_ns) / 1e9;
    double cpu_s = after.ok && run_before.ok ? after.cpu_s - run_before.cpu_s : -1;
    double conn_cpu_s = conn_after.ok && conn_before.ok ? conn_after.cpu_s - conn_before.cpu_s : -1;
    long rss_per_conn =
        after.ok && before.ok && c->open ? (after.rss_kb - before.rss_kb) * 1024 / c->open : -1;
    /* fairness: in a broadcast every subscriber open throughout gets every message */
    uint32_t recv_min = UINT32_MAX, recv_max = 0;
    for (int i = 0; i < c->nconns; i++) {
        if (c->conns[i].state != SB_LG_CS_OPEN)
            continue;
        if (c->conns[i].received < recv_min)
            recv_min = c->conns[i].received;
        if (c->conns[i].received > recv_max)
            recv_max = c->conns[i].received;
    }
    if (recv_min > recv_max)
        recv_min = 0;
    unsigned long long p50 = sb_lg_hist_quantile(&st->lat, 0.50) / 1000,
                       p99 = sb_lg_hist_quantile(&st->lat, 0.99) / 1000, pmax = st->lat.max / 1000;
    const char *target = o->target == SB_LG_TARGET_NCHAN ? "nchan" : "switchboard";
    if (o->scenario == SB_LG_SC_CONNECT)
        printf("connect against %s: %d connections held %.1f s, %d open at the end\n", target, c->nconns,
               o->duration, c->open);
    else if (o->rate > 0)
        printf("%s against %s: %d connections (%d open at the end), payload %d B, %.0f msg/s for %.1f s\n",
               scenario_name(o->scenario), target, c->nconns, c->open, o->payload, o->rate, o->duration);
    else
        printf("%s against %s: %d connections (%d open at the end), payload %d B, flat out (window %d) for "
               "%.1f s\n",
               scenario_name(o->scenario), target, c->nconns, c->open, o->payload, o->window, o->duration);
    if (o->scenario != SB_LG_SC_CONNECT) {
        printf("published %llu (accepted %llu, errors %llu, late %llu) = %.0f/s\n",
               (unsigned long long)st->sent, (unsigned long long)st->accepted,
               (unsigned long long)st->publish_errors, (unsigned long long)st->late_sends,
               pub_s > 0 ? (double)st->accepted / pub_s : 0);
        printf("delivered %llu of %llu expected (loss %lld) = %.0f deliveries/s; latency p50 %llu us, p99 "
               "%llu us, max %llu us\n",
               (unsigned long long)st->received, (unsigned long long)st->expected, loss, dps, p50, p99, pmax);
        printf("per open connection: %u to %u deliveries\n", recv_min, recv_max);
    }
    if (after.ok)
        printf("server: cpu %.2f s (%.0f%%), rss %ld -> %ld kB (hwm %ld kB), %ld B per open connection\n",
               cpu_s, cpu_s / wall_s * 100, before.rss_kb, after.rss_kb, after.hwm_kb, rss_per_conn);
    if (app_cpu_s >= 0)
        printf("app server: cpu %.2f s (%.0f%%)\n", app_cpu_s, app_cpu_s / wall_s * 100);
    if (log_records >= 0)
        printf("log records archived: %lld of %llu; the service reported %lld records dropped\n", log_records,
               (unsigned long long)st->expected, logs.dropped);
    if (st->first_error[0])
        printf("first problem: %s\n", st->first_error);
    printf(
        "RESULT scenario=%s target=%s conns=%d opened=%llu failed=%llu closed=%llu open_end=%d payload=%d "
        "rate=%g duration=%g publishers=%d window=%d sent=%llu accepted=%llu publish_errors=%llu late=%llu "
        "expected=%llu received=%llu loss=%lld deliveries_per_s=%.0f publishes_per_s=%.0f p50_us=%llu "
        "p99_us=%llu max_us=%llu connect_s=%.3f connect_per_s=%.0f connect_cpu_s=%.2f server_cpu_s=%.2f "
        "server_cpu_pct=%.0f deliveries_per_cpu_s=%.0f rss_before_kb=%ld rss_after_kb=%ld hwm_kb=%ld "
        "rss_per_conn_b=%ld lg_cpu_pct=%.0f app_cpu_pct=%.0f log_records=%lld log_dropped=%lld "
        "rx_clock=%s recv_min=%u recv_max=%u\n",
        scenario_name(o->scenario), target, c->nconns, (unsigned long long)st->opened,
        (unsigned long long)st->failed, (unsigned long long)st->closed, c->open, o->payload, o->rate,
        o->duration, o->publishers, o->window, (unsigned long long)st->sent, (unsigned long long)st->accepted,
        (unsigned long long)st->publish_errors, (unsigned long long)st->late_sends,
        (unsigned long long)st->expected, (unsigned long long)st->received, loss, dps,
        pub_s > 0 ? (double)st->accepted / pub_s : 0, p50, p99, pmax, connect_s,
        (double)st->opened / connect_s, conn_cpu_s, cpu_s, cpu_s >= 0 ? cpu_s / wall_s * 100 : -1,
        cpu_s > 0 ? (double)st->received / cpu_s : 0, before.rss_kb, after.rss_kb, after.hwm_kb, rss_per_conn,
        lg_cpu / wall_s * 100, app_cpu_s >= 0 ? app_cpu_s / wall_s * 100 : -1, log_records, logs.dropped,
        c->rx_user_stamps ? (c->rx_kernel_stamps ? "mixed" : "user") : "kernel", recv_min, recv_max);
    fflush(stdout);
    if (check) {
        int bad = st->failed || st->closed || st->publish_errors || loss != 0 ||
                  (o->scenario != SB_LG_SC_CONNECT && st->received == 0) ||
                  (log_records >= 0 && (uint64_t)log_records < st->expected);
        if (bad) {
            fprintf(stderr,
                    "loadgen: check failed (failed %llu, closed %llu, publish errors %llu, loss %lld, "
                    "received %llu)\n",
                    (unsigned long long)st->failed, (unsigned long long)st->closed,
                    (unsigned long long)st->publish_errors, loss, (unsigned long long)st->received);
            return 3;
        }
    }
    return 0;
}
