/*  auth.h: the broker's ZAP handler (ZeroMQ RFC 27) for CurveZMQ.

    It admits only the public keys of the agencies section and makes the
    key's agency the connection's identity: the ZeroMQ `User-Id` of every
    frame from that connection is "<agency> <Z85 key>". It must run before the ROUTER
   binds: CURVE without a ZAP handler admits any key (libzmq #2594). */

#ifndef BRK_AUTH_H
#define BRK_AUTH_H

#include <czmq.h>

#include "config.h"

/* Starts the handler with the keys of `cfg`. NULL on failure (logged):
   another ZAP handler in this process, or a key that is not Z85. */
zactor_t *brk_auth_new(const brk_config_t *cfg);

/* Replaces the keys (a configuration reload); in force when it returns. */
int brk_auth_set_keys(zactor_t *auth, const brk_config_t *cfg);

#endif
