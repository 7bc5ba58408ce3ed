/*
 * test_diag_record.c - log records: the one-allocation copy, the level and
 * type names, the fixed-width time text (checked against libc for many
 * instants), and the archive JSON line: exact key set and order, omitted
 * fields, the upper-cased resource id, activity records, and escaping -
 * every output is parsed back with jansson, including every prefix of a
 * string whose multi-byte characters get cut at each byte.  Fan-out records:
 * their lines are byte-identical to those of the plain records with the same
 * fields (escapes, invalid UTF-8 and every prefix of a multi-byte string in
 * the recipient's fields, absent fields, messages that cannot be escaped in
 * pieces), the count, the walk over recipients, a recycled block, growth.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "diag/names.h"
#include "diag/record.h"

#define RID "/subscriptions/0000-aa/resourceGroups/myGroup/providers/Microsoft.SignalRService/SignalR/myHub1"
#define RID_UPPER                                                                                            \
    "/SUBSCRIPTIONS/0000-AA/RESOURCEGROUPS/MYGROUP/PROVIDERS/MICROSOFT.SIGNALRSERVICE/SIGNALR/MYHUB1"
#define T0 INT64_C(1795654923456789) /* 2026-11-26T01:02:03.456789Z */
#define T0_TEXT "2026-11-26T01:02:03.4567890Z"

static char *line_of(const sb_log_fields *f, int64_t t, const char *rid, const char *location) {
    sb_log_record *r = sb_log_record_new(f);
    r->time_us = t;
    sb_buf b;
    sb_buf_init(&b);
    sb_log_record_archive_json(r, rid, location, &b);
    sb_log_record_free(r);
    return sb_buf_steal(&b, NULL);
}

/* Parse one line: exactly one JSON object, one trailing newline, no other newline. */
static json_t *parse_line(const char *line) {
    size_t n = strlen(line);
    assert_true(n > 1);
    assert_int_equal(line[n - 1], '\n');
    assert_null(memchr(line, '\n', n - 1));
    json_error_t e;
    json_t *j = json_loads(line, 0, &e);
    if (!j)
        fail_msg("not JSON (%s): %s", e.text, line);
    assert_true(json_is_object(j));
    return j;
}

static void assert_keys(json_t *obj, const char *const *keys, size_t n) {
    size_t i = 0;
    for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it), i++) {
        assert_true(i < n);
        assert_string_equal(json_object_iter_key(it), keys[i]);
    }
    assert_int_equal(i, n);
}

static const char *str_at(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        fail_msg("%s is not a string", key);
    return json_string_value(v);
}

static void test_record_new_copies(void **state) {
    char msg[] = "hello", user[] = "alice", route[] = "/api/{hub}", method[] = "GET", mtype[] = "Invocation";
    sb_log_fields f = {
        .type = SB_LOGT_MESSAGING,
        .level = SB_LEVEL_ERROR,
        .operation_name = SB_OP_MESSAGE_SENT_TO_CLIENT,
        .collection = SB_LOG_COLLECTION_MESSAGE,
        .message = msg,
        .user_id = user,
        .connection_id = "c1",
        .tracing_id = 42,
        .has_tracing_id = 1,
        .route_template = route, /* producers build these on their stack */
        .http_method = method,
        .message_type = mtype,
    };
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t before = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    sb_log_record *r = sb_log_record_new(&f);
    memset(msg, 'x', 5); /* the record must not see later changes to borrowed strings */
    memset(user, 'y', 5);
    memset(route, 'z', 5);
    memset(method, 'w', 3);
    memset(mtype, 'v', 5);
    assert_string_equal(r->route_template, "/api/{hub}");
    assert_string_equal(r->http_method, "GET");
    assert_string_equal(r->message_type, "Invocation");
    assert_string_equal(r->message, "hello");
    assert_string_equal(r->user_id, "alice");
    assert_string_equal(r->connection_id, "c1");
    assert_ptr_equal(r->operation_name, SB_OP_MESSAGE_SENT_TO_CLIENT); /* static names are not copied */
    assert_ptr_equal(r->collection, SB_LOG_COLLECTION_MESSAGE);
    /* copies live in the record's own allocation */
    assert_true(r->message >= r->data && r->user_id >= r->data && r->connection_id >= r->data);
    assert_null(r->caller_ip);
    assert_null(r->hub);
    assert_null(r->url);
    assert_null(r->properties);
    assert_null(r->next);
    assert_int_equal(r->tracing_id, 42);
    assert_int_equal(r->type, SB_LOGT_MESSAGING);
    assert_int_equal(r->level, SB_LEVEL_ERROR);
    assert_true(r->time_us >= before && r->time_us < before + 5000000);
    sb_log_record_free(r);

    sb_log_fields empty = {0};
    r = sb_log_record_new(&empty);
    assert_null(r->message);
    assert_null(r->caller);
    sb_log_record_free(r);
}

