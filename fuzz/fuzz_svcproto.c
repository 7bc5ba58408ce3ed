/*
 * fuzz_svcproto.c - libFuzzer target for the service protocol codec.
 *
 * The input is used twice: as a byte stream for sb_svc_split (every frame in it
 * is decoded), and as one unframed body.  Whenever a body decodes, the message
 * is encoded, split and decoded again; the type must survive and a second
 * encoding must equal the first byte for byte (the first encode normalises
 * older layouts, nils and default ext values; after that the codec is a fixed
 * point).  Any violation traps.  Sanitizers catch the memory errors.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "service/svcproto.h"
#include "util/error.h"

#define CHECK(c)                                                                                             \
    do {                                                                                                     \
        if (!(c))                                                                                            \
            __builtin_trap();                                                                                \
    } while (0)

static void roundtrip(const uint8_t *body, size_t len) {
    sb_svc_msg m, again;
    const char *err = NULL;
    if (sb_svc_decode(body, len, &m, &err) != SB_OK) {
        CHECK(err != NULL);
        sb_svc_msg_clear(&m);
        return;
    }
    sb_buf first, second;
    sb_buf_init(&first);
    sb_buf_init(&second);
    sb_svc_encode(&m, &first);

    sb_slice b;
    size_t used = 0;
    CHECK(sb_svc_split((const uint8_t *)first.data, first.len, SIZE_MAX, &b, &used) == SB_OK);
    CHECK(used == first.len);
    CHECK(sb_svc_decode((const uint8_t *)b.base, b.len, &again, &err) == SB_OK);
    CHECK(again.type == m.type);
    CHECK(again.unknown == m.unknown);
    sb_svc_encode(&again, &second);
    CHECK(second.len == first.len && memcmp(second.data, first.data, first.len) == 0);

    sb_svc_msg_clear(&again);
    sb_svc_msg_clear(&m);
    sb_buf_free(&first);
    sb_buf_free(&second);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t off = 0;
    for (;;) {
        sb_slice body;
        size_t used;
        int rc = sb_svc_split(data + off, size - off, 1 << 20, &body, &used);
        if (rc != SB_OK) {
            CHECK(rc == SB_EAGAIN || rc == SB_EPROTO || rc == SB_E2BIG);
            break;
        }
        CHECK(used > 0 && used <= size - off);
        roundtrip((const uint8_t *)body.base, body.len);
        off += used;
    }
    roundtrip(data, size);
    return 0;
}
