/*  test_validate.c: lib/schema.c and lib/validate.c, keyword by keyword.

    Each keyword and format of EVENTS.md is tried with a value that
    passes and values that fail, inside a one-member schema
    {"v": <fragment>}, so each failure must name "/v" (or a member below
    it). Then the load errors: every rule of the loader, each with the
    JSON pointer it must name. */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "maillage/forms.h"
#include "maillage/json.h"
#include "maillage/schema.h"
#include "registry.h"

static mlg_registry_t *s_vocab;

static int
setup(void **state)
{
    (void)state;
    s_vocab = test_load_registry();
    return s_vocab ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    mlg_registry_destroy(&s_vocab);
    return 0;
}

static mlg_schema_t *
compile_fragment(const char *fragment)
{
    char json[8192], err[512];
    snprintf(json, sizeof(json),
             "{\"type\": \"object\", \"properties\": {\"v\": %s},"
             " \"x-maillage\": {\"personal_data\": false}}",
             fragment);
    mlg_schema_t *schema = mlg_schema_compile(s_vocab, "test.event", 1, json,
                                              strlen(json), err, sizeof(err));
    if (!schema)
        print_error("compile failed: %s\n", err);
    assert_non_null(schema);
    return schema;
}

/* Validates msgpack bytes; expect NULL for success, or the exact reason. */
static void
check_bytes(const mlg_schema_t *schema, const uint8_t *body, size_t len,
            const char *expect)
{
    char reason[512] = "";
    mlg_rc_t rc = mlg_schema_validate(schema, body, len, reason, sizeof(reason));
    if (!expect) {
        if (rc != MLG_OK)
            print_error("unexpected failure: %s\n", reason);
        assert_int_equal(rc, MLG_OK);
        return;
    }
    if (rc != MLG_INVALID)
        print_error("expected '%s', got success\n", expect);
    assert_int_equal(rc, MLG_INVALID);
    assert_string_equal(reason, expect);
}

/* One fragment, one value given as JSON text. */
static void
check(const char *fragment, const char *value, const char *expect)
{
    mlg_schema_t *schema = compile_fragment(fragment);
    char json[8192], err[256];
    snprintf(json, sizeof(json), "{\"v\": %s}", value);
    uint8_t *body;
    size_t len;
    assert_int_equal(
        mlg_json_to_msgpack(json, strlen(json), &body, &len, err, sizeof(err)), MLG_OK);
    check_bytes(schema, body, len, expect);
    free(body);
    mlg_schema_destroy(&schema);
}

/* ---- keywords ------------------------------------------------------- */

static void
test_type(void **state)
{
    (void)state;
    check("{\"type\": \"string\"}", "\"x\"", NULL);
    check("{\"type\": \"string\"}", "1", "/v: expected a string, not an integer");
    check("{\"type\": \"integer\"}", "-3", NULL);
    check("{\"type\": \"integer\"}", "2.5", "/v: expected an integer, not a number");
    check("{\"type\": \"integer\"}", "2.0", "/v: expected an integer, not a number");
    check("{\"type\": \"number\"}", "2.5", NULL);
    check("{\"type\": \"number\"}", "2", NULL);
    check("{\"type\": \"number\"}", "\"2\"", "/v: expected a number, not a string");
    check("{\"type\": \"boolean\"}", "true", NULL);
    check("{\"type\": \"boolean\"}", "0", "/v: expected a boolean, not an integer");
    check("{\"type\": \"null\"}", "null", NULL);
    check("{\"type\": \"null\"}", "false", "/v: expected null, not a boolean");
    check("{\"type\": \"object\"}", "{}", NULL);
    check("{\"type\": \"object\"}", "[]", "/v: expected an object, not an array");
    check("{\"type\": \"array\"}", "[]", NULL);
    check("{\"type\": \"array\"}", "{}", "/v: expected an array, not an object");
    check("{\"type\": [\"string\", \"null\"]}", "null", NULL);
    check("{\"type\": [\"string\", \"null\"]}", "\"a\"", NULL);
    check("{\"type\": [\"string\", \"null\"]}", "1",
          "/v: not one of the allowed types, not an integer");
    /* no type: anything JSON can hold */
    check("{}", "[1, {\"a\": null}]", NULL);
    /* empty strings and names (msgpack-c gives them a NULL pointer) */
    check("{}", "{\"\": \"\", \"b\": [\"\", \"\"]}", NULL);
    check("{\"type\": \"string\", \"enum\": [\"\"]}", "\"\"", NULL);
    check("{\"type\": \"array\", \"uniqueItems\": true}", "[\"\", \"\"]",
          "/v: items 0 and 1 are equal");
    check("{\"type\": \"string\", \"pattern\": \"^$\"}", "\"\"", NULL);
}