static void test_names(void **state) {
    assert_string_equal(sb_log_level_name(SB_LEVEL_INFORMATIONAL), "Informational");
    assert_string_equal(sb_log_level_name(SB_LEVEL_WARNING), "Warning");
    assert_string_equal(sb_log_level_name(SB_LEVEL_ERROR), "Error");
    assert_string_equal(sb_log_level_name(SB_LEVEL_CRITICAL), "Critical");
    assert_string_equal(sb_log_level_name((sb_log_level)99), "Informational");
    assert_string_equal(sb_log_type_name(SB_LOGT_CONNECTIVITY), "ConnectivityLogs");
    assert_string_equal(sb_log_type_name(SB_LOGT_MESSAGING), "MessagingLogs");
    assert_string_equal(sb_log_type_name(SB_LOGT_HTTP), "HttpRequestLogs");
    assert_string_equal(sb_log_type_name(SB_LOGT_ACTIVITY), "Administrative");
}

static void expect_time(int64_t t, const char *want) {
    sb_buf b;
    sb_buf_init(&b);
    sb_buf_appends(&b, ">");
    sb_log_time_format(t, &b);
    assert_string_equal(b.data + 1, want);
    assert_int_equal(b.len, 1 + strlen(want));
    sb_buf_free(&b);
}

static void test_time_format(void **state) {
    expect_time(0, "1970-01-01T00:00:00.0000000Z");
    expect_time(T0, T0_TEXT);
    expect_time(INT64_C(951782400000000), "2000-02-29T00:00:00.0000000Z");
    expect_time(INT64_C(951868799999999), "2000-02-29T23:59:59.9999990Z");
    expect_time(INT64_C(4107542400000001), "2100-03-01T00:00:00.0000010Z");
    expect_time(-1, "1970-01-01T00:00:00.0000000Z"); /* clamped, still fixed width */
    expect_time(INT64_MAX, "9999-12-31T23:59:59.9999990Z");
    /* against libc over many instants, including every month end */
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t t = (int64_t)(x % UINT64_C(4102444800000000)); /* 1970 .. 2100 */
        time_t secs = (time_t)(t / 1000000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        char want[64], date[32];
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(want, sizeof want, "%s.%06d0Z", date, (int)(t % 1000000));
        expect_time(t, want);
    }
}

static void test_connectivity_line_exact(void **state) {
    sb_log_fields f = {
        .type = SB_LOGT_CONNECTIVITY,
        .level = SB_LEVEL_INFORMATIONAL,
        .operation_name = SB_OP_SERVERLESS_MODE_ENTERED,
        .collection = SB_LOG_COLLECTION_CONNECTION,
        .message = SB_MSG_SERVERLESS_MODE_ENTERED,
        .caller_ip = "10.0.0.7",
        .connection_id = "abc123",
        .user_id = "User",
        .transport_type = SB_LOG_TRANSPORT_WEBSOCKETS,
        .connection_type = SB_LOG_CONNECTION_TYPE_CLIENT,
        .hub = "chat",
    };
    char *line = line_of(&f, T0, RID, "westus");
    assert_string_equal(
        line,
        "{\"time\":\"" T0_TEXT "\",\"level\":\"Informational\",\"resourceId\":\"" RID_UPPER
        "\",\"location\":\"westus\",\"category\":\"AllLogs\",\"operationName\":\"ServerlessModeEntered\","
        "\"callerIpAddress\":\"10.0.0.7\",\"properties\":{\"type\":\"ConnectivityLogs\","
        "\"collection\":\"Connection\",\"connectionId\":\"abc123\",\"transportType\":\"WebSockets\","
        "\"connectionType\":\"Client\",\"userId\":\"User\",\"message\":\"Entered Serverless mode.\","
        "\"hub\":\"chat\"}}\n");
    free(line);
}

