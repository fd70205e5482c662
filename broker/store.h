/*  store.h: the store thread, sole owner of the PostgreSQL connection.

    The event loop hands it commands over the actor's pipe and never
    waits for it: brk_store_publish, brk_store_fetch, brk_store_update
    and brk_store_agencies each send one structure below, whose
    ownership goes with it. A publish and a fetch come back as reports
    (brk_store_recv: BRK_STORE_DONE, BRK_STORE_FETCHED) once their
    transaction has committed (or failed); the loop owns them again then.
    Updates and the agencies are fire-and-forget: the store frees them.
    The store also reports BRK_STORE_DB_UP and BRK_STORE_DB_DOWN when
    the connection comes and goes, the consent index on each new
    connection, and operators' replays. Commands and reports are typed
    (an enum tag and a structure); an unknown tag is a programmer error.

    Group commit: the store takes every command waiting in the pipe (up
    to a bound) into one transaction, so many publishes share one fsync.
    Within it, consecutive publishes are written with one statement of
    binary arrays for the messages, decisions and deliveries (a consent
    event's own step between its message and its decisions), and SENT
    and ACK updates with one UPDATE (they touch other rows than new
    publishes, and commute); any other command keeps its place.
    Invariant: a PUBLISH is answered MLG_OK only after COMMIT returned. */

#ifndef BRK_STORE_H
#define BRK_STORE_H

#include <czmq.h>

#include "config.h"
#include "consent.h"
#include "decision.h"
#include "referral.h"
#include "maillage/codec.h"

typedef enum {
    BRK_JOB_PLAIN,  /* any event */
    BRK_JOB_GRANT,  /* consent.granted: also a row of `consents` */
    BRK_JOB_REVOKE, /* consent.revoked: the consent revoked, its pending
                       deliveries settled `revoked` */
} brk_job_kind_t;

/* A PUBLISH on its way to the database. */
typedef struct {
    brk_job_kind_t kind;
    brk_consent_t *consent;            /* GRANT: the consent to store; owned */
    char consent_id[MLG_UUID_LEN + 1]; /* REVOKE */
    uint64_t *keep;                    /* REVOKE: deliveries in flight, not settled now */
    size_t nkeep;
    /* in (the loop's) */
    mlg_msg_t *msg; /* owned */
    char sender[MLG_AGENCY_ID_MAX + 1];
    int64_t received_us;       /* µs since the epoch */
    brk_decision_t *decisions; /* owned */
    size_t ndecisions;
    zframe_t *routing_id;         /* the connection to answer, owned; NULL for the
                                     broker's own notices */
    uint64_t conn;                /* the loop's number for that connection */
    brk_referral_plan_t referral; /* what it does to referral legs, written
                                     with it; owned (step NONE: nothing) */
    mlg_rc_t refused;             /* not MLG_OK: the loop refused it (`refusal` says
                                     why) unless its id is stored already, which the
                                     store answers as a duplicate; nothing is written */
    char *refusal;                /* owned */
    /* out (the store's) */
    mlg_rc_t rc; /* MLG_OK, MLG_UNAVAILABLE, or MLG_INVALID (id used by another) */
    bool duplicate;
    uint64_t seq;
    /* the deliveries it created, one per allowed recipient */
    bool created_deliveries;
    uint64_t *delivery_ids; /* owned, ndecisions long, or NULL: the delivery
                               made for each allowed decision (0 where
                               none); the loop sends them from memory */
} brk_job_t;

/* A row of a recipient's queue, ready to be sent. */
typedef struct {
    uint64_t delivery;
    uint64_t attempts;                 /* attempts made so far */
    int64_t sent_unwritten_us;         /* in flight since then, and the store not
                                          told yet (delivery.c), or 0 */
    mlg_packed_deliver_t *deliver;     /* the DELIVER but for `delivery` and
                                          `attempt`, encoded; owned */
    char consent_id[MLG_UUID_LEN + 1]; /* the consent it relies on, or "" */
    char recipient[MLG_AGENCY_ID_MAX + 1];
} brk_delivery_t;

/* Read the next pending deliveries of one recipient. */
typedef struct {
    char agency[MLG_AGENCY_ID_MAX + 1];
    uint64_t after; /* delivery ids greater than this */
    size_t limit;
    /* out */
    bool ok;
    brk_delivery_t **rows; /* owned array of owned rows */
    size_t nrows;
} brk_fetch_t;

