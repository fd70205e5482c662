/*  toolutil.h: small helpers shared by the command-line tools. */

#ifndef MLG_TOOLUTIL_H
#define MLG_TOOLUTIL_H

#include <stddef.h>

/* The whole file, if it holds at most `max` bytes; malloc'd, the caller
   frees it. NULL when it cannot be read or is larger. */
char *tool_read_file(const char *path, size_t max, size_t *len);

#endif
