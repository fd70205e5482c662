/*  pgbin.h: values in PostgreSQL's binary wire format, for the store's
    array parameters and for COPY ... (format binary).

    A buffer holds either one array (brk_pgbin_array_start, elements,
    brk_pgbin_array_finish: then it is one parameter in binary format) or
    a COPY stream (brk_pgbin_copy_start, for each row brk_pgbin_copy_row
    and its fields, brk_pgbin_copy_end). An element or a field is the
    same thing on the wire: a 4-byte big-endian length (-1 for NULL) and
    its bytes. Out of memory, or a malformed uuid, sets `failed`, checked
    once at the end; nothing is written past it. */

#ifndef BRK_PGBIN_H
#define BRK_PGBIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* element types (pg_type.oid, fixed since the first releases) */
#define BRK_OID_BYTEA 17
#define BRK_OID_INT8 20
#define BRK_OID_INT4 23
#define BRK_OID_TEXT 25
#define BRK_OID_TIMESTAMPTZ 1184
#define BRK_OID_UUID 2950

typedef struct {
    uint8_t *p; /* owned; free() it */
    size_t n, cap;
    uint32_t count; /* elements or fields written */
    uint32_t elem_oid;
    bool hasnull, failed;
} brk_pgbin_t;

void brk_pgbin_array_start(brk_pgbin_t *b, uint32_t elem_oid);
void brk_pgbin_array_finish(brk_pgbin_t *b);

void brk_pgbin_copy_start(brk_pgbin_t *b);
void brk_pgbin_copy_row(brk_pgbin_t *b, uint16_t nfields);
void brk_pgbin_copy_end(brk_pgbin_t *b);

void brk_pgbin_null(brk_pgbin_t *b);
void brk_pgbin_bytes(brk_pgbin_t *b, const void *data, size_t len);
/* text; NULL is SQL null */
void brk_pgbin_text(brk_pgbin_t *b, const char *v);
/* int2, int4 or int8: `bytes` 2, 4 or 8 */
void brk_pgbin_int(brk_pgbin_t *b, uint64_t v, size_t bytes);
/* timestamptz, from microseconds since 1970-01-01 UTC */
void brk_pgbin_time(brk_pgbin_t *b, int64_t us_since_1970);
/* uuid, from its canonical text (either case); NULL or "" is SQL null */
void brk_pgbin_uuid(brk_pgbin_t *b, const char *v);

#endif
