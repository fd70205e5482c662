/*  maillage_check.c: `maillage-check`, checks events written as JSON
    against the wire rules and the schemas, as the broker will, before
    an agency sends them.

        maillage-check [--schemas DIR] [--from AGENCY] FILE.json...

    Each file holds one PUBLISH as JSON (envelope keys and `body`). For
    each, prints "accept" with the event's basis and category, or
    "reject" with the PROTOCOL.md §5 code and reason. Exit 0 when every
    file is accepted, 1 when one is rejected, 2 on usage errors. It does
    not check what needs the broker: permissions, recipients, consent. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maillage/codec.h"
#include "maillage/json.h"
#include "file.h"
#include "toolutil.h"
#include "maillage/schema.h"

#ifndef MLG_DEFAULT_SCHEMAS
#define MLG_DEFAULT_SCHEMAS "schemas"
#endif

static void
s_reject(const char *path, mlg_rc_t rc, const char *reason)
{
    const char *code = mlg_rc_wire(rc);
    printf("%s: reject %s: %s\n", path, code ? code : mlg_strerror(rc), reason);
}

static int
s_check(const mlg_registry_t *reg, const char *path, const char *from)
{
    size_t len;
    char why[512];
    char *text =
        brk_read_file(path, MLG_MAX_MESSAGE_BYTES_DEFAULT, &len, why, sizeof(why));
    if (!text) {
        printf("%s\n", why);
        return 1;
    }
    mlg_msg_t *msg = NULL;
    mlg_error_t err;
    mlg_rc_t rc = mlg_publish_from_json(text, len, &msg, &err);
    free(text);
    if (rc != MLG_OK) {
        s_reject(path, rc, err.reason);
        return 1;
    }
    char reason[512];
    const mlg_schema_t *schema = mlg_registry_find(reg, msg->type, msg->version);
    if (!schema) {
        snprintf(reason, sizeof(reason), "no schema for %s version %llu", msg->type,
                 (unsigned long long)msg->version);
        rc = MLG_UNKNOWN_TYPE;
    }
    else {
        rc = mlg_schema_validate_msg(schema, msg, reason, sizeof(reason));
        if (rc == MLG_OK)
            rc = mlg_envelope_check(reg, schema, msg, from, reason, sizeof(reason));
    }
    if (rc != MLG_OK)
        s_reject(path, rc, reason);
    else {
        const char *category = mlg_schema_category(schema);
        printf("%s: accept %s v%llu, basis %s%s%s, %zu addressee%s\n", path, msg->type,
               (unsigned long long)msg->version, mlg_basis_name(mlg_schema_basis(schema)),
               category ? ", category " : "", category ? category : "", msg->to_count,
               msg->to_count == 1 ? "" : "s");
    }
    mlg_msg_destroy(&msg);
    return rc == MLG_OK ? 0 : 1;
}

int
main(int argc, char **argv)
{
    const char *schemas = MLG_DEFAULT_SCHEMAS, *from = NULL;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--schemas") == 0 && i + 1 < argc)
            schemas = argv[++i];
        else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc)
            from = argv[++i];
        else if (strcmp(argv[i], "--help") == 0) {
            printf(
                "usage: maillage-check [--schemas DIR] [--from AGENCY] FILE.json...\n");
            return 0;
        }
        else {
            fprintf(stderr, "maillage-check: unknown option %s (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (i == argc) {
        fprintf(stderr,
                "usage: maillage-check [--schemas DIR] [--from AGENCY] FILE.json...\n");
        return 2;
    }
    char err[1024];
    mlg_registry_t *reg = mlg_registry_load(schemas, err, sizeof(err));
    if (!reg) {
        fprintf(stderr, "maillage-check: %s\n", err);
        return 2;
    }
    int status = 0;
    for (; i < argc; i++)
        status |= s_check(reg, argv[i], from);
    mlg_registry_destroy(&reg);
    return status;
}