static void test_every_field_in_order(void **state) {
    sb_log_fields f = {
        .type = SB_LOGT_HTTP,
        .level = SB_LEVEL_WARNING,
        .operation_name = SB_OP_HTTP_REQUEST,
        .collection = SB_LOG_COLLECTION_CONNECTION,
        .message = "POST /api 404",
        .caller_ip = "::1",
        .connection_id = "cid",
        .user_id = "u",
        .transport_type = SB_LOG_TRANSPORT_LONGPOLLING,
        .connection_type = SB_LOG_CONNECTION_TYPE_SERVER,
        .hub = "h",
        .group = "g",
        .message_type = "BroadcastDataMessage",
        .tracing_id = 9007199254740993u,
        .has_tracing_id = 1,
        .http_method = "POST",
        .url = "/api/v1/hubs/h?x=1",
        .route_template = "/api/v1/hubs/{hub}",
        .trace_id = "t-1",
        .status_code = 404,
        .duration_ms = 12.5,
    };
    char *line = line_of(&f, T0, RID, "l");
    json_t *j = parse_line(line);
    static const char *const top[] = {"time",     "level",         "resourceId",      "location",
                                      "category", "operationName", "callerIpAddress", "properties"};
    assert_keys(j, top, 8);
    json_t *p = json_object_get(j, "properties");
    static const char *const props[] = {
        "type",    "collection",    "connectionId", "transportType",    "connectionType", "userId",
        "message", "hub",           "groupName",    "messageTracingId", "messageType",    "httpMethod",
        "url",     "routeTemplate", "statusCode",   "durationMs",       "traceId"};
    assert_keys(p, props, sizeof props / sizeof props[0]);
    assert_string_equal(str_at(p, "type"), "HttpRequestLogs");
    assert_string_equal(str_at(j, "level"), "Warning");
    assert_int_equal(json_integer_value(json_object_get(p, "statusCode")), 404);
    assert_true(json_real_value(json_object_get(p, "durationMs")) == 12.5);
    /* a number, written exactly (above 2^53, where doubles would round) */
    assert_non_null(strstr(line, "\"messageTracingId\":9007199254740993,"));
    json_decref(j);
    free(line);
}

static void test_absent_fields_omitted(void **state) {
    sb_log_fields f = {
        .type = SB_LOGT_CONNECTIVITY, .operation_name = SB_OP_CONNECTION_ENDED, .message = "bye"};
    char *line = line_of(&f, T0, RID, "l");
    json_t *j = parse_line(line);
    static const char *const top[] = {"time",     "level",         "resourceId", "location",
                                      "category", "operationName", "properties"};
    assert_keys(j, top, 7);
    static const char *const props[] = {"type", "message"};
    assert_keys(json_object_get(j, "properties"), props, 2);
    assert_null(strstr(line, "null"));
    json_decref(j);
    free(line);

    /* no location, no resource id, no operation: still one valid object */
    sb_log_fields bare = {.type = SB_LOGT_MESSAGING};
    line = line_of(&bare, T0, NULL, NULL);
    j = parse_line(line);
    static const char *const top2[] = {"time", "level", "category", "properties"};
    assert_keys(j, top2, 4);
    json_decref(j);
    free(line);

    /* HTTP-only fields are not written for other types even when set */
    sb_log_fields conn = {.type = SB_LOGT_CONNECTIVITY,
                          .message = "m",
                          .status_code = 500,
                          .url = "/x",
                          .http_method = "GET",
                          .trace_id = "t",
                          .duration_ms = 3};
    line = line_of(&conn, T0, RID, "l");
    assert_null(strstr(line, "statusCode"));
    assert_null(strstr(line, "url"));
    assert_null(strstr(line, "durationMs"));
    assert_null(strstr(line, "traceId"));
    free(line);

    /* tracing id 0 is written when flagged, omitted when not */
    sb_log_fields traced = {.type = SB_LOGT_MESSAGING, .has_tracing_id = 1};
    line = line_of(&traced, T0, RID, "l");
    assert_non_null(strstr(line, "\"messageTracingId\":0}"));
    free(line);
    traced.has_tracing_id = 0;
    traced.tracing_id = 7;
    line = line_of(&traced, T0, RID, "l");
    assert_null(strstr(line, "messageTracingId"));
    free(line);
}

