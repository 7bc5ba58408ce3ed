/*
 * test_diag_settings.c - diagnostic settings and log source settings as
 * values (src/diag/settings.c): the ARM PUT body parser with every
 * validation error the management API answers 400 with, ARM rendering and
 * its round trip (GET returns what was PUT), the five-settings limit,
 * resourceLogConfiguration PATCH semantics, and the persisted document
 * (save/load round trip, every way it can be broken, every prefix of a valid
 * file refused cleanly).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "diag/names.h"
#include "diag/settings.h"
#include "util/alloc.h"
#include "util/error.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define RID                                                                                                  \
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/default/providers/"                  \
    "Microsoft.SignalRService/SignalR/switchboard"
#define SA(name) "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/" name
#define WS(name)                                                                                             \
    "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/" name

static const sb_diag_destinations dst = {"local, archive", "local,ws2"};

static json_t *load(const char *text) {
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j)
        fail_msg("test JSON does not parse: %s: %s", jerr.text, text);
    return j;
}

/* Parse a PUT body; returns the result code, message in err. */
static int parse(const char *name, const char *body, sb_diag_setting *out, char *err, size_t errlen) {
    json_t *j = load(body);
    err[0] = '\0';
    int rc = sb_diag_setting_from_arm(name, j, &dst, out, err, errlen);
    json_decref(j);
    return rc;
}

/* ---- basics ---- */

static void test_init_defaults(void **state) {
    sb_diag_settings s;
    sb_diag_settings_init(&s);
    assert_int_equal(s.n, 0);
    for (int t = 0; t < SB_LOGT_COUNT; t++)
        assert_int_equal(s.type_enabled[t], 1);
    assert_false(sb_diag_settings_collecting(&s));
    assert_false(sb_diag_settings_metrics(&s));
    sb_diag_settings_free(&s);
}

static void test_resource_name(void **state) {
    assert_null(sb_diag_resource_name(NULL));
    assert_string_equal(sb_diag_resource_name(SA("archive")), "archive");
    assert_string_equal(sb_diag_resource_name("plain"), "plain");
}

static void test_log_type_names(void **state) {
    assert_string_equal(sb_diag_log_type_category(SB_LOGT_CONNECTIVITY), SB_LOG_TYPE_CONNECTIVITY);
    assert_string_equal(sb_diag_log_type_category(SB_LOGT_MESSAGING), SB_LOG_TYPE_MESSAGING);
    assert_string_equal(sb_diag_log_type_category(SB_LOGT_HTTP), SB_LOG_TYPE_HTTP);
    assert_null(sb_diag_log_type_category(SB_LOGT_ACTIVITY));
    assert_int_equal(sb_diag_log_type_from_category("connectivitylogs"), SB_LOGT_CONNECTIVITY);
    assert_int_equal(sb_diag_log_type_from_category("MessagingLogs"), SB_LOGT_MESSAGING);
    assert_int_equal(sb_diag_log_type_from_category("HTTPREQUESTLOGS"), SB_LOGT_HTTP);
    assert_int_equal(sb_diag_log_type_from_category("AllLogs"), -1);
}

/* ---- names ---- */

static void test_name_rules(void **state) {
    char err[300], name[SB_DIAG_NAME_MAX + 2];
    assert_int_equal(sb_diag_setting_name_check("my setting-1_.x", 15, err, sizeof err), SB_OK);
    assert_int_equal(sb_diag_setting_name_check("é日本", strlen("é日本"), err, sizeof err), SB_OK);
    memset(name, 'a', sizeof name);
    assert_int_equal(sb_diag_setting_name_check(name, SB_DIAG_NAME_MAX, err, sizeof err), SB_OK);
    assert_int_equal(sb_diag_setting_name_check(name, SB_DIAG_NAME_MAX + 1, err, sizeof err), SB_EINVAL);
    assert_non_null(strstr(err, "at most 260"));
    assert_int_equal(sb_diag_setting_name_check("", 0, err, sizeof err), SB_EINVAL);
    assert_non_null(strstr(err, "empty"));
    for (const char *p = "<>*%&:\\?/+"; *p; p++) {
        char bad[4] = {'a', *p, 'b', 0};
        assert_int_equal(sb_diag_setting_name_check(bad, 3, err, sizeof err), SB_EINVAL);
        assert_non_null(strstr(err, "is invalid"));
    }
    assert_int_equal(sb_diag_setting_name_check("a\tb", 3, err, sizeof err), SB_EINVAL);
    assert_int_equal(sb_diag_setting_name_check("a\x7f", 2, err, sizeof err), SB_EINVAL);
    assert_int_equal(sb_diag_setting_name_check("a\0b", 3, err, sizeof err), SB_EINVAL);
    assert_non_null(strstr(err, "UTF-8"));
    assert_int_equal(sb_diag_setting_name_check("a\xc3", 2, err, sizeof err), SB_EINVAL);
    assert_non_null(strstr(err, "UTF-8"));
}

/* ---- ARM parse: accepted bodies ---- */

