/*
 * test_tier.c - tiers and units as configuration and the throttling checks:
 * Azure's unit steps per tier (every valid and every invalid count up to
 * 1000), the defaults, the connection limit counting client and server
 * connections, the Free tier's daily message quota in 2 KB units (and no cap
 * on paid tiers), quota utilization, and the config table's new keys
 * (values, bounds, environment).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ftw.h>
#include <math.h>
#include <sys/stat.h>
#include <time.h>

#include "limits/tier.h"
#include "metrics/metrics.h"
#include "server.h"
#include "util/error.h"

static sb_server srv;
static uv_loop_t loop;
static char tmpdir[256];

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    return remove(p);
}

static void set(const char *name, const char *value) {
    char err[256];
    assert_int_equal(sb_config_set(&srv.cfg, name, value, err, sizeof err), SB_OK);
}

static int setup(void **state) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sb_tier_XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    memset(&srv, 0, sizeof srv);
    sb_config_defaults(&srv.cfg);
    set("data_dir", tmpdir);
    assert_int_equal(uv_loop_init(&loop), 0);
    srv.loop = &loop;
    sb_router_init(&srv.router, &srv);
    return 0;
}

static int teardown(void **state) {
    sb_metrics_stop(&srv);
    uv_run(&loop, UV_RUN_NOWAIT);
    sb_metrics_free(&srv);
    assert_int_equal(uv_loop_close(&loop), 0);
    sb_router_free(&srv.router);
    sb_config_free(&srv.cfg);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static int check(const char *tier, const char *units, char *err, size_t errlen) {
    set("tier", tier);
    set("units", units);
    return sb_tier_check_config(&srv.cfg, err, errlen);
}

static void test_defaults(void **state) {
    char err[256];
    assert_int_equal(srv.cfg.tier, SB_TIER_STANDARD);
    assert_int_equal(srv.cfg.units, 0);
    assert_int_equal(srv.cfg.free_tier_daily_messages, 20000);
    assert_int_equal(sb_tier_check_config(&srv.cfg, err, sizeof err), SB_OK);
    assert_int_equal(sb_tier_units(&srv.cfg), 100);
    assert_int_equal(sb_tier_connection_limit(&srv.cfg), 100000);
    assert_int_equal(sb_tier_daily_message_limit(&srv.cfg), 0);
    set("tier", "free"); /* enum values are case-insensitive */
    assert_int_equal(srv.cfg.tier, SB_TIER_FREE);
    assert_int_equal(sb_tier_units(&srv.cfg), 1);
    assert_int_equal(sb_tier_connection_limit(&srv.cfg), 20);
    assert_int_equal(sb_tier_daily_message_limit(&srv.cfg), 20000);
    assert_string_equal(sb_tier_name(SB_TIER_FREE), "Free");
    assert_string_equal(sb_tier_name(SB_TIER_STANDARD), "Standard");
    assert_string_equal(sb_tier_name(SB_TIER_PREMIUM), "Premium");
    assert_string_equal(sb_tier_name((sb_tier)9), "?");
}

static void test_config_keys(void **state) {
    char err[256];
    assert_int_equal(sb_config_set(&srv.cfg, "tier", "Basic", err, sizeof err), SB_EINVAL);
    assert_int_equal(sb_config_set(&srv.cfg, "units", "-1", err, sizeof err), SB_EINVAL);
    assert_int_equal(sb_config_set(&srv.cfg, "units", "1001", err, sizeof err), SB_EINVAL);
    assert_int_equal(sb_config_set(&srv.cfg, "units", "ten", err, sizeof err), SB_EINVAL);
    assert_int_equal(sb_config_set(&srv.cfg, "free_tier_daily_messages", "0", err, sizeof err), SB_EINVAL);
    setenv("SWITCHBOARD_TIER", "Premium", 1);
    setenv("SWITCHBOARD_UNITS", "300", 1);
    assert_int_equal(sb_config_load_env(&srv.cfg, err, sizeof err), SB_OK);
    unsetenv("SWITCHBOARD_TIER");
    unsetenv("SWITCHBOARD_UNITS");
    assert_int_equal(srv.cfg.tier, SB_TIER_PREMIUM);
    assert_int_equal(srv.cfg.units, 300);
    assert_int_equal(sb_tier_check_config(&srv.cfg, err, sizeof err), SB_OK);
    assert_int_equal(sb_tier_connection_limit(&srv.cfg), 300000);
}

static int step_valid(int u, int premium) {
    return (u >= 1 && u <= 10) || (u <= 100 && u % 10 == 0) || (premium && u <= 1000 && u % 100 == 0);
}

