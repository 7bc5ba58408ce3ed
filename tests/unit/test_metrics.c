/*
 * test_metrics.c - the platform metrics' live side and store: Azure's names,
 * units and aggregations; the close categories and the mapping from client
 * close reasons; the recorders and the one-minute slots (counters, gauges
 * with spikes between samples, 2 KB message units, operations), sealing on a
 * minute change, the in-memory ring, the totals, the daily message count and
 * its reset, restart continuity through the store; the minute values
 * (dimensions aggregated away, minutes combined); the store's file format
 * (round trip, holes, torn and foreign slots, short files, pruning).
 *
 * Time is driven with sb__metrics_tick_at on minutes of the current UTC day,
 * so nothing waits for the clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "diag/diag.h"
#include "limits/tier.h"
#include "metrics/metrics.h"
#include "metrics/store.h"
#include "server.h"
#include "signalr/client.h"
#include "util/alloc.h"
#include "util/error.h"

#define US_MIN INT64_C(60000000)

static sb_server srv;
static uv_loop_t loop;
static char tmpdir[256];
static int64_t day0; /* today's first minute (minutes since the epoch) */

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    return remove(p);
}

static int setup(void **state) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sb_metrics_XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    memset(&srv, 0, sizeof srv);
    sb_config_defaults(&srv.cfg);
    char err[256];
    assert_int_equal(sb_config_set(&srv.cfg, "data_dir", tmpdir, err, sizeof err), SB_OK);
    assert_int_equal(uv_loop_init(&loop), 0);
    srv.loop = &loop;
    sb_router_init(&srv.router, &srv);
    day0 = (int64_t)time(NULL) / 86400 * 1440;
    return 0;
}

static void stop_all(void) {
    sb_metrics_stop(&srv);
    uv_run(&loop, UV_RUN_NOWAIT); /* the timer's close */
    sb_diag_stop(&srv);
    sb_metrics_free(&srv);
}

