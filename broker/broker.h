/*  broker.h: the event loop, which owns the ROUTER socket, the client
    sessions and the per-recipient queues, and hands storage to the
    store thread. */

#ifndef BRK_BROKER_H
#define BRK_BROKER_H

#include <signal.h>

#include "config.h"
#include "maillage/schema.h"

typedef struct brk_broker_t brk_broker_t;

/* Binds the endpoint and starts the store. Takes neither argument's
   ownership; both must outlive the broker, and a reload replaces the
   agencies section of cfg. NULL on failure (logged). */
brk_broker_t *brk_broker_new(brk_config_t *cfg, const mlg_registry_t *reg,
                             const char *sql_dir);

void brk_broker_destroy(brk_broker_t **self_p);

/* Runs until *stop becomes non-zero (a signal handler sets it), then
   drains: stops reading, waits for the store to answer every publish in
   hand (at most a few seconds), sends those answers, returns. Whenever
   *reload becomes non-zero (SIGHUP), it reads the configuration file's
   agencies section again (keys, ACLs, subscriptions) and ends the
   sessions of removed keys and agencies; other clients are not touched. */
int brk_broker_run(brk_broker_t *self, volatile sig_atomic_t *stop,
                   volatile sig_atomic_t *reload);

/* At start (notice.c): the schemas of the broker's own notices are
   there, and every referrals/deadline key names a service and a
   priority of referral.created. -1 with "file: key: problem" in err
   otherwise. */
int brk_notices_check(const brk_config_t *cfg, const mlg_registry_t *reg, char *err,
                      size_t errlen);

#endif
