/*
 * test_upstream.c - serverless upstream's settings and HTTP client.  First the
 * pure part (src/upstream/upstream.c):
 * Azure's pattern rules and the first-match rule (with the connect event's
 * special case), URL template expansion and escaping, template validation,
 * the ARM/persisted JSON shape with every refusal, the durable save and the
 * loader (every prefix of a valid file is refused cleanly), the X-ASRS-Signature
 * value against vectors computed independently with node:crypto, and the
 * X-ASRS-User-Claims value.
 *
 * Then the libcurl-on-libuv client (src/upstream/http_multi.c) against a tiny
 * HTTP server on the same loop that reads requests a byte at a time: answers,
 * status codes, kept-alive connections, a body over the limit, a refused
 * connection, timeouts (also while queued), the queue bound, retries, and
 * cancellation by close.  Each test counts its callbacks and checks that the
 * loop closes with nothing left open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "upstream/http_multi.h"
#include "upstream/upstream.h"
#include "util/alloc.h"
#include "util/error.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static json_t *load(const char *text) {
    json_error_t jerr;
    json_t *j =
        json_loads(text, JSON_ALLOW_NUL, &jerr); /* NULs reach the checks, as a caller could send them */
    if (!j)
        fail_msg("test JSON does not parse: %s: %s", jerr.text, text);
    return j;
}

/* Parse an upstream object; returns the code, message in err. */
static int parse(const char *text, sb_upstream_settings *s, char *err, size_t errlen) {
    json_t *j = load(text);
    err[0] = '\0';
    int rc = sb_upstream_settings_from_json(s, j, err, errlen);
    json_decref(j);
    return rc;
}

static void expect_refused(const char *text, const char *needle) {
    sb_upstream_settings s;
    char err[512];
    assert_int_equal(parse(text, &s, err, sizeof err), SB_EINVAL);
    assert_int_equal(s.n, 0);
    assert_null(s.v);
    if (!strstr(err, needle))
        fail_msg("error for %s is \"%s\", expected it to contain \"%s\"", text, err, needle);
}

/* ---- patterns ---- */

static void test_pattern_star_list_exact(void **state) {
    assert_true(sb_upstream_pattern_match("*", "anything", 0, 1));
    assert_false(sb_upstream_pattern_match("*", "anything", 0, 0));
    assert_true(sb_upstream_pattern_match("a,b,c", "b", 0, 1));
    assert_true(sb_upstream_pattern_match(" a , b ,\tc ", "c", 0, 1));
    assert_false(sb_upstream_pattern_match("a,b,c", "d", 0, 1));
    assert_false(sb_upstream_pattern_match("a,b,c", "a,b", 0, 1));
    assert_true(sb_upstream_pattern_match("send", "send", 0, 1));
    assert_false(sb_upstream_pattern_match("send", "sendx", 0, 1));
    assert_false(sb_upstream_pattern_match("sendx", "send", 0, 1));
    /* a '*' item anywhere in a list matches everything (Azure's set semantics) */
    assert_true(sb_upstream_pattern_match("a, *", "zzz", 0, 1));
    assert_false(sb_upstream_pattern_match("a, *", "zzz", 0, 0));
    assert_true(sb_upstream_pattern_match("a, *", "a", 0, 0));
    /* '*' is only special alone */
    assert_false(sb_upstream_pattern_match("se*", "send", 0, 1));
    assert_false(sb_upstream_pattern_match("**", "send", 0, 1));
    /* empty items match nothing real */
    assert_false(sb_upstream_pattern_match(",,", "a", 0, 1));
    assert_true(sb_upstream_pattern_match(",a,", "a", 0, 1));
}

static void test_pattern_case(void **state) {
    assert_false(sb_upstream_pattern_match("Send", "send", 0, 1));
    assert_true(sb_upstream_pattern_match("Send", "send", 1, 1));
    assert_true(sb_upstream_pattern_match("CHAT, other", "chat", 1, 1));
}

static sb_upstream_settings make(const char *text) {
    sb_upstream_settings s;
    char err[512];
    if (parse(text, &s, err, sizeof err) != SB_OK)
        fail_msg("settings refused: %s: %s", err, text);
    return s;
}

