/*  fuzz_json.c: libFuzzer target for the JSON <-> msgpack conversion.

    JSON in: if it converts, the msgpack converts back to JSON, and that
    JSON converts again to the very same msgpack bytes. */

#include <stdlib.h>
#include <string.h>

#include "maillage/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *mp = NULL, *mp2 = NULL;
    size_t len = 0, len2 = 0;
    char *json = NULL;
    if (mlg_json_to_msgpack((const char *)data, size, &mp, &len, NULL, 0) != MLG_OK)
        return 0;
    if (mlg_msgpack_to_json(mp, len, &json, NULL, 0) != MLG_OK)
        abort();
    if (mlg_json_to_msgpack(json, strlen(json), &mp2, &len2, NULL, 0) != MLG_OK)
        abort();
    if (len != len2 || memcmp(mp, mp2, len) != 0)
        abort();
    free(mp);
    free(mp2);
    free(json);
    /* and the bytes themselves, read as msgpack */
    if (mlg_msgpack_to_json(data, size, &json, NULL, 0) == MLG_OK)
        free(json);
    return 0;
}