static void test_unit_steps(void **state) {
    char err[256], text[16];
    for (int u = 1; u <= 1000; u++) {
        snprintf(text, sizeof text, "%d", u);
        assert_int_equal(check("Standard", text, err, sizeof err) == SB_OK, step_valid(u, 0));
        assert_int_equal(check("Premium", text, err, sizeof err) == SB_OK, step_valid(u, 1));
        assert_int_equal(check("Free", text, err, sizeof err) == SB_OK, u == 1);
    }
    assert_int_equal(check("Standard", "15", err, sizeof err), SB_EINVAL);
    assert_string_equal(err, "units: 15 is not valid for tier Standard; valid: 1-10, 20, 30, ..., 100");
    assert_int_equal(check("Premium", "150", err, sizeof err), SB_EINVAL);
    assert_string_equal(
        err, "units: 150 is not valid for tier Premium; valid: 1-10, 20, 30, ..., 100, 200, 300, ..., 1000");
    assert_int_equal(check("Free", "2", err, sizeof err), SB_EINVAL);
    assert_non_null(strstr(err, "exactly 1 unit"));
    assert_int_equal(check("Free", "0", err, sizeof err), SB_OK);
    srv.cfg.tier = 7; /* not from the table: refused, not trusted */
    assert_int_equal(sb_tier_check_config(&srv.cfg, err, sizeof err), SB_EINVAL);
}

static void test_connection_limit_counts_clients_and_servers(void **state) {
    set("tier", "Free");
    assert_int_equal(sb_metrics_start(&srv), SB_OK);
    srv.router.nclients = 19;
    assert_int_equal(sb_tier_connections(&srv), 19);
    assert_true(sb_tier_connection_allowed(&srv));
    assert_true(fabs(sb_tier_quota_utilization(&srv) - 95.0) < 1e-9);
    sb_metrics_connection_opened(&srv, SB_EP_SERVER); /* 20: the limit */
    assert_int_equal(sb_tier_connections(&srv), 20);
    assert_false(sb_tier_connection_allowed(&srv));
    assert_true(fabs(sb_tier_quota_utilization(&srv) - 100.0) < 1e-9);
    sb_metrics_connection_opened(&srv, SB_EP_LIVETRACE); /* neither client nor server: not counted */
    assert_int_equal(sb_tier_connections(&srv), 20);
    sb_metrics_connection_closed(&srv, SB_EP_SERVER, SB_CC_NORMAL);
    assert_true(sb_tier_connection_allowed(&srv));
    /* a reload to Standard, 1 unit: 1000 */
    set("tier", "Standard");
    set("units", "1");
    srv.router.nclients = 999;
    assert_true(sb_tier_connection_allowed(&srv));
    srv.router.nclients = 1000;
    assert_false(sb_tier_connection_allowed(&srv));
    assert_true(fabs(sb_tier_quota_utilization(&srv) - 100.0) < 1e-9);
    srv.router.nclients = 750;
    assert_true(fabs(sb_tier_quota_utilization(&srv) - 75.0) < 1e-9); /* Azure's example */
    srv.router.nclients = 0;
}

static void test_free_daily_message_quota(void **state) {
    set("tier", "Free");
    set("free_tier_daily_messages", "10");
    assert_int_equal(sb_metrics_start(&srv), SB_OK);
    assert_true(sb_tier_message_allowed(&srv, 1));
    assert_true(sb_tier_message_allowed(&srv, 10));
    assert_false(sb_tier_message_allowed(&srv, 11));
    sb_metrics_outbound(&srv, 2048 * 9, 0); /* 9 of 10 */
    assert_true(sb_tier_message_allowed(&srv, 1));
    assert_false(sb_tier_message_allowed(&srv, 2));
    sb_metrics_outbound(&srv, 10, 1); /* pings are free */
    assert_true(sb_tier_message_allowed(&srv, 1));
    sb_metrics_outbound(&srv, 2049, 0); /* 2 units: the send that crosses the quota went out whole */
    assert_int_equal(sb_metrics_day_messages(&srv), 11);
    assert_false(sb_tier_message_allowed(&srv, 1));
    assert_false(sb_tier_message_allowed(&srv, 0)); /* nothing more today, whatever it costs */
    /* the next UTC day starts afresh */
    int64_t tomorrow = ((int64_t)time(NULL) / 86400 + 1) * 86400 * INT64_C(1000000);
    sb__metrics_tick_at(&srv, tomorrow);
    assert_true(sb_tier_message_allowed(&srv, 10));
    /* paid tiers have no cap */
    set("tier", "Standard");
    sb_metrics_outbound(&srv, 2048 * 1000, 0);
    assert_true(sb_tier_message_allowed(&srv, UINT64_MAX));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unit_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_limit_counts_clients_and_servers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_daily_message_quota, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
