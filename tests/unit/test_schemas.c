/*  test_schemas.c: the thirteen schemas of schemas/ against EVENTS.md.

    - every schema loads, with the x-maillage values of EVENTS.md;
    - tests/data/bodies.json gives, per type, bodies that must pass and
      mutations of the full body that must fail at a given pointer;
    - independently of that table, removing each required member (read
      from the schema file itself, at every level present in the full
      body) must fail with "<pointer>: required". */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "maillage/json.h"
#include "maillage/schema.h"

static mlg_registry_t *s_reg;
static json_t *s_table;
static char s_dir[4096];

static int
setup(void **state)
{
    (void)state;
    const char *src = getenv("MLG_SOURCE_DIR");
    char err[512], path[4200];
    snprintf(s_dir, sizeof(s_dir), "%s/schemas", src ? src : ".");
    s_reg = mlg_registry_load(s_dir, err, sizeof(err));
    if (!s_reg) {
        print_error("%s\n", err);
        return -1;
    }
    snprintf(path, sizeof(path), "%s/tests/data/bodies.json", src ? src : ".");
    json_error_t jerr;
    s_table = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!s_table) {
        print_error("%s: %s\n", path, jerr.text);
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    mlg_registry_destroy(&s_reg);
    json_decref(s_table);
    return 0;
}

/* ---- EVENTS.md's table ----------------------------------------------- */

static const struct {
    const char *type;
    bool personal;
    const char *category;
    mlg_basis_t basis;
} s_catalogue[] = {
    {"referral.created", true, "social", MLG_BASIS_CONSENT},
    {"referral.accepted", true, "social", MLG_BASIS_CONSENT},
    {"referral.declined", true, "social", MLG_BASIS_CONSENT},
    {"referral.cancelled", true, "social", MLG_BASIS_CONSENT},
    {"referral.completed", true, "social", MLG_BASIS_CONSENT},
    {"referral.received", true, "social", MLG_BASIS_CONSENT},
    {"referral.waitlisted", true, "social", MLG_BASIS_CONSENT},
    {"referral.started", true, "social", MLG_BASIS_CONSENT},
    {"referral.overdue", true, NULL, MLG_BASIS_SERVICE_NOTICE},
    {"referral.superseded", true, NULL, MLG_BASIS_SERVICE_NOTICE},
    {"info.requested", true, "social", MLG_BASIS_CONSENT},
    {"situation.shared", true, "social", MLG_BASIS_CONSENT},
    {"health.summary.shared", true, "health", MLG_BASIS_CONSENT},
    {"resources.shared", true, "financial", MLG_BASIS_CONSENT},
    {"child.protection.alert", true, "social", MLG_BASIS_LEGAL_OBLIGATION},
    {"service.capacity.changed", false, NULL, MLG_BASIS_NOT_PERSONAL},
    {"consent.granted", true, NULL, MLG_BASIS_CONSENT_NOTICE},
    {"consent.revoked", true, NULL, MLG_BASIS_CONSENT_NOTICE},
};
#define CATALOGUE_SIZE (sizeof(s_catalogue) / sizeof(s_catalogue[0]))

static void
test_catalogue_loads(void **state)
{
    (void)state;
    assert_int_equal(mlg_registry_size(s_reg), CATALOGUE_SIZE);
    for (size_t i = 0; i < CATALOGUE_SIZE; i++) {
        const mlg_schema_t *s = mlg_registry_find(s_reg, s_catalogue[i].type, 1);
        if (!s)
            print_error("no schema for %s v1\n", s_catalogue[i].type);
        assert_non_null(s);
        assert_int_equal(mlg_schema_personal(s), s_catalogue[i].personal);
        assert_int_equal(mlg_schema_basis(s), s_catalogue[i].basis);
        if (s_catalogue[i].category)
            assert_string_equal(mlg_schema_category(s), s_catalogue[i].category);
        else
            assert_null(mlg_schema_category(s));
    }
}

/* ---- JSON pointer edits on jansson values ---------------------------- */