static void test_parse_storage_all_logs(void **state) {
    sb_diag_setting d;
    char err[512];
    assert_int_equal(parse("s1",
                           "{\"properties\":{\"storageAccountId\":\"" SA(
                               "local") "\","
                                        "\"logs\":[{\"categoryGroup\":\"allLogs\",\"enabled\":true}]}}",
                           &d, err, sizeof err),
                     SB_OK);
    assert_string_equal(d.name, "s1");
    assert_string_equal(d.storage_account_id, SA("local"));
    assert_null(d.workspace_id);
    assert_true(d.logs_all);
    assert_false(d.logs_audit);
    assert_false(d.metrics);
    assert_string_equal(
        d.logs_json,
        "[{\"categoryGroup\":\"allLogs\",\"enabled\":true,\"retentionPolicy\":{\"enabled\":false,"
        "\"days\":0}}]");
    assert_string_equal(d.metrics_json, "[]");
    sb_diag_setting_free(&d);
}

static void test_parse_workspace_category_metrics(void **state) {
    sb_diag_setting d;
    char err[512];
    /* names, ids and categories compare case-insensitively where ARM does; spellings are normalized */
    assert_int_equal(
        parse("ws",
              "{\"properties\":{\"workspaceId\":\"/SUBSCRIPTIONS/s1/resourcegroups/rg/providers/"
              "microsoft.operationalinsights/WORKSPACES/ws2\",\"storageAccountId\":\"\","
              "\"logs\":[{\"category\":\"alllogs\",\"enabled\":true,"
              "\"retentionPolicy\":{\"enabled\":false,\"days\":7}}],"
              "\"metrics\":[{\"category\":\"allmetrics\",\"enabled\":true,\"timeGrain\":\"PT1M\"}],"
              "\"logAnalyticsDestinationType\":\"dedicated\",\"eventHubName\":null}}",
              &d, err, sizeof err),
        SB_OK);
    assert_null(d.storage_account_id);
    assert_non_null(d.workspace_id);
    assert_string_equal(sb_diag_resource_name(d.workspace_id), "ws2");
    assert_true(d.logs_all);
    assert_true(d.metrics);
    assert_string_equal(d.destination_type, "Dedicated");
    assert_string_equal(d.logs_json,
                        "[{\"category\":\"AllLogs\",\"enabled\":true,\"retentionPolicy\":{\"enabled\":"
                        "false,\"days\":0}}]");
    assert_string_equal(d.metrics_json, "[{\"category\":\"AllMetrics\",\"enabled\":true,\"retentionPolicy\":{"
                                        "\"enabled\":false,\"days\":0},\"timeGrain\":\"PT1M\"}]");
    sb_diag_setting_free(&d);
}

static void test_parse_audit_and_disabled(void **state) {
    sb_diag_setting d;
    char err[512];
    assert_int_equal(parse("a",
                           "{\"properties\":{\"storageAccountId\":\"" SA(
                               "archive") "\",\"logs\":["
                                          "{\"categoryGroup\":\"audit\",\"enabled\":true},"
                                          "{\"categoryGroup\":\"allLogs\",\"enabled\":false}],"
                                          "\"metrics\":[{\"category\":\"AllMetrics\",\"enabled\":false}]}}",
                           &d, err, sizeof err),
                     SB_OK);
    assert_false(d.logs_all);
    assert_true(d.logs_audit);
    assert_false(d.metrics);
    sb_diag_setting_free(&d);
    /* no logs at all is a valid (metrics-only or idle) setting */
    assert_int_equal(parse("m", "{\"properties\":{\"storageAccountId\":\"" SA("local") "\",\"logs\":null}}",
                           &d, err, sizeof err),
                     SB_OK);
    assert_false(d.logs_all || d.logs_audit || d.metrics);
    sb_diag_setting_free(&d);
}

static void test_destination_check_can_be_skipped(void **state) {
    sb_diag_setting d;
    char err[512];
    json_t *j = load("{\"properties\":{\"storageAccountId\":\"" SA("elsewhere") "\"}}");
    assert_int_equal(sb_diag_setting_from_arm("x", j, NULL, &d, err, sizeof err), SB_OK);
    sb_diag_setting_free(&d);
    sb_diag_destinations only_ws = {NULL, "local"};
    assert_int_equal(sb_diag_setting_from_arm("x", j, &only_ws, &d, err, sizeof err), SB_OK);
    sb_diag_setting_free(&d);
    json_decref(j);
}

/* ---- ARM parse: every refusal ---- */

typedef struct bad_case {
    const char *name, *body, *message; /* message: a substring of the 400 text */
} bad_case;

