/*  brokerproc.h: runs the real maillage-broker process for end-to-end
    tests, on a database of its own in the suite's PostgreSQL, with a
    configuration written for the test. */

#ifndef MLG_TEST_BROKERPROC_H
#define MLG_TEST_BROKERPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <libpq-fe.h>

#include "maillage/client.h"

typedef struct {
    char dir[256];       /* the test's temporary folder */
    char endpoint[64];   /* tcp://127.0.0.1:PORT */
    char database[512];  /* the broker's database URL */
    char conninfo[2048]; /* the same database, for the test's own queries */
    char log[300];       /* the broker's stderr */
    pid_t pid;
} brokerproc_t;

/* The security section written by the next brokerproc_init (lines
   indented by 4); NULL: "curve = 0". */
extern const char *brokerproc_security;

/* Creates a fresh database `dbname` and a configuration whose agencies
   section is `agencies` (ZPL, indented by 4). `broker_extra` lines go in
   the broker section. Does not start the broker. 0 on success. */
int brokerproc_init(brokerproc_t *bp, const char *dbname, const char *broker_extra,
                    const char *agencies);

/* Creates a fresh, empty database `dbname` in the suite's PostgreSQL
   (dropping any of that name) and gives its URL and a libpq conninfo
   for it. 0 on success. */
int brokerproc_make_db(const char *dbname, char *url, size_t urllen, char *conninfo,
                       size_t conninfolen);

/* The same on a database the caller made: `url` for the broker,
   `conninfo` for the test's own queries. */
int brokerproc_init_url(brokerproc_t *bp, const char *url, const char *conninfo,
                        const char *broker_extra, const char *agencies);

/* Writes the configuration again (the same endpoint and database), for a
   reload. 0 on success. */
int brokerproc_rewrite(brokerproc_t *bp, const char *broker_extra, const char *agencies);

/* Starts the broker and waits until it has its database (its log says
   so), up to 20 s. 0 on success. */
int brokerproc_start(brokerproc_t *bp);

/* SIGTERM (graceful) or SIGKILL, then waits for the process; returns its
   exit status (or -1). */
int brokerproc_stop(brokerproc_t *bp, int sig);

/* Waits until the broker's log contains `text` (after `from` bytes);
   0 when it does within timeout_ms. */
int brokerproc_wait_log(brokerproc_t *bp, const char *text, int timeout_ms);

/* Stops the broker if running and removes the folder. */
void brokerproc_cleanup(brokerproc_t *bp);

/* A client joined to the broker as `agency` with `credit`; NULL (and the
   broker's answer on stderr) when it could not join within 5 s. */
mlg_client_t *brokerproc_client(const brokerproc_t *bp, const char *agency,
                                uint64_t credit);

/* The next CONFIRM or REJECT on `c`, skipping DELIVERs and others;
   NULL when none comes within timeout_ms. */
mlg_msg_t *brokerproc_answer(mlg_client_t *c, int timeout_ms);

/* A free TCP port on 127.0.0.1, below the kernel's ephemeral range. */
int brokerproc_free_port(void);

/* A fresh message id: a lowercase canonical UUID. */
void brokerproc_new_id(char id[37]);

/* A connection to the broker's database. */
PGconn *brokerproc_db(const brokerproc_t *bp);

/* The first column of the first row of a query, as a long; -1 if none. */
long brokerproc_scalar(PGconn *conn, const char *sql);

#endif
