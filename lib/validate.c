/*  validate.c: checks a msgpack body against a compiled schema.

    Works on the msgpack_object tree the codec built; the body is never
    turned into JSON. The walk stops at the first problem and reports it
    as "<JSON pointer>: <problem>". Inside an object, missing required
    members are reported first (in the schema's order), then the members
    in the order the body gives them.

    Whatever a schema allows, a body holds only what JSON can hold: no
    bin or ext values, string keys, valid UTF-8 without NUL characters
    (agencies store bodies as JSON and text), no repeated member. Values
    that no schema describes (an item with no `items`, a member allowed
    by additionalProperties) are checked for that too.

    Costs: linear in the body, but for uniqueItems and repeated-member
    checks, O(n log n) comparisons by sorting the values, so no body
    (even one where every member has the same name) makes a check
    quadratic. Called by the broker for every PUBLISH. */

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maillage/forms.h"
#include "maillage/limits.h"
#include "mp.h"
#include "schema_int.h"

/* The pointer being built, as a stack of appended segments. */
typedef struct {
    char buf[512];
    size_t len;
    bool truncated;
    char *reason;
    size_t reasonlen;
} s_walk_t;

/* Appends "/" and a member name to the pointer, RFC 6901-escaped, as
   valid UTF-8 (bytes that are not are written \xHH, control characters
   '?'), cut at a character boundary when the buffer is full. */
static size_t
s_push_key(s_walk_t *w, const char *key, size_t klen)
{
    size_t mark = w->len;
    if (w->len + 1 >= sizeof(w->buf)) {
        w->truncated = true;
        return mark;
    }
    w->buf[w->len++] = '/';
    /* longer than the pointer's room, so a name too long is cut below */
    char clean[sizeof(w->buf) + 8];
    size_t n = mlg_text_clean(clean, sizeof(clean), key, klen, sizeof(clean));
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)clean[i];
        size_t k = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (w->len + k + 2 >= sizeof(w->buf)) {
            w->truncated = true;
            break;
        }
        if (c == '~' || c == '/') {
            w->buf[w->len++] = '~';
            w->buf[w->len++] = c == '~' ? '0' : '1';
        }
        else if (c < 0x20 || c == 0x7f) /* control bytes would garble it */
            w->buf[w->len++] = '?';
        else {
            memcpy(w->buf + w->len, clean + i, k);
            w->len += k;
        }
        i += k;
    }
    w->buf[w->len] = '\0';
    return mark;
}

static size_t
s_push_index(s_walk_t *w, uint32_t index)
{
    char num[16];
    int n = snprintf(num, sizeof(num), "%" PRIu32, index);
    return s_push_key(w, num, (size_t)n);
}

static void
s_pop(s_walk_t *w, size_t mark)
{
    w->len = mark;
    w->buf[w->len] = '\0';
}

/* Drops a character cut in two at the end of s (after a truncating
   snprintf), so the reason stays valid UTF-8. */
static void
s_trim_cut_char(char *s)
{
    size_t len = strlen(s), back = 0;
    while (back < 3 && back < len && ((unsigned char)s[len - 1 - back] & 0xC0) == 0x80)
        back++;
    if (back == len)
        return;
    unsigned char lead = (unsigned char)s[len - 1 - back];
    size_t want = lead < 0x80    ? 1
                  : lead >= 0xF0 ? 4
                  : lead >= 0xE0 ? 3
                  : lead >= 0xC0 ? 2
                                 : 1;
    if (want > back + 1)
        s[len - 1 - back] = '\0';
}

static bool
s_fail(s_walk_t *w, const char *fmt, ...)
{
    if (!w->reason || !w->reasonlen)
        return false;
    int n =
        snprintf(w->reason, w->reasonlen, "%s%s: ", w->buf, w->truncated ? "..." : "");
    if (n < 0 || (size_t)n >= w->reasonlen) {
        s_trim_cut_char(w->reason);
        return false;
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(w->reason + n, w->reasonlen - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0 || (size_t)m >= w->reasonlen - (size_t)n)
        s_trim_cut_char(w->reason);
    return false;
}

/* ---- numbers ------------------------------------------------------- */

/* Numbers compare by value across encodings: 1, 1u and 1.0 are equal,
   as JSON Schema wants. */
static bool
s_num(const msgpack_object *o, long double *v)
{
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *v = (long double)o->via.u64; return true;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *v = (long double)o->via.i64; return true;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *v = (long double)o->via.f64; return true;
    default: return false;
    }
}

