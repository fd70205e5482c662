/*  fuzz_decode.c: libFuzzer target for the wire decoder.

    Whatever the bytes, decoding either fails with a code and a reason,
    or yields a message that encodes and decodes again to the same op:
    the codec must accept everything it produces. */

#include <stdlib.h>
#include <string.h>

#include "maillage/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mlg_msg_t *msg = NULL;
    mlg_error_t err;
    mlg_rc_t rc = mlg_msg_decode(data, size, &msg, &err);
    if (rc != MLG_OK) {
        if (msg || err.rc != rc || err.reason[0] == '\0')
            abort();
        return 0;
    }
    uint8_t *out = NULL;
    size_t n = 0;
    if (mlg_msg_encode(msg, &out, &n) != MLG_OK)
        abort();
    mlg_msg_t *again = NULL;
    if (mlg_msg_decode(out, n, &again, &err) != MLG_OK || again->op != msg->op
        || again->body_len != msg->body_len
        || (msg->body_len && memcmp(again->body, msg->body, msg->body_len) != 0))
        abort();
    mlg_msg_destroy(&again);
    mlg_msg_destroy(&msg);
    free(out);
    return 0;
}