static void test_match_first_wins(void **state) {
    sb_upstream_settings s =
        make("{\"templates\":["
             "{\"urlTemplate\":\"http://a/\",\"hubPattern\":\"chat\",\"eventPattern\":\"send\"},"
             "{\"urlTemplate\":\"http://b/\",\"categoryPattern\":\"connections\"},"
             "{\"urlTemplate\":\"http://c/\"}]}");
    const sb_upstream_template *t = sb_upstream_match(&s, "chat", "messages", "send", 0);
    assert_non_null(t);
    assert_string_equal(t->url_template, "http://a/");
    t = sb_upstream_match(&s, "CHAT", "messages", "send", 0); /* hubs ignore case */
    assert_string_equal(t->url_template, "http://a/");
    t = sb_upstream_match(&s, "chat", "messages", "Send", 0); /* events do not */
    assert_string_equal(t->url_template, "http://c/");
    t = sb_upstream_match(&s, "chat", "connections", "connected", 0);
    assert_string_equal(t->url_template, "http://b/");
    t = sb_upstream_match(&s, "other", "messages", "send", 0);
    assert_string_equal(t->url_template, "http://c/");
    sb_upstream_settings_free(&s);

    sb_upstream_settings none;
    sb_upstream_settings_init(&none);
    assert_null(sb_upstream_match(&none, "chat", "messages", "send", 1));
    sb_upstream_settings narrow =
        make("{\"templates\":[{\"urlTemplate\":\"http://a/\",\"hubPattern\":\"x,y\"}]}");
    assert_null(sb_upstream_match(&narrow, "chat", "messages", "send", 1));
    assert_non_null(sb_upstream_match(&narrow, "y", "messages", "send", 1));
    sb_upstream_settings_free(&narrow);
}

static void test_match_connect_event(void **state) {
    sb_upstream_settings star = make("{\"templates\":[{\"urlTemplate\":\"http://a/\"}]}");
    assert_null(sb_upstream_match(&star, "chat", "connections", "connect", 0));
    assert_non_null(sb_upstream_match(&star, "chat", "connections", "connect", 1));
    assert_non_null(sb_upstream_match(&star, "chat", "connections", "connected", 0));
    /* a target named "connect" is an ordinary message event */
    assert_non_null(sb_upstream_match(&star, "chat", "messages", "connect", 0));
    sb_upstream_settings_free(&star);

    sb_upstream_settings named =
        make("{\"templates\":[{\"urlTemplate\":\"http://a/\",\"eventPattern\":\"connected, connect\"},"
             "{\"urlTemplate\":\"http://b/\",\"eventPattern\":\"*\"}]}");
    const sb_upstream_template *t = sb_upstream_match(&named, "chat", "connections", "connect", 0);
    assert_non_null(t);
    assert_string_equal(t->url_template, "http://a/");
    sb_upstream_settings_free(&named);

    sb_upstream_settings later =
        make("{\"templates\":[{\"urlTemplate\":\"http://a/\",\"eventPattern\":\"*\"},"
             "{\"urlTemplate\":\"http://b/\",\"eventPattern\":\"connect\"}]}");
    t = sb_upstream_match(&later, "chat", "connections", "connect", 0);
    assert_non_null(t);
    assert_string_equal(t->url_template, "http://b/"); /* the '*' template is skipped for connect */
    t = sb_upstream_match(&later, "chat", "connections", "connect", 1);
    assert_string_equal(t->url_template, "http://a/");
    sb_upstream_settings_free(&later);
}

/* ---- URLs ---- */

static char *expand(const char *tmpl, const char *hub, const char *cat, const char *ev) {
    sb_buf b;
    sb_buf_init(&b);
    sb_upstream_expand(tmpl, hub, cat, ev, &b);
    return b.data ? b.data : sb_strdup("");
}

static void test_expand(void **state) {
    char *u = expand("http://host.com/{hub}/api/{category}/{event}", "chat", "connections", "connected");
    assert_string_equal(u, "http://host.com/chat/api/connections/connected");
    sb_free(u);
    u = expand("https://h/x?code=k&e={event}&e2={event}", "chat", "messages", "a b/c?d&e=f#g%");
    assert_string_equal(u,
                        "https://h/x?code=k&e=a%20b%2Fc%3Fd%26e%3Df%23g%25&e2=a%20b%2Fc%3Fd%26e%3Df%23g%25");
    sb_free(u);
    /* UTF-8 bytes are escaped one by one, upper-case hex; unreserved characters stay */
    u = expand("http://h/{event}", "chat", "messages", "\xc3\xa9-._~AZaz09");
    assert_string_equal(u, "http://h/%C3%A9-._~AZaz09");
    sb_free(u);
    /* unknown, unclosed and wrong-case placeholders stay as written */
    u = expand("http://h/{Hub}/{x}/{hub/{hub", "chat", "messages", "e");
    assert_string_equal(u, "http://h/{Hub}/{x}/{hub/{hub");
    sb_free(u);
    u = expand("http://h/{{hub}}", "chat", "messages", "e");
    assert_string_equal(u, "http://h/{chat}");
    sb_free(u);
    u = expand("", "chat", "messages", "e");
    assert_string_equal(u, "");
    sb_free(u);
}

static void test_escape(void **state) {
    sb_buf b;
    sb_buf_init(&b);
    sb_upstream_escape("", &b);
    assert_int_equal(b.len, 0);
    sb_upstream_escape("!*'();:@&=+$,/?#[] \x7f", &b);
    assert_string_equal(b.data, "%21%2A%27%28%29%3B%3A%40%26%3D%2B%24%2C%2F%3F%23%5B%5D%20%7F");
    sb_buf_free(&b);
}