/* Exact comparison of a msgpack number with a JSON number:
   <0, 0, >0. Integers compare exactly; a float compares as a float. */
static int
s_cmp_json_num(const msgpack_object *o, const json_t *j)
{
    if (json_is_integer(j)) {
        json_int_t b = json_integer_value(j);
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            if (b < 0 || o->via.u64 > (uint64_t)b)
                return 1;
            return o->via.u64 < (uint64_t)b ? -1 : 0;
        }
        if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            return o->via.i64 < b ? -1 : o->via.i64 > b;
    }
    long double a = 0, b = json_is_integer(j) ? (long double)json_integer_value(j)
                                              : (long double)json_real_value(j);
    s_num(o, &a);
    return a < b ? -1 : a > b;
}

static bool
s_equal_json(const msgpack_object *o, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_NULL: return o->type == MSGPACK_OBJECT_NIL;
    case JSON_TRUE: return o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
    case JSON_FALSE: return o->type == MSGPACK_OBJECT_BOOLEAN && !o->via.boolean;
    case JSON_INTEGER:
    case JSON_REAL: {
        long double dummy;
        return s_num(o, &dummy) && s_cmp_json_num(o, j) == 0;
    }
    case JSON_STRING:
        return o->type == MSGPACK_OBJECT_STR && o->via.str.size == json_string_length(j)
               && (o->via.str.size == 0
                   || memcmp(o->via.str.ptr, json_string_value(j), o->via.str.size) == 0);
    case JSON_ARRAY:
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != json_array_size(j))
            return false;
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if (!s_equal_json(&o->via.array.ptr[i], json_array_get(j, i)))
                return false;
        return true;
    case JSON_OBJECT:
        if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size != json_object_size(j))
            return false;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR)
                return false;
            const json_t *v =
                json_object_getn(j, kv->key.via.str.ptr, kv->key.via.str.size);
            if (!v || !s_equal_json(&kv->val, v))
                return false;
        }
        return true;
    }
    return false;
}

/* ---- a total order on body values ---------------------------------- */

/* Repeated members and uniqueItems are found by sorting the values with
   a total order that agrees with JSON equality (1, 1u and 1.0 are equal;
   members compare by name whatever their order), then comparing
   neighbours: O(n log n) comparisons, each costing at most the smaller
   value's size, whatever the values are. (A hash with buckets compared
   pairwise was quadratic when every value fell in one bucket: 150,000
   members named "" held the event loop for 45 seconds.) */

typedef struct {
    const msgpack_object *o;
    uint32_t index; /* position in the body, kept by a stable sort */
} s_item_t;

static int s_cmp(const msgpack_object *a, const msgpack_object *b, bool *oom);

/* The rank of a value's kind; numbers of every encoding share one. */
static int
s_rank(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return 0;
    case MSGPACK_OBJECT_BOOLEAN: return 1;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return 2;
    case MSGPACK_OBJECT_STR: return 3;
    case MSGPACK_OBJECT_ARRAY: return 4;
    case MSGPACK_OBJECT_MAP: return 5;
    default: return 6; /* bin, ext: refused before any comparison */
    }
}

/* A stable merge sort of n items by s_cmp: O(n log n) comparisons, no
   worst case. tmp holds n items. */
static void
s_sort(s_item_t *v, s_item_t *tmp, size_t n, bool *oom)
{
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = mid + width < n ? mid + width : n;
            size_t i = lo, k = mid, out = lo;
            while (i < mid && k < hi)
                tmp[out++] = s_cmp(v[k].o, v[i].o, oom) < 0 ? v[k++] : v[i++];
            while (i < mid)
                tmp[out++] = v[i++];
            while (k < hi)
                tmp[out++] = v[k++];
        }
        memcpy(v, tmp, n * sizeof(*v));
    }
}

/* The members of a map, sorted by name (names are unique strings,
   checked before any comparison). Returns NULL when out of memory. */
