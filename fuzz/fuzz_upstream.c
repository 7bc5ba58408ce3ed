/*
 * fuzz_upstream.c - libFuzzer target for src/upstream/upstream.c: the
 * upstream settings parser (management-API PATCH bodies and the persisted
 * upstream.json an operator may edit), and the header values built from
 * client-controlled text (claims, targets used as events).
 *
 * One input is parsed as JSON and handed to the settings parser and the
 * claims header; the raw bytes, split in two, are also a pattern and a value.
 * Invariants (abort() so libFuzzer keeps the input):
 *  - a refusal has a non-empty, valid UTF-8 message and leaves nothing owned;
 *  - accepted settings have at most SB_UPSTREAM_MAX_TEMPLATES templates, every
 *    URL template is valid, and what they render parses back to the same
 *    rendering (GET returns what was PATCHed);
 *  - an expanded URL stays printable ASCII (values are escaped);
 *  - no header value ever contains CR, LF or NUL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/upstream.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/utf8.h"

static void check_header(const sb_buf *b) {
    for (size_t i = 0; i < b->len; i++)
        if (b->data[i] == '\r' || b->data[i] == '\n' || b->data[i] == '\0')
            abort();
}

static void fuzz_settings(json_t *doc, const char *value) {
    sb_upstream_settings s, again;
    char err[512] = "";
    if (sb_upstream_settings_from_json(&s, doc, err, sizeof err) != SB_OK) {
        if (!err[0] || !sb_utf8_valid(err, strlen(err)) || s.n || s.v)
            abort();
        return;
    }
    if (s.n > SB_UPSTREAM_MAX_TEMPLATES)
        abort();
    for (size_t i = 0; i < s.n; i++) {
        if (!sb_upstream_url_template_valid(s.v[i].url_template))
            abort();
        sb_buf url;
        sb_buf_init(&url);
        sb_upstream_expand(s.v[i].url_template, value, SB_UPSTREAM_CATEGORY_MESSAGES, value, &url);
        for (size_t k = 0; k < url.len; k++)
            if ((unsigned char)url.data[k] <= 0x20 || (unsigned char)url.data[k] >= 0x7F)
                abort();
        sb_buf_free(&url);
    }
    sb_upstream_match(&s, value, SB_UPSTREAM_CATEGORY_MESSAGES, value, 0);
    sb_upstream_match(&s, value, SB_UPSTREAM_CATEGORY_CONNECTIONS, SB_UPSTREAM_EVENT_CONNECT, 1);
    json_t *out = sb_upstream_settings_to_json(&s);
    if (sb_upstream_settings_from_json(&again, out, err, sizeof err) != SB_OK)
        abort();
    json_t *out2 = sb_upstream_settings_to_json(&again);
    if (!json_equal(out, out2) || again.n != s.n)
        abort();
    json_decref(out);
    json_decref(out2);
    sb_upstream_settings_free(&again);
    sb_upstream_settings_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = sb_strndup((const char *)data, size); /* stops at a NUL, like any C string from the input */
    size_t n = strlen(text);
    char *pattern = sb_strndup(text, n / 2);
    const char *value = text + n / 2;
    sb_upstream_pattern_match(pattern, value, 0, 1);
    sb_upstream_pattern_match(pattern, value, 1, 0);

    sb_buf h;
    sb_buf_init(&h);
    sb_upstream_header_value(text, &h);
    check_header(&h);
    sb_buf_reset(&h);
    const char *keys[] = {pattern, value};
    sb_upstream_signature(keys, 2, text, &h);
    check_header(&h);

    json_t *j = json_loadb((const char *)data, size, 0, NULL);
    if (j) {
        sb_buf_reset(&h);
        sb_upstream_claims_header(j, &h);
        check_header(&h);
        fuzz_settings(j, value);
        json_decref(j);
    }
    sb_buf_free(&h);
    sb_free(pattern);
    sb_free(text);
    return 0;
}