static const bad_case bad_cases[] = {
    {"x", "[]", "'properties' object"},
    {"x", "{}", "'properties' object"},
    {"x", "{\"properties\":[]}", "'properties' object"},
    {"a/b", "{\"properties\":{\"storageAccountId\":\"" SA("local") "\"}}", "name 'a/b' is invalid"},
    {"", "{\"properties\":{\"storageAccountId\":\"" SA("local") "\"}}", "must not be empty"},
    /* destinations */
    {"x", "{\"properties\":{}}", "at least one destination"},
    {"x", "{\"properties\":{\"storageAccountId\":null,\"workspaceId\":\"\"}}", "at least one destination"},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA("local") "\",\"eventHubAuthorizationRuleId\":\"/x\"}}",
     "Event Hubs destinations ('eventHubAuthorizationRuleId') are not supported"},
    {"x", "{\"properties\":{\"storageAccountId\":\"" SA("local") "\",\"eventHubName\":\"hub\"}}",
     "Event Hubs destinations ('eventHubName') are not supported"},
    {"x", "{\"properties\":{\"storageAccountId\":\"" SA("local") "\",\"serviceBusRuleId\":\"/x\"}}",
     "'serviceBusRuleId') are not supported"},
    {"x", "{\"properties\":{\"storageAccountId\":\"" SA("local") "\",\"marketplacePartnerId\":\"/x\"}}",
     "Partner solution destinations ('marketplacePartnerId') are not supported"},
    {"x", "{\"properties\":{\"storageAccountId\":5}}", "'storageAccountId' must be a string"},
    {"x", "{\"properties\":{\"workspaceId\":true}}", "'workspaceId' must be a string"},
    {"x", "{\"properties\":{\"storageAccountId\":\"local\"}}",
     "storageAccountId 'local' is not a valid resource id"},
    {"x", "{\"properties\":{\"storageAccountId\":\"" WS("local") "\"}}", "not a valid resource id"},
    {"x", "{\"properties\":{\"storageAccountId\":\"" SA("local") "/x\"}}", "not a valid resource id"},
    {"x", "{\"properties\":{\"storageAccountId\":\"" SA("") "\"}}", "not a valid resource id"},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"/subscriptions//resourceGroups/rg/providers/Microsoft.Storage/"
     "storageAccounts/local\"}}",
     "not a valid resource id"},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"/subscriptions/s/resourceGroups/rg/providers/"
     "Microsoft.Storage\"}}",
     "not a valid resource id"},
    {"x", "{\"properties\":{\"workspaceId\":\"" SA("local") "\"}}",
     "workspaceId '" SA("local") "' is not a valid"},
    {"x", "{\"properties\":{\"storageAccountId\":\"" SA("nosuch") "\"}}",
     "storage account 'nosuch' does not exist: declare it in the storage_accounts setting"},
    {"x", "{\"properties\":{\"storageAccountId\":\"" SA("Local") "\"}}",
     "storage account 'Local' does not exist"},
    {"x", "{\"properties\":{\"workspaceId\":\"" WS("nosuch") "\"}}",
     "Log Analytics workspace 'nosuch' does not exist: declare it in the workspaces setting"},
    /* logs */
    {"x", "{\"properties\":{\"storageAccountId\":\"" SA("local") "\",\"logs\":{}}}",
     "'logs' must be an array"},
    {"x", "{\"properties\":{\"storageAccountId\":\"" SA("local") "\",\"logs\":[1]}}",
     "entry of 'logs' must be an object"},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA(
         "local") "\",\"logs\":[{\"category\":\"AllLogs\","
                  "\"categoryGroup\":\"allLogs\",\"enabled\":true}]}}",
     "not both"},
    {"x", "{\"properties\":{\"storageAccountId\":\"" SA("local") "\",\"logs\":[{\"enabled\":true}]}}",
     "needs a category or a categoryGroup"},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA(
         "local") "\",\"logs\":[{\"category\":\"\",\"enabled\":true}]}}",
     "needs a category or a categoryGroup"},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA("local") "\",\"logs\":[{\"category\":\"ConnectivityLogs\","
                                                            "\"enabled\":true}]}}",
     "Category 'ConnectivityLogs' is not supported."},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA("local") "\",\"logs\":[{\"categoryGroup\":\"security\","
                                                            "\"enabled\":true}]}}",
     "Category group 'security' is not supported."},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA(
         "local") "\",\"logs\":[{\"category\":7,\"enabled\":true}]}}",
     "'category' must be a string"},
    {"x", "{\"properties\":{\"storageAccountId\":\"" SA("local") "\",\"logs\":[{\"category\":\"AllLogs\"}]}}",
     "'enabled' property of log category 'AllLogs' must be true or false"},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA("local") "\",\"logs\":[{\"categoryGroup\":\"audit\","
                                                            "\"enabled\":\"true\"}]}}",
     "'enabled' property of category group 'audit'"},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA(
         "local") "\",\"logs\":[{\"category\":\"AllLogs\",\"enabled\":true,"
                  "\"retentionPolicy\":{\"enabled\":true,\"days\":30}}]}}",
     "Diagnostic settings does not support retention for new diagnostic settings."},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA(
         "local") "\",\"logs\":[{\"category\":\"AllLogs\",\"enabled\":true,"
                  "\"retentionPolicy\":7}]}}",
     "'retentionPolicy' must be an object"},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA(
         "local") "\",\"logs\":[{\"category\":\"AllLogs\",\"enabled\":true,"
                  "\"retentionPolicy\":{\"enabled\":\"no\"}}]}}",
     "'retentionPolicy.enabled' must be true or false"},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA(
         "local") "\",\"logs\":[{\"category\":\"AllLogs\",\"enabled\":true},"
                  "{\"category\":\"alllogs\",\"enabled\":false}]}}",
     "Category 'AllLogs' is listed more than once."},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA(
         "local") "\",\"logs\":[{\"categoryGroup\":\"audit\",\"enabled\":true},"
                  "{\"categoryGroup\":\"Audit\",\"enabled\":true}]}}",
     "Category group 'audit' is listed more than once."},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA(
         "local") "\",\"logs\":[{\"category\":\"AllLogs\",\"enabled\":true},"
                  "{\"categoryGroup\":\"audit\",\"enabled\":true}]}}",
     "cannot combine categories and category groups"},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA(
         "local") "\",\"logs\":[{\"categoryGroup\":\"allLogs\",\"enabled\":true},"
                  "{\"category\":\"AllLogs\",\"enabled\":true}]}}",
     "cannot combine categories and category groups"},
    /* metrics */
    {"x", "{\"properties\":{\"storageAccountId\":\"" SA("local") "\",\"metrics\":\"AllMetrics\"}}",
     "'metrics' must be an array"},
    {"x", "{\"properties\":{\"storageAccountId\":\"" SA("local") "\",\"metrics\":[null]}}",
     "entry of 'metrics' must be an object"},
    {"x", "{\"properties\":{\"storageAccountId\":\"" SA("local") "\",\"metrics\":[{\"enabled\":true}]}}",
     "entry of 'metrics' needs a category"},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA(
         "local") "\",\"metrics\":[{\"category\":\"Traffic\",\"enabled\":true}]}}",
     "Metric category 'Traffic' is not supported."},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA(
         "local") "\",\"metrics\":[{\"category\":\"AllMetrics\"}]}}",
     "'enabled' property of metric category 'AllMetrics'"},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA(
         "local") "\",\"metrics\":[{\"category\":\"AllMetrics\",\"enabled\":true,"
                  "\"retentionPolicy\":{\"enabled\":true}}]}}",
     "does not support retention"},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA(
         "local") "\",\"metrics\":[{\"category\":\"AllMetrics\",\"enabled\":true,"
                  "\"timeGrain\":60}]}}",
     "'timeGrain' must be a string"},
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA(
         "local") "\",\"metrics\":[{\"category\":\"AllMetrics\",\"enabled\":true},"
                  "{\"category\":\"AllMetrics\",\"enabled\":false}]}}",
     "Metric category 'AllMetrics' is listed more than once."},
    /* destination type */
    {"x",
     "{\"properties\":{\"storageAccountId\":\"" SA("local") "\",\"logAnalyticsDestinationType\":\"Shared\"}}",
     "logAnalyticsDestinationType 'Shared' is not supported"},
    {"x", "{\"properties\":{\"storageAccountId\":\"" SA("local") "\",\"logAnalyticsDestinationType\":1}}",
     "'logAnalyticsDestinationType' must be a string"},
};