static s_item_t *
s_sorted_members(const msgpack_object *map, bool *oom)
{
    uint32_t n = map->via.map.size;
    s_item_t *v = malloc(2 * (size_t)n * sizeof(*v) + 1);
    if (!v) {
        *oom = true;
        return NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        v[i].o = &map->via.map.ptr[i].key;
        v[i].index = i;
    }
    s_sort(v, v + n, n, oom);
    return v;
}

static int
s_cmp_maps(const msgpack_object *a, const msgpack_object *b, bool *oom)
{
    uint32_t n = a->via.map.size;
    if (n != b->via.map.size)
        return n < b->via.map.size ? -1 : 1;
    if (n == 0)
        return 0;
    s_item_t *x = s_sorted_members(a, oom);
    s_item_t *y = x ? s_sorted_members(b, oom) : NULL;
    int c = 0;
    for (uint32_t i = 0; y && c == 0 && i < n; i++) {
        c = s_cmp(x[i].o, y[i].o, oom);
        if (c == 0)
            c = s_cmp(&a->via.map.ptr[x[i].index].val, &b->via.map.ptr[y[i].index].val,
                      oom);
    }
    free(x);
    free(y);
    return c;
}

/* <0, 0, >0. When out of memory, *oom is set and the order is
   meaningless; the caller reports it. */
static int
s_cmp(const msgpack_object *a, const msgpack_object *b, bool *oom)
{
    int ra = s_rank(a), rb = s_rank(b);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    long double x = 0, y = 0;
    switch (a->type) {
    case MSGPACK_OBJECT_BOOLEAN: return (int)a->via.boolean - (int)b->via.boolean;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: /* NaN is refused before any comparison */
        s_num(a, &x);
        s_num(b, &y);
        return x < y ? -1 : x > y;
    case MSGPACK_OBJECT_STR: {
        uint32_t n =
            a->via.str.size < b->via.str.size ? a->via.str.size : b->via.str.size;
        int c = n ? memcmp(a->via.str.ptr, b->via.str.ptr, n) : 0;
        if (c != 0)
            return c;
        return a->via.str.size < b->via.str.size ? -1 : a->via.str.size > b->via.str.size;
    }
    case MSGPACK_OBJECT_ARRAY:
        if (a->via.array.size != b->via.array.size)
            return a->via.array.size < b->via.array.size ? -1 : 1;
        for (uint32_t i = 0; i < a->via.array.size; i++) {
            int c = s_cmp(&a->via.array.ptr[i], &b->via.array.ptr[i], oom);
            if (c != 0)
                return c;
        }
        return 0;
    case MSGPACK_OBJECT_MAP: return s_cmp_maps(a, b, oom);
    default: return 0;
    }
}

/* Finds two equal values among n (items, or a map's member names).
   Reports the pair whose second value comes first in the body. Returns
   false when there is none or when out of memory (then *oom is set). */
static bool
s_find_repeat(const msgpack_object *const *vals, uint32_t n, uint32_t *first,
              uint32_t *second, bool *oom)
{
    *oom = false;
    if (n < 2)
        return false;
    if (n <= 8) { /* the usual case: no allocation */
        for (uint32_t i = 1; i < n; i++)
            for (uint32_t k = 0; k < i; k++)
                if (s_cmp(vals[k], vals[i], oom) == 0 && !*oom) {
                    *first = k;
                    *second = i;
                    return true;
                }
        return false;
    }
    s_item_t *v = malloc(2 * (size_t)n * sizeof(*v));
    if (!v) {
        *oom = true;
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        v[i].o = vals[i];
        v[i].index = i;
    }
    s_sort(v, v + n, n, oom);
    /* Equal values are neighbours, in body order (the sort is stable):
       each run's first two are its earliest pair, and the answer is the
       run whose second comes first. */
    bool found = false;
    size_t run = 0;
    for (size_t i = 1; i < n && !*oom; i++) {
        if (s_cmp(v[run].o, v[i].o, oom) != 0)
            run = i;
        else if (i == run + 1 && (!found || v[i].index < *second)) {
            *first = v[run].index;
            *second = v[i].index;
            found = true;
        }
    }
    free(v);
    return found && !*oom;
}

/* ---- the walk ------------------------------------------------------ */

static const char *
s_kind(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "null";
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "an integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "a number";
    case MSGPACK_OBJECT_STR: return "a string";
    case MSGPACK_OBJECT_ARRAY: return "an array";
    case MSGPACK_OBJECT_MAP: return "an object";
    case MSGPACK_OBJECT_BIN: return "binary data";
    case MSGPACK_OBJECT_EXT: return "an extension value";
    }
    return "an unknown value";
}

