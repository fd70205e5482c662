/*  test_depth.c: broker/depth.c, the queues' depths as the store keeps
    them, without a database: a count with the commits made while it is
    out, staged changes committed or rolled back, the oldest pending
    delivery known or stale, recounts (a replay, a drift), forgetting. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "depth.h"

/* The figures taken now, as "agency pending dead oldest_us; ..." sorted
   by agency ("" when none changed); *all says whether they were all. */
static void
s_take(brk_depths_t *d, char *out, size_t len, bool *all)
{
    size_t n = 0;
    bool every = false;
    brk_depth_t *rows = brk_depths_take(d, &n, &every);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        for (size_t k = i + 1; k < n; k++)
            if (strcmp(rows[k].agency, rows[i].agency) < 0) {
                brk_depth_t t = rows[i];
                rows[i] = rows[k];
                rows[k] = t;
            }
    size_t at = 0;
    for (size_t i = 0; i < n && at < len; i++)
        at += (size_t)snprintf(out + at, len - at, "%s%s %llu %llu %lld", i ? "; " : "",
                               rows[i].agency, (unsigned long long)rows[i].pending,
                               (unsigned long long)rows[i].dead,
                               (long long)rows[i].oldest_us);
    free(rows);
    if (all)
        *all = every;
}

/* A list of names as "a b c", sorted; the list is destroyed. */
static void
s_names(zlistx_t *list, char *out, size_t len)
{
    zlistx_set_comparator(list, (zlistx_comparator_fn *)strcmp);
    zlistx_sort(list);
    out[0] = '\0';
    size_t at = 0;
    for (const char *n = zlistx_first(list); n && at < len; n = zlistx_next(list))
        at += (size_t)snprintf(out + at, len - at, "%s%s", at ? " " : "", n);
    zlistx_destroy(&list);
}

/* The names listed (brk_depths_stale, brk_depths_recounts) are `want`. */
static void
s_expect_names(zlistx_t *list, const char *want)
{
    char got[256];
    s_names(list, got, sizeof(got));
    assert_string_equal(got, want);
}

/* The figures taken now are `want`, as s_take writes them. */
static void
s_expect_take(brk_depths_t *d, const char *want)
{
    char got[256];
    s_take(d, got, sizeof(got), NULL);
    assert_string_equal(got, want);
}

/* A depths known from a count that found these (agency, pending, dead)
   triples, ended by NULL; its figures taken. */
static brk_depths_t *
s_counted(const char *agency, ...)
{
    brk_depths_t *d = brk_depths_new();
    assert_non_null(d);
    brk_depths_count_begin(d);
    va_list ap;
    va_start(ap, agency);
    for (const char *a = agency; a; a = va_arg(ap, const char *)) {
        int pending = va_arg(ap, int), dead = va_arg(ap, int);
        brk_depths_count_add(d, a, (uint64_t)pending, (uint64_t)dead);
    }
    va_end(ap);
    brk_depths_count_end(d);
    char got[256];
    s_take(d, got, sizeof(got), NULL);
    return d;
}

static void
test_unknown_until_counted(void **state)
{
    (void)state;
    brk_depths_t *d = brk_depths_new();
    char got[256];
    bool all = false;
    assert_false(brk_depths_known(d));
    /* nothing to add them to: the count will find them */
    brk_depths_created(d, "cd75", 1, 1000);
    brk_depths_commit(d);
    s_take(d, got, sizeof(got), &all);
    assert_string_equal(got, "");
    s_expect_names(brk_depths_stale(d), "");
    brk_depths_count_begin(d);
    assert_false(brk_depths_known(d));
    brk_depths_count_end(d);
    assert_true(brk_depths_known(d));
    /* a count that found nothing: every figure (none), the others dropped */
    s_take(d, got, sizeof(got), &all);
    assert_string_equal(got, "");
    assert_true(all);
    brk_depths_destroy(&d);
    brk_depths_destroy(&d); /* NULL: nothing */
}

static void
test_commits_while_counting(void **state)
{
    (void)state;
    brk_depths_t *d = brk_depths_new();
    brk_depths_count_begin(d);
    /* committed after the snapshot: two new for cd75, one of the
       snapshot's acked, one dead; one new for ars-idf */
    brk_depths_created(d, "cd75", 101, 5000);
    brk_depths_created(d, "cd75", 102, 6000);
    brk_depths_settled(d, "cd75", 7, false);
    brk_depths_settled(d, "cd75", 8, true);
    brk_depths_created(d, "ars-idf", 103, 7000);
    brk_depths_commit(d);
    /* one rolled back */
    brk_depths_created(d, "cd75", 104, 8000);
    brk_depths_rollback(d);
    /* the count's rows, an agency in two */
    brk_depths_count_add(d, "cd75", 5, 0);
    brk_depths_count_add(d, "cd75", 0, 1);
    brk_depths_count_add(d, "cd91", 0, 3);
    brk_depths_count_end(d);
    char got[256];
    bool all = false;
    s_take(d, got, sizeof(got), &all);
    assert_true(all);
    /* the oldest deliveries are looked up after a count */
    assert_string_equal(got, "ars-idf 1 0 0; cd75 5 2 0; cd91 0 3 0");
    s_expect_names(brk_depths_stale(d), "ars-idf cd75");
    brk_depths_set_oldest(d, "cd75", 3, 1000);
    brk_depths_set_oldest(d, "ars-idf", 103, 7000);
    s_expect_names(brk_depths_stale(d), "");
    s_take(d, got, sizeof(got), &all);
    assert_false(all);
    assert_string_equal(got, "ars-idf 1 0 7000; cd75 5 2 1000");
    /* nothing changed since */
    s_expect_take(d, "");
    brk_depths_destroy(&d);
}