static void test_parse_refusals(void **state) {
    for (size_t i = 0; i < ARRAY_LEN(bad_cases); i++) {
        sb_diag_setting d;
        char err[512];
        memset(&d, 0x5a, sizeof d); /* the parser must zero it */
        int rc = parse(bad_cases[i].name, bad_cases[i].body, &d, err, sizeof err);
        if (rc != SB_EINVAL || !strstr(err, bad_cases[i].message))
            fail_msg("case %zu %s: rc %d, message '%s', want '%s'", i, bad_cases[i].body, rc, err,
                     bad_cases[i].message);
        assert_null(d.storage_account_id);
        assert_null(d.logs_json);
        sb_diag_setting_free(&d);
    }
}

static void test_parse_refuses_nul_and_non_object(void **state) {
    sb_diag_setting d;
    char err[512];
    json_t *j = load("{\"properties\":{\"storageAccountId\":\"" SA("local") "\",\"logs\":[]}}");
    json_array_append_new(json_object_get(json_object_get(j, "properties"), "logs"),
                          json_pack("{s:s#, s:b}", "category", "AllLogs\0x", (int)9, "enabled", 1));
    assert_int_equal(sb_diag_setting_from_arm("x", j, &dst, &d, err, sizeof err), SB_EINVAL);
    assert_non_null(strstr(err, "must not contain NUL"));
    json_decref(j);
    assert_int_equal(sb_diag_setting_from_arm("x", NULL, &dst, &d, err, sizeof err), SB_EINVAL);
    j = json_string("text");
    assert_int_equal(sb_diag_setting_from_arm("x", j, &dst, &d, err, sizeof err), SB_EINVAL);
    json_decref(j);
}

/* A message quoting a long user string is cut at the buffer, but on a character boundary. */
static void test_error_message_stays_utf8(void **state) {
    sb_diag_setting d;
    char err[64];
    assert_int_equal(parse("x",
                           "{\"properties\":{\"storageAccountId\":\"" SA(
                               "local") "\",\"logs\":[{\"category\":"
                                        "\"ééééééééééééééééééééééééééééééééééééé\",\"enabled\":true}]}}",
                           &d, err, sizeof err),
                     SB_EINVAL);
    json_t *s = json_string(err); /* NULL if not UTF-8 */
    assert_non_null(s);
    json_decref(s);
    assert_non_null(strstr(err, "Category '"));
}

/* ---- rendering ---- */