static unsigned
s_type_of(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return S_T_NULL;
    case MSGPACK_OBJECT_BOOLEAN: return S_T_BOOLEAN;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return S_T_INTEGER | S_T_NUMBER;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return S_T_NUMBER;
    case MSGPACK_OBJECT_STR: return S_T_STRING;
    case MSGPACK_OBJECT_ARRAY: return S_T_ARRAY;
    case MSGPACK_OBJECT_MAP: return S_T_OBJECT;
    default: return 0; /* bin, ext: never valid */
    }
}

static const char *
s_expected(unsigned types)
{
    switch (types) {
    case S_T_OBJECT: return "expected an object";
    case S_T_ARRAY: return "expected an array";
    case S_T_STRING: return "expected a string";
    case S_T_INTEGER: return "expected an integer";
    case S_T_NUMBER: return "expected a number";
    case S_T_BOOLEAN: return "expected a boolean";
    case S_T_NULL: return "expected null";
    default: return "not one of the allowed types";
    }
}

static bool s_check_value(s_walk_t *w, const mlg_node_t *node, const msgpack_object *o,
                          const mlg_schema_t *schema);

/* The rules every string in a body obeys. */
static bool
s_check_text(s_walk_t *w, const char *s, size_t len, size_t *chars)
{
    if (!mlg_utf8_check(s, len, chars))
        return s_fail(w, "not valid UTF-8");
    if (len && memchr(s, '\0', len)) /* ptr may be NULL when len is 0 */
        return s_fail(w, "contains a NUL character");
    return true;
}

/* Keys are strings, valid text, and none repeats. */
static bool
s_check_keys(s_walk_t *w, const msgpack_object *o)
{
    uint32_t n = o->via.map.size;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            return s_fail(w, "member %" PRIu32 " has %s as its name, not a string", i,
                          s_kind(k));
        size_t mark = s_push_key(w, k->via.str.ptr, k->via.str.size);
        bool ok = s_check_text(w, k->via.str.ptr, k->via.str.size, NULL);
        s_pop(w, mark);
        if (!ok)
            return false;
    }
    if (n < 2)
        return true;
    const msgpack_object **keys = malloc(n * sizeof(*keys));
    if (!keys)
        return s_fail(w, "could not allocate");
    for (uint32_t i = 0; i < n; i++)
        keys[i] = &o->via.map.ptr[i].key;
    uint32_t a, b;
    bool oom;
    bool repeat = s_find_repeat(keys, n, &a, &b, &oom);
    free(keys);
    if (oom)
        return s_fail(w, "could not allocate");
    if (repeat) {
        const msgpack_object *k = &o->via.map.ptr[b].key;
        s_push_key(w, k->via.str.ptr, k->via.str.size);
        return s_fail(w, "member appears twice");
    }
    return true;
}

/* A value no schema describes: only the universal rules apply. */
static bool
s_check_plain(s_walk_t *w, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_BIN:
    case MSGPACK_OBJECT_EXT: return s_fail(w, "%s is never valid in a body", s_kind(o));
    case MSGPACK_OBJECT_STR:
        return s_check_text(w, o->via.str.ptr, o->via.str.size, NULL);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64))
            return s_fail(w, "NaN and infinity are never valid in a body");
        return true;
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            size_t mark = s_push_index(w, i);
            bool ok = s_check_plain(w, &o->via.array.ptr[i]);
            s_pop(w, mark);
            if (!ok)
                return false;
        }
        return true;
    case MSGPACK_OBJECT_MAP:
        if (!s_check_keys(w, o))
            return false;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            size_t mark = s_push_key(w, kv->key.via.str.ptr, kv->key.via.str.size);
            bool ok = s_check_plain(w, &kv->val);
            s_pop(w, mark);
            if (!ok)
                return false;
        }
        return true;
    default: return true;
    }
}