static void
test_properties_required_additional(void **state)
{
    (void)state;
    const char *obj = "{\"type\": \"object\", \"additionalProperties\": false,"
                      " \"required\": [\"a\", \"b\"],"
                      " \"properties\": {\"a\": {\"type\": \"string\"},"
                      " \"b\": {\"type\": \"integer\"}, \"c\": {\"type\": \"boolean\"}}}";
    check(obj, "{\"a\": \"x\", \"b\": 1}", NULL);
    check(obj, "{\"a\": \"x\", \"b\": 1, \"c\": true}", NULL);
    check(obj, "{\"b\": 1}", "/v/a: required");
    check(obj, "{\"a\": \"x\"}", "/v/b: required");
    check(obj, "{\"a\": \"x\", \"b\": \"1\"}", "/v/b: expected an integer, not a string");
    check(obj, "{\"a\": \"x\", \"b\": 1, \"extra\": 1}", "/v/extra: not allowed");
    /* member names are escaped in the pointer (RFC 6901) */
    check(obj, "{\"a\": \"x\", \"b\": 1, \"x/y~z\": 1}", "/v/x~1y~0z: not allowed");
    /* additionalProperties defaults to true */
    check("{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\"}}}",
          "{\"a\": \"x\", \"other\": [1, 2]}", NULL);
    check("{\"type\": \"object\", \"additionalProperties\": true}", "{\"z\": {}}", NULL);
}

static void
test_items_and_counts(void **state)
{
    (void)state;
    const char *arr = "{\"type\": \"array\", \"minItems\": 1, \"maxItems\": 3,"
                      " \"items\": {\"type\": \"integer\", \"minimum\": 0}}";
    check(arr, "[0]", NULL);
    check(arr, "[1, 2, 3]", NULL);
    check(arr, "[]", "/v: fewer than 1 items");
    check(arr, "[1, 2, 3, 4]", "/v: more than 3 items");
    check(arr, "[1, -2]", "/v/1: less than the minimum 0");
    check(arr, "[1, \"2\"]", "/v/1: expected an integer, not a string");
}

static void
test_unique_items(void **state)
{
    (void)state;
    const char *arr = "{\"type\": \"array\", \"uniqueItems\": true}";
    check(arr, "[1, 2, \"1\"]", NULL);
    check(arr, "[1, 2, 1]", "/v: items 0 and 2 are equal");
    check(arr, "[1, 1.0]", "/v: items 0 and 1 are equal");
    check(arr, "[{\"a\": 1, \"b\": 2}, {\"b\": 2, \"a\": 1}]",
          "/v: items 0 and 1 are equal");
    check(arr, "[[1, 2], [2, 1]]", NULL);
    check("{\"type\": \"array\", \"uniqueItems\": false}", "[1, 1]", NULL);
    /* a large array goes through the hashing path, and the first repeat
       in the body is the one reported */
    char big[8192] = "[";
    for (int i = 0; i < 500; i++) {
        char num[16];
        snprintf(num, sizeof(num), "%s%d", i ? ", " : "", i);
        strcat(big, num);
    }
    check(arr, strcat(big, "]"), NULL);
    big[strlen(big) - 1] = '\0';
    strcat(big, ", 499, 7]");
    check(arr, big, "/v: items 499 and 500 are equal");
}

/* ---- repeats at scale ------------------------------------------------
   Repeated member names and uniqueItems once compared every value with
   every other that shared a hash bucket: 350,000 members all named ""
   held the broker's loop for minutes. These bodies must be answered
   right and in a time that grows about linearly; the bound below is
   generous (seconds, for what takes milliseconds), and catches the
   quadratic walk, which takes minutes. */

#define S_MANY 200000

static double
s_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* {"v": <what fill packs>} in sb (initialised here). */
static void
pack_v(msgpack_sbuffer *sb, void (*fill)(msgpack_packer *))
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "v", 1);
    fill(&pk);
}

/* {"v": <what fill packs>}, checked against fragment within 5 s. */
static void
check_timed(const char *fragment, void (*fill)(msgpack_packer *), const char *expect)
{
    mlg_schema_t *schema = compile_fragment(fragment);
    msgpack_sbuffer sb;
    pack_v(&sb, fill);
    double t0 = s_seconds();
    check_bytes(schema, (const uint8_t *)sb.data, sb.size, expect);
    double took = s_seconds() - t0;
    if (took > 5.0)
        print_error("%zu bytes took %.1f s: a step is not linear\n", sb.size, took);
    assert_true(took <= 5.0);
    msgpack_sbuffer_destroy(&sb);
    mlg_schema_destroy(&schema);
}

static void
p_many_empty_names(msgpack_packer *pk)
{
    msgpack_pack_map(pk, S_MANY);
    for (int i = 0; i < S_MANY; i++) {
        msgpack_pack_str_with_body(pk, "", 0);
        msgpack_pack_nil(pk);
    }
}

static void
p_many_equal_items(msgpack_packer *pk)
{
    msgpack_pack_array(pk, S_MANY);
    for (int i = 0; i < S_MANY; i++)
        msgpack_pack_str_with_body(pk, "orientation", 11);
}

/* Two maps of 50,000 members, the same members in reverse order. */
static void
p_two_big_maps(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    for (int m = 0; m < 2; m++) {
        msgpack_pack_map(pk, 50000);
        for (int i = 0; i < 50000; i++) {
            char k[16];
            int n = snprintf(k, sizeof(k), "k%d", m ? 49999 - i : i);
            msgpack_pack_str_with_body(pk, k, (size_t)n);
            msgpack_pack_int(pk, m ? 49999 - i : i);
        }
    }
}

