/*
 * fuzz_rest.c - the data-plane REST API's pure parts: route parsing (method,
 * path, query) and send bodies (JSON and the binary payload map).  The first
 * byte picks the method and whether the rest is a URL or a body.
 */
#include <stdint.h>
#include <string.h>

#include "rest/rest_api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"};
    if (!size)
        return 0;
    uint8_t sel = data[0];
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    if (sel & 0x80) {
        char err[256];
        sb_rest_send s;
        sb_slice ct = (sel & 1) ? SB_SLICE("application/octet-stream") : SB_SLICE("application/json");
        sb_rest_parse_send(ct, sb_slice_make(p, n), &s, err, sizeof err);
        sb_rest_send_free(&s);
        return 0;
    }
    const char *q = memchr(p, '?', n);
    sb_slice path = sb_slice_make(p, q ? (size_t)(q - p) : n);
    sb_slice query = q ? sb_slice_make(q + 1, n - path.len - 1) : sb_slice_make("", 0);
    sb_rest_route_t r;
    int rc = sb_rest_route(methods[sel % 6], path, query, &r);
    /* a successful route always names an operation, a failed one never does */
    if ((rc == 0) != (r.op != SB_REST_OP_NONE))
        __builtin_trap();
    sb_rest_route_free(&r);
    return 0;
}