/* Splits off the last segment of `ptr`; returns the parent value. */
static json_t *
resolve_parent(json_t *root, const char *ptr, char *last, size_t lastlen)
{
    assert_true(ptr[0] == '/');
    json_t *cur = root;
    const char *seg = ptr + 1;
    for (;;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        char name[256];
        size_t k = 0;
        for (size_t i = 0; i < n && k + 1 < sizeof(name); i++) {
            if (seg[i] == '~' && i + 1 < n) {
                name[k++] = seg[i + 1] == '1' ? '/' : '~';
                i++;
            }
            else
                name[k++] = seg[i];
        }
        name[k] = '\0';
        if (!end) {
            snprintf(last, lastlen, "%s", name);
            return cur;
        }
        cur = json_is_array(cur) ? json_array_get(cur, strtoul(name, NULL, 10))
                                 : json_object_get(cur, name);
        if (!cur)
            print_error("pointer %s does not resolve\n", ptr);
        assert_non_null(cur);
        seg = end + 1;
    }
}

static void
pointer_set(json_t *root, const char *ptr, json_t *value)
{
    char last[256];
    json_t *parent = resolve_parent(root, ptr, last, sizeof(last));
    if (json_is_array(parent)) {
        size_t i = strtoul(last, NULL, 10);
        if (i == json_array_size(parent))
            assert_int_equal(json_array_append(parent, value), 0);
        else
            assert_int_equal(json_array_set(parent, i, value), 0);
    }
    else
        assert_int_equal(json_object_set(parent, last, value), 0);
}

static void
pointer_remove(json_t *root, const char *ptr)
{
    char last[256];
    json_t *parent = resolve_parent(root, ptr, last, sizeof(last));
    if (json_is_array(parent))
        assert_int_equal(json_array_remove(parent, strtoul(last, NULL, 10)), 0);
    else {
        if (!json_object_get(parent, last))
            print_error("nothing to remove at %s\n", ptr);
        assert_int_equal(json_object_del(parent, last), 0);
    }
}

/* Validates a jansson body; returns the rc, reason in `reason`. */
static mlg_rc_t
validate_json(const mlg_schema_t *schema, const json_t *body, char *reason,
              size_t reasonlen)
{
    char *text = json_dumps(body, JSON_COMPACT);
    assert_non_null(text);
    uint8_t *mp;
    size_t len;
    char err[256];
    assert_int_equal(mlg_json_to_msgpack(text, strlen(text), &mp, &len, err, sizeof(err)),
                     MLG_OK);
    mlg_rc_t rc = mlg_schema_validate(schema, mp, len, reason, reasonlen);
    free(mp);
    free(text);
    return rc;
}

static void
expect_invalid_at(const mlg_schema_t *schema, const json_t *body, const char *pointer,
                  const char *why)
{
    char reason[512] = "";
    mlg_rc_t rc = validate_json(schema, body, reason, sizeof(reason));
    if (rc != MLG_INVALID) {
        print_error("%s v1: '%s' passed, expected a failure at %s\n",
                    mlg_schema_type(schema), why, pointer);
        fail();
    }
    size_t n = strlen(pointer);
    if (strncmp(reason, pointer, n) != 0 || reason[n] != ':') {
        print_error("%s v1: '%s': got \"%s\", expected pointer %s\n",
                    mlg_schema_type(schema), why, reason, pointer);
        fail();
    }
}

static const mlg_schema_t *
schema_for_key(const char *key)
{
    char type[128];
    snprintf(type, sizeof(type), "%s", key);
    char *v = strrchr(type, '.');
    assert_non_null(v);
    assert_true(v[1] == 'v');
    *v = '\0';
    const mlg_schema_t *s = mlg_registry_find(s_reg, type, strtoull(v + 2, NULL, 10));
    if (!s)
        print_error("bodies.json names %s, which has no schema\n", key);
    assert_non_null(s);
    return s;
}

static void
test_table_covers_catalogue(void **state)
{
    (void)state;
    for (size_t i = 0; i < CATALOGUE_SIZE; i++) {
        char key[128];
        snprintf(key, sizeof(key), "%s.v1", s_catalogue[i].type);
        json_t *entry = json_object_get(s_table, key);
        if (!entry)
            print_error("bodies.json has no entry for %s\n", key);
        assert_non_null(entry);
        assert_true(json_array_size(json_object_get(entry, "valid")) >= 1);
        assert_true(json_array_size(json_object_get(entry, "invalid")) >= 1);
    }
    assert_int_equal(json_object_size(s_table), CATALOGUE_SIZE);
}