/* Distinct names that share everything but their last bytes. */
static void
p_many_long_names(msgpack_packer *pk)
{
    char k[200];
    memset(k, 'k', sizeof(k));
    msgpack_pack_map(pk, 5001);
    for (int i = 0; i <= 5000; i++) {
        snprintf(k + sizeof(k) - 8, 8, "%07d", i == 2000 ? 1234 : i);
        msgpack_pack_str_with_body(pk, k, sizeof(k) - 1);
        msgpack_pack_nil(pk);
    }
}

static void
test_repeats_at_scale(void **state)
{
    (void)state;
    check_timed("{}", p_many_empty_names, "/v/: member appears twice");
    check_timed("{\"type\": \"array\", \"uniqueItems\": true}", p_many_equal_items,
                "/v: items 0 and 1 are equal");
    check_timed("{\"type\": \"array\", \"uniqueItems\": true}", p_two_big_maps,
                "/v: items 0 and 1 are equal");
    char expect[300] = "/v/";
    memset(expect + 3, 'k', 192);
    strcpy(expect + 3 + 192, "0001234: member appears twice");
    check_timed("{}", p_many_long_names, expect);
}

/* The sorted path (more than 8 values) agrees with JSON equality and
   reports the pair whose second value comes first. */
static void
test_unique_items_sorted(void **state)
{
    (void)state;
    const char *arr = "{\"type\": \"array\", \"uniqueItems\": true}";
    check(arr, "[5, 6, 7, 8, 9, 10, 11, 12, 13, 9, 5]", "/v: items 4 and 9 are equal");
    check(arr, "[0, 1, 2, 3, 4, 5, 6, 7, 8, 1.0]", "/v: items 1 and 9 are equal");
    check(arr, "[-1, -2, 0.5, 3, 4, 5, 6, 7, 8, -0.0, 0]",
          "/v: items 9 and 10 are equal");
    check(arr,
          "[null, true, false, 1, \"1\", [1], {\"a\": 1}, [], {}, \"\", [1, 2], "
          "{\"a\": 1, \"b\": [1, {\"c\": 2, \"d\": 3}]}, "
          "{\"b\": [1, {\"d\": 3, \"c\": 2}], \"a\": 1}]",
          "/v: items 11 and 12 are equal");
    check(arr,
          "[null, true, false, 1, \"1\", [1], {\"a\": 1}, [], {}, \"\", [1, 2], "
          "{\"a\": 1, \"b\": 2}, {\"a\": 2, \"b\": 1}, {\"a\": 1, \"c\": 2}, [2, 1]]",
          NULL);
}

/* Reasons quote member names; they stay valid UTF-8 whatever the names
   hold: cut at a character boundary, stray bytes escaped. */
static void
p_euro_name(msgpack_packer *pk)
{
    char name[601] = "";
    for (int i = 0; i < 200; i++)
        strcat(name, "€");
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, name, strlen(name));
    msgpack_pack_nil(pk);
}

static void
p_stray_byte_name(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk,
                               "a\xff"
                               "b",
                               3);
    msgpack_pack_nil(pk);
}

static void
test_reasons_are_text(void **state)
{
    (void)state;
    mlg_schema_t *schema =
        compile_fragment("{\"type\": \"object\", \"additionalProperties\": false}");
    void (*fills[])(msgpack_packer *) = {p_euro_name, p_stray_byte_name};
    for (size_t reasonlen = 40; reasonlen <= 1024; reasonlen += 37)
        for (int f = 0; f < 2; f++) {
            msgpack_sbuffer sb;
            pack_v(&sb, fills[f]);
            char reason[1024];
            assert_int_equal(mlg_schema_validate(schema, (const uint8_t *)sb.data,
                                                 sb.size, reason, reasonlen),
                             MLG_INVALID);
            if (!mlg_utf8_check(reason, strlen(reason), NULL))
                print_error("not UTF-8 with %zu bytes: %s\n", reasonlen, reason);
            assert_true(mlg_utf8_check(reason, strlen(reason), NULL));
            if (reasonlen > 600 && f == 0)
                assert_non_null(strstr(reason, "€€€...: not allowed"));
            if (f == 1)
                assert_string_equal(reason, "/v/a\\xFFb: not valid UTF-8");
            msgpack_sbuffer_destroy(&sb);
        }
    mlg_schema_destroy(&schema);
}

static void
test_enum_const(void **state)
{
    (void)state;
    const char *e = "{\"type\": \"string\", \"enum\": [\"routine\", \"urgent\"]}";
    check(e, "\"urgent\"", NULL);
    check(e, "\"Urgent\"", "/v: not one of the allowed values");
    check(e, "\"urgent \"", "/v: not one of the allowed values");
    check("{\"enum\": [1, null, [1]]}", "1.0", NULL);
    check("{\"enum\": [1, null, [1]]}", "[1]", NULL);
    check("{\"enum\": [1, null, [1]]}", "[2]", "/v: not one of the allowed values");
    check("{\"const\": \"v1\"}", "\"v1\"", NULL);
    check("{\"const\": \"v1\"}", "\"v2\"", "/v: not the required value");
    check("{\"const\": null}", "null", NULL);
    check("{\"const\": null}", "false", "/v: not the required value");
    check("{\"const\": {\"a\": [1, 2]}}", "{\"a\": [1, 2]}", NULL);
    check("{\"const\": {\"a\": [1, 2]}}", "{\"a\": [1, 2], \"b\": 1}",
          "/v: not the required value");
}

