/*  referral_int.h: what referral.c (the table and the plans),
    referral_index.c (the index, its heap of due times and the notices
    due) and referral_figures.c (the counts kept for operators) share,
    and nothing else includes. Pure, like them. */

#ifndef BRK_REFERRAL_INT_H
#define BRK_REFERRAL_INT_H

#include <czmq.h>

#include "referral.h"

typedef struct {
    char id[MLG_UUID_LEN + 1];
    char referrer[MLG_AGENCY_ID_MAX + 1];
    char subject[MLG_STRBUF(MLG_SUBJECT_MAX)];
    char service[BRK_REFERRAL_WORD_MAX + 1];
    char priority[BRK_REFERRAL_WORD_MAX + 1];
    int64_t created_us;
    brk_leg_t **legs; /* owned */
    size_t nlegs, cap;
    unsigned busy;       /* plans in flight */
    bool pending;        /* opened by a plan not yet committed */
    int64_t quiet_until; /* a notice of it was not stored: none before then */
    bool by_person;      /* listed in by_person (has an open leg) */
} brk_referral_rec_t;

/* A due time in the heap; its leg is looked up when it falls due. */
typedef struct {
    int64_t due;
    char referral_id[MLG_UUID_LEN + 1];
    char recipient[MLG_AGENCY_ID_MAX + 1];
} brk_referral_due_t;

struct brk_referrals_t {
    zhashx_t *by_id; /* referral id -> brk_referral_rec_t (owned) */
    zhashx_t
        *by_person; /* subject \x1f service -> zlistx of brk_referral_rec_t (not owned) */
    brk_referral_due_t *heap; /* a min-heap on due */
    size_t nheap, capheap;
    zlistx_t *supersede; /* referral ids (owned strings) with a started leg */
    size_t nlegs;
    zhashx_t *tallies; /* service \x1f priority -> brk_referral_tally_t (owned) */
    zhashx_t *overdue; /* referral id \x1f recipient -> brk_leg_t (not owned): the
                          legs still waiting that were told overdue, or taken
                          from the heap past their due time */
};

/* The referral of that id, or NULL. */
brk_referral_rec_t *brk_referrals_find(const brk_referrals_t *self, const char *id);
/* Its leg to `recipient`, or NULL (also for a NULL referral). */
brk_leg_t *brk_referral_rec_leg(const brk_referral_rec_t *r, const char *recipient);
/* The key of the open referrals of a person for a service. */
void brk_referral_person_key(const char *subject, const char *service, char *key,
                             size_t len);

/* A plan begun (its fields cleared), its arrays allocated (false when out
   of memory: the plan is cleared), and one leg moved into it. */
void brk_referral_plan_start(brk_referral_plan_t *plan, brk_referral_step_t step,
                             const char *referral_id, int64_t at);
bool brk_referral_plan_alloc(brk_referral_plan_t *plan, size_t nlegs, size_t nmatches);
void brk_referral_plan_move(brk_referral_plan_t *plan, const brk_leg_t *leg,
                            brk_leg_state_t to, int64_t at);

/* The figures kept as the legs change (referral_figures.c): a leg added
   (loaded, or opened by a commit); a leg changed by a commit, `was` as
   it was before; a leg taken from the heap at `now`. */
void brk_referral_tally_add(brk_referrals_t *self, brk_leg_t *leg);
void brk_referral_tally_move(brk_referrals_t *self, const brk_leg_t *was, brk_leg_t *leg);
void brk_referral_overdue_seen(brk_referrals_t *self, brk_leg_t *leg, int64_t now);

/* After a notice the store did not take, the referral's next one waits
   this long (µs): a notice that cannot be stored never holds the store. */
#define BRK_NOTICE_RETRY_US (5LL * 1000000)

#endif
