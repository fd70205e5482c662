/*  toolutil.h: small helpers shared by the command-line tools. */

#ifndef MLG_TOOLUTIL_H
#define MLG_TOOLUTIL_H

#include <stddef.h>

/* GET http://HOSTPORT/PATH (HOSTPORT an IPv4 address and port, the form
   of broker/http) with HTTP/1.0, within timeout_ms. 0 with the status
   code and the body (malloc'd, NUL-terminated, at most 4 MiB) on an
   answer; -1 when there was none. */
int tool_http_get(const char *hostport, const char *path, int timeout_ms, int *status,
                  char **body);

/* The value of the first line "KEY<sep>value" of a text file (an env
   file with '=', /proc/PID/status with ':'), without its line end or
   leading blanks. 0 when found; -1 when the file or the key is not
   there, or the value does not fit. */
int tool_file_value(const char *path, const char *key, char sep, char *out, size_t len);

/* A field of /proc/PID/status in KiB (VmRSS, VmHWM); -1 if none. */
long tool_proc_kib(int pid, const char *key);

/* Waits until the file holds a line containing `text` after its first
   `from` bytes, checking every 10 ms. 0 when it does within
   timeout_ms. */
int tool_wait_text(const char *path, const char *text, long from, int timeout_ms);

#endif
