/*  store_int.h: what the store's modules share, and nothing else
    includes: the thread's state, the command as it crosses the pipe, the
    statements by name, and each module's functions.

    store.c        the thread: the pipe, batches and their transaction
    store_conn.c   the connection: reconnect with backoff, statements
                   sent ahead (pipeline mode), updates held over a failure
    store_write.c  what a transaction writes: publishes, consents, the
                   delivery updates, the audit chain's head
    store_read.c   what the store reads: queues, consents, the chain's head
    store_referral.c  the referral tables: a plan's rows, the index, the
                   legs' one-time rebuild
    store_depth.c  the queues' depths: counted on each new connection,
                   kept as batches commit, handed to the metrics
    store_sql.c    the text of every statement the store sends

    All run on the store thread; none of it is thread-safe. */

#ifndef BRK_STORE_INT_H
#define BRK_STORE_INT_H

#include <libpq-fe.h>

#include "chain.h"
#include "config.h"
#include "depth.h"
#include "pgbin.h"
#include "store.h"

#define BRK_STORE_MAX_BATCH 1000 /* commands in one transaction */
#define BRK_STORE_BACKOFF_MIN_MS 100
#define BRK_STORE_BACKOFF_MAX_MS 5000

/* A command from the loop: one frame holding this structure by value,
   written by the brk_store_* helpers of store.h only. */
typedef enum {
    BRK_STORE_CMD_PUBLISH,
    BRK_STORE_CMD_FETCH,
    BRK_STORE_CMD_UPDATE,
    BRK_STORE_CMD_AGENCIES,
} brk_store_op_t;

typedef struct {
    brk_store_op_t op;
    union {
        brk_job_t *job;       /* PUBLISH */
        brk_fetch_t *fetch;   /* FETCH */
        brk_update_t *update; /* UPDATE */
        char *agencies;       /* AGENCIES: JSON text */
    };
} brk_store_cmd_t;

/* What a statement sent ahead is, for reading its answer. */
typedef enum {
    BRK_SENT_PLAIN,  /* any success will do */
    BRK_SENT_COMMIT, /* must say COMMIT (an aborted transaction says ROLLBACK) */
    BRK_SENT_HEAD,   /* the chain head's move: its failure means another writer */
    BRK_SENT_MARK,   /* store_mark's move: the same */
} brk_sent_t;

/* The store thread's state. */
typedef struct {
    char *database;
    char *sql_dir;
    brk_deadline_t *deadlines; /* the configuration's, for the legs' rebuild */
    size_t ndeadlines;
    brk_metrics_t *metrics; /* the broker's; outlives the thread */
    PGconn *conn;
    int backoff_ms;
    int64_t next_try_ms;
    bool told_up; /* last state told to the loop */
    bool told_once;
    char *agencies;      /* the registry as JSON, from the loop (AGENCIES) */
    bool agencies_dirty; /* not yet written to this connection */
    /* the audit chain's head (chain.h): the last position and link
       written, and where the batch in hand started */
    uint64_t chain_seq, batch_chain_seq;
    uint8_t link[BRK_LINK_BYTES], batch_link[BRK_LINK_BYTES];
    bool head_stale;
    /* updates of failed batches, oldest first, to write before anything
       else (each an UPDATE command, owned); the first `ndoubt` were in a
       transaction whose COMMIT may have got through */
    brk_store_cmd_t *held;
    size_t nheld, held_cap, ndoubt;
    size_t dropped;  /* updates dropped past the bound, not reported yet */
    uint64_t mark;   /* store_mark.batch as this store last read or moved it */
    bool mark_stale; /* another writer moved it: read it again */
    /* statements sent ahead in pipeline mode, answers not read yet;
       broken: what was sent is not known, the connection is dropped */
    bool broken;
    size_t nsent;
    brk_sent_t sent[8];
    /* the queues' depths (store_depth.c): the count out on a connection
       of its own, or NULL; when a count may begin again after one
       failed; when the oldest deliveries were last looked up */
    brk_depths_t *depths;
    PGconn *counter;
    int64_t count_began, count_retry_ms, depths_read_at;
} brk_store_t;