static void test_url_template_valid(void **state) {
    assert_true(sb_upstream_url_template_valid("http://h"));
    assert_true(sb_upstream_url_template_valid("HTTPS://h:8443/runtime/webhooks/signalr?code=x"));
    assert_true(sb_upstream_url_template_valid("http://{hub}.example.com/{category}/{event}"));
    assert_false(sb_upstream_url_template_valid(""));
    assert_false(sb_upstream_url_template_valid("http://"));
    assert_false(sb_upstream_url_template_valid("http:///path"));
    assert_false(sb_upstream_url_template_valid("http://?q"));
    assert_false(sb_upstream_url_template_valid("ftp://h/"));
    assert_false(sb_upstream_url_template_valid("h/path"));
    assert_false(sb_upstream_url_template_valid("http://h/a b"));
    assert_false(sb_upstream_url_template_valid("http://h/a\r\nX: y"));
    assert_false(sb_upstream_url_template_valid("http://h/\xc3\xa9"));
    char longer[SB_UPSTREAM_MAX_URL_BYTES + 2];
    memcpy(longer, "http://h/", 9);
    memset(longer + 9, 'a', sizeof longer - 10);
    longer[sizeof longer - 1] = '\0';
    assert_false(sb_upstream_url_template_valid(longer));
    longer[sizeof longer - 2] = '\0'; /* exactly the limit */
    assert_true(sb_upstream_url_template_valid(longer));
}

/* ---- settings JSON ---- */

static void test_settings_full_and_defaults(void **state) {
    sb_upstream_settings s =
        make("{\"templates\":[{\"urlTemplate\":\"http://a/"
             "{event}\",\"hubPattern\":\"chat\",\"eventPattern\":\"x,y\","
             "\"categoryPattern\":\"messages\",\"auth\":{\"type\":\"None\"}},"
             "{\"UrlTemplate\":\"http://b/\",\"HubPattern\":\"  \",\"EventPattern\":null,\"extra\":1,"
             "\"Auth\":{\"Type\":\"none\"}}]}");
    assert_int_equal(s.n, 2);
    assert_string_equal(s.v[0].url_template, "http://a/{event}");
    assert_string_equal(s.v[0].hub_pattern, "chat");
    assert_string_equal(s.v[0].event_pattern, "x,y");
    assert_string_equal(s.v[0].category_pattern, "messages");
    assert_string_equal(s.v[1].url_template, "http://b/");
    assert_string_equal(s.v[1].hub_pattern, "*");
    assert_string_equal(s.v[1].event_pattern, "*");
    assert_string_equal(s.v[1].category_pattern, "*");

    /* rendering, and the round trip GET -> PATCH -> GET */
    json_t *out = sb_upstream_settings_to_json(&s);
    json_t *expected =
        load("{\"templates\":[{\"urlTemplate\":\"http://a/{event}\",\"hubPattern\":\"chat\","
             "\"eventPattern\":\"x,y\",\"categoryPattern\":\"messages\",\"auth\":{\"type\":\"None\"}},"
             "{\"urlTemplate\":\"http://b/\",\"hubPattern\":\"*\",\"eventPattern\":\"*\","
             "\"categoryPattern\":\"*\",\"auth\":{\"type\":\"None\"}}]}");
    assert_true(json_equal(out, expected));
    sb_upstream_settings again;
    char err[256];
    assert_int_equal(sb_upstream_settings_from_json(&again, out, err, sizeof err), SB_OK);
    json_t *out2 = sb_upstream_settings_to_json(&again);
    assert_true(json_equal(out, out2));

    sb_upstream_settings copy;
    sb_upstream_settings_copy(&copy, &s);
    assert_int_equal(copy.n, 2);
    assert_ptr_not_equal(copy.v[0].url_template, s.v[0].url_template);
    assert_string_equal(copy.v[1].url_template, "http://b/");
    sb_upstream_settings_free(&copy);
    assert_int_equal(copy.n, 0);

    json_decref(out);
    json_decref(out2);
    json_decref(expected);
    sb_upstream_settings_free(&again);
    sb_upstream_settings_free(&s);
}

static void test_settings_empty_lists(void **state) {
    const char *empty[] = {"{}", "{\"templates\":null}", "{\"templates\":[]}", "{\"Templates\":[]}"};
    for (size_t i = 0; i < ARRAY_LEN(empty); i++) {
        sb_upstream_settings s = make(empty[i]);
        assert_int_equal(s.n, 0);
        json_t *out = sb_upstream_settings_to_json(&s);
        assert_int_equal(json_array_size(json_object_get(out, "templates")), 0);
        json_decref(out);
        sb_upstream_settings_free(&s);
    }
    sb_upstream_settings copy, none;
    sb_upstream_settings_init(&none);
    sb_upstream_settings_copy(&copy, &none);
    assert_int_equal(copy.n, 0);
    assert_null(copy.v);
}