static void test_to_arm_shape_and_round_trip(void **state) {
    sb_diag_setting d, again;
    char err[512];
    assert_int_equal(
        parse("My Setting",
              "{\"properties\":{\"storageAccountId\":\"" SA("archive") "\",\"workspaceId\":\"" WS(
                  "local") "\",\"logs\":[{\"categoryGroup\":\"allLogs\",\"enabled\":true},"
                           "{\"categoryGroup\":\"audit\",\"enabled\":false}],"
                           "\"metrics\":[{\"category\":\"AllMetrics\",\"enabled\":true}]}}",
              &d, err, sizeof err),
        SB_OK);
    json_t *arm = sb_diag_setting_to_arm(&d, RID);
    assert_string_equal(json_string_value(json_object_get(arm, "id")),
                        RID "/providers/microsoft.insights/diagnosticSettings/My Setting");
    assert_string_equal(json_string_value(json_object_get(arm, "type")),
                        "Microsoft.Insights/diagnosticSettings");
    assert_string_equal(json_string_value(json_object_get(arm, "name")), "My Setting");
    json_t *props = json_object_get(arm, "properties");
    assert_string_equal(json_string_value(json_object_get(props, "storageAccountId")), SA("archive"));
    assert_string_equal(json_string_value(json_object_get(props, "workspaceId")), WS("local"));
    assert_true(json_is_null(json_object_get(props, "logAnalyticsDestinationType")));
    json_t *want_logs =
        load("[{\"categoryGroup\":\"allLogs\",\"enabled\":true,\"retentionPolicy\":{\"enabled\":false,"
             "\"days\":0}},{\"categoryGroup\":\"audit\",\"enabled\":false,\"retentionPolicy\":{"
             "\"enabled\":false,\"days\":0}}]");
    assert_true(json_equal(json_object_get(props, "logs"), want_logs));
    json_decref(want_logs);
    /* what GET shows is accepted by PUT and renders identically */
    assert_int_equal(sb_diag_setting_from_arm(d.name, arm, &dst, &again, err, sizeof err), SB_OK);
    json_t *arm2 = sb_diag_setting_to_arm(&again, RID);
    assert_true(json_equal(arm, arm2));
    assert_int_equal(again.logs_all, d.logs_all);
    assert_int_equal(again.logs_audit, d.logs_audit);
    assert_int_equal(again.metrics, d.metrics);
    json_decref(arm);
    json_decref(arm2);
    sb_diag_setting_free(&d);
    sb_diag_setting_free(&again);
}

/* A setting built in code (no stored arrays) renders from its flags. */
static void test_render_from_flags(void **state) {
    sb_diag_setting d;
    memset(&d, 0, sizeof d);
    strcpy(d.name, "code");
    d.storage_account_id = sb_strdup(SA("local"));
    d.logs_all = d.logs_audit = d.metrics = 1;
    json_t *p = sb_diag_setting_properties(&d);
    json_t *want = load(
        "{\"storageAccountId\":\"" SA("local") "\",\"workspaceId\":null,\"logs\":["
                                               "{\"categoryGroup\":\"allLogs\",\"enabled\":true,"
                                               "\"retentionPolicy\":{\"enabled\":false,\"days\":0}},"
                                               "{\"categoryGroup\":\"audit\",\"enabled\":true,"
                                               "\"retentionPolicy\":{\"enabled\":false,\"days\":0}}],"
                                               "\"metrics\":[{\"category\":\"AllMetrics\",\"enabled\":true,"
                                               "\"retentionPolicy\":{\"enabled\":"
                                               "false,\"days\":0}}],\"logAnalyticsDestinationType\":null}");
    assert_true(json_equal(p, want));
    json_decref(p);
    json_decref(want);
    d.logs_all = d.logs_audit = d.metrics = 0;
    d.logs_json = sb_strdup("not json"); /* unreadable stored text falls back to the flags too */
    p = sb_diag_setting_properties(&d);
    assert_int_equal(json_array_size(json_object_get(p, "logs")), 0);
    assert_int_equal(json_array_size(json_object_get(p, "metrics")), 0);
    json_decref(p);
    sb_diag_setting_free(&d);
}

/* ---- the set of settings ---- */

static void make(sb_diag_setting *d, const char *name, const char *body) {
    char err[512];
    if (parse(name, body, d, err, sizeof err) != SB_OK)
        fail_msg("make %s: %s", name, err);
}

#define LOGS_TO(sa)                                                                                          \
    "{\"properties\":{\"storageAccountId\":\"" SA(                                                           \
        sa) "\",\"logs\":[{\"categoryGroup\":\"allLogs\",\"enabled\":true}]}}"
#define METRICS_TO(sa)                                                                                       \
    "{\"properties\":{\"storageAccountId\":\"" SA(                                                           \
        sa) "\",\"metrics\":[{\"category\":\"AllMetrics\",\"enabled\":true}]}}"

