/*  test_queue.c: broker/queue.c, the queues and the deliveries in flight,
    without a socket or a database: cursor, read-ahead, in flight,
    requeue, replay and restart. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "queue.h"

#define S_LIMIT 4 /* the read-ahead of the tests' queues */
#define S_END 0   /* ends a list of ids */

/* Two clients, as the loop's sessions are to the queues: opaque. */
static int s_client_a, s_client_b;

static brk_delivery_t *
s_row(uint64_t id, uint64_t attempts, const char *consent_id)
{
    brk_delivery_t *row = calloc(1, sizeof(*row));
    assert_non_null(row);
    row->delivery = id;
    row->attempts = attempts;
    mlg_msg_t *m = mlg_msg_new(MLG_OP_DELIVER);
    assert_non_null(m);
    row->deliver = mlg_packed_deliver_new(m);
    mlg_msg_destroy(&m);
    assert_non_null(row->deliver);
    snprintf(row->recipient, sizeof(row->recipient), "cd75");
    snprintf(row->consent_id, sizeof(row->consent_id), "%s", consent_id);
    return row;
}

/* A read of the database goes out and comes back with these ids (a list
   ended by S_END), `ok` or failed. Returns where the read started. */
static uint64_t
s_read(brk_queues_t *qs, brk_queue_t *q, bool ok, const uint64_t *ids)
{
    uint64_t after;
    size_t limit;
    brk_queue_read_begin(q, 0, &after, &limit);
    assert_int_equal(limit, S_LIMIT);
    brk_delivery_t *rows[S_LIMIT] = {NULL};
    size_t n = 0;
    for (; ids && ids[n] != S_END; n++)
        rows[n] = s_row(ids[n], 0, "");
    brk_queues_read_done(qs, q, ok, rows, n, limit);
    for (size_t i = 0; i < n; i++) {
        if (ok)
            assert_null(rows[i]); /* taken, or dropped by the queue */
        brk_delivery_destroy(&rows[i]);
    }
    return after;
}

/* The read-ahead's ids, "1 2 3", in the order they would go out; the
   rows leave the queue. */
static void
s_drain(brk_queue_t *q, char *out, size_t len)
{
    out[0] = '\0';
    brk_delivery_t *row = brk_queue_pop(q);
    for (; row; row = brk_queue_pop(q)) {
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s%llu", used ? " " : "",
                 (unsigned long long)row->delivery);
        brk_delivery_destroy(&row);
    }
}

/* Where the next read would start: -1 when the queue would not read. */
static long long
s_next_read(brk_queues_t *qs, brk_queue_t *q)
{
    if (!brk_queue_wants_read(q))
        return -1;
    uint64_t after;
    size_t limit;
    brk_queue_read_begin(q, 0, &after, &limit);
    brk_queues_read_done(qs, q, false, NULL, 0, limit); /* the read failed */
    return (long long)after;
}

/* ---- the cursor and the read-ahead ------------------------------------ */

static void
test_cursor_and_read_ahead(void **state)
{
    (void)state;
    struct {
        const char *name;
        bool ok;
        uint64_t page[S_LIMIT + 1];
        const char *ready;   /* what the read-ahead holds then */
        long long next_read; /* once it is empty: where it reads, or -1 */
    } cases[] = {
        {"a full page: there may be more", true, {1, 2, 3, 4, S_END}, "1 2 3 4", 4},
        {"a short page: nothing more now", true, {5, 7, S_END}, "5 7", -1},
        {"an empty page", true, {S_END}, "", -1},
        {"a failed read: the cursor stays, and it reads again", false, {S_END}, "", 0},
        {"rows out of order: the cursor is the highest",
         true,
         {9, 3, 8, 2, S_END},
         "9 3 8 2",
         9},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        brk_queues_t *qs = brk_queues_new(S_LIMIT);
        brk_queue_t *q = brk_queues_get(qs, "cd75");
        assert_ptr_equal(brk_queues_find(qs, "cd75"), q);
        assert_true(brk_queue_wants_read(q)); /* new: the database is unknown */
        assert_int_equal(s_read(qs, q, cases[i].ok, cases[i].page), 0);
        char got[128];
        s_drain(q, got, sizeof(got));
        if (strcmp(got, cases[i].ready) != 0 || s_next_read(qs, q) != cases[i].next_read)
            print_error("case '%s': got '%s'\n", cases[i].name, got);
        assert_string_equal(got, cases[i].ready);
        assert_int_equal(s_next_read(qs, q), cases[i].next_read);
        brk_queues_destroy(&qs);
        assert_null(qs);
    }
}

/* A read brings the read-ahead, or the client's free credit when that
   is more; a full page of it means more may wait. */