static void test_duration_and_numbers(void **state) {
    static const struct {
        double in;
        const char *out;
    } cases[] = {{12.5, "12.5"},          {3, "3"},     {0.0004, "0"}, {-0.0004, "0"}, {1.23456, "1.235"},
                 {1e12, "1000000000000"}, {0.1, "0.1"}, {100, "100"},  {-2.5, "-2.5"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sb_log_fields f = {.type = SB_LOGT_HTTP, .status_code = -1, .duration_ms = cases[i].in};
        char *line = line_of(&f, T0, RID, "l");
        json_t *j = parse_line(line);
        if (cases[i].out) {
            char want[64];
            snprintf(want, sizeof want, "\"durationMs\":%s}", cases[i].out);
            if (!strstr(line, want))
                fail_msg("%s not in %s", want, line);
        }
        assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "properties"), "statusCode")),
                         -1);
        json_decref(j);
        free(line);
    }
    /* JSON has no NaN or infinity */
    double bad[] = {0.0 / 0.0, 1.0 / 0.0, -1.0 / 0.0};
    for (int i = 0; i < 3; i++) {
        sb_log_fields f = {.type = SB_LOGT_HTTP, .duration_ms = bad[i]};
        char *line = line_of(&f, T0, RID, "l");
        json_decref(parse_line(line));
        assert_non_null(strstr(line, "\"durationMs\":0}"));
        free(line);
    }
}

static void expect_roundtrip(const char *in, const char *want) {
    sb_log_fields f = {.type = SB_LOGT_CONNECTIVITY, .message = in, .user_id = in};
    char *line = line_of(&f, T0, RID, in);
    json_t *j = parse_line(line);
    json_t *p = json_object_get(j, "properties");
    assert_string_equal(str_at(p, "message"), want);
    assert_string_equal(str_at(p, "userId"), want);
    assert_string_equal(str_at(j, "location"), want);
    json_decref(j);
    free(line);
}