static void
test_lengths(void **state)
{
    (void)state;
    const char *s = "{\"type\": \"string\", \"minLength\": 2, \"maxLength\": 4}";
    check(s, "\"ab\"", NULL);
    check(s, "\"abcd\"", NULL);
    check(s, "\"a\"", "/v: shorter than 2 characters");
    check(s, "\"abcde\"", "/v: longer than 4 characters");
    /* characters, not bytes: four accented letters are eight bytes */
    check(s, "\"éèêë\"", NULL);
    check(s, "\"éèêëà\"", "/v: longer than 4 characters");
    check("{\"type\": \"string\", \"minLength\": 1}", "\"\"",
          "/v: shorter than 1 characters");
}

static void
test_pattern(void **state)
{
    (void)state;
    const char *p = "{\"type\": \"string\", \"pattern\": \"^[+0-9][0-9 .()-]*$\"}";
    check(p, "\"+33 1 23 45 67 89\"", NULL);
    check(p, "\"01.23.45.67.89\"", NULL);
    check(p, "\"call me\"", "/v: does not match the pattern ^[+0-9][0-9 .()-]*$");
    /* unanchored patterns search, as JSON Schema says */
    check("{\"type\": \"string\", \"pattern\": \"b+\"}", "\"abbc\"", NULL);
    check("{\"type\": \"string\", \"pattern\": \"b+\"}", "\"ac\"",
          "/v: does not match the pattern b+");
}

static void
test_minimum_maximum(void **state)
{
    (void)state;
    const char *n = "{\"type\": \"integer\", \"minimum\": 1, \"maximum\": 6}";
    check(n, "1", NULL);
    check(n, "6", NULL);
    check(n, "0", "/v: less than the minimum 1");
    check(n, "7", "/v: greater than the maximum 6");
    check(n, "-9223372036854775807", "/v: less than the minimum 1");
    const char *r = "{\"type\": \"number\", \"minimum\": 0, \"maximum\": 2.5}";
    check(r, "0", NULL);
    check(r, "2.5", NULL);
    check(r, "2.5000001", "/v: greater than the maximum 2.5");
    check(r, "-0.001", "/v: less than the minimum 0");
}

