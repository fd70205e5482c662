/*  referral.h: the referrals the broker follows (PROTOCOL.md §9): each
    referral's legs, the moves the §9 table allows, the deadlines, the
    parallel requests and the duplicates. Pure: no I/O, the time is
    given.

    The index is loaded from the referral tables on each new connection
    and kept current by the referral events the store commits, so a
    publish is checked from memory. brk_referral_plan says what a
    publish does to the legs (a plan); the store writes the plan in the
    publish's own transaction, and brk_referrals_commit applies it once
    that has committed (brk_referrals_abandon when it has not). While a
    referral has a plan in flight it is busy: another event about it is
    answered UNAVAILABLE until the first is stored, so that plans never
    build on one another.

    The broker's own notices come from here too: brk_referrals_due gives
    a plan for each leg that is overdue (a heap of due times, so a tick
    costs the legs that fell due, not every leg) and for each open leg of
    a referral whose other leg started (superseded). So do the figures
    operators watch (brk_referrals_figures): counts kept as legs load and
    plans commit, and the overdue legs. */

#ifndef BRK_REFERRAL_H
#define BRK_REFERRAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "consent.h"
#include "decision.h"
#include "maillage/codec.h"
#include "maillage/limits.h"
#include "maillage/rc.h"

#define BRK_REFERRAL_WORD_MAX 32 /* a service or priority word */
/* Duplicates found, stored and told for one new referral, at most: a
   person rarely has more than a few open referrals for one service, and
   the check of a publish must not grow with them. */
#define BRK_REFERRAL_MATCHES_MAX 64

/* The reserved sender of the broker's notices (a configuration that
   registers it is refused). */
#define BRK_NOTICE_SENDER "maillage"

typedef enum {
    BRK_LEG_SENT, /* open */
    BRK_LEG_RECEIVED,
    BRK_LEG_WAITLISTED,
    BRK_LEG_ACCEPTED,
    BRK_LEG_STARTED,
    BRK_LEG_DECLINED, /* closed */
    BRK_LEG_COMPLETED,
    BRK_LEG_CANCELLED,
    BRK_LEG_SUPERSEDED,
} brk_leg_state_t;

#define BRK_LEG_NSTATES 9

/* "sent", "received", ...; NULL out of range. */
const char *brk_leg_state_name(brk_leg_state_t state);
/* The state of that name; -1 for none. */
int brk_leg_state_parse(const char *name);
bool brk_leg_state_open(brk_leg_state_t state);

/* A leg: one referral to one recipient (a row of referral_legs). Times
   in µs since the epoch; 0 for "not yet". */
typedef struct {
    char referral_id[MLG_UUID_LEN + 1];
    char recipient[MLG_AGENCY_ID_MAX + 1];
    char referrer[MLG_AGENCY_ID_MAX + 1];
    char subject[MLG_STRBUF(MLG_SUBJECT_MAX)];
    char service[BRK_REFERRAL_WORD_MAX + 1];
    char priority[BRK_REFERRAL_WORD_MAX + 1];
    brk_leg_state_t state;
    int64_t opened_us;
    int64_t decided_us; /* its first decision: waitlisted, accepted, declined */
    int64_t closed_us;
    int64_t due_us;
    int64_t overdue_us; /* when its overdue notice was stored */
} brk_leg_t;

/* What the index needs of a referral.* publish, read by the caller from
   its envelope and body. */
typedef struct {
    const char *type; /* "referral.created", ... */
    const char *message_id;
    const char *publisher;
    const char *referral_id;
    const char *subject;
    const char *service;  /* referral.created */
    const char *priority; /* referral.created */
    int64_t deadline_us;  /* referral.created: the configuration's, for its
                             service and priority */
    const mlg_agency_t *to;
    size_t nto;
    const brk_decision_t *decisions; /* referral.created: its routing */
    size_t ndecisions;
    int64_t now; /* when the broker received it */
} brk_referral_event_t;

/* A duplicate: an open leg of another referral about the same person and
   service, found when a referral.created is stored. */