static void test_escaping(void **state) {
    expect_roundtrip("say \"hi\" \\ back/slash", "say \"hi\" \\ back/slash");
    expect_roundtrip("line1\nline2\r\ttab\b\f", "line1\nline2\r\ttab\b\f");
    char ctl[40];
    for (int i = 1; i < 32; i++)
        ctl[i - 1] = (char)i;
    ctl[31] = 0x7f;
    ctl[32] = '\0';
    expect_roundtrip(ctl, ctl);
    /* UTF-8 passes through untouched */
    expect_roundtrip("caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80 \xef\xbf\xbf",
                     "caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80 \xef\xbf\xbf");
    /* invalid UTF-8 becomes U+FFFD, one per maximal bad subsequence */
    expect_roundtrip("a\xff"
                     "b",
                     "a\xef\xbf\xbd"
                     "b");
    expect_roundtrip("end\xc3", "end\xef\xbf\xbd");
    expect_roundtrip("\xe2\x82x", "\xef\xbf\xbdx");
    expect_roundtrip("\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd");                                 /* overlong */
    expect_roundtrip("\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");                 /* surrogate */
    expect_roundtrip("\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* > U+10FFFF */
    /* the escapes as written */
    sb_log_fields f = {.type = SB_LOGT_CONNECTIVITY, .message = "\x01\"\\\n\x1f"};
    char *line = line_of(&f, T0, RID, "l");
    assert_non_null(strstr(line, "\"message\":\"\\u0001\\\"\\\\\\n\\u001f\""));
    free(line);
}

/* Every prefix of a string mixing escapes and multi-byte characters: cut mid-character at each byte, the
 * line must still be one valid JSON object, and the valid prefixes must come back unchanged. */
static void test_prefixes_byte_at_a_time(void **state) {
    const char *s = "a\"\xc3\xa9\n\xe4\xb8\xad\\\xf0\x9f\x98\x80z\x01";
    size_t n = strlen(s);
    for (size_t k = 0; k <= n; k++) {
        char *prefix = strndup(s, k);
        sb_log_fields f = {.type = SB_LOGT_CONNECTIVITY, .message = prefix};
        char *line = line_of(&f, T0, RID, "l");
        json_t *j = parse_line(line);
        const char *got = str_at(json_object_get(j, "properties"), "message");
        int complete = 1;
        for (size_t i = 0; i < k;) { /* does the prefix end on a character boundary? */
            unsigned char c = (unsigned char)s[i];
            size_t len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
            if (i + len > k)
                complete = 0;
            i += len;
        }
        if (complete)
            assert_string_equal(got, prefix);
        else
            assert_non_null(strstr(got, "\xef\xbf\xbd"));
        json_decref(j);
        free(line);
        free(prefix);
    }
}

static void test_resource_id_upper_and_escaped(void **state) {
    sb_log_fields f = {.type = SB_LOGT_CONNECTIVITY, .message = "m"};
    char *line = line_of(&f, T0, "/subscriptions/a\"b\n\xc3\xa9x", "l");
    json_t *j = parse_line(line);
    /* letters upper-cased; escapes keep their lower-case spelling; non-ASCII untouched */
    assert_string_equal(str_at(j, "resourceId"), "/SUBSCRIPTIONS/A\"B\n\xc3\xa9X");
    assert_non_null(strstr(line, "\"/SUBSCRIPTIONS/A\\\"B\\n"));
    json_decref(j);
    free(line);
}

static void test_activity_line(void **state) {
    sb_log_fields f = {
        .type = SB_LOGT_ACTIVITY,
        .level = SB_LEVEL_INFORMATIONAL,
        .operation_name = "Microsoft.Insights/diagnosticSettings/write",
        .caller = "accessKey",
        .caller_ip = "127.0.0.1",
        .status = "Succeeded",
        .message = "Create or update resource diagnostic setting",
        .properties = "{\n  \"setting\": \"a\",\n  \"n\": 1\n}",
    };
    char *line = line_of(&f, T0, RID, "local");
    assert_string_equal(line,
                        "{\"time\":\"" T0_TEXT "\",\"level\":\"Informational\",\"resourceId\":\"" RID_UPPER
                        "\",\"location\":\"local\",\"category\":\"Administrative\",\"operationName\":"
                        "\"Microsoft.Insights/diagnosticSettings/write\",\"resultType\":\"Succeeded\","
                        "\"resultDescription\":\"Create or update resource diagnostic setting\","
                        "\"caller\":\"accessKey\",\"callerIpAddress\":\"127.0.0.1\",\"properties\":"
                        "{\"setting\":\"a\",\"n\":1}}\n");
    free(line);

    f.properties = "not json\n";
    line = line_of(&f, T0, RID, "local");
    json_t *j = parse_line(line);
    assert_string_equal(str_at(json_object_get(j, "properties"), "text"), "not json\n");
    json_decref(j);
    free(line);

    f.properties = "[1,2]"; /* JSON, but not an object */
    line = line_of(&f, T0, RID, "local");
    j = parse_line(line);
    assert_string_equal(str_at(json_object_get(j, "properties"), "text"), "[1,2]");
    json_decref(j);
    free(line);

    f.properties = NULL;
    f.status = NULL;
    f.caller = NULL;
    f.message = NULL;
    line = line_of(&f, T0, RID, "local");
    j = parse_line(line);
    static const char *const keys[] = {"time",     "level",         "resourceId",      "location",
                                       "category", "operationName", "callerIpAddress", "properties"};
    assert_keys(j, keys, 8);
    assert_int_equal(json_object_size(json_object_get(j, "properties")), 0);
    json_decref(j);
    free(line);
}

static void test_appends_to_existing_buffer(void **state) {
    sb_log_fields f = {.type = SB_LOGT_CONNECTIVITY, .message = "one"};
    sb_log_record *r = sb_log_record_new(&f);
    sb_buf b;
    sb_buf_init(&b);
    sb_log_record_archive_json(r, RID, "l", &b);
    size_t first = b.len;
    sb_log_record_archive_json(r, RID, "l", &b);
    assert_int_equal(b.len, 2 * first);
    assert_memory_equal(b.data, b.data + first, first);
    assert_int_equal(b.data[b.len], '\0');
    sb_buf_free(&b);
    sb_log_record_free(r);
}

/* ---- fan-out records ---- */

/* The shared fields of a SentToClient fan-out, as the producer (events.c) builds them. */
static sb_log_fields fanout_shared(uint64_t tracing_id, char *head, size_t headlen) {
    sb_log_fields f;
    sb_log_fields_sent_to_client(&f, "chat", tracing_id, head, headlen);
    return f;
}

static sb_log_record *fanout_of(const sb_log_fields *shared, const sb_log_recipient *rc, size_t n, int64_t t) {
    sb_log_record *r = sb_log_record_new_fanout(shared, &rc[0], NULL, 0);
    for (size_t i = 1; i < n; i++)
        sb_log_record_add_recipient(r, &rc[i]);
    r->time_us = t;
    return r;
}

/* The per-record path: one plain record per recipient, its message formatted whole. */
static char *plain_lines(const sb_log_fields *shared, const sb_log_recipient *rc, size_t n, int64_t t,
                         const char *rid, const char *location) {
    sb_buf b, msg;
    sb_buf_init(&b);
    sb_buf_init(&msg);
    for (size_t i = 0; i < n; i++) {
        sb_log_fields f = *shared;
        f.connection_id = rc[i].connection_id;
        f.user_id = rc[i].user_id;
        f.caller_ip = rc[i].caller_ip;
        f.transport_type = rc[i].transport_type;
        f.message_tail = NULL;
        if (shared->message) {
            sb_buf_reset(&msg);
            sb_buf_appends(&msg, shared->message);
            if (rc[i].connection_id)
                sb_buf_appends(&msg, rc[i].connection_id);
            if (shared->message_tail)
                sb_buf_appends(&msg, shared->message_tail);
            f.message = msg.data;
        }
        sb_log_record *r = sb_log_record_new(&f);
        r->time_us = t;
        sb_log_record_archive_json(r, rid, location, &b);
        sb_log_record_free(r);
    }
    sb_buf_free(&msg);
    if (!b.data)
        sb_buf_append(&b, "", 0);
    return sb_buf_steal(&b, NULL);
}

static char *fanout_lines(const sb_log_record *r, const char *rid, const char *location) {
    sb_buf b;
    sb_buf_init(&b);
    sb_log_record_archive_json(r, rid, location, &b);
    return sb_buf_steal(&b, NULL);
}

/* Fan-out lines == plain lines, and every line is one JSON object. */
static void expect_identical(const sb_log_fields *shared, const sb_log_recipient *rc, size_t n, const char *rid,
                             const char *location) {
    sb_log_record *r = fanout_of(shared, rc, n, T0);
    assert_int_equal(sb_log_record_count(r), n);
    char *want = plain_lines(shared, rc, n, T0, rid, location);
    char *got = fanout_lines(r, rid, location);
    assert_string_equal(got, want);
    size_t lines = 0;
    for (char *p = got; *p; lines++) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        json_error_t e;
        json_t *j = json_loadb(p, (size_t)(nl - p), 0, &e);
        if (!json_is_object(j))
            fail_msg("not JSON (%s): %.*s", e.text, (int)(nl - p), p);
        json_decref(j);
        p = nl + 1;
    }
    assert_int_equal(lines, n);
    free(want);
    free(got);
    sb_log_record_free(r);
}

