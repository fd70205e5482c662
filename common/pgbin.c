/*  pgbin.c: see pgbin.h. The formats are PostgreSQL's array_send and
    COPY BINARY (its documentation, "COPY", "Binary Format"). */

#include <stdlib.h>
#include <string.h>

#include "pgbin.h"

#define S_ARRAY_HEADER 20 /* ndim, flags, element type, size, lower bound */

static void
s_put(brk_pgbin_t *b, const void *data, size_t len)
{
    if (b->failed)
        return;
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + len)
            cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np) {
            b->failed = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, len);
    b->n += len;
}

static void
s_be(uint8_t *out, uint64_t v, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++)
        out[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

static void
s_put_be(brk_pgbin_t *b, uint64_t v, size_t bytes)
{
    uint8_t out[8];
    s_be(out, v, bytes);
    s_put(b, out, bytes);
}

void
brk_pgbin_array_start(brk_pgbin_t *b, uint32_t elem_oid)
{
    b->n = 0;
    b->count = 0;
    b->hasnull = false;
    b->elem_oid = elem_oid;
    uint8_t header[S_ARRAY_HEADER] = {0};
    s_put(b, header, sizeof(header));
}

void
brk_pgbin_array_finish(brk_pgbin_t *b)
{
    if (b->failed)
        return;
    if (b->count == 0) {
        /* an empty array has no dimension: the header stops after the
           element type */
        b->n = 12;
        s_be(b->p, 0, 4);
    }
    else {
        s_be(b->p, 1, 4);
        s_be(b->p + 12, b->count, 4);
        s_be(b->p + 16, 1, 4);
    }
    s_be(b->p + 4, b->hasnull, 4);
    s_be(b->p + 8, b->elem_oid, 4);
}

void
brk_pgbin_copy_start(brk_pgbin_t *b)
{
    b->n = 0;
    b->count = 0;
    s_put(b, "PGCOPY\n\377\r\n\0", 11);
    s_put_be(b, 0, 4); /* flags */
    s_put_be(b, 0, 4); /* header extension */
}

void
brk_pgbin_copy_row(brk_pgbin_t *b, uint16_t nfields)
{
    s_put_be(b, nfields, 2);
}

void
brk_pgbin_copy_end(brk_pgbin_t *b)
{
    s_put_be(b, 0xffff, 2);
}

void
brk_pgbin_null(brk_pgbin_t *b)
{
    s_put_be(b, 0xffffffffu, 4);
    b->hasnull = true;
    b->count++;
}

void
brk_pgbin_bytes(brk_pgbin_t *b, const void *data, size_t len)
{
    if (len > INT32_MAX) {
        b->failed = true;
        return;
    }
    s_put_be(b, len, 4);
    s_put(b, data, len);
    b->count++;
}

void
brk_pgbin_text(brk_pgbin_t *b, const char *v)
{
    if (!v)
        brk_pgbin_null(b);
    else
        brk_pgbin_bytes(b, v, strlen(v));
}

void
brk_pgbin_int(brk_pgbin_t *b, uint64_t v, size_t bytes)
{
    uint8_t out[8];
    s_be(out, v, bytes);
    brk_pgbin_bytes(b, out, bytes);
}

void
brk_pgbin_time(brk_pgbin_t *b, int64_t us_since_1970)
{
    brk_pgbin_int(b, (uint64_t)(us_since_1970 - INT64_C(946684800000000)), 8);
}

static int
s_hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

void
brk_pgbin_uuid(brk_pgbin_t *b, const char *v)
{
    if (!v || !v[0]) {
        brk_pgbin_null(b);
        return;
    }
    /* 8-4-4-4-12 hex digits */
    static const char form[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    uint8_t out[16];
    size_t k = 0;
    for (size_t i = 0; i < sizeof(form) - 1; i++) {
        if (form[i] == '-') {
            if (v[i] != '-') {
                b->failed = true;
                return;
            }
            continue;
        }
        int h = s_hexval(v[i]); /* v[i] is '\0' at the latest at its end: -1 */
        if (h < 0) {
            b->failed = true;
            return;
        }
        out[k / 2] = (uint8_t)(k % 2 ? out[k / 2] | h : h << 4);
        k++;
    }
    if (v[sizeof(form) - 1] != '\0') {
        b->failed = true;
        return;
    }
    brk_pgbin_bytes(b, out, 16);
}
