/*  file.h: a whole file read into memory, bounded: the broker's
    configuration and migrations, and the tools' event files.

    (The library reads its schemas itself, lib/ linking nothing of
    common/; the files plugin reads its drop folder with openat and
    O_NOFOLLOW, which a path-based reader cannot give.) */

#ifndef BRK_FILE_H
#define BRK_FILE_H

#include <stddef.h>

/* The file at `path` if it holds at most `max` bytes, NUL-terminated
   (a NUL inside stays: `len` says where the bytes end); malloc'd.
   NULL with a sentence naming the path in err when it cannot be opened
   or read, or is larger. Memory grows with the file, not with `max`. */
char *brk_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen);

#endif