static void test_settings_refusals(void **state) {
    expect_refused("[]", "upstream must be an object");
    expect_refused("{\"templates\":{}}", "upstream.templates must be an array");
    expect_refused("{\"templates\":[1]}", "upstream.templates[0] must be an object");
    expect_refused("{\"templates\":[{}]}", "upstream.templates[0].urlTemplate is required");
    expect_refused("{\"templates\":[{\"urlTemplate\":\"\"}]}", "urlTemplate is required");
    expect_refused("{\"templates\":[{\"urlTemplate\":5}]}", "urlTemplate is required");
    expect_refused("{\"templates\":[{\"urlTemplate\":\"http://ok/\"},{\"urlTemplate\":\"/relative\"}]}",
                   "upstream.templates[1].urlTemplate must be an absolute http or https URL");
    expect_refused("{\"templates\":[{\"urlTemplate\":\"http://a/\\u0000b\"}]}", "must be an absolute");
    expect_refused("{\"templates\":[{\"urlTemplate\":\"http://a/\",\"hubPattern\":7}]}",
                   "upstream.templates[0].hubPattern must be a string");
    expect_refused("{\"templates\":[{\"urlTemplate\":\"http://a/\",\"eventPattern\":[\"a\"]}]}",
                   "eventPattern must be a string");
    expect_refused("{\"templates\":[{\"urlTemplate\":\"http://a/\",\"categoryPattern\":\"a\\u0000b\"}]}",
                   "categoryPattern must be at most");
    expect_refused("{\"templates\":[{\"urlTemplate\":\"http://a/\",\"auth\":{\"type\":\"ManagedIdentity\","
                   "\"managedIdentity\":{\"resource\":\"api://x\"}}}]}",
                   "auth.type 'ManagedIdentity' is not supported");
    expect_refused("{\"templates\":[{\"urlTemplate\":\"http://a/\",\"auth\":\"None\"}]}",
                   "auth must be an object");
    expect_refused("{\"templates\":[{\"urlTemplate\":\"http://a/\",\"auth\":{\"type\":3}}]}",
                   "auth must be an object");

    /* the pattern limit is exact */
    char pat[SB_UPSTREAM_MAX_PATTERN_BYTES + 2];
    memset(pat, 'p', sizeof pat - 1);
    pat[sizeof pat - 1] = '\0';
    char *text = sb_asprintf("{\"templates\":[{\"urlTemplate\":\"http://a/\",\"hubPattern\":\"%s\"}]}", pat);
    expect_refused(text, "hubPattern must be at most 1024 bytes");
    sb_free(text);
    pat[sizeof pat - 2] = '\0';
    text = sb_asprintf("{\"templates\":[{\"urlTemplate\":\"http://a/\",\"hubPattern\":\"%s\"}]}", pat);
    sb_upstream_settings ok = make(text);
    assert_int_equal(ok.n, 1);
    sb_upstream_settings_free(&ok);
    sb_free(text);

    /* the template count limit is exact */
    sb_buf b;
    sb_buf_init(&b);
    sb_buf_appends(&b, "{\"templates\":[");
    for (int i = 0; i < SB_UPSTREAM_MAX_TEMPLATES; i++)
        sb_buf_appendf(&b, "%s{\"urlTemplate\":\"http://h%d/\"}", i ? "," : "", i);
    sb_buf_appends(&b, "]}");
    sb_upstream_settings max = make(b.data);
    assert_int_equal(max.n, SB_UPSTREAM_MAX_TEMPLATES);
    sb_upstream_settings_free(&max);
    b.len -= 2;
    sb_buf_appends(&b, ",{\"urlTemplate\":\"http://one-more/\"}]}");
    expect_refused(b.data, "at most 64 are allowed");
    sb_buf_free(&b);
}

static void test_settings_single(void **state) {
    sb_upstream_settings s;
    char err[256] = "";
    assert_int_equal(sb_upstream_settings_single(&s, "", err, sizeof err), SB_OK);
    assert_int_equal(s.n, 0);
    assert_int_equal(sb_upstream_settings_single(&s, NULL, err, sizeof err), SB_OK);
    assert_int_equal(s.n, 0);
    assert_int_equal(
        sb_upstream_settings_single(&s, "http://up:7071/runtime/webhooks/signalr", err, sizeof err), SB_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.v[0].hub_pattern, "*");
    assert_string_equal(s.v[0].category_pattern, "*");
    assert_string_equal(s.v[0].event_pattern, "*");
    assert_non_null(sb_upstream_match(&s, "any", "messages", "anything", 0));
    assert_null(sb_upstream_match(&s, "any", "connections", "connect", 0));
    sb_upstream_settings_free(&s);
    assert_int_equal(sb_upstream_settings_single(&s, "not a url", err, sizeof err), SB_EINVAL);
    assert_int_equal(s.n, 0);
    assert_non_null(strstr(err, "upstream_url_template"));
}

/* ---- persisted document ---- */

static char *temp_dir(void) {
    char tmpl[] = "/tmp/sb-test-upstream-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return sb_strdup(d);
}