static void test_put_find_remove_and_limit(void **state) {
    sb_diag_settings s;
    sb_diag_setting d;
    char err[512], name[8];
    sb_diag_settings_init(&s);
    for (int i = 0; i < SB_DIAG_MAX_SETTINGS; i++) {
        snprintf(name, sizeof name, "s%d", i);
        make(&d, name, i == 2 ? LOGS_TO("archive") : METRICS_TO("local"));
        assert_int_equal(sb_diag_settings_put(&s, &d, err, sizeof err), SB_OK);
        assert_null(d.storage_account_id); /* ownership moved */
    }
    assert_int_equal(s.n, 5);
    assert_true(sb_diag_settings_collecting(&s));
    assert_true(sb_diag_settings_metrics(&s));
    assert_int_equal(sb_diag_settings_find(&s, "S2"), 2);
    assert_int_equal(sb_diag_settings_find(&s, "s9"), -1);

    /* the 6th new name is refused, and d is left to the caller */
    make(&d, "sixth", LOGS_TO("local"));
    assert_int_equal(sb_diag_settings_put(&s, &d, err, sizeof err), SB_E2BIG);
    assert_non_null(strstr(err, "maximum of 5 diagnostic settings"));
    assert_non_null(strstr(err, "'sixth'"));
    assert_non_null(d.storage_account_id);
    sb_diag_setting_free(&d);
    assert_int_equal(s.n, 5);

    /* replacing an existing one (any case) is fine at the limit */
    make(&d, "S0", LOGS_TO("archive"));
    assert_int_equal(sb_diag_settings_put(&s, &d, err, sizeof err), SB_OK);
    assert_int_equal(s.n, 5);
    assert_string_equal(s.v[0].name, "S0");
    assert_true(s.v[0].logs_all);

    /* removing keeps the order of the rest */
    assert_int_equal(sb_diag_settings_remove(&s, "s2"), SB_OK);
    assert_int_equal(sb_diag_settings_remove(&s, "s2"), SB_ENOENT);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.v[1].name, "s1");
    assert_string_equal(s.v[2].name, "s3");
    assert_string_equal(s.v[3].name, "s4");
    assert_int_equal(sb_diag_settings_remove(&s, "S0"), SB_OK);
    assert_false(sb_diag_settings_collecting(&s)); /* only metrics settings are left */
    assert_true(sb_diag_settings_metrics(&s));
    sb_diag_settings_free(&s);
    assert_int_equal(s.n, 0);
}

static void test_copy_is_deep(void **state) {
    sb_diag_settings s, c;
    sb_diag_setting d;
    char err[512];
    sb_diag_settings_init(&s);
    make(&d, "one", LOGS_TO("local"));
    sb_diag_settings_put(&s, &d, err, sizeof err);
    s.type_enabled[SB_LOGT_MESSAGING] = 0;
    sb_diag_settings_copy(&c, &s);
    json_t *a = sb_diag_settings_to_json(&s);
    sb_diag_settings_free(&s);
    json_t *b = sb_diag_settings_to_json(&c);
    assert_true(json_equal(a, b));
    assert_ptr_not_equal(c.v[0].storage_account_id, NULL);
    assert_int_equal(c.type_enabled[SB_LOGT_MESSAGING], 0);
    json_decref(a);
    json_decref(b);
    sb_diag_settings_free(&c);
}

/* ---- log source settings ---- */

static void test_log_config_patch(void **state) {
    sb_diag_settings s;
    char err[512];
    sb_diag_settings_init(&s);
    json_t *j = load("{\"categories\":[{\"name\":\"ConnectivityLogs\",\"enabled\":\"false\"},"
                     "{\"name\":\"messaginglogs\",\"enabled\":false}]}");
    assert_int_equal(sb_diag_log_config_from_arm(&s, j, err, sizeof err), SB_OK);
    json_decref(j);
    assert_int_equal(s.type_enabled[SB_LOGT_CONNECTIVITY], 0);
    assert_int_equal(s.type_enabled[SB_LOGT_MESSAGING], 0);
    assert_int_equal(s.type_enabled[SB_LOGT_HTTP], 1); /* untouched */
    j = load("{\"categories\":[{\"name\":\"ConnectivityLogs\",\"enabled\":\"TRUE\"}]}");
    assert_int_equal(sb_diag_log_config_from_arm(&s, j, err, sizeof err), SB_OK);
    json_decref(j);
    assert_int_equal(s.type_enabled[SB_LOGT_CONNECTIVITY], 1);
    assert_int_equal(s.type_enabled[SB_LOGT_MESSAGING], 0);
    j = load("{}"); /* nothing listed: nothing changes */
    assert_int_equal(sb_diag_log_config_from_arm(&s, j, err, sizeof err), SB_OK);
    json_decref(j);
    json_t *arm = sb_diag_log_config_to_arm(&s);
    json_t *want = load("{\"categories\":[{\"name\":\"ConnectivityLogs\",\"enabled\":\"true\"},"
                        "{\"name\":\"MessagingLogs\",\"enabled\":\"false\"},"
                        "{\"name\":\"HttpRequestLogs\",\"enabled\":\"true\"}]}");
    assert_true(json_equal(arm, want));
    json_decref(arm);
    json_decref(want);
}