static const sb_log_recipient hostile[] = {
    {"conn-1", "alice", "10.0.0.1", SB_LOG_TRANSPORT_WEBSOCKETS},
    {"c\"2\\", NULL, NULL, NULL},
    {"\xe2\x82", "bob\n", "::1", SB_LOG_TRANSPORT_SSE},       /* a cut sequence ends the id */
    {"\x80start\x01", "\xff", NULL, SB_LOG_TRANSPORT_LONGPOLLING}, /* a stray continuation byte starts it */
    {"", "", "", SB_LOG_TRANSPORT_WEBSOCKETS},
    {NULL, "u", "1.1.1.1", SB_LOG_TRANSPORT_WEBSOCKETS},
    {"caf\xc3\xa9\xf0\x9f\x98\x80-longer-than-eight-bytes\"x", "\xed\xa0\x80", "10.0.0.2", "Web\"Sockets"},
};

static void test_fanout_lines_identical(void **state) {
    char head[96];
    sb_log_fields shared = fanout_shared(1234567890123ull, head, sizeof head);
    size_t n = sizeof hostile / sizeof hostile[0];
    expect_identical(&shared, hostile, n, RID, "westus");
    expect_identical(&shared, hostile, n, NULL, NULL); /* no resource id, no location */
    expect_identical(&shared, hostile, 1, RID, "westus");
    /* shared fields the producer should not have set are not the recipients' */
    sb_log_fields noisy = shared;
    noisy.connection_id = "IGNORED";
    noisy.user_id = "IGNORED";
    noisy.caller_ip = "IGNORED";
    noisy.transport_type = "IGNORED";
    sb_log_record *r = fanout_of(&noisy, hostile, n, T0);
    char *got = fanout_lines(r, RID, "westus");
    assert_null(strstr(got, "IGNORED"));
    char *want = plain_lines(&shared, hostile, n, T0, RID, "westus");
    assert_string_equal(got, want);
    free(got);
    free(want);
    sb_log_record_free(r);
    /* every optional shared field present, a level, no tail, no message, another type */
    shared.group = "g\"1";
    shared.message_type = "BroadcastDataMessage";
    shared.level = SB_LEVEL_WARNING;
    expect_identical(&shared, hostile, n, RID, "l");
    shared.message_tail = NULL;
    expect_identical(&shared, hostile, n, RID, "l");
    shared.message = NULL;
    expect_identical(&shared, hostile, n, RID, "l");
    shared.has_tracing_id = 0;
    shared.collection = NULL;
    shared.connection_type = NULL;
    shared.hub = NULL;
    shared.operation_name = NULL;
    expect_identical(&shared, hostile, n, RID, "l");
    sb_log_fields http = {.type = SB_LOGT_HTTP,
                          .operation_name = SB_OP_HTTP_REQUEST,
                          .message = "GET ",
                          .message_tail = " 200",
                          .http_method = "GET",
                          .url = "/x",
                          .status_code = 200,
                          .duration_ms = 1.5};
    expect_identical(&http, hostile, n, RID, "l");
}