/* ---- store_sql.c: every statement, by name ----------------------------- */

typedef enum {
    BRK_SQL_BEGIN,
    BRK_SQL_COMMIT,
    BRK_SQL_ROLLBACK,
    BRK_SQL_LISTEN,
    BRK_SQL_READ_HEAD,
    BRK_SQL_MOVE_HEAD,
    BRK_SQL_READ_MARK,
    BRK_SQL_MOVE_MARK,
    BRK_SQL_READ_CONSENTS,
    BRK_SQL_WRITE_AGENCIES,
    BRK_SQL_PUBLISH_CHECK,
    BRK_SQL_PUBLISH_INSERT,
    BRK_SQL_STORED_MESSAGE,
    BRK_SQL_STORED_DECISIONS,
    BRK_SQL_GRANT,
    BRK_SQL_REVOKE,
    BRK_SQL_SETTLE_REVOKED,
    BRK_SQL_CHAIN_DECISION,
    BRK_SQL_READ_QUEUE,
    BRK_SQL_SENT_ACK,
    BRK_SQL_DELIVERY_EVENT,
    BRK_SQL_DEAD,
    BRK_SQL_LAST_ERROR,
    BRK_SQL_WRITE_LEGS,
    BRK_SQL_WRITE_DUPLICATES,
    BRK_SQL_READ_REFERRALS,
    BRK_SQL_READ_LEGS,
    BRK_SQL_REBUILD_MESSAGES,
    BRK_SQL_COUNT_SNAPSHOT,
    BRK_SQL_COUNT_QUEUES,
    BRK_SQL_RECOUNT_QUEUES,
    BRK_SQL_OLDEST_PENDING,
    BRK_SQL_NSTATEMENTS
} brk_sql_t;

/* The statement's text, and its name when it is prepared on each new
   connection (NULL: sent with its text each time). */
const char *brk_sql_text(brk_sql_t sql);
const char *brk_sql_prepared(brk_sql_t sql);
/* Prepares those that are, on a new connection; false (logged) on
   failure. */
bool brk_sql_prepare(PGconn *conn);

/* ---- store.c ----------------------------------------------------------- */

/* Tells the loop; what the report carries is the loop's now. */
void brk_store_report(zsock_t *pipe, brk_store_report_t report);

/* ---- store_conn.c ------------------------------------------------------ */

/* Connected, or connects when the backoff allows: migrations, the
   chain's head, store_mark, the consents (sent to the loop), the
   prepared statements, LISTEN, the agencies table. */
bool brk_store_connect(brk_store_t *self, zsock_t *pipe);
/* Drops the connection and sets the next try. */
void brk_store_disconnect(brk_store_t *self, zsock_t *pipe);
/* Operators' replays, as notifications: reported REPLAY. */
void brk_store_check_notifies(brk_store_t *self, zsock_t *pipe);

/* Statements sent ahead in pipeline mode: see store_conn.c. */
bool brk_store_piped(const brk_store_t *self);
bool brk_store_ahead(brk_store_t *self, brk_sent_t kind, brk_sql_t sql, int n,
                     const char *const *values, const int *lengths, const int *formats);
bool brk_store_collect(brk_store_t *self, PGresult **last);
/* One statement, with text parameters, once what was sent ahead is
   answered; NULL (logged) on failure. */
PGresult *brk_store_query(brk_store_t *self, brk_sql_t sql, int n,
                          const char *const *values);
bool brk_store_exec(brk_store_t *self, brk_sql_t sql, int n, const char *const *values);

/* Updates held over a failure: see store_conn.c. */
void brk_store_hold(brk_store_t *self, brk_store_cmd_t *cmd);
void brk_store_held_drop(brk_store_t *self, size_t n);
bool brk_store_read_mark(brk_store_t *self, PGconn *conn);
const char *brk_store_update_name(brk_update_kind_t kind);