static void
test_format_date(void **state)
{
    (void)state;
    const char *f = "{\"type\": \"string\", \"format\": \"date\"}";
    const char *good[] = {"\"2024-02-29\"", "\"2000-02-29\"", "\"1999-12-31\"",
                          "\"2025-01-01\""};
    const char *bad[] = {"\"2025-02-29\"",           "\"1900-02-29\"", "\"2025-02-30\"",
                         "\"2025-04-31\"",           "\"2023-13-01\"", "\"2023-00-10\"",
                         "\"2023-01-00\"",           "\"2023-1-01\"",  "\"20230101\"",
                         "\"2023-01-01T00:00:00Z\"", "\"2023/01/01\"", "\"abcd-ef-gh\""};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        check(f, good[i], NULL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check(f, bad[i], "/v: not a date (YYYY-MM-DD)");
}

static void
test_format_date_time(void **state)
{
    (void)state;
    const char *f = "{\"type\": \"string\", \"format\": \"date-time\"}";
    const char *good[] = {
        "\"2025-01-31T10:20:30Z\"",      "\"2025-01-31T10:20:30.123456Z\"",
        "\"2025-01-31T10:20:30+01:00\"", "\"2025-01-31t10:20:30z\"",
        "\"2016-12-31T23:59:60Z\"",      "\"2024-02-29T00:00:00-09:30\""};
    const char *bad[] = {"\"2025-01-01 10:00\"",
                         "\"2025-01-01T10:00:00\"",
                         "\"2025-01-01T24:00:00Z\"",
                         "\"2025-01-01T10:60:00Z\"",
                         "\"2025-02-30T10:00:00Z\"",
                         "\"2025-01-01T10:00:00.Z\"",
                         "\"2025-01-01T10:00:00+0100\"",
                         "\"2025-01-01T10:00:00+01:00x\"",
                         "\"2025-01-01\""};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        check(f, good[i], NULL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check(f, bad[i], "/v: not a date-time (RFC 3339)");
}

static void
test_format_uuid(void **state)
{
    (void)state;
    const char *f = "{\"type\": \"string\", \"format\": \"uuid\"}";
    check(f, "\"6f1c2b7e-3d4a-4b8c-9e0f-1a2b3c4d5e6f\"", NULL);
    check(f, "\"6F1C2B7E-3D4A-4B8C-9E0F-1A2B3C4D5E6F\"", NULL);
    check(f, "\"6f1c2b7e-3d4a-4b8c-9e0f-1a2b3c4d5e6\"", "/v: not a UUID");
    check(f, "\"6f1c2b7e3d4a4b8c9e0f1a2b3c4d5e6f\"", "/v: not a UUID");
    check(f, "\"6f1c2b7e-3d4a-4b8c-9e0f-1a2b3c4d5e6g\"", "/v: not a UUID");
    check(f, "\"{6f1c2b7e-3d4a-4b8c-9e0f-1a2b3c4d5e6f}\"", "/v: not a UUID");
}

static void
test_format_email(void **state)
{
    (void)state;
    const char *f = "{\"type\": \"string\", \"format\": \"email\"}";
    check(f, "\"m.dupont@ccas-paris13.fr\"", NULL);
    check(f, "\"a+b@x.example\"", NULL);
    const char *bad[] = {"\"m.dupont\"", "\"@x.fr\"",    "\"a@\"",
                         "\"a@b\"",      "\"a b@x.fr\"", "\"a@@x.fr\"",
                         "\"a@x..fr\"",  "\"a@.x.fr\"",  "\"a@x.fr.\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check(f, bad[i], "/v: not an e-mail address");
}

static void
test_format_agency_purpose_category(void **state)
{
    (void)state;
    const char *a = "{\"type\": \"string\", \"format\": \"agency\"}";
    check(a, "\"ccas-paris-13\"", NULL);
    check(a, "\"CD75\"",
          "/v: not an agency id (1-64 of a-z 0-9 -, starting with a letter)");
    check(a, "\"13-paris\"",
          "/v: not an agency id (1-64 of a-z 0-9 -, starting with a letter)");
    const char *p = "{\"type\": \"string\", \"format\": \"purpose\"}";
    const char *purposes[] = {"orientation", "coordination", "evaluation", "protection",
                              "administration"};
    for (size_t i = 0; i < 5; i++) {
        char v[64];
        snprintf(v, sizeof(v), "\"%s\"", purposes[i]);
        check(p, v, NULL);
        assert_true(mlg_registry_is_purpose(s_vocab, purposes[i]));
    }
    check(p, "\"marketing\"", "/v: not a purpose of the vocabulary");
    check(p, "\"Orientation\"", "/v: not a purpose of the vocabulary");
    const char *c = "{\"type\": \"string\", \"format\": \"category\"}";
    const char *categories[] = {"identity", "social", "health", "financial",
                                "administrative"};
    for (size_t i = 0; i < 5; i++) {
        char v[64];
        snprintf(v, sizeof(v), "\"%s\"", categories[i]);
        check(c, v, NULL);
        assert_true(mlg_registry_is_category(s_vocab, categories[i]));
    }
    check(c, "\"religion\"", "/v: not a category of the vocabulary");
    assert_false(mlg_registry_is_purpose(s_vocab, "social"));
}

static void
test_annotations_ignored(void **state)
{
    (void)state;
    check("{\"type\": \"string\", \"title\": \"t\", \"description\": \"d\","
          " \"examples\": [\"x\"], \"$id\": \"i\", \"$schema\": \"s\"}",
          "\"anything\"", NULL);
}

/* ---- what msgpack can hold and JSON cannot ------------------------- */

/* {"v": <value written by fn>} */
static void
check_packed(const char *fragment, void (*fn)(msgpack_packer *), const char *expect)
{
    mlg_schema_t *schema = compile_fragment(fragment);
    msgpack_sbuffer sb;
    pack_v(&sb, fn);
    check_bytes(schema, (const uint8_t *)sb.data, sb.size, expect);
    msgpack_sbuffer_destroy(&sb);
    mlg_schema_destroy(&schema);
}

static void
p_bin(msgpack_packer *pk)
{
    msgpack_pack_bin_with_body(pk, "ab", 2);
}
static void
p_ext(msgpack_packer *pk)
{
    msgpack_pack_ext_with_body(pk, "abcd", 4, -1);
}
static void
p_bad_utf8(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, "\xff\xfe", 2);
}
static void
p_nul(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, "a\0b", 3);
}
static void
p_nan(msgpack_packer *pk)
{
    msgpack_pack_double(pk, 0.0 / 0.0);
}
static void
p_dup_map(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 2);
    msgpack_pack_str_with_body(pk, "a", 1);
    msgpack_pack_int(pk, 1);
    msgpack_pack_str_with_body(pk, "a", 1);
    msgpack_pack_int(pk, 2);
}
static void
p_dup_big_map(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 40);
    for (int i = 0; i < 40; i++) {
        char k[8];
        int n = snprintf(k, sizeof(k), "k%d", i == 39 ? 3 : i);
        msgpack_pack_str_with_body(pk, k, (size_t)n);
        msgpack_pack_int(pk, i);
    }
}
static void
p_int_key(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    msgpack_pack_int(pk, 1);
    msgpack_pack_int(pk, 1);
}
static void
p_nested_bin(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, 1);
    msgpack_pack_bin_with_body(pk, "x", 1);
}
static void
p_float32(msgpack_packer *pk)
{
    msgpack_pack_float(pk, 1.5f);
}