/* The recipient's fields cut at every byte of a string with escapes and multi-byte characters, alone and
 * next to each other in one fan-out. */
static void test_fanout_prefixes_byte_at_a_time(void **state) {
    const char *s = "a\"\xc3\xa9\n\xe4\xb8\xad\\\xf0\x9f\x98\x80z\x01";
    size_t n = strlen(s);
    char *prefix[32];
    sb_log_recipient rc[32];
    assert_true(n + 1 <= 32);
    for (size_t k = 0; k <= n; k++) {
        prefix[k] = strndup(s, k);
        rc[k] = (sb_log_recipient){prefix[k], prefix[k], prefix[k], SB_LOG_TRANSPORT_WEBSOCKETS};
    }
    char head[96];
    sb_log_fields shared = fanout_shared(7, head, sizeof head);
    expect_identical(&shared, rc, n + 1, RID, "l");
    for (size_t k = 0; k <= n; k++)
        expect_identical(&shared, &rc[k], 1, RID, "l");
    for (size_t k = 0; k <= n; k++)
        free(prefix[k]);
}

/* A message whose pieces meet at non-ASCII bytes cannot be escaped in pieces: the lines are still the same. */
static void test_fanout_message_not_split_cleanly(void **state) {
    static const char *const heads[] = {"caf\xc3\xa9", "cut \xe2\x82", "ok "};
    static const char *const tails[] = {"\xa9 tail", " tail", "\x80"};
    sb_log_recipient rc[] = {{"x", NULL, NULL, NULL}, {"\xe2", NULL, NULL, NULL}, {"", NULL, NULL, NULL},
                             {"\x82\xac", NULL, NULL, NULL}};
    for (size_t h = 0; h < 3; h++)
        for (size_t t = 0; t < 3; t++) {
            sb_log_fields shared = {.type = SB_LOGT_MESSAGING, .message = heads[h], .message_tail = tails[t]};
            expect_identical(&shared, rc, 4, RID, "l");
        }
}