static bool
s_check_object(s_walk_t *w, const mlg_node_t *node, const msgpack_object *o,
               const mlg_schema_t *schema)
{
    if (!s_check_keys(w, o))
        return false;
    const msgpack_object_kv *kvs = o->via.map.ptr;
    uint32_t n = o->via.map.size;
    for (size_t r = 0; r < node->nrequired; r++) {
        const char *name = node->prop_names[node->required[r]];
        bool found = false;
        for (uint32_t i = 0; i < n && !found; i++)
            found = mlg_mp_str_eq(&kvs[i].key, name);
        if (!found) {
            s_push_key(w, name, strlen(name));
            return s_fail(w, "required");
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *k = &kvs[i].key;
        size_t mark = s_push_key(w, k->via.str.ptr, k->via.str.size);
        const mlg_node_t *sub = NULL;
        bool known = false;
        for (size_t p = 0; p < node->nprops && !known; p++)
            if (mlg_mp_str_eq(k, node->prop_names[p])) {
                known = true;
                sub = node->props[p];
            }
        bool ok;
        if (known)
            ok = s_check_value(w, sub, &kvs[i].val, schema);
        else if (!node->additional)
            ok = s_fail(w, "not allowed");
        else
            ok = s_check_plain(w, &kvs[i].val);
        s_pop(w, mark);
        if (!ok)
            return false;
    }
    return true;
}

static bool
s_check_array(s_walk_t *w, const mlg_node_t *node, const msgpack_object *o,
              const mlg_schema_t *schema)
{
    uint32_t n = o->via.array.size;
    if (node->has_min_items && n < node->min_items)
        return s_fail(w, "fewer than %" PRIu64 " items", node->min_items);
    if (node->has_max_items && n > node->max_items)
        return s_fail(w, "more than %" PRIu64 " items", node->max_items);
    for (uint32_t i = 0; i < n; i++) {
        size_t mark = s_push_index(w, i);
        bool ok = node->items
                      ? s_check_value(w, node->items, &o->via.array.ptr[i], schema)
                      : s_check_plain(w, &o->via.array.ptr[i]);
        s_pop(w, mark);
        if (!ok)
            return false;
    }
    if (node->unique_items && n > 1) {
        const msgpack_object **vals = malloc(n * sizeof(*vals));
        if (!vals)
            return s_fail(w, "could not allocate");
        for (uint32_t i = 0; i < n; i++)
            vals[i] = &o->via.array.ptr[i];
        uint32_t a, b;
        bool oom;
        bool repeat = s_find_repeat(vals, n, &a, &b, &oom);
        free(vals);
        if (oom)
            return s_fail(w, "could not allocate");
        if (repeat)
            return s_fail(w, "items %" PRIu32 " and %" PRIu32 " are equal", a, b);
    }
    return true;
}

static bool
s_check_format(s_walk_t *w, s_format_t format, const char *s, size_t len,
               const mlg_schema_t *schema)
{
    const mlg_registry_t *voc = schema->vocabulary;
    switch (format) {
    case S_FMT_NONE: return true;
    case S_FMT_DATE: return mlg_is_date(s, len) || s_fail(w, "not a date (YYYY-MM-DD)");
    case S_FMT_DATE_TIME:
        return mlg_is_date_time(s, len) || s_fail(w, "not a date-time (RFC 3339)");
    case S_FMT_UUID: return mlg_is_uuid(s, len) || s_fail(w, "not a UUID");
    case S_FMT_EMAIL: return mlg_is_email(s, len) || s_fail(w, "not an e-mail address");
    case S_FMT_AGENCY:
        return mlg_is_agency_id(s, len)
               || s_fail(w,
                         "not an agency id (1-64 of a-z 0-9 -, starting with a letter)");
    case S_FMT_PURPOSE:
        return mlg_wordlist_has(&voc->purposes, s, len)
               || s_fail(w, "not a purpose of the vocabulary");
    case S_FMT_CATEGORY:
        return mlg_wordlist_has(&voc->categories, s, len)
               || s_fail(w, "not a category of the vocabulary");
    }
    return true;
}

static bool
s_check_string(s_walk_t *w, const mlg_node_t *node, const msgpack_object *o,
               const mlg_schema_t *schema)
{
    const char *s = o->via.str.ptr;
    size_t len = o->via.str.size, chars = 0;
    if (!s_check_text(w, s, len, &chars))
        return false;
    if (node->has_min_length && chars < node->min_length)
        return s_fail(w, "shorter than %" PRIu64 " characters", node->min_length);
    if (node->has_max_length && chars > node->max_length)
        return s_fail(w, "longer than %" PRIu64 " characters", node->max_length);
    if (node->has_pattern) {
        /* regexec wants a C string; the NUL check above makes this exact. */
        char small[256];
        char *copy = len < sizeof(small) ? small : malloc(len + 1);
        if (!copy)
            return s_fail(w, "could not allocate");
        if (len)
            memcpy(copy, s, len);
        copy[len] = '\0';
        int rc = regexec(&node->pattern, copy, 0, NULL, 0);
        if (copy != small)
            free(copy);
        if (rc != 0)
            return s_fail(w, "does not match the pattern %s", node->pattern_src);
    }
    return s_check_format(w, node->format, s, len, schema);
}

static void
s_json_num(char *buf, size_t len, const json_t *j)
{
    if (json_is_integer(j))
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
    else
        snprintf(buf, len, "%.17g", json_real_value(j));
}

static bool
s_check_number(s_walk_t *w, const mlg_node_t *node, const msgpack_object *o)
{
    char num[64];
    if ((o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64)
        && !isfinite(o->via.f64))
        return s_fail(w, "NaN and infinity are never valid in a body");
    if (node->minimum && s_cmp_json_num(o, node->minimum) < 0) {
        s_json_num(num, sizeof(num), node->minimum);
        return s_fail(w, "less than the minimum %s", num);
    }
    if (node->maximum && s_cmp_json_num(o, node->maximum) > 0) {
        s_json_num(num, sizeof(num), node->maximum);
        return s_fail(w, "greater than the maximum %s", num);
    }
    return true;
}

static bool
s_check_value(s_walk_t *w, const mlg_node_t *node, const msgpack_object *o,
              const mlg_schema_t *schema)
{
    unsigned t = s_type_of(o);
    if (!t)
        return s_fail(w, "%s is never valid in a body", s_kind(o));
    if (node->types && !(node->types & t))
        return s_fail(w, "%s, not %s", s_expected(node->types), s_kind(o));
    if (node->enum_values) {
        bool found = false;
        for (size_t i = 0; i < json_array_size(node->enum_values) && !found; i++)
            found = s_equal_json(o, json_array_get(node->enum_values, i));
        if (!found)
            return s_fail(w, "not one of the allowed values");
    }
    if (node->has_const && !s_equal_json(o, node->const_value))
        return s_fail(w, "not the required value");
    switch (o->type) {
    case MSGPACK_OBJECT_MAP: return s_check_object(w, node, o, schema);
    case MSGPACK_OBJECT_ARRAY: return s_check_array(w, node, o, schema);
    case MSGPACK_OBJECT_STR: return s_check_string(w, node, o, schema);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return s_check_number(w, node, o);
    default: return true;
    }
}

static mlg_rc_t
s_validate(const mlg_schema_t *self, const msgpack_object *body, char *reason,
           size_t reasonlen)
{
    s_walk_t w = {.len = 0, .reason = reason, .reasonlen = reasonlen};
    w.buf[0] = '\0';
    if (reason && reasonlen)
        reason[0] = '\0';
    return s_check_value(&w, self->root, body, self) ? MLG_OK : MLG_INVALID;
}

mlg_rc_t
mlg_schema_validate(const mlg_schema_t *self, const uint8_t *body, size_t len,
                    char *reason, size_t reasonlen)
{
    assert(self);
    msgpack_unpacked up;
    const char *why = "could not allocate";
    mlg_rc_t rc = mlg_mp_unpack(body, len, MLG_MAX_DEPTH, &up, &why);
    if (rc != MLG_OK) {
        if (reason && reasonlen)
            snprintf(reason, reasonlen, "the body is not one msgpack value: %s", why);
    }
    else
        rc = s_validate(self, &up.data, reason, reasonlen);
    msgpack_unpacked_destroy(&up);
    return rc;
}

mlg_rc_t
mlg_schema_validate_msg(const mlg_schema_t *self, const mlg_msg_t *msg, char *reason,
                        size_t reasonlen)
{
    assert(self && msg);
    const msgpack_object *body = mlg_msg_body_object(msg);
    if (body)
        return s_validate(self, body, reason, reasonlen);
    return mlg_schema_validate(self, msg->body, msg->body_len, reason, reasonlen);
}
