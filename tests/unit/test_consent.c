/*  test_consent.c: the rule of PROTOCOL.md §7 (broker/consent.c), by
    table: each reason and its precedence, several consents for one
    subject, parties, purposes and categories that overlap only partly,
    validity at its boundaries. */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "consent.h"

#define T0 1767225600000000LL /* 2026-01-01T00:00:00Z in µs */
#define C1 "11111111-1111-4111-8111-111111111111"
#define C2 "22222222-2222-4222-8222-222222222222"
#define C3 "33333333-3333-4333-8333-333333333333"
#define C4 "44444444-4444-4444-8444-444444444444"
#define C5 "55555555-5555-4555-8555-555555555555"
#define C6 "66666666-6666-4666-8666-666666666666"

static brk_consents_t *s_index;

static void
add(const char *id, const char *subject, const char *const *parties, size_t np,
    const char *const *purposes, size_t nu, const char *const *categories, size_t nc,
    int64_t from, int64_t until, int64_t revoked_at)
{
    brk_consent_t *c = brk_consent_new(id, subject, parties, np, purposes, nu, categories,
                                       nc, from, until);
    assert_non_null(c);
    c->revoked_at = revoked_at;
    assert_int_equal(brk_consents_add(s_index, &c), 0);
    assert_null(c);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int
setup(void **state)
{
    (void)state;
    s_index = brk_consents_new();
    static const char *p1[] = {"ccas", "ehpad", "cd75"},
                      *u1[] = {"orientation", "coordination"},
                      *k1[] = {"social", "health"};
    add(C1, "P", p1, 3, u1, 2, k1, 2, T0, T0 + 100, 0);
    static const char *p2[] = {"ccas", "caf"}, *u2[] = {"administration"},
                      *k2[] = {"financial"};
    add(C2, "P", p2, 2, u2, 1, k2, 1, T0, BRK_FOREVER, T0 + 50);
    static const char *p3[] = {"ccas", "ars"}, *u3[] = {"evaluation"}, *k3[] = {"health"};
    add(C3, "P", p3, 2, u3, 1, k3, 1, T0 + 1000, BRK_FOREVER, 0);
    static const char *p4[] = {"ccas", "ehpad"}, *u4[] = {"orientation"},
                      *k4[] = {"social"};
    add(C4, "Q", p4, 2, u4, 1, k4, 1, T0 - 1000, BRK_FOREVER, 0);
    add(C5, "P", p4, 2, u4, 1, k4, 1, T0 - 200, T0 - 100, 0);
    add(C6, "P", p3, 2, u3, 1, k3, 1, T0 - 1000, BRK_FOREVER, T0 - 10);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    brk_consents_destroy(&s_index);
    return 0;
}

static void
test_decisions(void **state)
{
    (void)state;
    static const struct {
        const char *why, *subject, *sender, *recipient, *purpose, *category;
        int64_t now;
        const char *reason; /* "" for allow */
        const char *consent;
        const char *detail;
    } rows[] = {
        {"covered and valid", "P", "ccas", "ehpad", "orientation", "social", T0 + 10, "",
         C1, ""},
        {"parties are symmetric", "P", "ehpad", "ccas", "coordination", "health", T0 + 10,
         "", C1, ""},
        {"any two parties of three", "P", "ehpad", "cd75", "orientation", "social",
         T0 + 10, "", C1, ""},
        {"valid_from is inclusive", "P", "ccas", "ehpad", "orientation", "social", T0, "",
         C1, ""},
        {"another purpose", "P", "ccas", "ehpad", "evaluation", "social", T0 + 10,
         "NOT_COVERED", C1, "purpose or category"},
        {"another category", "P", "ccas", "ehpad", "orientation", "financial", T0 + 10,
         "NOT_COVERED", C1, "purpose or category"},
        {"valid_until is exclusive", "P", "ccas", "ehpad", "orientation", "social",
         T0 + 100, "EXPIRED", C1, "expired"},
        {"expired named before not yet valid", "P", "ccas", "ehpad", "orientation",
         "social", T0 - 1, "EXPIRED", C5, "expired"},
        {"revoked is named before not yet valid", "P", "ccas", "ars", "evaluation",
         "health", T0 + 10, "REVOKED", C6, "revoked"},
        {"revoked", "P", "ccas", "caf", "administration", "financial", T0 + 10, "REVOKED",
         C2, "revoked"},
        {"a valid consent wins over a revoked one", "P", "ars", "ccas", "evaluation",
         "health", T0 + 2000, "", C3, ""},
        {"a valid consent wins over an expired one", "P", "ccas", "ehpad", "orientation",
         "social", T0 + 50, "", C1, ""},
        {"not a party", "P", "ccas", "dd", "orientation", "social", T0 + 10, "NO_CONSENT",
         "", "no consent"},
        {"parties in different consents", "P", "ars", "caf", "evaluation", "health",
         T0 + 10, "NO_CONSENT", "", "no consent"},
        {"another subject's consent", "Q", "ccas", "ehpad", "orientation", "social",
         T0 + 10, "", C4, ""},
        {"another subject's consent does not apply", "Q", "ccas", "cd75", "orientation",
         "social", T0 + 10, "NO_CONSENT", "", "no consent"},
        {"unknown subject", "Z", "ccas", "ehpad", "orientation", "social", T0 + 10,
         "NO_CONSENT", "", "no consent"},
    };
    for (size_t i = 0; i < N(rows); i++) {
        brk_decision_t d;
        memset(&d, 0x5a, sizeof(d));
        brk_consent_decide(s_index, rows[i].subject, rows[i].sender, rows[i].recipient,
                           rows[i].purpose, rows[i].category, rows[i].now, &d);
        bool allow = rows[i].reason[0] == '\0';
        if (d.allow != allow || strcmp(d.consent_id, rows[i].consent) != 0
            || (!allow && strcmp(d.reason, rows[i].reason) != 0)
            || !strstr(d.detail, rows[i].detail))
            print_error("row %zu (%s): got %s %s %s '%s'\n", i, rows[i].why,
                        d.allow ? "allow" : "deny", d.allow ? "" : d.reason, d.consent_id,
                        d.detail);
        assert_int_equal(d.allow, allow);
        if (!allow)
            assert_string_equal(d.reason, rows[i].reason);
        assert_string_equal(d.consent_id, rows[i].consent);
        assert_non_null(strstr(d.detail, rows[i].detail));
    }
}

static void
test_not_yet_valid(void **state)
{
    (void)state;
    /* only C3 covers ccas->ars evaluation/health apart from the revoked
       C6: a fresh index without C6 shows "not yet valid" */
    brk_consents_t *idx = brk_consents_new();
    static const char *p[] = {"ccas", "ars"}, *u[] = {"evaluation"}, *k[] = {"health"};
    brk_consent_t *c = brk_consent_new(C3, "P", p, 2, u, 1, k, 1, T0 + 1000, BRK_FOREVER);
    assert_int_equal(brk_consents_add(idx, &c), 0);
    brk_decision_t d;
    brk_consent_decide(idx, "P", "ccas", "ars", "evaluation", "health", T0 + 999, &d);
    assert_false(d.allow);
    assert_string_equal(d.reason, "EXPIRED");
    assert_string_equal(d.consent_id, C3);
    assert_non_null(strstr(d.detail, "not yet valid"));
    brk_consent_decide(idx, "P", "ccas", "ars", "evaluation", "health", T0 + 1000, &d);
    assert_true(d.allow);
    brk_consents_destroy(&idx);
}

static void
test_index(void **state)
{
    (void)state;
    assert_int_equal(brk_consents_size(s_index), 6);
    assert_non_null(brk_consents_find(s_index, C2));
    assert_null(brk_consents_find(s_index, "99999999-9999-4999-8999-999999999999"));
    static const char *p[] = {"a", "b"}, *u[] = {"orientation"}, *k[] = {"social"};
    brk_consent_t *dup = brk_consent_new(C1, "P", p, 2, u, 1, k, 1, T0, BRK_FOREVER);
    assert_int_equal(brk_consents_add(s_index, &dup), -1);
    assert_non_null(dup);
    brk_consent_destroy(&dup);
    assert_true(brk_consent_has_party(brk_consents_find(s_index, C1), "cd75"));
    assert_false(brk_consent_has_party(brk_consents_find(s_index, C1), "caf"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decisions),
        cmocka_unit_test(test_not_yet_valid),
        cmocka_unit_test(test_index),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