static void
test_msgpack_only_values(void **state)
{
    (void)state;
    check_packed("{}", p_bin, "/v: binary data is never valid in a body");
    check_packed("{\"type\": \"string\"}", p_bin,
                 "/v: binary data is never valid in a body");
    check_packed("{}", p_ext, "/v: an extension value is never valid in a body");
    check_packed("{\"type\": \"string\"}", p_bad_utf8, "/v: not valid UTF-8");
    check_packed("{}", p_bad_utf8, "/v: not valid UTF-8");
    check_packed("{\"type\": \"string\"}", p_nul, "/v: contains a NUL character");
    check_packed("{\"type\": \"number\"}", p_nan,
                 "/v: NaN and infinity are never valid in a body");
    check_packed("{}", p_nan, "/v: NaN and infinity are never valid in a body");
    check_packed("{\"type\": \"object\"}", p_dup_map, "/v/a: member appears twice");
    check_packed("{}", p_dup_map, "/v/a: member appears twice");
    check_packed("{}", p_dup_big_map, "/v/k3: member appears twice");
    check_packed("{}", p_int_key,
                 "/v: member 0 has an integer as its name, not a string");
    check_packed("{\"type\": \"array\"}", p_nested_bin,
                 "/v/1: binary data is never valid in a body");
    check_packed("{\"type\": \"number\", \"maximum\": 2}", p_float32, NULL);
}

static void
test_not_msgpack(void **state)
{
    (void)state;
    mlg_schema_t *schema = compile_fragment("{}");
    const uint8_t truncated[] = {0x81, 0xa1};
    char reason[256];
    assert_int_equal(
        mlg_schema_validate(schema, truncated, sizeof(truncated), reason, sizeof(reason)),
        MLG_MALFORMED);
    const uint8_t array[] = {0x90};
    check_bytes(schema, array, sizeof(array), ": expected an object, not an array");
    mlg_schema_destroy(&schema);
}

/* ---- load errors ---------------------------------------------------- */

/* Expected messages may end in '*': then only that prefix must match
   (for the parts that come from libc or jansson). */
static void
assert_message(const char *got, const char *expect)
{
    size_t n = strlen(expect);
    bool prefix = n && expect[n - 1] == '*';
    bool ok = prefix ? strncmp(got, expect, n - 1) == 0 : strcmp(got, expect) == 0;
    if (!ok)
        print_error("got: %s\nexpected: %s\n", got, expect);
    assert_true(ok);
}

static void
compile_fails(const char *json, const char *expect)
{
    char err[512] = "";
    mlg_schema_t *schema = mlg_schema_compile(s_vocab, "test.event", 1, json,
                                              strlen(json), err, sizeof(err));
    if (schema)
        print_error("compiled, expected: %s\n", expect);
    assert_null(schema);
    assert_message(err, expect);
}

#define ROOT_OPEN "{\"type\": \"object\", \"x-maillage\": {\"personal_data\": false}, "

static void
test_load_errors(void **state)
{
    (void)state;
    compile_fails(
        ROOT_OPEN "\"properties\": {\"a\": {\"type\": \"string\", \"maxLenght\": 3}}}",
        "test.event.v1: /properties/a/maxLenght: unsupported keyword 'maxLenght'");
    compile_fails(ROOT_OPEN "\"oneOf\": []}",
                  "test.event.v1: /oneOf: unsupported keyword 'oneOf'");
    compile_fails(ROOT_OPEN "\"properties\": {\"a\": {\"type\": \"text\"}}}",
                  "test.event.v1: /properties/a/type: unknown type 'text'");
    compile_fails(ROOT_OPEN "\"properties\": {\"a\": {\"type\": [\"string\", 1]}}}",
                  "test.event.v1: /properties/a/type/1: not a type name");
    compile_fails(ROOT_OPEN "\"properties\": {\"a\": {\"format\": \"ipv4\"}}}",
                  "test.event.v1: /properties/a/format: unknown format (date, date-time, "
                  "uuid, email, agency, purpose, category)");
    compile_fails(ROOT_OPEN "\"properties\": {\"a\": {\"pattern\": \"[a-\"}}}",
                  "test.event.v1: /properties/a/pattern: not a POSIX extended regular "
                  "expression: *");
    compile_fails(ROOT_OPEN "\"required\": [\"a\"], \"properties\": {}}",
                  "test.event.v1: /required/0: required member 'a' is not among the "
                  "properties");
    compile_fails(ROOT_OPEN "\"additionalProperties\": {}}",
                  "test.event.v1: /additionalProperties: must be a boolean (schemas here "
                  "are not supported)");
    compile_fails(ROOT_OPEN "\"properties\": {\"a\": {\"items\": [{}]}}}",
                  "test.event.v1: /properties/a/items: must be one schema (an object)");
    compile_fails(
        ROOT_OPEN "\"properties\": {\"a\": {\"minItems\": -1}}}",
        "test.event.v1: /properties/a/minItems: must be a non-negative integer");
    compile_fails(
        ROOT_OPEN "\"properties\": {\"a\": {\"maxLength\": 1.5}}}",
        "test.event.v1: /properties/a/maxLength: must be a non-negative integer");
    compile_fails(ROOT_OPEN
                  "\"properties\": {\"a\": {\"minLength\": 3, \"maxLength\": 2}}}",
                  "test.event.v1: /properties/a: minLength is greater than maxLength");
    compile_fails(ROOT_OPEN "\"properties\": {\"a\": {\"minimum\": \"0\"}}}",
                  "test.event.v1: /properties/a/minimum: must be a number");
    compile_fails(ROOT_OPEN "\"properties\": {\"a\": {\"enum\": []}}}",
                  "test.event.v1: /properties/a/enum: must be a non-empty array");
    compile_fails(ROOT_OPEN "\"properties\": {\"a\": {\"uniqueItems\": 1}}}",
                  "test.event.v1: /properties/a/uniqueItems: must be a boolean");
    compile_fails(
        ROOT_OPEN "\"properties\": {\"a\": {\"x-maillage\": {}}}}",
        "test.event.v1: /properties/a/x-maillage: x-maillage belongs at the root "
        "only");
    compile_fails("{\"type\": \"array\"}",
                  "test.event.v1: /type: the root of an event schema must have type "
                  "\"object\"");
    compile_fails("{\"type\": \"object\",}", "test.event.v1: /: not JSON: line 1, *");
    compile_fails("{\"type\": \"object\", \"type\": \"object\"}",
                  "test.event.v1: /: not JSON: line 1, column 25: duplicate object key*");
}