static void
test_read_as_much_as_the_credit(void **state)
{
    (void)state;
    brk_queues_t *qs = brk_queues_new(S_LIMIT);
    brk_queue_t *q = brk_queues_get(qs, "cd75");
    uint64_t after;
    size_t limit;
    brk_queue_read_begin(q, 1, &after, &limit);
    assert_int_equal(limit, S_LIMIT);
    brk_queues_read_done(qs, q, true, NULL, 0, limit);
    assert_false(brk_queue_wants_read(q)); /* none there: nothing more */
    brk_queues_destroy(&qs);

    qs = brk_queues_new(S_LIMIT);
    q = brk_queues_get(qs, "cd75");
    brk_queue_read_begin(q, 3 * S_LIMIT, &after, &limit);
    assert_int_equal(limit, 3 * S_LIMIT);
    brk_delivery_t *rows[3 * S_LIMIT];
    for (size_t i = 0; i < 3 * S_LIMIT; i++)
        rows[i] = s_row(i + 1, 0, "");
    brk_queues_read_done(qs, q, true, rows, 3 * S_LIMIT, limit);
    assert_int_equal(brk_queue_size(q), 3 * S_LIMIT);
    for (size_t i = 0; i < 3 * S_LIMIT; i++) {
        brk_delivery_t *r = brk_queue_pop(q);
        assert_int_equal(r->delivery, i + 1);
        brk_delivery_destroy(&r);
    }
    assert_true(brk_queue_wants_read(q)); /* a full page: more may wait */
    brk_queue_read_begin(q, 0, &after, &limit);
    assert_int_equal(after, 3 * S_LIMIT);
    brk_queues_destroy(&qs);
}

static void
test_a_read_at_a_time(void **state)
{
    (void)state;
    brk_queues_t *qs = brk_queues_new(S_LIMIT);
    brk_queue_t *q = brk_queues_get(qs, "cd75");
    uint64_t after;
    size_t limit;
    brk_queue_read_begin(q, 0, &after, &limit);
    assert_false(brk_queue_wants_read(q)); /* one read out at a time */
    zlistx_t *unread = brk_queues_unread(qs);
    assert_int_equal(zlistx_size(unread), 0);
    zlistx_destroy(&unread);
    brk_queues_read_done(qs, q, true, NULL, 0, limit);
    assert_false(brk_queue_wants_read(q));
    /* the database comes back: every queue reads again */
    brk_queues_get(qs, "ccas");
    brk_queues_reconnected(qs);
    assert_true(brk_queue_wants_read(q));
    unread = brk_queues_unread(qs);
    assert_int_equal(zlistx_size(unread), 2);
    zlistx_destroy(&unread);
    brk_queues_destroy(&qs);
    brk_queues_destroy(&qs); /* NULL: nothing */
}

/* ---- deliveries just committed ---------------------------------------- */

typedef enum {
    S_FRESH,     /* a new queue: the database is unknown */
    S_CAUGHT_UP, /* a short read of 1 and 2: nothing more in the database */
    S_READING,   /* a read is out */
    S_FULL,      /* caught up, with a full read-ahead */
    S_RESTART,   /* a replay came while a read was out */
} s_start_t;

static void
s_start(brk_queues_t *qs, brk_queue_t *q, s_start_t start)
{
    uint64_t after;
    size_t limit;
    if (start == S_CAUGHT_UP || start == S_FULL)
        s_read(qs, q, true, (uint64_t[]){1, 2, S_END});
    if (start == S_FULL) {
        assert_true(brk_queue_offer(q, 3));
        brk_queue_append_new(q, s_row(3, 0, ""));
        assert_true(brk_queue_offer(q, 4));
        brk_queue_append_new(q, s_row(4, 0, ""));
    }
    if (start == S_READING || start == S_RESTART)
        brk_queue_read_begin(q, 0, &after, &limit);
    if (start == S_RESTART)
        brk_queue_replay(q);
}