static void write_file(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void test_save_load_round_trip(void **state) {
    char *dir = temp_dir();
    char *path = sb_asprintf("%s/upstream.json", dir);
    sb_upstream_settings s, back;
    char err[512];
    assert_int_equal(sb_upstream_settings_load(&s, path, err, sizeof err), SB_ENOENT);
    assert_int_equal(s.n, 0);

    s = make("{\"templates\":[{\"urlTemplate\":\"http://a/{hub}\",\"hubPattern\":\"chat\"},"
             "{\"urlTemplate\":\"https://b/\"}]}");
    json_t *doc = sb_upstream_settings_to_json(&s);
    char *text = json_dumps(doc, JSON_INDENT(2));
    assert_int_equal(sb_upstream_settings_save_text(path, text), SB_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *tmp = sb_asprintf("%s.tmp", path);
    assert_int_not_equal(access(tmp, F_OK), 0); /* renamed away */
    assert_int_equal(sb_upstream_settings_load(&back, path, err, sizeof err), SB_OK);
    assert_int_equal(back.n, 2);
    json_t *doc2 = sb_upstream_settings_to_json(&back);
    assert_true(json_equal(doc, doc2));
    sb_upstream_settings_free(&back);

    /* every proper prefix of the file is refused with a message, never crashes */
    size_t len = strlen(text);
    for (size_t n = 0; n < len; n++) {
        write_file(path, text, n);
        err[0] = '\0';
        assert_int_equal(sb_upstream_settings_load(&back, path, err, sizeof err), SB_EINVAL);
        assert_int_equal(back.n, 0);
        assert_non_null(strstr(err, path));
    }
    /* valid JSON, invalid content */
    write_file(path, "{\"templates\":[{\"urlTemplate\":\"nope\"}]}", 38);
    assert_int_equal(sb_upstream_settings_load(&back, path, err, sizeof err), SB_EINVAL);
    assert_non_null(strstr(err, "urlTemplate"));
    /* a directory where the file should be */
    char *sub = sb_asprintf("%s/sub.json", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_not_equal(sb_upstream_settings_load(&back, sub, err, sizeof err), SB_OK);
    assert_int_not_equal(sb_upstream_settings_save_text(sub, "{}"), SB_OK);
    /* saving into a missing directory fails cleanly */
    char *missing = sb_asprintf("%s/no/such/upstream.json", dir);
    assert_int_not_equal(sb_upstream_settings_save_text(missing, "{}"), SB_OK);

    unlink(path);
    rmdir(sub);
    rmdir(dir);
    free(text);
    json_decref(doc);
    json_decref(doc2);
    sb_upstream_settings_free(&s);
    sb_free(missing);
    sb_free(sub);
    sb_free(tmp);
    sb_free(path);
    sb_free(dir);
}

/* ---- header values ---- */

static char *signature(const char *const *keys, size_t n, const char *id) {
    sb_buf b;
    sb_buf_init(&b);
    sb_upstream_signature(keys, n, id, &b);
    return b.data ? b.data : sb_strdup("");
}

static void test_signature_vectors(void **state) {
    /* expected values: node -e 'crypto.createHmac("sha256",
     * Buffer.from(key,"utf8")).update(id).digest("hex")' upper-cased, computed outside this code base */
    const char *emulator_key[] = {"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"};
    char *sig = signature(emulator_key, 1, "connection-id-1");
    assert_string_equal(sig, "sha256=E9020AD5BB727182A3594827573348A64508E6238D8FC4B738CFB64D7135322B");
    sb_free(sig);
    const char *two[] = {"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH", "secondary-key-\xc3\xbc"};
    sig = signature(two, 2, "conn2");
    char *first = signature(two, 1, "conn2");
    char *expected =
        sb_asprintf("%s,sha256=AA1B87C08F694B61BFCA9D2D2F14F68E01C1FA684A152CCF6822C970B064730D", first);
    assert_string_equal(sig, expected);
    sb_free(sig);
    sb_free(first);
    sb_free(expected);
    const char *empty[] = {""};
    sig = signature(empty, 1, "x");
    assert_string_equal(sig, "sha256=4CBC96099A6467CE002461F10549B4898265EBE6188B45EFACC44293516E62C4");
    sb_free(sig);
    sig = signature(NULL, 0, "x");
    assert_string_equal(sig, "");
    sb_free(sig);
}

static char *claims(const char *json) {
    json_t *j = load(json);
    sb_buf b;
    sb_buf_init(&b);
    sb_upstream_claims_header(j, &b);
    json_decref(j);
    return b.data ? b.data : sb_strdup("");
}

static void test_claims_header(void **state) {
    char *h =
        claims("{\"aud\":\"http://x/client/?hub=chat\",\"iat\":1,\"nbf\":1,\"exp\":2,\"iss\":\"me\","
               "\"nameid\":\"alice\",\"asrs.s.uid\":\"alice\",\"asrs.s.dc\":\"true\",\"role\":[\"a\",\"b\"],"
               "\"asrs.u.aud\":\"custom\",\"level\":3,\"admin\":true,\"skip\":null,\"jti\":\"j\","
               "\"nonce\":\"n\",\"acr\":\"1\",\"azp\":\"p\",\"c_hash\":\"h\",\"actort\":\"t\","
               "\"obj\":{\"k\":\"v\"}}");
    assert_string_equal(
        h, "nameid: alice, role: a, role: b, aud: custom, level: 3, admin: true, obj: {\"k\":\"v\"}");
    sb_free(h);
    h = claims("{\"aud\":\"x\",\"exp\":1,\"asrs.s.uid\":\"u\"}");
    assert_string_equal(h, "");
    sb_free(h);
    h = claims("{}");
    assert_string_equal(h, "");
    sb_free(h);
    /* a claim cannot break the header line */
    h = claims("{\"name\":\"a\\r\\nX-Injected: 1\",\"t\\nx\":\"v\"}");
    assert_string_equal(h, "name: a  X-Injected: 1, t x: v");
    sb_free(h);
    /* not an object: nothing */
    h = claims("[1,2]");
    assert_string_equal(h, "");
    sb_free(h);
}

static void test_header_value(void **state) {
    sb_buf b;
    sb_buf_init(&b);
    sb_upstream_header_value("plain \xc3\xa9 ok", &b);
    assert_string_equal(b.data, "plain \xc3\xa9 ok");
    sb_buf_reset(&b);
    sb_upstream_header_value("a\rb\nc\td\x7f"
                             "e\x01",
                             &b);
    assert_string_equal(b.data, "a b c d e ");
    sb_buf_free(&b);
}

/* ---- http_multi: a tiny HTTP server on the same loop ---- */

/* Answers by path: /ok -> 200 "hello", /big -> 200 with 100 bytes, /500, /503, /slow -> never. */
typedef struct test_server {
    uv_tcp_t listener;
    int port;
    int requests; /* complete requests seen */
    int accepted; /* TCP connections */
    sb_list peers;
} test_server;

typedef struct peer {
    uv_tcp_t tcp;
    sb_buf in;
    test_server *ts;
    sb_list link;
} peer;

static void on_peer_closed(uv_handle_t *h) {
    peer *p = h->data;
    sb_buf_free(&p->in);
    sb_free(p);
}

static void on_written(uv_write_t *w, int status) {
    sb_free(w);
}

static void respond(peer *p, const char *text) {
    uv_write_t *w = sb_malloc(sizeof *w);
    uv_buf_t b = uv_buf_init((char *)text, (unsigned)strlen(text));
    uv_write(w, (uv_stream_t *)&p->tcp, &b, 1, on_written);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
    static char one;
    *b = uv_buf_init(&one, 1); /* a byte at a time: the request arrives in every possible split */
}

static void on_peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    peer *p = s->data;
    if (n < 0) {
        sb_list_remove(&p->link);
        uv_close((uv_handle_t *)&p->tcp, on_peer_closed);
        return;
    }
    sb_buf_append(&p->in, b->base, (size_t)n);
    for (;;) {
        char *end = p->in.data ? strstr(p->in.data, "\r\n\r\n") : NULL;
        if (!end)
            return;
        char *cl = strcasestr(p->in.data, "Content-Length:");
        size_t body = cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
        size_t total = (size_t)(end - p->in.data) + 4 + body;
        if (p->in.len < total)
            return;
        p->ts->requests++;
        if (strncmp(p->in.data, "POST /ok ", 9) == 0)
            respond(p, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        else if (strncmp(p->in.data, "POST /big ", 10) == 0)
            respond(p, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                       "0123456789012345678901234567890123456789012345678901234567890123456789"
                       "012345678901234567890123456789");
        else if (strncmp(p->in.data, "POST /500 ", 10) == 0)
            respond(p, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
        else if (strncmp(p->in.data, "POST /503 ", 10) == 0)
            respond(p, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
        /* /slow: no answer */
        sb_buf_consume(&p->in, total);
    }
}

static void on_test_conn(uv_stream_t *l, int status) {
    test_server *ts = l->data;
    peer *p = sb_calloc(1, sizeof *p);
    p->ts = ts;
    sb_buf_init(&p->in);
    uv_tcp_init(l->loop, &p->tcp);
    p->tcp.data = p;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&p->tcp), 0);
    sb_list_insert_tail(&ts->peers, &p->link);
    ts->accepted++;
    uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_peer_read);
}

static void server_start(uv_loop_t *loop, test_server *ts) {
    memset(ts, 0, sizeof *ts);
    sb_list_init(&ts->peers);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, &ts->listener);
    ts->listener.data = ts;
    assert_int_equal(uv_tcp_bind(&ts->listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&ts->listener, 16, on_test_conn), 0);
    struct sockaddr_in bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&ts->listener, (struct sockaddr *)&bound, &len);
    ts->port = ntohs(bound.sin_port);
}