static int teardown(void **state) {
    stop_all();
    assert_int_equal(uv_loop_close(&loop), 0);
    sb_router_free(&srv.router);
    sb_config_free(&srv.cfg);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* Start, then move to minute k of today (sealing whatever minute the real clock started in). */
static void start_at(int k) {
    assert_int_equal(sb_metrics_start(&srv), SB_OK);
    sb__metrics_tick_at(&srv, (day0 + k) * US_MIN);
}

static sb_metrics_minute recent_one(int64_t minute) {
    sb_metrics_minute out[4];
    size_t n = sb__metrics_recent(&srv, minute, minute + 1, out, 4);
    assert_int_equal(n, 1);
    return out[0];
}

static double value(const sb_metrics_minute *m, sb_metric_id id, int ep, int cat, sb_metric_aggregation a) {
    sb_metrics_point p;
    sb_metrics_minute_point(m, id, ep, cat, &p);
    return sb_metrics_point_value(&p, a);
}

/* ---- names ---- */

static void test_metric_definitions(void **state) {
    static const struct {
        const char *name, *unit;
        sb_metric_aggregation primary;
        unsigned dims;
        int exportable;
    } want[SB_METRIC_COUNT] = {
        {"ConnectionCloseCount", "Count", SB_AGG_TOTAL, SB_METRIC_DIM_ENDPOINT | SB_METRIC_DIM_CATEGORY, 1},
        {"ConnectionCount", "Count", SB_AGG_MAXIMUM, SB_METRIC_DIM_ENDPOINT, 1},
        {"ConnectionOpenCount", "Count", SB_AGG_TOTAL, SB_METRIC_DIM_ENDPOINT, 1},
        {"ConnectionQuotaUtilization", "Percent", SB_AGG_MAXIMUM, 0, 1},
        {"InboundTraffic", "Bytes", SB_AGG_TOTAL, 0, 1},
        {"MessageCount", "Count", SB_AGG_TOTAL, 0, 1},
        {"OutboundTraffic", "Bytes", SB_AGG_TOTAL, 0, 1},
        {"ServerLoad", "Percent", SB_AGG_MAXIMUM, 0, 0},
        {"SystemErrors", "Percent", SB_AGG_MAXIMUM, 0, 1},
        {"UserErrors", "Percent", SB_AGG_MAXIMUM, 0, 1},
    };
    for (int i = 0; i < SB_METRIC_COUNT; i++) {
        assert_string_equal(sb_metric_defs[i].name, want[i].name);
        assert_string_equal(sb_metric_defs[i].unit, want[i].unit);
        assert_int_equal(sb_metric_defs[i].primary, want[i].primary);
        assert_int_equal(sb_metric_defs[i].dims, want[i].dims);
        assert_int_equal(sb_metric_defs[i].exportable, want[i].exportable);
        assert_int_equal(sb_metric_find(want[i].name, strlen(want[i].name)), i);
        assert_non_null(sb_metric_defs[i].display_name);
    }
    assert_int_equal(sb_metric_find("connectioncount", 15), SB_METRIC_CONNECTION_COUNT);
    assert_int_equal(sb_metric_find("ConnectionCounts", 16), -1);
    assert_int_equal(sb_metric_find("Connection", 10), -1);
    assert_int_equal(sb_metric_find("", 0), -1);
    assert_string_equal(sb_metric_aggregation_field(SB_AGG_AVERAGE), "average");
    assert_string_equal(sb_metric_aggregation_name(SB_AGG_TOTAL), "Total");
    assert_string_equal(sb_metric_aggregation_field((sb_metric_aggregation)99), "total");
}

static void test_category_names(void **state) {
    static const char *const want[SB_CC_COUNT] = {"Normal",
                                                  "Throttled",
                                                  "PingTimeout",
                                                  "NoAvailableServerConnection",
                                                  "InvokeUpstreamFailed",
                                                  "SlowClient",
                                                  "HandshakeError",
                                                  "ServerConnectionNotFound",
                                                  "ServerConnectionClosed",
                                                  "ServiceTransientError",
                                                  "BadRequest",
                                                  "ClosedByAppServer",
                                                  "ServiceReload",
                                                  "ServiceModeSwitched",
                                                  "Unauthorized"};
    for (int i = 0; i < SB_CC_COUNT; i++)
        assert_string_equal(sb_close_category_name((sb_close_category)i), want[i]);
    assert_string_equal(sb_close_category_name(SB_CC_COUNT), "Unknown");
    assert_string_equal(sb_metrics_endpoint_name(SB_EP_CLIENT), "Client");
    assert_string_equal(sb_metrics_endpoint_name(SB_EP_SERVER), "Server");
    assert_string_equal(sb_metrics_endpoint_name(SB_EP_LIVETRACE), "LiveTrace");
    assert_string_equal(sb_metrics_endpoint_name(SB_EP_COUNT), "Unknown");
}

static void test_close_reason_mapping(void **state) {
    assert_int_equal(sb_metrics_category_for(SB_CLOSE_NORMAL), SB_CC_NORMAL);
    assert_int_equal(sb_metrics_category_for(SB_CLOSE_BY_APP), SB_CC_CLOSED_BY_APP_SERVER);
    assert_int_equal(sb_metrics_category_for(SB_CLOSE_PING_TIMEOUT), SB_CC_PING_TIMEOUT);
    assert_int_equal(sb_metrics_category_for(SB_CLOSE_HANDSHAKE_TIMEOUT), SB_CC_PING_TIMEOUT);
    assert_int_equal(sb_metrics_category_for(SB_CLOSE_NEGOTIATE_TIMEOUT), SB_CC_PING_TIMEOUT);
    assert_int_equal(sb_metrics_category_for(SB_CLOSE_HANDSHAKE_ERROR), SB_CC_BAD_REQUEST);
    assert_int_equal(sb_metrics_category_for(SB_CLOSE_PROTOCOL_ERROR), SB_CC_BAD_REQUEST);
    assert_int_equal(sb_metrics_category_for(SB_CLOSE_SLOW_CLIENT), SB_CC_SLOW_CLIENT);
    assert_int_equal(sb_metrics_category_for(SB_CLOSE_TRANSPORT_LOST), SB_CC_HANDSHAKE_ERROR);
    assert_int_equal(sb_metrics_category_for(SB_CLOSE_SERVICE_RELOAD), SB_CC_SERVICE_RELOAD);
    assert_int_equal(sb_metrics_category_for(SB_CLOSE_SERVER_DROPPED), SB_CC_SERVER_CONNECTION_CLOSED);
    assert_int_equal(sb_metrics_category_for(SB_CLOSE_INTERNAL_ERROR), SB_CC_SERVICE_TRANSIENT_ERROR);
    assert_int_equal(sb_metrics_category_for(SB_CLOSE_UPSTREAM_FAILED), SB_CC_INVOKE_UPSTREAM_FAILED);
    assert_int_equal(sb_metrics_category_for(-1), SB_CC_SERVICE_TRANSIENT_ERROR);
    assert_int_equal(sb_metrics_category_for(1000), SB_CC_SERVICE_TRANSIENT_ERROR);

    int user = 0, system = 0, ok = 0;
    for (int c = 0; c < SB_CC_COUNT; c++) {
        int k = sb_metrics_category_error_kind((sb_close_category)c);
        ok += k == 0, user += k == 1, system += k == 2;
    }
    assert_int_equal(ok, 4);
    assert_int_equal(system, 1);
    assert_int_equal(user, 10);
    assert_int_equal(sb_metrics_category_error_kind(SB_CC_SERVICE_TRANSIENT_ERROR), 2);
    assert_int_equal(sb_metrics_category_error_kind(SB_CC_PING_TIMEOUT), 1);
    assert_int_equal(sb_metrics_category_error_kind(SB_CC_SERVICE_RELOAD), 0);
}

/* ---- recorders and slots ---- */

static void test_recorders_without_metrics_are_noops(void **state) {
    /* never started: every recorder and reader must be safe */
    sb_metrics_connection_opened(&srv, SB_EP_CLIENT);
    sb_metrics_connection_closed(&srv, SB_EP_CLIENT, SB_CC_NORMAL);
    sb_metrics_connection_refused(&srv, SB_EP_CLIENT, SB_CC_THROTTLED);
    sb_metrics_inbound(&srv, 10);
    sb_metrics_outbound(&srv, 10, 0);
    sb_metrics_operation(&srv, 1);
    sb__metrics_tick_at(&srv, day0 * US_MIN);
    assert_int_equal(sb_metrics_live(&srv, SB_EP_CLIENT), 0);
    assert_int_equal(sb_metrics_day_messages(&srv), 0);
    sb_metrics_totals t;
    sb_metrics_get_totals(&srv, &t);
    assert_int_equal(t.operations, 0);
    sb_metrics_minute out[2];
    assert_int_equal(sb__metrics_recent(&srv, 0, INT64_MAX, out, 2), 0);
}

static void test_counters_in_one_minute(void **state) {
    start_at(10);
    for (int i = 0; i < 3; i++)
        sb_metrics_connection_opened(&srv, SB_EP_CLIENT);
    sb_metrics_connection_opened(&srv, SB_EP_SERVER);
    sb_metrics_connection_closed(&srv, SB_EP_CLIENT, SB_CC_NORMAL);
    sb_metrics_connection_closed(&srv, SB_EP_CLIENT, SB_CC_PING_TIMEOUT);
    sb_metrics_connection_refused(&srv, SB_EP_CLIENT, SB_CC_THROTTLED);
    sb_metrics_connection_closed(&srv, (sb_metrics_endpoint)7, SB_CC_NORMAL); /* ignored */
    sb_metrics_connection_closed(&srv, SB_EP_SERVER, (sb_close_category)99);  /* -> transient */
    sb_metrics_inbound(&srv, 100);
    sb_metrics_inbound(&srv, 23);
    sb_metrics_outbound(&srv, 1, 0);    /* 1 unit */
    sb_metrics_outbound(&srv, 2048, 0); /* 1 unit */
    sb_metrics_outbound(&srv, 2049, 0); /* 2 units */
    sb_metrics_outbound(&srv, 4096, 0); /* 2 units */
    sb_metrics_outbound(&srv, 11, 1);   /* a ping: traffic, not a message */
    sb_metrics_outbound(&srv, 0, 0);    /* nothing */
    sb_metrics_operation(&srv, 0);
    sb_metrics_operation(&srv, 1);
    sb_metrics_operation(&srv, 2);

    sb_metrics_minute m = recent_one(day0 + 10);
    assert_int_equal(m.opened[SB_EP_CLIENT], 3);
    assert_int_equal(m.opened[SB_EP_SERVER], 1);
    assert_int_equal(m.closed[SB_EP_CLIENT][SB_CC_NORMAL], 1);
    assert_int_equal(m.closed[SB_EP_CLIENT][SB_CC_PING_TIMEOUT], 1);
    assert_int_equal(m.closed[SB_EP_CLIENT][SB_CC_THROTTLED], 1);
    assert_int_equal(m.closed[SB_EP_SERVER][SB_CC_SERVICE_TRANSIENT_ERROR], 1);
    assert_int_equal(m.inbound_bytes, 123);
    assert_int_equal(m.outbound_bytes, 1 + 2048 + 2049 + 4096 + 11);
    assert_int_equal(m.messages, 6);
    /* operations: 3 explicit + 3 closes (the refusal is counted by its HTTP answer, not here) */
    assert_int_equal(m.operations, 6);
    assert_int_equal(m.user_errors, 2);   /* operation(1) + PingTimeout */
    assert_int_equal(m.system_errors, 2); /* operation(2) + ServiceTransientError */
    assert_int_equal(sb_metrics_live(&srv, SB_EP_CLIENT), 1);
    assert_int_equal(sb_metrics_live(&srv, SB_EP_SERVER), 0);
    assert_int_equal(sb_metrics_live(&srv, SB_EP_COUNT), 0);

    assert_int_equal(
        (int)value(&m, SB_METRIC_CONNECTION_CLOSE_COUNT, SB_METRICS_ALL, SB_METRICS_ALL, SB_AGG_TOTAL), 4);
    assert_int_equal(
        (int)value(&m, SB_METRIC_CONNECTION_CLOSE_COUNT, SB_EP_CLIENT, SB_METRICS_ALL, SB_AGG_TOTAL), 3);
    assert_int_equal(
        (int)value(&m, SB_METRIC_CONNECTION_CLOSE_COUNT, SB_METRICS_ALL, SB_CC_NORMAL, SB_AGG_TOTAL), 1);
    assert_int_equal(
        (int)value(&m, SB_METRIC_CONNECTION_OPEN_COUNT, SB_METRICS_ALL, SB_METRICS_ALL, SB_AGG_TOTAL), 4);
    assert_int_equal((int)value(&m, SB_METRIC_MESSAGE_COUNT, SB_METRICS_ALL, SB_METRICS_ALL, SB_AGG_TOTAL),
                     6);
    assert_true(fabs(value(&m, SB_METRIC_USER_ERRORS, SB_METRICS_ALL, SB_METRICS_ALL, SB_AGG_MAXIMUM) -
                     100.0 * 2 / 6) < 1e-9);
    assert_true(fabs(value(&m, SB_METRIC_SYSTEM_ERRORS, SB_METRICS_ALL, SB_METRICS_ALL, SB_AGG_AVERAGE) -
                     100.0 * 2 / 6) < 1e-9);
    /* a dimension the metric lacks is ignored */
    assert_int_equal((int)value(&m, SB_METRIC_INBOUND_TRAFFIC, SB_EP_SERVER, SB_CC_NORMAL, SB_AGG_TOTAL),
                     123);
}

static void test_gauges_see_spikes_between_samples(void **state) {
    start_at(20); /* one sample at 0 connections */
    for (int i = 0; i < 5; i++)
        sb_metrics_connection_opened(&srv, SB_EP_CLIENT);
    for (int i = 0; i < 5; i++) /* a spike of 5 that no sample sees */
        sb_metrics_connection_closed(&srv, SB_EP_CLIENT, SB_CC_NORMAL);
    sb_metrics_connection_opened(&srv, SB_EP_CLIENT);
    sb_metrics_connection_opened(&srv, SB_EP_SERVER);
    sb__metrics_tick_at(&srv, (day0 + 20) * US_MIN + 30 * 1000000); /* sample: client 1, server 1 */

    sb_metrics_minute m = recent_one(day0 + 20);
    sb_metrics_point p;
    sb_metrics_minute_point(&m, SB_METRIC_CONNECTION_COUNT, SB_EP_CLIENT, SB_METRICS_ALL, &p);
    assert_int_equal((int)p.maximum, 5);
    assert_int_equal((int)p.minimum, 0);
    assert_int_equal(p.count, 2);
    assert_int_equal((int)p.total, 1); /* samples 0 and 1 */
    assert_true(fabs(sb_metrics_point_value(&p, SB_AGG_AVERAGE) - 0.5) < 1e-9);
    sb_metrics_minute_point(&m, SB_METRIC_CONNECTION_COUNT, SB_METRICS_ALL, SB_METRICS_ALL, &p);
    assert_int_equal((int)p.maximum, 5); /* all endpoints: the level of the sum, not a sum of maxima */
    assert_int_equal((int)p.total, 2);
    sb_metrics_minute_point(&m, SB_METRIC_CONNECTION_COUNT, SB_EP_SERVER, SB_METRICS_ALL, &p);
    assert_int_equal((int)p.maximum, 1);

    /* quota: 100 units of Standard = 100,000; two connections counted (1 negotiated client + 1 server) */
    srv.router.nclients = 1;
    sb__metrics_tick_at(&srv, (day0 + 20) * US_MIN + 31 * 1000000);
    m = recent_one(day0 + 20);
    sb_metrics_minute_point(&m, SB_METRIC_CONNECTION_QUOTA_UTILIZATION, SB_METRICS_ALL, SB_METRICS_ALL, &p);
    assert_true(fabs(p.maximum - 0.002) < 1e-12);
    srv.router.nclients = 0;

    /* the next minute starts at the current level */
    sb__metrics_tick_at(&srv, (day0 + 21) * US_MIN);
    m = recent_one(day0 + 21);
    sb_metrics_minute_point(&m, SB_METRIC_CONNECTION_COUNT, SB_EP_CLIENT, SB_METRICS_ALL, &p);
    assert_int_equal((int)p.minimum, 1);
    assert_int_equal((int)p.maximum, 1);
    assert_int_equal(p.count, 1);
    /* ServerLoad is a percentage of the machine */
    sb_metrics_minute_point(&m, SB_METRIC_SERVER_LOAD, SB_METRICS_ALL, SB_METRICS_ALL, &p);
    assert_true(p.count <= 1);
    assert_true(p.minimum >= 0 && p.maximum <= 100);
}

static void test_sealing_ring_and_totals(void **state) {
    start_at(100);
    sb_metrics_totals t0;
    sb_metrics_get_totals(&srv, &t0);
    for (int k = 0; k < 20; k++) { /* 20 minutes, k+1 bytes in each */
        sb_metrics_inbound(&srv, (size_t)k + 1);
        sb_metrics_outbound(&srv, 3000, 0);
        sb__metrics_tick_at(&srv, (day0 + 101 + k) * US_MIN);
    }
    sb_metrics_totals t;
    sb_metrics_get_totals(&srv, &t);
    assert_int_equal(t.inbound_bytes - t0.inbound_bytes, 210);
    assert_int_equal(t.messages - t0.messages, 40);
    /* the ring keeps the last 16 sealed minutes, and the current one is always there */
    sb_metrics_minute out[64];
    size_t n = sb__metrics_recent(&srv, day0 + 100, day0 + 200, out, 64);
    assert_int_equal(n, 17);
    for (size_t i = 0; i + 1 < n; i++)
        assert_true(out[i].minute < out[i + 1].minute);
    assert_int_equal(out[n - 1].minute, day0 + 120);
    assert_int_equal(out[n - 2].minute, day0 + 119);
    assert_int_equal(out[n - 2].inbound_bytes, 20);
    assert_int_equal(out[0].minute, day0 + 104);
    /* a window and a limit */
    assert_int_equal(sb__metrics_recent(&srv, day0 + 110, day0 + 112, out, 64), 2);
    assert_int_equal(sb__metrics_recent(&srv, day0 + 100, day0 + 200, out, 3), 3);
    assert_int_equal(out[0].minute, day0 + 104);
    /* minutes go forward even if the clock jumps: a new minute, the old one sealed */
    sb__metrics_tick_at(&srv, (day0 + 118) * US_MIN);
    assert_int_equal(recent_one(day0 + 118).inbound_bytes, 0);
}

static void test_daily_messages_and_reset(void **state) {
    start_at(1438);
    sb_metrics_outbound(&srv, 5000, 0); /* 3 */
    assert_int_equal(sb_metrics_day_messages(&srv), 3);
    sb__metrics_tick_at(&srv, (day0 + 1439) * US_MIN);
    sb_metrics_outbound(&srv, 100, 0); /* 1 */
    sb_metrics_outbound(&srv, 100, 1); /* ping */
    assert_int_equal(sb_metrics_day_messages(&srv), 4);
    sb__metrics_tick_at(&srv, (day0 + 1440) * US_MIN); /* 00:00 UTC: a new day */
    assert_int_equal(sb_metrics_day_messages(&srv), 0);
    sb_metrics_outbound(&srv, 2048 * 7, 0);
    assert_int_equal(sb_metrics_day_messages(&srv), 7);
}

static void test_restart_continues_the_minute_and_the_day(void **state) {
    /* start reads the real clock's minute back and sums today's earlier minutes: use two minutes before now
     */
    int64_t now_min = (int64_t)time(NULL) / 60;
    if (now_min - day0 < 3)
        skip(); /* just after 00:00 UTC there are no earlier minutes today */
    int64_t m1 = now_min - 2, m2 = now_min - 1;
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    start_at((int)(m1 - day0));
    sb_metrics_outbound(&srv, 2048 * 5, 0);
    sb_metrics_inbound(&srv, 40);
    sb__metrics_tick_at(&srv, m2 * US_MIN);
    sb_metrics_outbound(&srv, 2048 * 2, 0);
    sb_metrics_inbound(&srv, 2);
    sb_metrics_connection_opened(&srv, SB_EP_CLIENT);
    stop_all(); /* seals m2 as it is; the writer stores it before the pipeline stops */
    char *dir = sb_asprintf("%s/metrics", tmpdir);
    sb_metrics_minute m;
    assert_int_equal(sb_metrics_store_read(dir, m1, &m), SB_OK);
    assert_int_equal(m.inbound_bytes, 40);
    assert_int_equal(sb_metrics_store_read(dir, m2, &m), SB_OK);
    assert_int_equal(m.inbound_bytes, 2);
    assert_int_equal(m.opened[SB_EP_CLIENT], 1);
    assert_int_equal(sb_metrics_store_day_messages(dir, day0 / 1440, m2), 5);
    assert_int_equal(sb_metrics_store_day_messages(dir, day0 / 1440, day0 + 1440), 7);

    /* a new process: today's messages survive, the Free tier's quota with them */
    assert_int_equal(sb_diag_start(&srv), SB_OK);
    assert_int_equal(sb_metrics_start(&srv), SB_OK);
    assert_int_equal(sb_metrics_day_messages(&srv), 7);
    sb_free(dir);
}

static void test_start_refuses_bad_tier_config(void **state) {
    char err[256];
    assert_int_equal(sb_config_set(&srv.cfg, "units", "15", err, sizeof err), SB_OK);
    assert_int_equal(sb_metrics_start(&srv), SB_EINVAL);
    assert_null(srv.metrics);
    assert_int_equal(sb_config_set(&srv.cfg, "units", "20", err, sizeof err), SB_OK);
    assert_int_equal(sb_metrics_start(&srv), SB_OK);
    assert_int_equal(sb_metrics_start(&srv), SB_OK); /* idempotent */
}

static void test_start_fails_when_the_store_dir_cannot_be_made(void **state) {
    char *file = sb_asprintf("%s/metrics", tmpdir);
    int fd = open(file, O_CREAT | O_WRONLY, 0644); /* a file where the directory should be */
    assert_true(fd >= 0);
    close(fd);
    assert_int_not_equal(sb_metrics_start(&srv), SB_OK);
    assert_null(srv.metrics);
    sb_free(file);
}

/* ---- values ---- */

static void test_point_math(void **state) {
    sb_metrics_point a = {0}, b = {5, 5, 5, 1}, c = {7, 2, 9, 3};
    sb_metrics_point_add(&a, &(sb_metrics_point){0}); /* empty + empty */
    assert_int_equal(a.count, 0);
    assert_true(sb_metrics_point_value(&a, SB_AGG_AVERAGE) == 0);
    sb_metrics_point_add(&a, &b);
    assert_true(a.total == 5 && a.count == 1);
    sb_metrics_point_add(&a, &c);
    assert_true(a.total == 12 && a.count == 4 && a.minimum == 2 && a.maximum == 9);
    assert_true(sb_metrics_point_value(&a, SB_AGG_AVERAGE) == 3);
    assert_true(sb_metrics_point_value(&a, SB_AGG_COUNT) == 4);
    assert_true(sb_metrics_point_value(&a, SB_AGG_MINIMUM) == 2);
    assert_true(sb_metrics_point_value(&a, SB_AGG_MAXIMUM) == 9);
    assert_true(sb_metrics_point_value(&a, SB_AGG_TOTAL) == 12);
    sb_metrics_point_add(&a, &(sb_metrics_point){0}); /* adding nothing changes nothing */
    assert_true(a.total == 12 && a.count == 4);

    sb_metrics_minute m;
    uint64_t live[SB_EP_COUNT] = {2, 3, 0};
    sb_metrics_minute_init(&m, 42, live, 12.5);
    assert_int_equal(m.minute, 42);
    assert_true(m.connections[SB_EP_COUNT].max == 5 && m.connections[SB_EP_COUNT].min == 5);
    assert_true(m.quota.min == 12.5);
    sb_metrics_point p;
    sb_metrics_minute_point(&m, SB_METRIC_SYSTEM_ERRORS, SB_METRICS_ALL, SB_METRICS_ALL, &p);
    assert_true(p.total == 0 && p.count == 1); /* no operations: 0 %, not NaN */
    sb_metrics_minute_point(&m, SB_METRIC_COUNT, SB_METRICS_ALL, SB_METRICS_ALL, &p);
    assert_int_equal(p.count, 0);
}

static void test_minute_merge(void **state) {
    uint64_t l1[SB_EP_COUNT] = {4, 0, 0}, l2[SB_EP_COUNT] = {1, 2, 0};
    sb_metrics_minute a, b;
    sb_metrics_minute_init(&a, 7, l1, 1);
    sb_metrics_minute_init(&b, 7, l2, 3);
    a.opened[0] = 2, b.opened[0] = 3;
    a.closed[1][4] = 1, b.closed[1][4] = 2;
    a.messages = 10, b.messages = 1;
    a.connections[0].sum = 8, a.connections[0].count = 2;
    b.connections[0].sum = 1, b.connections[0].count = 1;
    b.server_load.count = 1, b.server_load.min = b.server_load.max = b.server_load.sum = 50;
    sb_metrics_minute_merge(&a, &b);
    assert_int_equal(a.opened[0], 5);
    assert_int_equal(a.closed[1][4], 3);
    assert_int_equal(a.messages, 11);
    assert_true(a.connections[0].sum == 9 && a.connections[0].count == 3);
    assert_true(a.connections[0].min == 1 && a.connections[0].max == 4);
    assert_true(a.server_load.count == 1 && a.server_load.max == 50); /* an empty gauge takes the other's */
}

/* ---- store ---- */

typedef struct collected {
    int64_t minutes[64];
    int n;
    int stop_after;
} collected;

static int collect(const sb_metrics_minute *m, void *arg) {
    collected *c = arg;
    c->minutes[c->n++] = m->minute;
    return c->stop_after && c->n >= c->stop_after;
}

static void test_store_round_trip_and_holes(void **state) {
    char err[256];
    char *dir = sb_asprintf("%s/store", tmpdir);
    sb_metrics_store *st = sb_metrics_store_open(dir, err, sizeof err);
    assert_non_null(st);
    int64_t base = day0 - 1440; /* yesterday, across midnight into today */
    int64_t at[] = {base + 1437, base + 1439, base + 1440, base + 1441, base + 1500};
    for (size_t i = 0; i < 5; i++) {
        sb_metrics_minute m;
        uint64_t live[SB_EP_COUNT] = {(uint64_t)i, 0, 0};
        sb_metrics_minute_init(&m, at[i], live, 0);
        m.messages = i + 1;
        m.closed[SB_EP_CLIENT][SB_CC_SLOW_CLIENT] = 10 * i;
        assert_int_equal(sb_metrics_store_write(st, &m, err, sizeof err), SB_OK);
    }
    /* rewriting a minute replaces it */
    sb_metrics_minute m;
    sb_metrics_minute_init(&m, base + 1439, (uint64_t[SB_EP_COUNT]){0}, 0);
    m.messages = 100;
    assert_int_equal(sb_metrics_store_write(st, &m, err, sizeof err), SB_OK);

    collected c = {0};
    assert_int_equal(sb_metrics_store_scan(dir, base, base + 2880, collect, &c), SB_OK);
    assert_int_equal(c.n, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(c.minutes[i], at[i]);
    c = (collected){.stop_after = 2};
    assert_int_equal(sb_metrics_store_scan(dir, base, base + 2880, collect, &c), SB_OK);
    assert_int_equal(c.n, 2);
    c = (collected){0};
    assert_int_equal(sb_metrics_store_scan(dir, base + 1438, base + 1441, collect, &c), SB_OK);
    assert_int_equal(c.n, 2); /* 1439 and 1440: the range is [from, to) */
    c = (collected){0};
    assert_int_equal(sb_metrics_store_scan(dir, base + 1441, base + 1441, collect, &c), SB_OK);
    assert_int_equal(c.n, 0);
    assert_int_equal(sb_metrics_store_read(dir, base + 1439, &m), SB_OK);
    assert_int_equal(m.messages, 100);
    assert_int_equal(sb_metrics_store_read(dir, base + 1438, &m), SB_ENOENT);
    assert_int_equal(sb_metrics_store_read(dir, base + 5000, &m), SB_ENOENT); /* no file at all */
    assert_int_equal(sb_metrics_store_day_messages(dir, day0 / 1440, day0 + 1440), 3 + 4 + 5);
    assert_int_equal(sb_metrics_store_day_messages(dir, day0 / 1440, day0 + 1), 3);
    assert_int_equal(sb_metrics_store_day_messages(dir, day0 / 1440 - 1, day0 + 1440), 1 + 100);

    char name[11];
    sb_metrics_day_name(0, name);
    assert_string_equal(name, "1970-01-01");
    sb_metrics_day_name(20454, name);
    assert_string_equal(name, "2026-01-01");
    sb_metrics_store_close(st);
    sb_metrics_store_close(NULL);
    sb_free(dir);
}

static void test_store_ignores_torn_and_foreign_slots(void **state) {
    char err[256];
    char *dir = sb_asprintf("%s/store", tmpdir);
    sb_metrics_store *st = sb_metrics_store_open(dir, err, sizeof err);
    assert_non_null(st);
    sb_metrics_minute m;
    for (int k = 0; k < 4; k++) {
        sb_metrics_minute_init(&m, day0 + k, (uint64_t[SB_EP_COUNT]){0}, 0);
        m.inbound_bytes = (uint64_t)k;
        assert_int_equal(sb_metrics_store_write(st, &m, err, sizeof err), SB_OK);
    }
    sb_metrics_store_close(st);
    char name[11];
    sb_metrics_day_name(day0 / 1440, name);
    char *path = sb_asprintf("%s/%s.pt1m", dir, name);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    /* slot 1: one payload byte flipped (a torn write); slot 2: a valid record copied to the wrong slot */
    unsigned char byte;
    off_t at = (off_t)SB_METRICS_RECORD_SIZE + SB_METRICS_RECORD_HEADER + 20;
    assert_int_equal(pread(fd, &byte, 1, at), 1);
    byte ^= 0x40;
    assert_int_equal(pwrite(fd, &byte, 1, at), 1);
    unsigned char slot[SB_METRICS_RECORD_SIZE];
    assert_int_equal(pread(fd, slot, sizeof slot, 3 * (off_t)SB_METRICS_RECORD_SIZE), (ssize_t)sizeof slot);
    assert_int_equal(pwrite(fd, slot, sizeof slot, 2 * (off_t)SB_METRICS_RECORD_SIZE), (ssize_t)sizeof slot);
    /* the last slot cut short, as by a crash mid-write */
    assert_int_equal(ftruncate(fd, 4 * (off_t)SB_METRICS_RECORD_SIZE - 7), 0);
    close(fd);
    collected c = {0};
    assert_int_equal(sb_metrics_store_scan(dir, day0, day0 + 1440, collect, &c), SB_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.minutes[0], day0);
    /* a directory where a day file should be is an error, not a silent hole */
    sb_metrics_day_name(day0 / 1440 + 1, name);
    char *bad = sb_asprintf("%s/%s.pt1m", dir, name);
    assert_int_equal(mkdir(bad, 0755), 0);
    c = (collected){0};
    assert_int_not_equal(sb_metrics_store_scan(dir, day0 + 1440, day0 + 1441, collect, &c), SB_OK);
    sb_free(bad);
    sb_free(path);
    sb_free(dir);
}

static void test_store_prune_and_write_errors(void **state) {
    char err[256];
    char *dir = sb_asprintf("%s/store", tmpdir);
    sb_metrics_store *st = sb_metrics_store_open(dir, err, sizeof err);
    assert_non_null(st);
    int64_t today = day0 / 1440;
    int64_t days[] = {today - 200, today - 94, today - 93, today - 1, today};
    for (size_t i = 0; i < 5; i++) {
        sb_metrics_minute m;
        sb_metrics_minute_init(&m, days[i] * 1440, (uint64_t[SB_EP_COUNT]){0}, 0);
        assert_int_equal(sb_metrics_store_write(st, &m, err, sizeof err), SB_OK);
    }
    char *foreign = sb_asprintf("%s/notes.txt", dir), *odd = sb_asprintf("%s/2020-13-45.pt1m", dir);
    fclose(fopen(foreign, "w"));
    fclose(fopen(odd, "w"));
    sb_metrics_store_prune(st, today);
    for (size_t i = 0; i < 5; i++) {
        sb_metrics_minute m;
        int kept = sb_metrics_store_read(dir, days[i] * 1440, &m) == SB_OK;
        assert_int_equal(kept, days[i] >= today - SB_METRICS_RETENTION_DAYS);
    }
    assert_int_equal(access(foreign, F_OK), 0); /* never delete what the store did not write */
    assert_int_equal(access(odd, F_OK), 0);

    /* the day directory made unwritable: the write fails with a message, and works again after */
    sb_metrics_store_close(st);
    st = sb_metrics_store_open(dir, err, sizeof err);
    char name[11];
    sb_metrics_day_name(today + 1, name);
    char *blocker = sb_asprintf("%s/%s.pt1m", dir, name);
    assert_int_equal(mkdir(blocker, 0755), 0);
    sb_metrics_minute m;
    sb_metrics_minute_init(&m, (today + 1) * 1440, (uint64_t[SB_EP_COUNT]){0}, 0);
    err[0] = '\0';
    assert_int_not_equal(sb_metrics_store_write(st, &m, err, sizeof err), SB_OK);
    assert_non_null(strstr(err, name));
    rmdir(blocker);
    assert_int_equal(sb_metrics_store_write(st, &m, err, sizeof err), SB_OK);
    sb_metrics_store_close(st);
    assert_null(sb_metrics_store_open(foreign, err, sizeof err)); /* a file is not a directory */
    sb_free(blocker);
    sb_free(foreign);
    sb_free(odd);
    sb_free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metric_definitions),
        cmocka_unit_test(test_category_names),
        cmocka_unit_test(test_close_reason_mapping),
        cmocka_unit_test(test_point_math),
        cmocka_unit_test(test_minute_merge),
        cmocka_unit_test_setup_teardown(test_recorders_without_metrics_are_noops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters_in_one_minute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gauges_see_spikes_between_samples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealing_ring_and_totals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_daily_messages_and_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_continues_the_minute_and_the_day, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_refuses_bad_tier_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_fails_when_the_store_dir_cannot_be_made, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_round_trip_and_holes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_ignores_torn_and_foreign_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_prune_and_write_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