static void
test_x_maillage_rules(void **state)
{
    (void)state;
    compile_fails("{\"type\": \"object\"}", "test.event.v1: /: missing x-maillage");
    compile_fails("{\"type\": \"object\", \"x-maillage\": {\"personal_data\": \"yes\"}}",
                  "test.event.v1: /x-maillage/personal_data: must be true or false");
    compile_fails(
        "{\"type\": \"object\", \"x-maillage\": {\"personal_data\": true}}",
        "test.event.v1: /x-maillage/basis: must be consent, legal_obligation, "
        "consent_notice or service_notice");
    compile_fails("{\"type\": \"object\", \"x-maillage\": {\"personal_data\": true, "
                  "\"basis\": \"consent\"}}",
                  "test.event.v1: /x-maillage/category: required with basis consent");
    compile_fails("{\"type\": \"object\", \"x-maillage\": {\"personal_data\": true, "
                  "\"basis\": \"consent\", \"category\": \"religion\"}}",
                  "test.event.v1: /x-maillage/category: 'religion' is not a category of "
                  "the vocabulary");
    compile_fails(
        "{\"type\": \"object\", \"x-maillage\": {\"personal_data\": true, "
        "\"basis\": \"contract\", \"category\": \"social\"}}",
        "test.event.v1: /x-maillage/basis: must be consent, legal_obligation, "
        "consent_notice or service_notice");
    compile_fails("{\"type\": \"object\", \"x-maillage\": {\"personal_data\": false, "
                  "\"basis\": \"consent\"}}",
                  "test.event.v1: /x-maillage/basis: only personal data has a basis");
    compile_fails(
        "{\"type\": \"object\", \"x-maillage\": {\"personal_data\": false, "
        "\"category\": \"social\"}}",
        "test.event.v1: /x-maillage/category: only a consent or legal_obligation "
        "basis has a category");
    compile_fails(
        "{\"type\": \"object\", \"x-maillage\": {\"personal_data\": true, "
        "\"basis\": \"consent_notice\"}}",
        "test.event.v1: /x-maillage/basis: consent_notice is only for consent.* "
        "events");
    compile_fails(
        "{\"type\": \"object\", \"x-maillage\": {\"personal_data\": true, "
        "\"basis\": \"service_notice\"}}",
        "test.event.v1: /x-maillage/basis: service_notice is only for the broker's "
        "referral.* notices");
    compile_fails("{\"type\": \"object\", \"x-maillage\": {\"personal_data\": false, "
                  "\"retention\": 30}}",
                  "test.event.v1: /x-maillage/retention: unknown x-maillage key "
                  "'retention'");

    char err[256];
    const char *notice =
        "{\"type\": \"object\", \"x-maillage\": {\"personal_data\": true, "
        "\"basis\": \"consent_notice\"}}";
    mlg_schema_t *s = mlg_schema_compile(s_vocab, "consent.granted", 2, notice,
                                         strlen(notice), err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(mlg_schema_basis(s), MLG_BASIS_CONSENT_NOTICE);
    assert_null(mlg_schema_category(s));
    assert_true(mlg_schema_personal(s));
    mlg_schema_destroy(&s);
    const char *service =
        "{\"type\": \"object\", \"x-maillage\": {\"personal_data\": true, "
        "\"basis\": \"service_notice\"}}";
    s = mlg_schema_compile(s_vocab, "referral.overdue", 2, service, strlen(service), err,
                           sizeof(err));
    assert_non_null(s);
    assert_int_equal(mlg_schema_basis(s), MLG_BASIS_SERVICE_NOTICE);
    assert_string_equal(mlg_basis_name(MLG_BASIS_SERVICE_NOTICE), "service_notice");
    assert_null(mlg_schema_category(s));
    mlg_schema_destroy(&s);
    const char *categorised =
        "{\"type\": \"object\", \"x-maillage\": {\"personal_data\": true, "
        "\"basis\": \"service_notice\", \"category\": \"social\"}}";
    s = mlg_schema_compile(s_vocab, "referral.overdue", 3, categorised,
                           strlen(categorised), err, sizeof(err));
    assert_null(s);
    assert_string_equal(err, "referral.overdue.v3: /x-maillage/category: service_notice "
                             "has no category");
    const char *legal =
        "{\"type\": \"object\", \"x-maillage\": {\"personal_data\": true, "
        "\"basis\": \"legal_obligation\", \"category\": \"health\"}}";
    s = mlg_schema_compile(s_vocab, "x.y", 1, legal, strlen(legal), err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(mlg_schema_basis(s), MLG_BASIS_LEGAL_OBLIGATION);
    assert_string_equal(mlg_schema_category(s), "health");
    assert_string_equal(mlg_basis_name(mlg_schema_basis(s)), "legal_obligation");
    mlg_schema_destroy(&s);
}

/* ---- the registry over a folder ------------------------------------ */

static char s_tmp[256];

static void
write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", s_tmp, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
registry_fails(const char *expect_suffix)
{
    char err[512] = "";
    mlg_registry_t *reg = mlg_registry_load(s_tmp, err, sizeof(err));
    if (reg)
        print_error("loaded, expected failure: %s\n", expect_suffix);
    assert_null(reg);
    char expect[768];
    snprintf(expect, sizeof(expect), "%s/%s", s_tmp, expect_suffix);
    assert_message(err, expect);
}

static void
test_registry_folder(void **state)
{
    (void)state;
    strcpy(s_tmp, "/tmp/mlg-schemas-XXXXXX");
    assert_non_null(mkdtemp(s_tmp));
    registry_fails("vocabulary.json: /: could not open: No such file or directory");
    write_file("vocabulary.json", "{\"purposes\": {\"orientation\": \"x\"}}");
    registry_fails("vocabulary.json: /categories: must be a non-empty object of word: "
                   "description");
    write_file(
        "vocabulary.json",
        "{\"purposes\": {\"Orientation\": \"x\"}, \"categories\": {\"social\": \"s\"}}");
    registry_fails(
        "vocabulary.json: /purposes/Orientation: a word is 1-32 lowercase letters");
    write_file(
        "vocabulary.json",
        "{\"purposes\": {\"orientation\": \"x\"}, \"categories\": {\"social\": \"s\"}}");
    write_file("README.md", "not a schema, ignored");
    write_file("service.capacity.changed.v1.json",
               "{\"type\": \"object\", \"x-maillage\": {\"personal_data\": false}}");
    char err[512];
    mlg_registry_t *reg = mlg_registry_load(s_tmp, err, sizeof(err));
    assert_non_null(reg);
    assert_int_equal(mlg_registry_size(reg), 1);
    assert_non_null(mlg_registry_find(reg, "service.capacity.changed", 1));
    assert_null(mlg_registry_find(reg, "service.capacity.changed", 2));
    assert_null(mlg_registry_find(reg, "service.capacity", 1));
    mlg_registry_destroy(&reg);

    write_file("referral.v0.json", "{}");
    registry_fails("referral.v0.json: /: the file name is not <type>.v<version>.json");
    unlink(strcat(strcpy(err, s_tmp), "/referral.v0.json"));
    write_file("notes.json", "{}");
    registry_fails("notes.json: /: the file name is not <type>.v<version>.json");
    unlink(strcat(strcpy(err, s_tmp), "/notes.json"));
    write_file("a.b.v2.json",
               "{\"type\": \"object\", \"x-maillage\": {\"personal_data\": "
               "false}, \"properties\": {\"n\": {\"minimun\": 1}}}");
    registry_fails("a.b.v2.json: /properties/n/minimun: unsupported keyword 'minimun'");
    write_file("a.b.v2.json",
               "{\"type\": \"object\", \"x-maillage\": {\"personal_data\": "
               "true, \"basis\": \"consent\", \"category\": \"health\"}}");
    registry_fails("a.b.v2.json: /x-maillage/category: 'health' is not a category of the "
                   "vocabulary");
    write_file("a.b.v2.json", "{\"type\": \"object\" ");
    registry_fails("a.b.v2.json: /: not JSON: line 1, *");
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_tmp);
    assert_int_equal(system(cmd), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type),
        cmocka_unit_test(test_properties_required_additional),
        cmocka_unit_test(test_items_and_counts),
        cmocka_unit_test(test_unique_items),
        cmocka_unit_test(test_unique_items_sorted),
        cmocka_unit_test(test_repeats_at_scale),
        cmocka_unit_test(test_reasons_are_text),
        cmocka_unit_test(test_enum_const),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_pattern),
        cmocka_unit_test(test_minimum_maximum),
        cmocka_unit_test(test_format_date),
        cmocka_unit_test(test_format_date_time),
        cmocka_unit_test(test_format_uuid),
        cmocka_unit_test(test_format_email),
        cmocka_unit_test(test_format_agency_purpose_category),
        cmocka_unit_test(test_annotations_ignored),
        cmocka_unit_test(test_msgpack_only_values),
        cmocka_unit_test(test_not_msgpack),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_x_maillage_rules),
        cmocka_unit_test(test_registry_folder),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