typedef struct {
    char referral_id[MLG_UUID_LEN + 1]; /* the other referral */
    char recipient[MLG_AGENCY_ID_MAX + 1];
    char referrer[MLG_AGENCY_ID_MAX + 1];
    brk_leg_state_t state;
    int64_t since;       /* that leg's opening */
    bool told_publisher; /* in the CONFIRM (same referrer, or a consent) */
    bool told_recipient; /* its recipient got a leg of the new referral:
                            in that DELIVER */
} brk_referral_match_t;

typedef enum {
    BRK_REFERRAL_NONE,      /* not an event of the §9 table */
    BRK_REFERRAL_OPEN,      /* referral.created: the referral and its legs */
    BRK_REFERRAL_MOVE,      /* an agency's move of one leg or (cancelled) several */
    BRK_REFERRAL_OVERDUE,   /* the broker's referral.overdue about one leg */
    BRK_REFERRAL_SUPERSEDE, /* the broker's referral.superseded: one leg closes */
} brk_referral_step_t;

/* What one message does to the legs: the store writes it with the
   message, the index applies it once committed. */
typedef struct {
    brk_referral_step_t step;
    char referral_id[MLG_UUID_LEN + 1];
    char message_id[MLG_UUID_LEN + 1]; /* the message that does it; for
                                          the broker's notices, set by the
                                          caller that makes the message */
    int64_t at;                        /* µs: when */
    /* OPEN: the referral's own row */
    char referrer[MLG_AGENCY_ID_MAX + 1];
    char subject[MLG_STRBUF(MLG_SUBJECT_MAX)];
    char service[BRK_REFERRAL_WORD_MAX + 1];
    char priority[BRK_REFERRAL_WORD_MAX + 1];
    /* the legs it touches, as they are after it, and the state each had
       before (-1 for a leg it opens; equal to its state when it does not
       move it, as an overdue notice) */
    brk_leg_t *legs;
    int *from;
    size_t nlegs;
    brk_referral_match_t *matches; /* OPEN */
    size_t nmatches;
    bool matches_cut; /* OPEN: more than BRK_REFERRAL_MATCHES_MAX matched;
                         the oldest ones are these */
} brk_referral_plan_t;

typedef struct brk_referrals_t brk_referrals_t;

brk_referrals_t *brk_referrals_new(void);
void brk_referrals_destroy(brk_referrals_t **self_p);

/* Loading, from the database: a referral (also one with no leg), then
   its legs. 0, or -1 when out of memory, a leg comes before its
   referral, or the row is known already. */
int brk_referrals_load_referral(brk_referrals_t *self, const char *referral_id,
                                const char *referrer, const char *subject,
                                const char *service, const char *priority,
                                int64_t created_us);
int brk_referrals_load_leg(brk_referrals_t *self, const brk_leg_t *leg);

/* Takes the referrals of `loaded` (destroyed) in place of its own, and
   keeps what is in flight: the busy marks, and the referrals opened but
   not yet committed. For a new database connection. */
void brk_referrals_replace(brk_referrals_t *self, brk_referrals_t **loaded_p);

/* Counts, for metrics and tests. */
size_t brk_referrals_count(const brk_referrals_t *self);
size_t brk_referrals_legs(const brk_referrals_t *self);
/* The leg (referral_id, recipient), or NULL. */
const brk_leg_t *brk_referrals_leg(const brk_referrals_t *self, const char *referral_id,
                                   const char *recipient);
/* Calls fn for each leg, in no particular order. */
void brk_referrals_each_leg(const brk_referrals_t *self,
                            void (*fn)(const brk_leg_t *leg, void *arg), void *arg);

/* The plan of one publish (§9): MLG_OK with a plan (step NONE for an
   event the table does not know); otherwise nothing is planned and
   `reason` says why:
   - MLG_INVALID: "/referral_id: already used", "/referral_id: no open
     referral between you and X", "/referral_id: declined; cannot move
     to accepted";
   - MLG_ADDRESS_REQUIRED: a recipient's event not addressed to the
     referrer;
   - MLG_UNAVAILABLE: another event of this referral is being stored.
   `consents` decides whether a duplicate's referrer may be told (a
   consent in force for the subject with the publisher, for orientation
   and social). With MLG_OK and a step, the referral is busy until
   brk_referrals_commit or brk_referrals_abandon. */
