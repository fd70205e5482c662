/*  http.h: the broker's HTTP listener (broker/http): /metrics,
    /healthz, /api/status and the dashboard. */

#ifndef BRK_HTTP_H
#define BRK_HTTP_H

#include <stddef.h>

#include "metrics.h"

typedef struct brk_http_t brk_http_t;

/* Listens on `address` (IPV4:PORT) in a thread of its own, answering
   from `metrics`, the broker's set, which must outlive the listener; it
   never reads the database. NULL with a sentence naming broker/http in
   err when it cannot. */
brk_http_t *brk_http_new(const char *address, brk_metrics_t *metrics, char *err,
                         size_t errlen);
void brk_http_destroy(brk_http_t **self_p);

#endif