static void server_stop(test_server *ts) {
    while (!sb_list_empty(&ts->peers)) {
        peer *p = sb_container_of(ts->peers.next, peer, link);
        sb_list_remove(&p->link);
        uv_close((uv_handle_t *)&p->tcp, on_peer_closed);
    }
    uv_close((uv_handle_t *)&ts->listener, NULL);
}

typedef struct test_call {
    sb_http_call call;
    char url[128];
    int done; /* on_done calls */
} test_call;

static void on_test_done(sb_http_call *call) {
    ((test_call *)call->data)->done++;
}

static void call_init(test_call *t, int port, const char *path, long timeout_ms, size_t max_response) {
    memset(t, 0, sizeof *t);
    snprintf(t->url, sizeof t->url, "http://127.0.0.1:%d%s", port, path);
    t->call.url = t->url;
    t->call.body = "{\"type\":10}";
    t->call.body_len = 11;
    t->call.timeout_ms = timeout_ms;
    t->call.max_response = max_response;
    t->call.max_attempts = 1;
    t->call.on_done = on_test_done;
    t->call.data = t;
}

/* Run the loop until every call in v is done (at most 5 s). */
static void run_until_done(uv_loop_t *loop, test_call **v, size_t n) {
    uint64_t deadline = uv_now(loop) + 5000;
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += v[i]->done != 0;
        if (done == n)
            return;
        if (uv_now(loop) > deadline)
            fail_msg("only %zu of %zu calls finished in 5 s", done, n);
        uv_run(loop, UV_RUN_ONCE);
    }
}