/* ---- store_write.c ----------------------------------------------------- */

/* Binary array parameters (at most 32): finished, as a statement's
   parameters; sent ahead. False (logged) on failure. */
bool brk_store_array_params(brk_pgbin_t *arrays, int n, const char **values, int *lengths,
                            int *formats);
bool brk_store_send_arrays(brk_store_t *self, brk_sql_t stmt, int n, brk_pgbin_t *arrays);

/* Publishes, in order, in the transaction in hand. */
bool brk_store_write_publishes(brk_store_t *self, brk_job_t *const *jobs, size_t n);
/* SENT and ACK updates, in order, with one statement. */
bool brk_store_write_sent_acks(brk_store_t *self, brk_update_t *const *ups, size_t n);
/* One update of any kind. */
bool brk_store_write_update(brk_store_t *self, brk_update_t *u);
/* The chain's head and store_mark moved, sent ahead. */
bool brk_store_move_head(brk_store_t *self);
bool brk_store_move_mark(brk_store_t *self);
/* The agencies table, when the registry changed or the connection is new. */
void brk_store_write_agencies(brk_store_t *self);

/* ---- store_referral.c -------------------------------------------------- */

/* The referral rows of a run of publishes, one binary array per column
   (store_referral.c says which): the referrals opened, the legs as
   they are after (with their moves), the duplicates found. A leg may
   appear once in a run (a referral has one plan in flight, or notices
   about different legs). */
typedef struct {
    brk_pgbin_t refs[7], legs[15], dups[10];
    size_t nrefs, nlegs, ndups;
} brk_referral_rows_t;

void brk_referral_rows_start(brk_referral_rows_t *rows);
/* A plan's rows; `told` false records its duplicates as told to no one
   (the rebuild). False when out of memory. */
bool brk_referral_rows_add(brk_referral_rows_t *rows, const brk_referral_plan_t *plan,
                           bool told);
/* Sends them ahead in the transaction in hand (nothing when empty). */
bool brk_store_write_referral_rows(brk_store_t *self, brk_referral_rows_t *rows);
void brk_referral_rows_free(brk_referral_rows_t *rows);
/* The referral tables as an index; NULL (logged) on failure. */
brk_referrals_t *brk_store_read_referrals(PGconn *conn);
/* The legs of referrals stored before migration 0006, rebuilt once from
   the stored messages; true when done now or before. */
bool brk_store_rebuild_referrals(brk_store_t *self, PGconn *conn);

/* ---- store_depth.c ----------------------------------------------------- */

/* On a new connection, before its first transaction: the count begins
   from a snapshot taken now, on a connection of its own, and nothing
   waits for it. */
void brk_store_count_begin(brk_store_t *self);
/* The connection is gone: the count, if out, is dropped, and the
   depths are not known until the next connection's count. */
void brk_store_count_stop(brk_store_t *self);
/* Between batches: the count's answer if it came, the agencies to count
   again and the oldest deliveries to look up (at most once a second),
   and the figures changed handed to the metrics, once. */
void brk_store_depths_refresh(brk_store_t *self);
/* The deliveries a statement settled, one row each with its recipient
   in column `col` (`delivery`: their id when it is the one, or 0);
   staged until the transaction commits. */
void brk_store_depths_settled(brk_store_t *self, const PGresult *res, int col,
                              uint64_t delivery, bool dead);

/* ---- store_read.c ------------------------------------------------------ */

bool brk_store_read_queue(brk_store_t *self, brk_fetch_t *fetch);
bool brk_store_read_head(brk_store_t *self, PGconn *conn);
/* A publish whose id is stored already: a duplicate of the same
   publisher's, answered as first decided, or another agency's id
   (MLG_INVALID). false on a database error. */
bool brk_store_read_duplicate(brk_store_t *self, brk_job_t *job);
/* The whole `consents` table as an index; NULL (logged) on failure. */
brk_consents_t *brk_store_read_consents(PGconn *conn);

#endif