static void
test_oldest_pending(void **state)
{
    (void)state;
    brk_depths_t *d = s_counted(NULL);
    /* the first of an empty queue is its oldest; the next is not */
    brk_depths_created(d, "cd75", 10, 1000);
    brk_depths_created(d, "cd75", 11, 2000);
    brk_depths_created(d, "cd75", 12, 3000);
    brk_depths_commit(d);
    s_expect_take(d, "cd75 3 0 1000");
    /* another than the oldest leaves: still known */
    brk_depths_settled(d, "cd75", 11, false);
    brk_depths_commit(d);
    s_expect_names(brk_depths_stale(d), "");
    s_expect_take(d, "cd75 2 0 1000");
    /* the oldest leaves: stale, its time kept until looked up */
    brk_depths_settled(d, "cd75", 10, true);
    brk_depths_commit(d);
    s_expect_names(brk_depths_stale(d), "cd75");
    s_expect_take(d, "cd75 1 1 1000");
    brk_depths_set_oldest(d, "cd75", 12, 3000);
    s_expect_take(d, "cd75 1 1 3000");
    /* a delivery settled whose id is not known (a revocation's): stale */
    brk_depths_created(d, "cd75", 13, 4000);
    brk_depths_settled(d, "cd75", 0, false);
    brk_depths_commit(d);
    s_expect_names(brk_depths_stale(d), "cd75");
    /* the last one leaves: none pending, nothing to look up */
    brk_depths_settled(d, "cd75", 13, false);
    brk_depths_commit(d);
    s_expect_names(brk_depths_stale(d), "");
    s_expect_take(d, "cd75 0 1 0");
    brk_depths_destroy(&d);
}

static void
test_recounts(void **state)
{
    (void)state;
    brk_depths_t *d = s_counted("cd75", 2, 4, NULL);
    brk_depths_set_oldest(d, "cd75", 5, 500);
    /* an operator replays cd75's dead letters */
    brk_depths_want_recount(d, "cd75");
    s_expect_names(brk_depths_recounts(d), "cd75");
    s_expect_names(brk_depths_stale(d), "");
    brk_depths_recount(d, "cd75", 6, 0, 1, 100);
    s_expect_names(brk_depths_recounts(d), "");
    s_expect_take(d, "cd75 6 0 100");
    /* drifted: settled below zero, or nothing pending found while the
       count says some */
    brk_depths_settled(d, "cd91", 9, false);
    brk_depths_commit(d);
    brk_depths_set_oldest(d, "cd75", 0, 0);
    s_expect_names(brk_depths_recounts(d), "cd75 cd91");
    s_expect_take(d, "cd75 6 0 0; cd91 0 0 0");
    brk_depths_destroy(&d);
}

static void
test_replay_while_counting(void **state)
{
    (void)state;
    brk_depths_t *d = brk_depths_new();
    brk_depths_count_begin(d);
    /* told after the snapshot: the count may not have it */
    brk_depths_want_recount(d, "cd75");
    brk_depths_count_add(d, "cd75", 0, 2);
    s_expect_names(brk_depths_recounts(d), ""); /* not before the figures are known */
    brk_depths_count_end(d);
    s_expect_names(brk_depths_recounts(d), "cd75");
    /* below zero after a count: drifted, counted again */
    brk_depths_count_begin(d);
    brk_depths_settled(d, "cd91", 4, false);
    brk_depths_commit(d);
    brk_depths_count_end(d);
    s_expect_names(brk_depths_recounts(d), "cd91");
    s_expect_take(d, "cd91 0 0 0");
    brk_depths_destroy(&d);
}

static void
test_forget(void **state)
{
    (void)state;
    brk_depths_t *d = s_counted("cd75", 3, 1, NULL);
    brk_depths_created(d, "cd75", 10, 1000);
    brk_depths_forget(d); /* the connection is gone: the staged change too */
    assert_false(brk_depths_known(d));
    brk_depths_commit(d);
    s_expect_take(d, "");
    brk_depths_count_begin(d);
    brk_depths_count_add(d, "cd75", 3, 1);
    brk_depths_count_end(d);
    s_expect_take(d, "cd75 3 1 0");
    brk_depths_destroy(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_until_counted),
        cmocka_unit_test(test_commits_while_counting),
        cmocka_unit_test(test_oldest_pending),
        cmocka_unit_test(test_recounts),
        cmocka_unit_test(test_replay_while_counting),
        cmocka_unit_test(test_forget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