mlg_rc_t brk_referral_plan(brk_referrals_t *self, const brk_consents_t *consents,
                           const brk_referral_event_t *ev, brk_referral_plan_t *plan,
                           char *reason, size_t reasonlen);

/* The plan's message is stored: its moves are the index's. */
void brk_referrals_commit(brk_referrals_t *self, const brk_referral_plan_t *plan);
/* It is not (or it was a duplicate): nothing changes but the busy mark. */
void brk_referrals_abandon(brk_referrals_t *self, const brk_referral_plan_t *plan);

/* The broker's notices due at `now`: up to `max` plans (OVERDUE,
   SUPERSEDE), each making its referral busy. A leg is given once: the
   next call gives it again only if its plan was abandoned. The caller
   fills each plan's message_id. */
size_t brk_referrals_due(brk_referrals_t *self, int64_t now, brk_referral_plan_t *plans,
                         size_t max);

/* The earliest due time still waiting, or 0 for none. */
int64_t brk_referrals_next_due(const brk_referrals_t *self);

/* The §9 notices a plan gives, added to a message: the CONFIRM's (each
   duplicate told to the publisher: referral_id, recipient, state,
   since) and a recipient's DELIVER's (each duplicate whose leg it holds:
   referral_id, since). */
void brk_referral_confirm_notices(const brk_referral_plan_t *plan, mlg_msg_t *confirm);
void brk_referral_deliver_notices(const brk_referral_plan_t *plan, const char *recipient,
                                  mlg_msg_t *deliver);

void brk_referral_plan_clear(brk_referral_plan_t *plan);

/* ---- figures, for /metrics and the dashboard (referral_figures.c) ------ */

/* The buckets of a leg's time to its first decision, in seconds: from a
   second (an automated answer) to three months. */
#define BRK_DECISION_NBOUNDS 14
extern const double brk_decision_bounds[BRK_DECISION_NBOUNDS];

/* The legs of one service and priority that the index holds (every leg
   of the database, loaded at each connection, and those committed
   since): how many are in each state, and the times from opening to
   first decision (waitlisted, accepted, declined) of those decided.
   Kept as legs are loaded and plans committed, never by a scan. */
typedef struct {
    char service[BRK_REFERRAL_WORD_MAX + 1];
    char priority[BRK_REFERRAL_WORD_MAX + 1];
    uint64_t legs[BRK_LEG_NSTATES];
    uint64_t buckets[BRK_DECISION_NBOUNDS]; /* first decisions; not cumulative */
    uint64_t decisions;                     /* all of them (+Inf) */
    double decision_seconds;                /* their sum */
} brk_referral_tally_t;

/* An overdue leg (open, no decision, past its due time) as operators see
   it: agencies and the referral's id, never its subject. */
typedef struct {
    char referral_id[MLG_UUID_LEN + 1];
    char referrer[MLG_AGENCY_ID_MAX + 1];
    char recipient[MLG_AGENCY_ID_MAX + 1];
    char service[BRK_REFERRAL_WORD_MAX + 1];
    brk_leg_state_t state;
    int64_t due_us;
} brk_overdue_leg_t;

typedef struct {
    char recipient[MLG_AGENCY_ID_MAX + 1];
    uint64_t legs;
} brk_overdue_count_t;

/* The figures at one moment, for the HTTP thread: a copy, owning its
   arrays. */
typedef struct {
    int64_t at;                    /* µs: when taken */
    brk_referral_tally_t *tallies; /* by service, then priority */
    size_t ntallies;
    brk_overdue_count_t *recipients; /* the recipients with overdue legs, by id */
    size_t nrecipients;
    brk_overdue_leg_t *overdue; /* the longest overdue first, at most max_listed */
    size_t noverdue;
    size_t overdue_total; /* all of them */
} brk_referral_figures_t;

/* The figures at `now`; NULL when out of memory. The tallies are copied
   as kept; the overdue legs are those told overdue and still waiting,
   and those fallen due that no notice has taken yet (the heap's due
   times up to now): the cost is the overdue legs', not every leg's. */
brk_referral_figures_t *brk_referrals_figures(const brk_referrals_t *self, int64_t now,
                                              size_t max_listed);
void brk_referral_figures_destroy(brk_referral_figures_t **self_p);

#endif