static void
test_new_deliveries(void **state)
{
    (void)state;
    struct {
        const char *name;
        s_start_t start;
        uint64_t id;
        bool taken;
    } cases[] = {
        {"caught up: from memory", S_CAUGHT_UP, 9, true},
        {"caught up, an id under the cursor", S_CAUGHT_UP, 2, false},
        {"no delivery made", S_CAUGHT_UP, 0, false},
        {"the database unknown", S_FRESH, 9, false},
        {"a read out: it will find it", S_READING, 9, false},
        {"the read-ahead full", S_FULL, 9, false},
        {"a replay waiting for its read", S_RESTART, 9, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        brk_queues_t *qs = brk_queues_new(S_LIMIT);
        brk_queue_t *q = brk_queues_get(qs, "cd75");
        s_start(qs, q, cases[i].start);
        bool taken = brk_queue_offer(q, cases[i].id);
        if (taken != cases[i].taken)
            print_error("case '%s'\n", cases[i].name);
        assert_int_equal(taken, cases[i].taken);
        if (taken) {
            brk_queue_append_new(q, s_row(cases[i].id, 0, ""));
            char got[64];
            s_drain(q, got, sizeof(got));
            assert_string_equal(got, "1 2 9");
            assert_int_equal(s_next_read(qs, q), -1); /* the cursor is 9, nothing more */
        }
        else if (cases[i].start == S_CAUGHT_UP || cases[i].start == S_FULL) {
            char got[64];
            s_drain(q, got, sizeof(got));
            assert_int_equal(s_next_read(qs, q), 2 + 2 * (cases[i].start == S_FULL));
        }
        brk_queues_destroy(&qs);
    }
    /* a row that could not be built: the next read finds it */
    brk_queues_t *qs = brk_queues_new(S_LIMIT);
    brk_queue_t *q = brk_queues_get(qs, "cd75");
    s_start(qs, q, S_CAUGHT_UP);
    assert_true(brk_queue_offer(q, 9));
    brk_queue_append_new(q, NULL);
    char got[64];
    s_drain(q, got, sizeof(got));
    assert_int_equal(s_next_read(qs, q), 2);
    brk_queues_destroy(&qs);
}

/* ---- in flight -------------------------------------------------------- */

static void
test_in_flight(void **state)
{
    (void)state;
    brk_queues_t *qs = brk_queues_new(S_LIMIT);
    brk_queue_t *q = brk_queues_get(qs, "cd75");
    s_read(qs, q, true, (uint64_t[]){1, 2, 3, S_END});
    void *holders[] = {&s_client_a, &s_client_b, &s_client_a};
    for (size_t i = 0; i < 3; i++) {
        brk_delivery_t *row = brk_queue_pop(q);
        if (i == 2)
            snprintf(row->consent_id, sizeof(row->consent_id), "c-1");
        assert_int_equal(brk_queues_fly(qs, row, holders[i]), 0);
        assert_int_equal(row->attempts, 1); /* counted when it goes out */
        assert_int_equal(row->delivery, i + 1);
    }
    assert_int_equal(brk_queues_inflight(qs), 3);
    struct {
        const char *name;
        void *holder;
        uint64_t delivery;
        bool lands;
    } cases[] = {
        {"another client's delivery", &s_client_b, 1, false},
        {"an unknown delivery", &s_client_a, 99, false},
        {"its own", &s_client_a, 1, true},
        {"settled already", &s_client_a, 1, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        brk_delivery_t *row = brk_queues_land(qs, cases[i].holder, cases[i].delivery);
        if ((row != NULL) != cases[i].lands)
            print_error("case '%s'\n", cases[i].name);
        assert_int_equal(row != NULL, cases[i].lands);
        brk_delivery_destroy(&row);
    }
    size_t n = 0;
    uint64_t *ids = brk_queues_inflight_of(qs, "c-1", &n);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 3);
    free(ids);
    ids = brk_queues_inflight_of(qs, "c-2", &n);
    assert_int_equal(n, 0);
    free(ids);
    /* a client leaves: what is in flight to it, and nothing else */
    zlistx_t *rows = brk_queues_land_all(qs, &s_client_a);
    assert_int_equal(zlistx_size(rows), 1);
    assert_int_equal(((brk_delivery_t *)zlistx_first(rows))->delivery, 3);
    zlistx_destroy(&rows);
    assert_int_equal(brk_queues_inflight(qs), 1);
    brk_queues_destroy(&qs); /* frees delivery 2, still in flight */
}

/* ---- requeue ---------------------------------------------------------- */

static void
test_requeue(void **state)
{
    (void)state;
    struct {
        const char *name;
        uint64_t attempts, max;
        brk_back_t back;
        const char *ready;
    } cases[] = {
        {"first attempt: back first", 1, 5, BRK_BACK_REQUEUED, "3 5 6"},
        {"one attempt left", 4, 5, BRK_BACK_REQUEUED, "3 5 6"},
        {"attempts spent: dead", 5, 5, BRK_BACK_DEAD, "5 6"},
        {"one attempt allowed", 1, 1, BRK_BACK_DEAD, "5 6"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        brk_queues_t *qs = brk_queues_new(S_LIMIT);
        brk_queue_t *q = brk_queues_get(qs, "cd75");
        s_read(qs, q, true, (uint64_t[]){3, 5, 6, S_END});
        brk_delivery_t *row = brk_queue_pop(q);
        for (uint64_t k = 0; k < cases[i].attempts; k++) {
            assert_int_equal(brk_queues_fly(qs, row, &s_client_a), 0);
            row = brk_queues_land(qs, &s_client_a, 3);
        }
        brk_back_t back = brk_queues_give_back(qs, &row, cases[i].max);
        if (back != cases[i].back)
            print_error("case '%s'\n", cases[i].name);
        assert_int_equal(back, cases[i].back);
        assert_true(back == BRK_BACK_DEAD ? row != NULL : row == NULL);
        brk_delivery_destroy(&row);
        char got[64];
        s_drain(q, got, sizeof(got));
        assert_string_equal(got, cases[i].ready);
        brk_queues_destroy(&qs);
    }
}

/* ---- replay and restart ----------------------------------------------- */

static void
test_replay(void **state)
{
    (void)state;
    brk_queues_t *qs = brk_queues_new(S_LIMIT);
    brk_queue_t *q = brk_queues_get(qs, "cd75");
    s_read(qs, q, true, (uint64_t[]){1, 2, 3, S_END});
    assert_false(brk_queue_wants_read(q));
    brk_delivery_t *one = brk_queue_pop(q);
    assert_int_equal(brk_queues_fly(qs, one, &s_client_a), 0);
    /* an operator replays dead letters: the queue reads from zero, and
       what it holds (1 in flight, 2 and 3 ready) is not taken twice */
    brk_queue_replay(q);
    assert_int_equal(s_read(qs, q, true, (uint64_t[]){1, 2, 3, 4, S_END}), 0);
    char got[64];
    s_drain(q, got, sizeof(got));
    assert_string_equal(got, "2 3 4");
    assert_int_equal(s_next_read(qs, q), 4); /* a full page: read on */
    /* above the replay floor nothing is looked for */
    assert_int_equal(s_read(qs, q, true, (uint64_t[]){5, S_END}), 4);
    s_drain(q, got, sizeof(got));
    assert_string_equal(got, "5");
    brk_queues_destroy(&qs);
}

static void
test_replay_during_a_read(void **state)
{
    (void)state;
    brk_queues_t *qs = brk_queues_new(S_LIMIT);
    brk_queue_t *q = brk_queues_get(qs, "cd75");
    s_read(qs, q, true, (uint64_t[]){1, 2, S_END});
    char got[64];
    s_drain(q, got, sizeof(got));
    brk_queues_reconnected(qs); /* more may be there */
    uint64_t after;
    size_t limit;
    brk_queue_read_begin(q, 0, &after, &limit);
    assert_int_equal(after, 2);
    /* the replay comes while the read is out: it could miss the replayed
       rows under its cursor, so the queue rewinds when its answer is in */
    brk_queue_replay(q);
    assert_false(brk_queue_offer(q, 9));
    brk_delivery_t *rows[] = {s_row(7, 0, "")};
    brk_queues_read_done(qs, q, true, rows, 1, limit);
    assert_null(rows[0]);
    /* 7 held; the rewound read finds the replayed 1, not 7 again */
    assert_int_equal(s_read(qs, q, true, (uint64_t[]){1, 7, S_END}), 0);
    s_drain(q, got, sizeof(got));
    assert_string_equal(got, "7 1");
    assert_int_equal(s_next_read(qs, q), -1);
    brk_queues_destroy(&qs);
}

static void
test_broker_restart(void **state)
{
    (void)state;
    /* before: 1 in flight, 2 ready, 3 not read */
    brk_queues_t *qs = brk_queues_new(2);
    brk_queue_t *q = brk_queues_get(qs, "cd75");
    uint64_t after;
    size_t limit;
    brk_queue_read_begin(q, 0, &after, &limit);
    brk_delivery_t *rows[] = {s_row(1, 0, ""), s_row(2, 0, "")};
    brk_queues_read_done(qs, q, true, rows, 2, limit);
    assert_int_equal(brk_queues_fly(qs, brk_queue_pop(q), &s_client_a), 0);
    brk_queues_destroy(&qs); /* the broker stops: memory is gone */
    /* after: every unsettled delivery is pending in the database, and a
       new queue reads from zero */
    qs = brk_queues_new(S_LIMIT);
    q = brk_queues_get(qs, "cd75");
    assert_int_equal(s_read(qs, q, true, (uint64_t[]){1, 2, 3, S_END}), 0);
    char got[64];
    s_drain(q, got, sizeof(got));
    assert_string_equal(got, "1 2 3");
    assert_int_equal(brk_queues_inflight(qs), 0);
    brk_queues_destroy(&qs);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_and_read_ahead),
        cmocka_unit_test(test_a_read_at_a_time),
        cmocka_unit_test(test_read_as_much_as_the_credit),
        cmocka_unit_test(test_new_deliveries),
        cmocka_unit_test(test_in_flight),
        cmocka_unit_test(test_requeue),
        cmocka_unit_test(test_replay),
        cmocka_unit_test(test_replay_during_a_read),
        cmocka_unit_test(test_broker_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