static void
test_valid_bodies_pass(void **state)
{
    (void)state;
    const char *key;
    json_t *entry;
    size_t checked = 0;
    json_object_foreach(s_table, key, entry)
    {
        const mlg_schema_t *schema = schema_for_key(key);
        size_t i;
        json_t *body;
        json_array_foreach(json_object_get(entry, "valid"), i, body)
        {
            char reason[512] = "";
            mlg_rc_t rc = validate_json(schema, body, reason, sizeof(reason));
            if (rc != MLG_OK)
                print_error("%s: valid body %zu fails: %s\n", key, i, reason);
            assert_int_equal(rc, MLG_OK);
            checked++;
        }
    }
    assert_true(checked >= 2 * CATALOGUE_SIZE);
}

static void
test_invalid_cases_fail_at_pointer(void **state)
{
    (void)state;
    const char *key;
    json_t *entry;
    json_object_foreach(s_table, key, entry)
    {
        const mlg_schema_t *schema = schema_for_key(key);
        json_t *valid = json_object_get(entry, "valid");
        json_t *full = json_array_get(valid, json_array_size(valid) - 1);
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(entry, "invalid"), i, c)
        {
            json_t *body = json_deep_copy(full);
            const char *why = json_string_value(json_object_get(c, "why"));
            json_t *set = json_object_get(c, "set");
            const char *ptr;
            json_t *value;
            json_object_foreach(set, ptr, value) pointer_set(body, ptr, value);
            json_t *remove = json_object_get(c, "remove");
            if (remove)
                pointer_remove(body, json_string_value(remove));
            expect_invalid_at(schema, body,
                              json_string_value(json_object_get(c, "pointer")),
                              why ? why : "?");
            json_decref(body);
        }
    }
}

/* Walks the schema file and the full body together: for each object in
   the body, each name in the schema's `required` is removed in turn. */
static void
check_required(const mlg_schema_t *schema, json_t *root, const json_t *node_schema,
               json_t *node_body, const char *ptr, size_t *count)
{
    if (!json_is_object(node_body))
        return;
    size_t i;
    json_t *name;
    json_array_foreach(json_object_get(node_schema, "required"), i, name)
    {
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", ptr, json_string_value(name));
        json_t *saved = json_incref(json_object_get(node_body, json_string_value(name)));
        assert_non_null(saved); /* the full body holds every member */
        json_object_del(node_body, json_string_value(name));
        expect_invalid_at(schema, root, p, "required member removed");
        json_object_set_new(node_body, json_string_value(name), saved);
        (*count)++;
    }
    const char *k;
    json_t *sub;
    json_object_foreach(json_object_get(node_schema, "properties"), k, sub)
    {
        json_t *child = json_object_get(node_body, k);
        if (child && json_is_object(child)) {
            char p[512];
            snprintf(p, sizeof(p), "%s/%s", ptr, k);
            check_required(schema, root, sub, child, p, count);
        }
    }
}

static void
test_each_required_member(void **state)
{
    (void)state;
    size_t count = 0;
    for (size_t i = 0; i < CATALOGUE_SIZE; i++) {
        char key[128], path[4300];
        snprintf(key, sizeof(key), "%s.v1", s_catalogue[i].type);
        snprintf(path, sizeof(path), "%s/%s.json", s_dir, key);
        json_error_t jerr;
        json_t *doc = json_load_file(path, 0, &jerr);
        assert_non_null(doc);
        json_t *valid = json_object_get(json_object_get(s_table, key), "valid");
        json_t *full = json_deep_copy(json_array_get(valid, json_array_size(valid) - 1));
        check_required(mlg_registry_find(s_reg, s_catalogue[i].type, 1), full, doc, full,
                       "", &count);
        json_decref(full);
        json_decref(doc);
    }
    /* EVENTS.md lists more than forty required members in all */
    assert_true(count >= 40);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catalogue_loads),
        cmocka_unit_test(test_table_covers_catalogue),
        cmocka_unit_test(test_valid_bodies_pass),
        cmocka_unit_test(test_invalid_cases_fail_at_pointer),
        cmocka_unit_test(test_each_required_member),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