static void test_fanout_count_and_walk(void **state) {
    char head[96];
    sb_log_fields shared = fanout_shared(42, head, sizeof head);
    char conn[] = "conn-1", user[] = "alice", ip[] = "10.0.0.1";
    sb_log_recipient first = {conn, user, ip, SB_LOG_TRANSPORT_WEBSOCKETS};
    sb_log_record *r = sb_log_record_new_fanout(&shared, &first, NULL, 0);
    memset(conn, 'x', 5); /* recipients are copied */
    memset(user, 'y', 5);
    memset(ip, 'z', 8);
    memset(head, 'w', 10);
    sb_log_recipient second = {"conn-2", NULL, NULL, SB_LOG_TRANSPORT_SSE};
    sb_log_record_add_recipient(r, &second);
    assert_int_equal(sb_log_record_count(r), 2);
    assert_int_equal(r->rcpt_n, 2);
    assert_null(r->connection_id);
    assert_null(r->user_id);
    assert_null(r->caller_ip);
    assert_null(r->transport_type);
    assert_string_equal(r->message_tail, SB_MSG_SENT_TO_CLIENT_TAIL);

    sb_log_record view;
    sb_buf msg;
    sb_buf_init(&msg);
    size_t pos = 0;
    const sb_log_record *v = sb_log_record_next(r, &pos, &view, &msg);
    assert_ptr_equal(v, &view);
    assert_string_equal(v->connection_id, "conn-1");
    assert_string_equal(v->user_id, "alice");
    assert_string_equal(v->caller_ip, "10.0.0.1");
    assert_ptr_equal(v->transport_type, SB_LOG_TRANSPORT_WEBSOCKETS);
    assert_string_equal(v->message, "Sent a message 42 to client connection conn-1 successfully.");
    assert_string_equal(v->hub, "chat");
    assert_int_equal(v->tracing_id, 42);
    assert_int_equal(v->time_us, r->time_us);
    assert_int_equal(sb_log_record_count(v), 1);
    assert_null(v->message_tail);
    v = sb_log_record_next(r, &pos, &view, &msg);
    assert_non_null(v);
    assert_string_equal(v->connection_id, "conn-2");
    assert_null(v->user_id);
    assert_null(v->caller_ip);
    assert_ptr_equal(v->transport_type, SB_LOG_TRANSPORT_SSE);
    assert_string_equal(v->message, "Sent a message 42 to client connection conn-2 successfully.");
    assert_null(sb_log_record_next(r, &pos, &view, &msg));
    assert_null(sb_log_record_next(r, &pos, &view, &msg)); /* and stays at the end */

    /* a plain record walks as itself, once */
    sb_log_fields f = {.type = SB_LOGT_CONNECTIVITY, .message = "m"};
    sb_log_record *p = sb_log_record_new(&f);
    assert_int_equal(sb_log_record_count(p), 1);
    pos = 0;
    assert_ptr_equal(sb_log_record_next(p, &pos, &view, &msg), p);
    assert_null(sb_log_record_next(p, &pos, &view, &msg));
    size_t cap = 99;
    assert_null(sb_log_record_free_keep_block(p, &cap)); /* no block to keep */
    assert_int_equal(cap, 0);

    /* the block outlives its record and serves the next fan-out (grown when too small) */
    void *block = sb_log_record_free_keep_block(r, &cap);
    assert_non_null(block);
    assert_true(cap >= 2 * 20);
    sb_log_recipient many[300];
    char ids[300][16];
    for (int i = 0; i < 300; i++) {
        snprintf(ids[i], sizeof ids[i], "id-%d", i);
        many[i] = (sb_log_recipient){ids[i], i % 2 ? "u" : NULL, i % 3 ? "127.0.0.1" : NULL,
                                     SB_LOG_TRANSPORT_WEBSOCKETS};
    }
    r = sb_log_record_new_fanout(&shared, &many[0], block, cap);
    assert_ptr_equal(r->rcpt, block);
    for (int i = 1; i < 300; i++)
        sb_log_record_add_recipient(r, &many[i]);
    assert_int_equal(sb_log_record_count(r), 300);
    assert_true(r->rcpt_cap >= r->rcpt_len);
    pos = 0;
    for (int i = 0; i < 300; i++) {
        v = sb_log_record_next(r, &pos, &view, &msg);
        assert_non_null(v);
        assert_string_equal(v->connection_id, ids[i]);
    }
    assert_null(sb_log_record_next(r, &pos, &view, &msg));
    r->time_us = T0;
    char *got = fanout_lines(r, RID, "l");
    char *want = plain_lines(&shared, many, 300, T0, RID, "l");
    assert_string_equal(got, want);
    free(got);
    free(want);
    sb_log_record_free(r);
    sb_log_record_free(NULL);
    sb_buf_free(&msg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_new_copies),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_connectivity_line_exact),
        cmocka_unit_test(test_every_field_in_order),
        cmocka_unit_test(test_absent_fields_omitted),
        cmocka_unit_test(test_duration_and_numbers),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_prefixes_byte_at_a_time),
        cmocka_unit_test(test_resource_id_upper_and_escaped),
        cmocka_unit_test(test_activity_line),
        cmocka_unit_test(test_appends_to_existing_buffer),
        cmocka_unit_test(test_fanout_lines_identical),
        cmocka_unit_test(test_fanout_prefixes_byte_at_a_time),
        cmocka_unit_test(test_fanout_message_not_split_cleanly),
        cmocka_unit_test(test_fanout_count_and_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
