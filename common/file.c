/*  file.c: see file.h. */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file.h"

#define S_FIRST_CHUNK 4096

char *
brk_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: could not open: %s", path, strerror(errno));
        return NULL;
    }
    /* doubling: linear in the file's size, and up to max + 1 bytes, so a
       file past the bound is caught whatever its size said */
    size_t cap = 0, n = 0;
    char *buf = NULL;
    bool failed = false, over = false;
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                over = true;
                break;
            }
            size_t next = cap ? 2 * cap : S_FIRST_CHUNK;
            if (next > max + 1)
                next = max + 1;
            char *grown = realloc(buf, next + 1);
            if (!grown) {
                failed = true;
                break;
            }
            buf = grown;
            cap = next;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            failed = ferror(f) != 0;
            break;
        }
    }
    int saved = errno;
    fclose(f);
    if (over || n > max) {
        snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
        free(buf);
        return NULL;
    }
    if (failed || !buf) {
        snprintf(err, errlen, "%s: could not read: %s", path,
                 buf ? strerror(saved) : "out of memory");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}