/* Close the multi (if given) and the server; the loop must then close with nothing left open. */
static void teardown_loop(uv_loop_t *loop, sb_http_multi *m, test_server *ts) {
    if (m)
        sb_http_multi_close(m);
    server_stop(ts);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void test_http_answers(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    test_server ts;
    server_start(&loop, &ts);
    sb_http_multi *m = sb_http_multi_new(&loop, 4, 4);
    test_call ok, big, err, ok2;
    call_init(&ok, ts.port, "/ok", 2000, 1024);
    call_init(&big, ts.port, "/big", 2000, 10);
    call_init(&err, ts.port, "/500", 2000, 1024);
    assert_int_equal(sb_http_multi_submit(m, &ok.call), SB_OK);
    assert_int_equal(sb_http_multi_submit(m, &big.call), SB_OK);
    assert_int_equal(sb_http_multi_submit(m, &err.call), SB_OK);
    assert_int_equal(sb_http_multi_active(m), 3);
    test_call *all[] = {&ok, &big, &err};
    run_until_done(&loop, all, 3);
    assert_int_equal(ok.done, 1);
    assert_int_equal(ok.call.outcome, SB_HTTP_RESPONSE);
    assert_int_equal(ok.call.status, 200);
    assert_int_equal(ok.call.response.len, 5);
    assert_memory_equal(ok.call.response.data, "hello", 5);
    assert_int_equal(ok.call.attempts, 1);
    assert_int_equal(big.call.outcome, SB_HTTP_TOO_LARGE);
    assert_int_equal(err.call.outcome, SB_HTTP_RESPONSE);
    assert_int_equal(err.call.status, 500);
    assert_int_equal(sb_http_multi_active(m), 0);

    /* a later call reuses a kept-alive connection */
    int accepted = ts.accepted;
    call_init(&ok2, ts.port, "/ok", 2000, 0);
    assert_int_equal(sb_http_multi_submit(m, &ok2.call), SB_OK);
    test_call *again[] = {&ok2};
    run_until_done(&loop, again, 1);
    assert_int_equal(ok2.call.status, 200);
    assert_int_equal(ok2.call.response.len, 0); /* max_response 0: the body is discarded */
    assert_int_equal(ts.accepted, accepted);
    assert_int_equal(ts.requests, 4);
    teardown_loop(&loop, m, &ts);
    assert_int_equal(ok.done + big.done + err.done + ok2.done, 4); /* close calls nothing twice */
    sb_buf_free(&ok.call.response);
    sb_buf_free(&big.call.response);
    sb_buf_free(&err.call.response);
    sb_buf_free(&ok2.call.response);
}

static int dead_port(void) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    test_server ts;
    server_start(&loop, &ts);
    int port = ts.port;
    server_stop(&ts);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return port;
}

