/*  e2e.h: the steps the end-to-end tests (tests/e2e/) take again and
    again, once: start a broker on a fresh database and stop it, join as
    an agency, build an event and publish it, wait for an answer or a
    DELIVER, speak raw frames on a DEALER, query the broker's database,
    run the operator CLI or an adapter.

    The steps that check something fail the running cmocka test or
    fixture (they assert); the others return a code. brokerproc.h runs
    the broker process itself. */

#ifndef MLG_TEST_E2E_H
#define MLG_TEST_E2E_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <czmq.h>
#include <libpq-fe.h>

#include "brokerproc.h"
#include "maillage/client.h"

/* ---- the broker ------------------------------------------------------- */

/* brokerproc_init and brokerproc_start: a broker on a fresh database
   `dbname`. On failure, says so and shows the end of the broker's log;
   0 on success. */
int e2e_broker_up(brokerproc_t *bp, const char *dbname, const char *broker_extra,
                  const char *agencies);

/* e2e_broker_up, and a connection to the broker's database in *db for
   the test's queries. 0 on success. */
int e2e_broker_up_db(brokerproc_t *bp, PGconn **db, const char *dbname,
                     const char *broker_extra, const char *agencies);

/* brokerproc_start, showing the end of the broker's log when it did not
   start. 0 on success. */
int e2e_broker_start(brokerproc_t *bp);

/* Stops the broker with SIGTERM (showing the end of its log when it did
   not exit 0) and removes its folder: 0 when it exited 0, else -1. */
int e2e_broker_down(brokerproc_t *bp);

/* Closes *db, then e2e_broker_down. */
int e2e_broker_down_db(brokerproc_t *bp, PGconn **db);

/* The last 4,000 bytes of a log file, on stderr, under its name. */
void e2e_show_log(const char *path);

/* ---- clients and messages --------------------------------------------- */

/* A client joined as `agency` with `credit`; fails the test if it could
   not join. */
mlg_client_t *e2e_client(const brokerproc_t *bp, const char *agency, uint64_t credit);

/* A PUBLISH from the JSON text that fmt and its arguments make (of any
   length). A fresh message id is written to `id` first, so the
   arguments may name `id` to put it in the text. Fails the test, showing
   the text and the reason, if it is not a PUBLISH. */
mlg_msg_t *e2e_msg(char id[37], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A child.protection.alert to `to` about `subject` (purpose protection,
   a fixed alert_id, concern "c", urgency "urgent"), with a fresh id. */
mlg_msg_t *e2e_alert(char id[37], const char *to, const char *subject);

/* A service.capacity.changed of service "s" (nursing-home, 10 places,
   `places` of them available), to `to` (NULL: no "to"), fresh id. */
mlg_msg_t *e2e_capacity(char id[37], const char *to, int places);

/* Sends `m` on c and returns its answer, the next CONFIRM or REJECT
   (DELIVERs and others skipped); fails the test if none comes within
   timeout_ms. */
mlg_msg_t *e2e_publish(mlg_client_t *c, const mlg_msg_t *m, int timeout_ms);

/* Sends `m` (destroying it) and checks that it is confirmed within 10 s;
   the CONFIRM's seq. */
uint64_t e2e_confirmed(mlg_client_t *c, mlg_msg_t **m_p);

/* The next map on c, which must be `op` within timeout_ms (else the test
   fails, naming what came instead). */
mlg_msg_t *e2e_expect(mlg_client_t *c, mlg_op_t op, int timeout_ms);

/* The next DELIVER on c within timeout_ms, other maps skipped; NULL when
   none comes. */
mlg_msg_t *e2e_next_deliver(mlg_client_t *c, int timeout_ms);

/* ---- raw frames on a DEALER ------------------------------------------- */

/* A DEALER connected to the broker (no linger), in no session yet. */
zsock_t *e2e_raw(const brokerproc_t *bp);

/* Sends `m`, encoded, as one frame. */
void e2e_raw_send(zsock_t *d, const mlg_msg_t *m);

/* The next frame, decoded (the test fails if it does not decode); NULL
   when none comes within timeout_ms. */
mlg_msg_t *e2e_raw_recv(zsock_t *d, int timeout_ms);

/* Sends `size` bytes as one frame and returns the answer, which must
   come within timeout_ms. */
mlg_msg_t *e2e_raw_exchange(zsock_t *d, const void *data, size_t size, int timeout_ms);

/* Sends `m` and returns the answer, which must come within timeout_ms. */
mlg_msg_t *e2e_raw_ask(zsock_t *d, const mlg_msg_t *m, int timeout_ms);

/* HELLO as `agency` with `credit`; the answer must be WELCOME. */
void e2e_raw_hello(zsock_t *d, const char *agency, uint64_t credit);

/* ---- the broker's database -------------------------------------------- */

/* brokerproc_scalar of the SQL that fmt and its arguments make. */
long e2e_scalar(PGconn *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Asks the SQL that fmt makes every 50 ms until it gives `want`, up to
   timeout_ms; the last value it gave. */
long e2e_wait_scalar(PGconn *db, long want, int timeout_ms, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- the other programs ----------------------------------------------- */

/* Runs `maillage --database <bp's database>` with the arguments that fmt
   makes; its stdout in *out (malloc'd, NUL-terminated) and its stderr in
   the broker's folder (cli.err), or with `out` NULL its stdout dropped
   and its stderr the test's. Its exit code, or -1. */
int e2e_cli(const brokerproc_t *bp, char **out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same on another database URL, its output files in `dir`. */
int e2e_cli_on(const char *database, const char *dir, char **out, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* `maillage verify` on the broker's database: 0 when the audit chain is
   whole; otherwise what it printed goes to stderr. */
int e2e_verify_chain(const brokerproc_t *bp);

/* Starts maillage-adapter --plugin `plugin` --config `cfg`, its stderr
   appended to `log`. A SIGTERM sent before the program runs is not lost
   to this process's handlers; with `term_pending`, the adapter starts
   with one pending. The child's pid (the test fails if fork fails). */
pid_t e2e_adapter_spawn(const char *plugin, const char *cfg, const char *log,
                        bool term_pending);

#endif