typedef enum {
    BRK_UPDATE_SENT,     /* an attempt went out */
    BRK_UPDATE_ACK,      /* settled: acked (and sent too, when `sent`) */
    BRK_UPDATE_NACK,     /* NACK with requeue: stays pending */
    BRK_UPDATE_REQUEUED, /* client gone or silent: stays pending */
    BRK_UPDATE_DEAD,     /* dead-lettered */
    BRK_UPDATE_REVOKED,  /* never delivered: its consent was revoked or
                             expired; a second decision is stored */
} brk_update_kind_t;

typedef struct {
    brk_update_kind_t kind;
    uint64_t delivery;
    uint64_t attempt;
    bool sent; /* ACK: its attempt's SENT was not told, count it too */
    char recipient[MLG_AGENCY_ID_MAX + 1]; /* the delivery's: its queue's depth */
    char *reason; /* owned; NULL for none (SENT and ACK, most of them: no
                     buffer allocated and cleared per message) */
    char actor[96];
    char consent_id[MLG_UUID_LEN + 1]; /* REVOKED */
    char code[MLG_CODE_MAX + 1];       /* REVOKED: REVOKED or EXPIRED */
} brk_update_t;

typedef struct brk_metrics_t brk_metrics_t;

/* Starts the store thread on `database` (a libpq URL). It connects in
   the background and keeps reconnecting; migrations run on each new
   connection, from `sql_dir`; the legs of referrals stored before the
   referral tables are rebuilt with `deadlines` (copied). It records its
   commits, and the queues' depths as it commits (depth.h), in
   `metrics`, which must outlive it. NULL on failure to start the
   thread. */
zactor_t *brk_store_new(const char *database, const char *sql_dir, brk_metrics_t *metrics,
                        const brk_deadline_t *deadlines, size_t ndeadlines);

/* ---- commands, from the loop to the store -------------------------------

   Each takes responsibility over what it sends (and sets *p to NULL);
   what comes back comes back as a report. -1 when the store's pipe
   would not take it (the store is stopping): the thing is destroyed. */

/* A publish to store: reported BRK_STORE_DONE, committed or not. */
int brk_store_publish(zactor_t *store, brk_job_t **job_p);
/* A queue to read: reported BRK_STORE_FETCHED. */
int brk_store_fetch(zactor_t *store, brk_fetch_t **fetch_p);
/* A delivery's change: never reported; the store frees it once written. */
int brk_store_update(zactor_t *store, brk_update_t **update_p);
/* The registry as JSON text (from jansson or malloc), for the agencies
   table: never reported. */
int brk_store_agencies(zactor_t *store, char **json_p);

/* ---- reports, from the store to the loop ------------------------------ */

typedef enum {
    BRK_STORE_DONE,      /* job: a PUBLISH answered; the loop owns it again */
    BRK_STORE_FETCHED,   /* fetch: a FETCH answered (ok false: not read) */
    BRK_STORE_REPLAY,    /* agency: an operator replayed its dead letters;
                            owned (free()) */
    BRK_STORE_CONSENTS,  /* consents: the index as the database has it, on
                            each new connection; owned */
    BRK_STORE_REFERRALS, /* referrals: the same for the referral legs, just
                            after; owned */
    BRK_STORE_DB_UP,     /* the database is there: publishing open */
    BRK_STORE_DB_DOWN,   /* it is not: publishes are refused */
} brk_store_report_kind_t;

typedef struct {
    brk_store_report_kind_t kind;
    union {
        brk_job_t *job;
        brk_fetch_t *fetch;
        char *agency;
        brk_consents_t *consents;
        brk_referrals_t *referrals;
    };
} brk_store_report_t;

/* Reads one report from the store's pipe (zactor_sock); -1 when there is
   none (the pipe is closing). A report of an unknown kind is a
   programmer error (assert). */
int brk_store_recv(zsock_t *pipe, brk_store_report_t *report);

void brk_job_destroy(brk_job_t **job_p);
void brk_fetch_destroy(brk_fetch_t **fetch_p);
void brk_delivery_destroy(brk_delivery_t **row_p);
void brk_update_destroy(brk_update_t **update_p);

#endif
