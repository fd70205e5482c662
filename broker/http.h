/*  http.h: the broker's HTTP listener (broker/http): /metrics,
    /healthz, /api/status and the dashboard. */

#ifndef BRK_HTTP_H
#define BRK_HTTP_H

#include <stddef.h>

#include "metrics.h"

typedef struct brk_http_t brk_http_t;

/* Listens on `address` (IPV4:PORT) in a thread of its own; `database`
   is the broker's, read for the queues through a store view; `metrics`
   is the broker's set, which must outlive the listener. NULL with a
   sentence naming broker/http in err when it cannot. */
brk_http_t *brk_http_new(const char *address, const char *database,
                         brk_metrics_t *metrics, char *err, size_t errlen);
void brk_http_destroy(brk_http_t **self_p);

#endif
