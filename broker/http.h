/*  http.h: the broker's HTTP listener (broker/http): /metrics,
    /healthz, /api/status and the dashboard. */

#ifndef BRK_HTTP_H
#define BRK_HTTP_H

#include <stddef.h>

typedef struct brk_http_t brk_http_t;

/* Listens on `address` (IPV4:PORT) in a thread of its own; `conninfo` is
   the broker's database, read for the queues. NULL with a sentence
   naming broker/http in err when it cannot. */
brk_http_t *brk_http_new(const char *address, const char *conninfo, char *err,
                         size_t errlen);
void brk_http_destroy(brk_http_t **self_p);

#endif