static void test_http_unreachable_and_timeouts(void **state) {
    int port = dead_port();
    uv_loop_t loop;
    uv_loop_init(&loop);
    test_server ts;
    server_start(&loop, &ts);
    sb_http_multi *m = sb_http_multi_new(&loop, 1, 1);
    test_call refused, slow, queued, overflow;
    call_init(&refused, port, "/ok", 2000, 0);
    assert_int_equal(sb_http_multi_submit(m, &refused.call), SB_OK);
    test_call *one[] = {&refused};
    run_until_done(&loop, one, 1);
    assert_int_equal(refused.call.outcome, SB_HTTP_UNREACHABLE);
    assert_true(strlen(refused.call.error) > 0);

    /* one slot: the second call queues, the third is refused; the queued one's clock runs while it waits */
    call_init(&slow, ts.port, "/slow", 150, 0);
    call_init(&queued, ts.port, "/ok", 100, 0);
    call_init(&overflow, ts.port, "/ok", 100, 0);
    uint64_t started = uv_now(&loop);
    assert_int_equal(sb_http_multi_submit(m, &slow.call), SB_OK);
    assert_int_equal(sb_http_multi_submit(m, &queued.call), SB_OK);
    assert_int_equal(sb_http_multi_queued(m), 1);
    assert_int_equal(sb_http_multi_submit(m, &overflow.call), SB_ENOSPC);
    test_call *two[] = {&slow, &queued};
    run_until_done(&loop, two, 2);
    assert_int_equal(slow.call.outcome, SB_HTTP_TIMEOUT);
    assert_int_equal(queued.call.outcome, SB_HTTP_TIMEOUT);
    assert_true(strlen(slow.call.error) > 0);
    assert_true(uv_now(&loop) - started < 1000);
    teardown_loop(&loop, m, &ts);
    assert_int_equal(overflow.done, 0); /* an error return means no callback, ever */
    assert_int_equal(refused.done + slow.done + queued.done, 3);
}

static void test_http_retries(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    test_server ts;
    server_start(&loop, &ts);
    sb_http_multi *m = sb_http_multi_new(&loop, 2, 2);
    test_call busy, fail, ok;
    call_init(&busy, ts.port, "/503", 2000, 0);
    busy.call.max_attempts = 3;
    call_init(&fail, ts.port, "/500", 2000, 0);
    fail.call.max_attempts = 2;
    call_init(&ok, ts.port, "/ok", 2000, 0);
    ok.call.max_attempts = 3; /* a success is not retried */
    assert_int_equal(sb_http_multi_submit(m, &busy.call), SB_OK);
    assert_int_equal(sb_http_multi_submit(m, &fail.call), SB_OK);
    assert_int_equal(sb_http_multi_submit(m, &ok.call), SB_OK);
    test_call *all[] = {&busy, &fail, &ok};
    run_until_done(&loop, all, 3);
    assert_int_equal(busy.call.attempts, 3);
    assert_int_equal(busy.call.status, 503);
    assert_int_equal(fail.call.attempts, 2);
    assert_int_equal(fail.call.status, 500);
    assert_int_equal(ok.call.attempts, 1);
    assert_int_equal(sb_http_multi_retries(m), 3);
    assert_int_equal(ts.requests, 6);
    teardown_loop(&loop, m, &ts);
    assert_int_equal(busy.done + fail.done + ok.done, 3);
}

static void test_http_close_cancels(void **state) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    test_server ts;
    server_start(&loop, &ts);
    sb_http_multi *m = sb_http_multi_new(&loop, 1, 4);
    test_call active, queued, retrying;
    call_init(&active, ts.port, "/slow", 10000, 0);
    call_init(&queued, ts.port, "/slow", 10000, 0);
    assert_int_equal(sb_http_multi_submit(m, &active.call), SB_OK);
    assert_int_equal(sb_http_multi_submit(m, &queued.call), SB_OK);
    while (ts.requests < 1)
        uv_run(&loop, UV_RUN_ONCE); /* the first call reached the server */
    sb_http_multi_close(m);
    assert_int_equal(active.done, 1);
    assert_int_equal(active.call.outcome, SB_HTTP_CANCELLED);
    assert_int_equal(queued.done, 1);
    assert_int_equal(queued.call.outcome, SB_HTTP_CANCELLED);
    teardown_loop(&loop, NULL, &ts);

    /* a call waiting to retry is cancelled too */
    uv_loop_init(&loop);
    server_start(&loop, &ts);
    m = sb_http_multi_new(&loop, 1, 4);
    call_init(&retrying, ts.port, "/503", 10000, 0);
    retrying.call.max_attempts = 10;
    assert_int_equal(sb_http_multi_submit(m, &retrying.call), SB_OK);
    while (!sb_http_multi_retrying(m))
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(retrying.done, 0);
    sb_http_multi_close(m);
    assert_int_equal(retrying.done, 1);
    assert_int_equal(retrying.call.outcome, SB_HTTP_CANCELLED);
    teardown_loop(&loop, NULL, &ts);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pattern_star_list_exact),
        cmocka_unit_test(test_pattern_case),
        cmocka_unit_test(test_match_first_wins),
        cmocka_unit_test(test_match_connect_event),
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_url_template_valid),
        cmocka_unit_test(test_settings_full_and_defaults),
        cmocka_unit_test(test_settings_empty_lists),
        cmocka_unit_test(test_settings_refusals),
        cmocka_unit_test(test_settings_single),
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_signature_vectors),
        cmocka_unit_test(test_claims_header),
        cmocka_unit_test(test_header_value),
        cmocka_unit_test(test_http_answers),
        cmocka_unit_test(test_http_unreachable_and_timeouts),
        cmocka_unit_test(test_http_retries),
        cmocka_unit_test(test_http_close_cancels),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
