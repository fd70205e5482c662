/*  toolutil.h: small helpers shared by the command-line tools. */

#ifndef MLG_TOOLUTIL_H
#define MLG_TOOLUTIL_H

#include <stddef.h>

/* The whole file, if it holds at most `max` bytes; malloc'd, the caller
   frees it. NULL when it cannot be read or is larger. */
char *tool_read_file(const char *path, size_t max, size_t *len);

/* GET http://HOSTPORT/PATH (HOSTPORT an IPv4 address and port, the form
   of broker/http) with HTTP/1.0, within timeout_ms. 0 with the status
   code and the body (malloc'd, NUL-terminated, at most 4 MiB) on an
   answer; -1 when there was none. */
int tool_http_get(const char *hostport, const char *path, int timeout_ms, int *status,
                  char **body);

#endif
