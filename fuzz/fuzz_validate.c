/*  fuzz_validate.c: libFuzzer target for the schema validator.

    The first byte picks one of the project's schemas; the rest is the
    body, as msgpack. Validation must answer OK, INVALID with a pointer
    sentence, or MALFORMED, and nothing else. */

#include <stdio.h>
#include <stdlib.h>

#include "maillage/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mlg_registry_t *s_reg;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_reg) {
        char err[512];
        const char *dir = getenv("MLG_SCHEMAS");
        s_reg = mlg_registry_load(dir ? dir : MLG_SCHEMAS_DIR, err, sizeof(err));
        if (!s_reg) {
            fprintf(stderr, "%s\n", err);
            abort();
        }
    }
    if (size < 1)
        return 0;
    const mlg_schema_t *schema =
        mlg_registry_at(s_reg, data[0] % mlg_registry_size(s_reg));
    char reason[512];
    mlg_rc_t rc = mlg_schema_validate(schema, data + 1, size - 1, reason, sizeof(reason));
    if (rc != MLG_OK && rc != MLG_INVALID && rc != MLG_MALFORMED)
        abort();
    if (rc == MLG_INVALID && reason[0] != '/' && reason[0] != ':')
        abort();
    return 0;
}