static void test_log_config_refusals_change_nothing(void **state) {
    static const struct {
        const char *json, *message;
    } cases[] = {
        {"[]", "'resourceLogConfiguration' must be an object"},
        {"{\"categories\":{}}", "'categories' must be an array"},
        {"{\"categories\":[\"ConnectivityLogs\"]}", "must be an object"},
        {"{\"categories\":[{\"enabled\":\"true\"}]}", "needs a name"},
        {"{\"categories\":[{\"name\":3,\"enabled\":\"true\"}]}", "'name' must be a string"},
        {"{\"categories\":[{\"name\":\"HttpRequestLogs\",\"enabled\":\"false\"},{\"name\":\"LiveTrace\","
         "\"enabled\":\"true\"}]}",
         "Resource log category 'LiveTrace' is not supported"},
        {"{\"categories\":[{\"name\":\"HttpRequestLogs\",\"enabled\":\"false\"},{\"name\":\"MessagingLogs\","
         "\"enabled\":\"yes\"}]}",
         "'enabled' value of resource log category 'MessagingLogs' must be \"true\" or \"false\""},
        {"{\"categories\":[{\"name\":\"MessagingLogs\"}]}", "must be \"true\" or \"false\""},
        {"{\"categories\":[{\"name\":\"MessagingLogs\",\"enabled\":1}]}", "must be \"true\" or \"false\""},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        sb_diag_settings s;
        char err[512] = "";
        sb_diag_settings_init(&s);
        json_t *j = load(cases[i].json);
        int rc = sb_diag_log_config_from_arm(&s, j, err, sizeof err);
        json_decref(j);
        if (rc != SB_EINVAL || !strstr(err, cases[i].message))
            fail_msg("case %zu: rc %d message '%s' want '%s'", i, rc, err, cases[i].message);
        for (int t = 0; t < SB_LOGT_COUNT; t++)
            assert_int_equal(s.type_enabled[t], 1);
    }
}

/* ---- the persisted document ---- */

static char *tmp_path(const char *tag) {
    return sb_asprintf("/tmp/test_diag_settings.%d.%s.json", (int)getpid(), tag);
}

static void write_file(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
}

static void build_sample(sb_diag_settings *s) {
    sb_diag_setting d;
    char err[512];
    sb_diag_settings_init(s);
    make(&d, "archive-all", LOGS_TO("archive"));
    sb_diag_settings_put(s, &d, err, sizeof err);
    make(&d, "ws audit",
         "{\"properties\":{\"workspaceId\":\"" WS(
             "local") "\",\"logs\":[{\"categoryGroup\":\"audit\",\"enabled\":true}],"
                      "\"logAnalyticsDestinationType\":\"Dedicated\"}}");
    sb_diag_settings_put(s, &d, err, sizeof err);
    s->type_enabled[SB_LOGT_MESSAGING] = 0;
}

static void test_persist_round_trip(void **state) {
    sb_diag_settings s, loaded;
    char err[512];
    build_sample(&s);
    json_t *doc = sb_diag_settings_to_json(&s);
    assert_int_equal(json_array_size(json_object_get(doc, "diagnosticSettings")), 2);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(doc, "diagnosticSettings"), 1), "name")),
                        "ws audit");
    char *text = json_dumps(doc, JSON_INDENT(2));
    char *path = tmp_path("roundtrip");
    write_file(path, text, strlen(text));
    assert_int_equal(sb_diag_settings_load(&loaded, path, err, sizeof err), SB_OK);
    json_t *doc2 = sb_diag_settings_to_json(&loaded);
    assert_true(json_equal(doc, doc2));
    assert_int_equal(loaded.n, 2);
    assert_true(loaded.v[0].logs_all);
    assert_true(loaded.v[1].logs_audit);
    assert_string_equal(loaded.v[1].destination_type, "Dedicated");
    assert_int_equal(loaded.type_enabled[SB_LOGT_MESSAGING], 0);
    assert_int_equal(loaded.type_enabled[SB_LOGT_HTTP], 1);
    unlink(path);
    sb_free(path);
    free(text);
    json_decref(doc);
    json_decref(doc2);
    sb_diag_settings_free(&s);
    sb_diag_settings_free(&loaded);
}

static void test_load_missing_file_is_defaults(void **state) {
    sb_diag_settings s;
    char err[512] = "";
    assert_int_equal(
        sb_diag_settings_load(&s, "/tmp/test_diag_settings.does-not-exist/x.json", err, sizeof err), SB_OK);
    assert_int_equal(s.n, 0);
    assert_int_equal(s.type_enabled[SB_LOGT_MESSAGING], 1);
    assert_int_equal(sb_diag_settings_load(&s, "/tmp", err, sizeof err), SB_EINVAL); /* a directory */
    assert_non_null(strstr(err, "/tmp"));
    assert_int_equal(s.n, 0);
}

/* Every proper prefix of a valid file is refused cleanly (no leak, defaults left), the whole file loads. */
static void test_load_every_prefix(void **state) {
    sb_diag_settings s;
    build_sample(&s);
    json_t *doc = sb_diag_settings_to_json(&s);
    char *text = json_dumps(doc, JSON_COMPACT);
    size_t len = strlen(text);
    char *path = tmp_path("prefix");
    for (size_t n = 0; n <= len; n++) {
        sb_diag_settings got;
        char err[512] = "";
        write_file(path, text, n);
        int rc = sb_diag_settings_load(&got, path, err, sizeof err);
        if (n < len) {
            if (rc != SB_EINVAL || !strstr(err, path))
                fail_msg("prefix %zu: rc %d err '%s'", n, rc, err);
            assert_int_equal(got.n, 0);
            assert_int_equal(got.type_enabled[SB_LOGT_MESSAGING], 1);
        } else {
            assert_int_equal(rc, SB_OK);
            assert_int_equal(got.n, 2);
        }
        sb_diag_settings_free(&got);
    }
    unlink(path);
    sb_free(path);
    free(text);
    json_decref(doc);
    sb_diag_settings_free(&s);
}

static void test_load_json_refusals(void **state) {
    static const struct {
        const char *json, *message;
    } cases[] = {
        {"[]", "not a JSON object"},
        {"{\"diagnosticSettings\":{}}", "'diagnosticSettings' must be an array"},
        {"{\"diagnosticSettings\":[{\"properties\":{}}]}", "diagnosticSettings[0] has no name"},
        {"{\"diagnosticSettings\":[{\"name\":\"a?\",\"properties\":{\"storageAccountId\":\"" SA("x") "\"}}]}",
         "diagnosticSettings[0]: The diagnostic setting name 'a?' is invalid"},
        {"{\"diagnosticSettings\":[{\"name\":\"a\",\"properties\":{}}]}",
         "diagnosticSettings[0]: A diagnostic setting needs at least one destination"},
        {"{\"diagnosticSettings\":[{\"name\":\"a\",\"properties\":{\"storageAccountId\":\"" SA(
             "x") "\"}},"
                  "{\"name\":\"A\",\"properties\":{\"storageAccountId\":\"" SA("x") "\"}}]}",
         "diagnosticSettings[1]: the name 'A' is used twice"},
        {"{\"diagnosticSettings\":[{\"name\":\"1\",\"properties\":{\"storageAccountId\":\"" SA(
             "x") "\"}},"
                  "{\"name\":\"2\",\"properties\":{\"storageAccountId\":\"" SA(
                      "x") "\"}},"
                           "{\"name\":\"3\",\"properties\":{\"storageAccountId\":\"" SA(
                               "x") "\"}},"
                                    "{\"name\":\"4\",\"properties\":{\"storageAccountId\":\"" SA(
                                        "x") "\"}},"
                                             "{\"name\":\"5\",\"properties\":{\"storageAccountId\":\"" SA(
                                                 "x") "\"}},"
                                                      "{\"name\":\"6\",\"properties\":{\"storageAccountId\":"
                                                      "\"" SA("x") "\"}}]}",
         "diagnosticSettings[5]: The resource already has the maximum of 5 diagnostic settings"},
        {"{\"resourceLogConfiguration\":{\"categories\":[{\"name\":\"Nope\",\"enabled\":\"true\"}]}}",
         "resourceLogConfiguration: Resource log category 'Nope'"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        sb_diag_settings s;
        char err[512] = "";
        json_t *j = load(cases[i].json);
        int rc = sb_diag_settings_load_json(&s, j, err, sizeof err);
        json_decref(j);
        if (rc != SB_EINVAL || !strstr(err, cases[i].message))
            fail_msg("case %zu: rc %d message '%s' want '%s'", i, rc, err, cases[i].message);
        assert_int_equal(s.n, 0);
    }
    /* an empty document is the defaults; a null configuration too */
    sb_diag_settings s;
    char err[64];
    json_t *j = load("{\"diagnosticSettings\":null,\"resourceLogConfiguration\":null}");
    assert_int_equal(sb_diag_settings_load_json(&s, j, err, sizeof err), SB_OK);
    json_decref(j);
    assert_int_equal(s.n, 0);
    assert_int_equal(s.type_enabled[SB_LOGT_CONNECTIVITY], 1);
    /* names are not checked against the configuration at load */
    j = load("{\"diagnosticSettings\":[{\"name\":\"old\",\"properties\":{\"storageAccountId\":\"" SA(
        "retired") "\"}}]}");
    assert_int_equal(sb_diag_settings_load_json(&s, j, err, sizeof err), SB_OK);
    json_decref(j);
    assert_int_equal(s.n, 1);
    sb_diag_settings_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_defaults),
        cmocka_unit_test(test_resource_name),
        cmocka_unit_test(test_log_type_names),
        cmocka_unit_test(test_name_rules),
        cmocka_unit_test(test_parse_storage_all_logs),
        cmocka_unit_test(test_parse_workspace_category_metrics),
        cmocka_unit_test(test_parse_audit_and_disabled),
        cmocka_unit_test(test_destination_check_can_be_skipped),
        cmocka_unit_test(test_parse_refusals),
        cmocka_unit_test(test_parse_refuses_nul_and_non_object),
        cmocka_unit_test(test_error_message_stays_utf8),
        cmocka_unit_test(test_to_arm_shape_and_round_trip),
        cmocka_unit_test(test_render_from_flags),
        cmocka_unit_test(test_put_find_remove_and_limit),
        cmocka_unit_test(test_copy_is_deep),
        cmocka_unit_test(test_log_config_patch),
        cmocka_unit_test(test_log_config_refusals_change_nothing),
        cmocka_unit_test(test_persist_round_trip),
        cmocka_unit_test(test_load_missing_file_is_defaults),
        cmocka_unit_test(test_load_every_prefix),
        cmocka_unit_test(test_load_json_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
