/*  schema.c: the schema registry: reads vocabulary.json and the
    <type>.v<version>.json files of a folder and compiles each schema
    into a tree of mlg_node_t for the validator.

    Loading is where a schema's author finds out about a mistake, so it
    is strict: a keyword outside EVENTS.md's list is an error (never
    silently ignored, or a typo like "maxLenght" would switch a check
    off), and so is a keyword with a value of the wrong type, a `required`
    member that is not among the `properties`, a pattern that does not
    compile, or an x-maillage block that breaks the rules of §7.

    Called by the broker at start and by tools and tests. */

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "maillage/forms.h"
#include "maillage/limits.h"
#include "schema_int.h"

const char *
mlg_basis_name(mlg_basis_t basis)
{
    switch (basis) {
    case MLG_BASIS_NOT_PERSONAL: return "not_personal";
    case MLG_BASIS_CONSENT: return "consent";
    case MLG_BASIS_LEGAL_OBLIGATION: return "legal_obligation";
    case MLG_BASIS_CONSENT_NOTICE: return "consent_notice";
    case MLG_BASIS_SERVICE_NOTICE: return "service_notice";
    }
    return "not_personal";
}

bool
mlg_wordlist_has(const s_wordlist_t *list, const char *s, size_t len)
{
    for (size_t i = 0; i < list->count; i++)
        if (strlen(list->words[i]) == len && memcmp(list->words[i], s, len) == 0)
            return true;
    return false;
}

static void
s_wordlist_free(s_wordlist_t *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->words[i]);
    free(list->words);
    list->words = NULL;
    list->count = 0;
}

/* ---- nodes --------------------------------------------------------- */

static void
s_node_destroy(mlg_node_t **node_p)
{
    mlg_node_t *node = *node_p;
    if (!node)
        return;
    for (size_t i = 0; i < node->nprops; i++) {
        free(node->prop_names[i]);
        s_node_destroy(&node->props[i]);
    }
    free(node->prop_names);
    free(node->props);
    free(node->required);
    s_node_destroy(&node->items);
    if (node->has_pattern)
        regfree(&node->pattern);
    free(node->pattern_src);
    json_decref(node->minimum);
    json_decref(node->maximum);
    json_decref(node->enum_values);
    json_decref(node->const_value);
    free(node);
    *node_p = NULL;
}

/* The compile context: where we are, for error messages. */
typedef struct {
    const char *file;
    const mlg_registry_t *vocabulary;
    char *err;
    size_t errlen;
    bool failed;
} s_ctx_t;

static void
s_error(s_ctx_t *ctx, const char *ptr, const char *fmt, ...)
{
    if (ctx->failed)
        return; /* keep the first error */
    ctx->failed = true;
    if (!ctx->err || !ctx->errlen)
        return;
    int n = snprintf(ctx->err, ctx->errlen, "%s: %s: ", ctx->file, *ptr ? ptr : "/");
    if (n < 0 || (size_t)n >= ctx->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err + n, ctx->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* ptr + "/" + escaped name, in a fixed buffer (truncated if absurdly
   long: this is for messages only). */
static void
s_ptr_join(char *out, size_t outlen, const char *ptr, const char *name)
{
    size_t n = strlen(ptr);
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, ptr, n);
    out[n] = '\0';
    if (n + 1 >= outlen)
        return;
    out[n++] = '/';
    for (const char *c = name; *c && n + 2 < outlen; c++) {
        if (*c == '~' || *c == '/') {
            out[n++] = '~';
            out[n++] = *c == '~' ? '0' : '1';
        }
        else
            out[n++] = *c;
    }
    out[n] = '\0';
}

static bool
s_nonneg_int(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static const char *const s_annotations[] = {"$schema",     "$id",      "title",
                                            "description", "examples", NULL};

static bool
s_is_annotation(const char *key)
{
    for (int i = 0; s_annotations[i]; i++)
        if (strcmp(key, s_annotations[i]) == 0)
            return true;
    return false;
}

static unsigned
s_type_bit(const char *name)
{
    static const struct {
        const char *name;
        unsigned bit;
    } types[] = {
        {"object", S_T_OBJECT},   {"array", S_T_ARRAY},   {"string", S_T_STRING},
        {"integer", S_T_INTEGER}, {"number", S_T_NUMBER}, {"boolean", S_T_BOOLEAN},
        {"null", S_T_NULL},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(name, types[i].name) == 0)
            return types[i].bit;
    return 0;
}

static s_format_t
s_format(const char *name)
{
    static const struct {
        const char *name;
        s_format_t format;
    } formats[] = {
        {"date", S_FMT_DATE},         {"date-time", S_FMT_DATE_TIME},
        {"uuid", S_FMT_UUID},         {"email", S_FMT_EMAIL},
        {"agency", S_FMT_AGENCY},     {"purpose", S_FMT_PURPOSE},
        {"category", S_FMT_CATEGORY},
    };
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
        if (strcmp(name, formats[i].name) == 0)
            return formats[i].format;
    return S_FMT_NONE;
}

static mlg_node_t *s_compile_node(s_ctx_t *ctx, const json_t *js, const char *ptr,
                                  int depth);

static void
s_compile_type(s_ctx_t *ctx, mlg_node_t *node, const json_t *v, const char *kptr)
{
    if (json_is_string(v)) {
        node->types = s_type_bit(json_string_value(v));
        if (!node->types)
            s_error(ctx, kptr, "unknown type '%s'", json_string_value(v));
        return;
    }
    if (!json_is_array(v) || json_array_size(v) == 0) {
        s_error(ctx, kptr, "must be a type name or a non-empty array of them");
        return;
    }
    size_t i;
    json_t *t;
    json_array_foreach(v, i, t)
    {
        unsigned bit = json_is_string(t) ? s_type_bit(json_string_value(t)) : 0;
        if (!bit) {
            char p[512], num[24];
            snprintf(num, sizeof(num), "%zu", i);
            s_ptr_join(p, sizeof(p), kptr, num);
            s_error(ctx, p, "not a type name");
            return;
        }
        if (node->types & bit) {
            s_error(ctx, kptr, "repeats a type");
            return;
        }
        node->types |= bit;
    }
}

static void
s_compile_properties(s_ctx_t *ctx, mlg_node_t *node, const json_t *v, const char *kptr,
                     int depth)
{
    if (!json_is_object(v)) {
        s_error(ctx, kptr, "must be an object");
        return;
    }
    size_t n = json_object_size(v);
    node->prop_names = calloc(n ? n : 1, sizeof(char *));
    node->props = calloc(n ? n : 1, sizeof(mlg_node_t *));
    if (!node->prop_names || !node->props) {
        s_error(ctx, kptr, "could not allocate");
        return;
    }
    const char *key;
    json_t *sub;
    json_object_foreach((json_t *)v, key, sub)
    {
        char p[512];
        s_ptr_join(p, sizeof(p), kptr, key);
        node->prop_names[node->nprops] = strdup(key);
        node->props[node->nprops] = s_compile_node(ctx, sub, p, depth + 1);
        node->nprops++; /* counted before checking, so destroy frees both */
        if (ctx->failed)
            return;
        if (!node->prop_names[node->nprops - 1]) {
            s_error(ctx, p, "could not allocate");
            return;
        }
    }
}

static void
s_compile_required(s_ctx_t *ctx, mlg_node_t *node, const json_t *v, const char *kptr)
{
    if (!json_is_array(v)) {
        s_error(ctx, kptr, "must be an array of member names");
        return;
    }
    size_t n = json_array_size(v);
    node->required = calloc(n ? n : 1, sizeof(size_t));
    if (!node->required) {
        s_error(ctx, kptr, "could not allocate");
        return;
    }
    size_t i;
    json_t *name;
    json_array_foreach(v, i, name)
    {
        char p[512], num[24];
        snprintf(num, sizeof(num), "%zu", i);
        s_ptr_join(p, sizeof(p), kptr, num);
        if (!json_is_string(name)) {
            s_error(ctx, p, "must be a member name");
            return;
        }
        const char *s = json_string_value(name);
        size_t k = 0;
        while (k < node->nprops && strcmp(node->prop_names[k], s) != 0)
            k++;
        if (k == node->nprops) {
            s_error(ctx, p, "required member '%s' is not among the properties", s);
            return;
        }
        for (size_t j = 0; j < node->nrequired; j++)
            if (node->required[j] == k) {
                s_error(ctx, p, "'%s' is required twice", s);
                return;
            }
        node->required[node->nrequired++] = k;
    }
}

static void
s_compile_pattern(s_ctx_t *ctx, mlg_node_t *node, const json_t *v, const char *kptr)
{
    if (!json_is_string(v)) {
        s_error(ctx, kptr, "must be a string");
        return;
    }
    int rc = regcomp(&node->pattern, json_string_value(v), REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char buf[128];
        regerror(rc, &node->pattern, buf, sizeof(buf));
        s_error(ctx, kptr, "not a POSIX extended regular expression: %s", buf);
        return;
    }
    node->has_pattern = true;
    node->pattern_src = strdup(json_string_value(v));
    if (!node->pattern_src)
        s_error(ctx, kptr, "could not allocate");
}

/* Compiles one keyword of a schema object. */
static void
s_compile_keyword(s_ctx_t *ctx, mlg_node_t *node, const char *key, const json_t *v,
                  const char *ptr, int depth)
{
    char kptr[512];
    s_ptr_join(kptr, sizeof(kptr), ptr, key);

    if (strcmp(key, "type") == 0)
        s_compile_type(ctx, node, v, kptr);
    else if (strcmp(key, "properties") == 0)
        s_compile_properties(ctx, node, v, kptr, depth);
    else if (strcmp(key, "required") == 0)
        ; /* after `properties`, below */
    else if (strcmp(key, "additionalProperties") == 0) {
        if (!json_is_boolean(v))
            s_error(ctx, kptr, "must be a boolean (schemas here are not supported)");
        else
            node->additional = json_is_true(v);
    }
    else if (strcmp(key, "items") == 0) {
        if (!json_is_object(v))
            s_error(ctx, kptr, "must be one schema (an object)");
        else
            node->items = s_compile_node(ctx, v, kptr, depth + 1);
    }
    else if (strcmp(key, "minItems") == 0) {
        node->has_min_items = s_nonneg_int(v, &node->min_items);
        if (!node->has_min_items)
            s_error(ctx, kptr, "must be a non-negative integer");
    }
    else if (strcmp(key, "maxItems") == 0) {
        node->has_max_items = s_nonneg_int(v, &node->max_items);
        if (!node->has_max_items)
            s_error(ctx, kptr, "must be a non-negative integer");
    }
    else if (strcmp(key, "uniqueItems") == 0) {
        if (!json_is_boolean(v))
            s_error(ctx, kptr, "must be a boolean");
        else
            node->unique_items = json_is_true(v);
    }
    else if (strcmp(key, "minLength") == 0) {
        node->has_min_length = s_nonneg_int(v, &node->min_length);
        if (!node->has_min_length)
            s_error(ctx, kptr, "must be a non-negative integer");
    }
    else if (strcmp(key, "maxLength") == 0) {
        node->has_max_length = s_nonneg_int(v, &node->max_length);
        if (!node->has_max_length)
            s_error(ctx, kptr, "must be a non-negative integer");
    }
    else if (strcmp(key, "pattern") == 0)
        s_compile_pattern(ctx, node, v, kptr);
    else if (strcmp(key, "minimum") == 0 || strcmp(key, "maximum") == 0) {
        if (!json_is_number(v)) {
            s_error(ctx, kptr, "must be a number");
            return;
        }
        if (key[1] == 'i')
            node->minimum = json_incref((json_t *)v);
        else
            node->maximum = json_incref((json_t *)v);
    }
    else if (strcmp(key, "enum") == 0) {
        if (!json_is_array(v) || json_array_size(v) == 0)
            s_error(ctx, kptr, "must be a non-empty array");
        else
            node->enum_values = json_incref((json_t *)v);
    }
    else if (strcmp(key, "const") == 0) {
        node->has_const = true;
        node->const_value = json_incref((json_t *)v);
    }
    else if (strcmp(key, "format") == 0) {
        node->format = json_is_string(v) ? s_format(json_string_value(v)) : S_FMT_NONE;
        if (node->format == S_FMT_NONE)
            s_error(ctx, kptr,
                    "unknown format (date, date-time, uuid, email, agency, "
                    "purpose, category)");
    }
    else if (strcmp(key, "x-maillage") == 0) {
        if (depth != 0)
            s_error(ctx, kptr, "x-maillage belongs at the root only");
        /* the root's block is read by s_compile_x_maillage */
    }
    else if (!s_is_annotation(key))
        s_error(ctx, kptr, "unsupported keyword '%s'", key);
}

static mlg_node_t *
s_compile_node(s_ctx_t *ctx, const json_t *js, const char *ptr, int depth)
{
    if (!json_is_object(js)) {
        s_error(ctx, ptr, "a schema must be an object");
        return NULL;
    }
    if (depth >= MLG_MAX_DEPTH) {
        s_error(ctx, ptr, "nested deeper than %d levels", MLG_MAX_DEPTH);
        return NULL;
    }
    mlg_node_t *node = calloc(1, sizeof(*node));
    if (!node) {
        s_error(ctx, ptr, "could not allocate");
        return NULL;
    }
    node->additional = true;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)js, key, v)
    {
        s_compile_keyword(ctx, node, key, v, ptr, depth);
        if (ctx->failed)
            break;
    }
    const json_t *req = json_object_get(js, "required");
    if (!ctx->failed && req) {
        char kptr[512];
        s_ptr_join(kptr, sizeof(kptr), ptr, "required");
        s_compile_required(ctx, node, req, kptr);
    }
    if (!ctx->failed && node->has_min_items && node->has_max_items
        && node->min_items > node->max_items)
        s_error(ctx, ptr, "minItems is greater than maxItems");
    if (!ctx->failed && node->has_min_length && node->has_max_length
        && node->min_length > node->max_length)
        s_error(ctx, ptr, "minLength is greater than maxLength");
    if (ctx->failed)
        s_node_destroy(&node);
    return node;
}

/* x-maillage: { personal_data, category, basis } and the rules that
   tie them together (EVENTS.md "Schema files"). */
static void
s_compile_x_maillage(s_ctx_t *ctx, mlg_schema_t *schema, const json_t *x)
{
    const char *ptr = "/x-maillage";
    if (!x) {
        s_error(ctx, "/", "missing x-maillage");
        return;
    }
    if (!json_is_object(x)) {
        s_error(ctx, ptr, "must be an object");
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)x, key, v)
    {
        if (strcmp(key, "personal_data") != 0 && strcmp(key, "category") != 0
            && strcmp(key, "basis") != 0) {
            char p[512];
            s_ptr_join(p, sizeof(p), ptr, key);
            s_error(ctx, p, "unknown x-maillage key '%s'", key);
            return;
        }
    }
    const json_t *personal = json_object_get(x, "personal_data");
    const json_t *basis = json_object_get(x, "basis");
    const json_t *category = json_object_get(x, "category");
    if (!json_is_boolean(personal)) {
        s_error(ctx, "/x-maillage/personal_data", "must be true or false");
        return;
    }
    schema->personal = json_is_true(personal);
    if (!schema->personal) {
        if (basis)
            s_error(ctx, "/x-maillage/basis", "only personal data has a basis");
        else if (category)
            s_error(ctx, "/x-maillage/category",
                    "only a consent or legal_obligation basis has a category");
        schema->basis = MLG_BASIS_NOT_PERSONAL;
        return;
    }
    const char *b = json_is_string(basis) ? json_string_value(basis) : "";
    if (strcmp(b, "consent") == 0)
        schema->basis = MLG_BASIS_CONSENT;
    else if (strcmp(b, "legal_obligation") == 0)
        schema->basis = MLG_BASIS_LEGAL_OBLIGATION;
    else if (strcmp(b, "consent_notice") == 0)
        schema->basis = MLG_BASIS_CONSENT_NOTICE;
    else if (strcmp(b, "service_notice") == 0)
        schema->basis = MLG_BASIS_SERVICE_NOTICE;
    else {
        s_error(ctx, "/x-maillage/basis",
                "must be consent, legal_obligation, consent_notice or service_notice");
        return;
    }
    if (schema->basis == MLG_BASIS_SERVICE_NOTICE) {
        if (strncmp(schema->type, "referral.", 9) != 0)
            s_error(ctx, "/x-maillage/basis",
                    "service_notice is only for the broker's referral.* notices");
        else if (category)
            s_error(ctx, "/x-maillage/category", "service_notice has no category");
        return;
    }
    if (schema->basis == MLG_BASIS_CONSENT_NOTICE) {
        if (strncmp(schema->type, "consent.", 8) != 0)
            s_error(ctx, "/x-maillage/basis",
                    "consent_notice is only for consent.* events");
        else if (category)
            s_error(ctx, "/x-maillage/category", "consent_notice has no category");
        return;
    }
    const char *c = json_is_string(category) ? json_string_value(category) : NULL;
    if (!c) {
        s_error(ctx, "/x-maillage/category", "required with basis %s", b);
        return;
    }
    if (!mlg_wordlist_has(&ctx->vocabulary->categories, c, strlen(c))) {
        s_error(ctx, "/x-maillage/category", "'%s' is not a category of the vocabulary",
                c);
        return;
    }
    schema->category = strdup(c);
    if (!schema->category)
        s_error(ctx, "/x-maillage/category", "could not allocate");
}

void
mlg_schema_destroy(mlg_schema_t **self_p)
{
    assert(self_p);
    mlg_schema_t *self = *self_p;
    if (!self)
        return;
    s_node_destroy(&self->root);
    free(self->type);
    free(self->category);
    free(self);
    *self_p = NULL;
}

/* Compiles a parsed document; ctx->file names it in errors. */
static mlg_schema_t *
s_compile_doc(s_ctx_t *ctx, const char *type, uint64_t version, const json_t *doc)
{
    mlg_schema_t *schema = calloc(1, sizeof(*schema));
    if (schema)
        schema->type = strdup(type);
    if (!schema || !schema->type) {
        free(schema);
        s_error(ctx, "/", "could not allocate");
        return NULL;
    }
    schema->version = version;
    schema->vocabulary = ctx->vocabulary;
    if (!json_is_object(doc))
        s_error(ctx, "/", "a schema must be an object");
    else if (!json_is_string(json_object_get(doc, "type"))
             || strcmp(json_string_value(json_object_get(doc, "type")), "object") != 0)
        s_error(ctx, "/type", "the root of an event schema must have type \"object\"");
    else {
        schema->root = s_compile_node(ctx, doc, "", 0);
        if (!ctx->failed)
            s_compile_x_maillage(ctx, schema, json_object_get(doc, "x-maillage"));
    }
    if (ctx->failed)
        mlg_schema_destroy(&schema);
    return schema;
}

mlg_schema_t *
mlg_schema_compile(const mlg_registry_t *vocabulary, const char *type, uint64_t version,
                   const char *json, size_t len, char *err, size_t errlen)
{
    assert(vocabulary && type && json);
    char name[MLG_TYPE_MAX + 32];
    snprintf(name, sizeof(name), "%s.v%llu", type, (unsigned long long)version);
    s_ctx_t ctx = {.file = name, .vocabulary = vocabulary, .err = err, .errlen = errlen};
    if (!mlg_is_event_type(type, strlen(type)) || version < 1) {
        s_error(&ctx, "/", "not an event type and version");
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        s_error(&ctx, "/", "not JSON: line %d, column %d: %s", jerr.line, jerr.column,
                jerr.text);
        return NULL;
    }
    mlg_schema_t *schema = s_compile_doc(&ctx, type, version, doc);
    json_decref(doc);
    return schema;
}

/* ---- the registry -------------------------------------------------- */

/* Reads a whole file (bounded) and parses it as JSON. */
static json_t *
s_load_json(s_ctx_t *ctx, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        s_error(ctx, "/", "could not open: %s", strerror(errno));
        return NULL;
    }
    char *buf = malloc(MLG_MAX_SCHEMA_FILE_BYTES + 1);
    if (!buf) {
        fclose(f);
        s_error(ctx, "/", "could not allocate");
        return NULL;
    }
    size_t n = fread(buf, 1, MLG_MAX_SCHEMA_FILE_BYTES + 1, f);
    bool bad = ferror(f);
    fclose(f);
    json_t *doc = NULL;
    if (bad)
        s_error(ctx, "/", "could not read");
    else if (n > MLG_MAX_SCHEMA_FILE_BYTES)
        s_error(ctx, "/", "larger than %u bytes", MLG_MAX_SCHEMA_FILE_BYTES);
    else {
        json_error_t jerr;
        doc = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc)
            s_error(ctx, "/", "not JSON: line %d, column %d: %s", jerr.line, jerr.column,
                    jerr.text);
    }
    free(buf);
    return doc;
}

static bool
s_load_wordlist(s_ctx_t *ctx, const json_t *doc, const char *key, s_wordlist_t *list)
{
    char ptr[64];
    snprintf(ptr, sizeof(ptr), "/%s", key);
    const json_t *words = json_object_get(doc, key);
    if (!json_is_object(words) || json_object_size(words) == 0) {
        s_error(ctx, ptr, "must be a non-empty object of word: description");
        return false;
    }
    list->words = calloc(json_object_size(words), sizeof(char *));
    if (!list->words) {
        s_error(ctx, ptr, "could not allocate");
        return false;
    }
    const char *word;
    json_t *desc;
    json_object_foreach((json_t *)words, word, desc)
    {
        char p[512];
        s_ptr_join(p, sizeof(p), ptr, word);
        /* A vocabulary word is a lowercase word: the same rule as one
           dotted part of an event type. */
        if (!mlg_is_event_type(word, strlen(word)) || strchr(word, '.')
            || strlen(word) > MLG_PURPOSE_MAX) {
            s_error(ctx, p, "a word is 1-32 lowercase letters");
            return false;
        }
        if (!json_is_string(desc)) {
            s_error(ctx, p, "the description must be a string");
            return false;
        }
        list->words[list->count] = strdup(word);
        if (!list->words[list->count]) {
            s_error(ctx, p, "could not allocate");
            return false;
        }
        list->count++;
    }
    return true;
}

static bool
s_load_vocabulary(mlg_registry_t *reg, const char *dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/vocabulary.json", dir);
    s_ctx_t ctx = {.file = path, .vocabulary = reg, .err = err, .errlen = errlen};
    json_t *doc = s_load_json(&ctx, path);
    if (!doc)
        return false;
    const char *key;
    json_t *v;
    if (!json_is_object(doc))
        s_error(&ctx, "/", "must be an object");
    else
        json_object_foreach(doc, key, v)
        {
            if (strcmp(key, "purposes") != 0 && strcmp(key, "categories") != 0
                && !s_is_annotation(key)) {
                char p[512];
                s_ptr_join(p, sizeof(p), "", key);
                s_error(&ctx, p, "unknown key '%s' (purposes, categories)", key);
                break;
            }
        }
    if (!ctx.failed)
        s_load_wordlist(&ctx, doc, "purposes", &reg->purposes);
    if (!ctx.failed)
        s_load_wordlist(&ctx, doc, "categories", &reg->categories);
    json_decref(doc);
    return !ctx.failed;
}

/* Splits "<type>.v<version>.json"; false if the name has another form. */
static bool
s_parse_name(const char *name, char *type, size_t typelen, uint64_t *version)
{
    size_t n = strlen(name);
    if (n < 5 || strcmp(name + n - 5, ".json") != 0)
        return false;
    n -= 5;
    size_t dot = n;
    while (dot > 0 && name[dot - 1] != '.')
        dot--;
    if (dot < 2 || name[dot] != 'v' || dot + 1 >= n)
        return false;
    uint64_t v = 0;
    for (size_t i = dot + 1; i < n; i++) {
        if (name[i] < '0' || name[i] > '9' || v > 1000000)
            return false;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    if (v < 1 || name[dot + 1] == '0')
        return false;
    size_t tlen = dot - 1;
    if (tlen >= typelen || !mlg_is_event_type(name, tlen))
        return false;
    memcpy(type, name, tlen);
    type[tlen] = '\0';
    *version = v;
    return true;
}

static int
s_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.json names of a folder, sorted so loading is deterministic. */
static char **
s_list_json(const char *dir, size_t *count, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: could not open the schema folder: %s", dir,
                 strerror(errno));
        return NULL;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".json") != 0
            || strcmp(e->d_name, "vocabulary.json") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **bigger = realloc(names, cap * sizeof(char *));
            if (!bigger)
                goto nomem;
            names = bigger;
        }
        names[n] = strdup(e->d_name);
        if (!names[n])
            goto nomem;
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof(char *), s_cmp_names);
    *count = n;
    return names ? names : calloc(1, sizeof(char *));
nomem:
    closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    snprintf(err, errlen, "%s: could not allocate", dir);
    return NULL;
}

void
mlg_registry_destroy(mlg_registry_t **self_p)
{
    assert(self_p);
    mlg_registry_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->count; i++)
        mlg_schema_destroy(&self->schemas[i]);
    free(self->schemas);
    s_wordlist_free(&self->purposes);
    s_wordlist_free(&self->categories);
    free(self);
    *self_p = NULL;
}

mlg_registry_t *
mlg_registry_load(const char *dir, char *err, size_t errlen)
{
    assert(dir);
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    mlg_registry_t *reg = calloc(1, sizeof(*reg));
    if (!reg) {
        snprintf(err, errlen, "%s: could not allocate", dir);
        return NULL;
    }
    if (!s_load_vocabulary(reg, dir, err, errlen)) {
        mlg_registry_destroy(&reg);
        return NULL;
    }
    size_t n = 0;
    char **names = s_list_json(dir, &n, err, errlen);
    if (!names) {
        mlg_registry_destroy(&reg);
        return NULL;
    }
    reg->schemas = calloc(n ? n : 1, sizeof(mlg_schema_t *));
    bool ok = reg->schemas != NULL;
    if (!ok)
        snprintf(err, errlen, "%s: could not allocate", dir);
    for (size_t i = 0; ok && i < n; i++) {
        char path[4096], type[MLG_TYPE_MAX + 1];
        uint64_t version;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        s_ctx_t ctx = {.file = path, .vocabulary = reg, .err = err, .errlen = errlen};
        if (!s_parse_name(names[i], type, sizeof(type), &version)) {
            s_error(&ctx, "/", "the file name is not <type>.v<version>.json");
            ok = false;
            break;
        }
        json_t *doc = s_load_json(&ctx, path);
        if (doc) {
            reg->schemas[reg->count] = s_compile_doc(&ctx, type, version, doc);
            json_decref(doc);
        }
        if (!doc || !reg->schemas[reg->count])
            ok = false;
        else
            reg->count++;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (!ok)
        mlg_registry_destroy(&reg);
    return reg;
}

const mlg_schema_t *
mlg_registry_find(const mlg_registry_t *self, const char *type, uint64_t version)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->schemas[i]->version == version
            && strcmp(self->schemas[i]->type, type) == 0)
            return self->schemas[i];
    return NULL;
}

size_t
mlg_registry_size(const mlg_registry_t *self)
{
    return self->count;
}

const mlg_schema_t *
mlg_registry_at(const mlg_registry_t *self, size_t index)
{
    return index < self->count ? self->schemas[index] : NULL;
}

bool
mlg_registry_is_purpose(const mlg_registry_t *self, const char *word)
{
    return mlg_wordlist_has(&self->purposes, word, strlen(word));
}

bool
mlg_registry_is_category(const mlg_registry_t *self, const char *word)
{
    return mlg_wordlist_has(&self->categories, word, strlen(word));
}

const char *
mlg_schema_type(const mlg_schema_t *self)
{
    return self->type;
}

uint64_t
mlg_schema_version(const mlg_schema_t *self)
{
    return self->version;
}

bool
mlg_schema_personal(const mlg_schema_t *self)
{
    return self->personal;
}

mlg_basis_t
mlg_schema_basis(const mlg_schema_t *self)
{
    return self->basis;
}

const char *
mlg_schema_category(const mlg_schema_t *self)
{
    return self->category;
}

bool
mlg_schema_member_allows(const mlg_schema_t *self, const char *name, const char *value)
{
    const mlg_node_t *root = self->root;
    for (size_t i = 0; root && i < root->nprops; i++) {
        if (strcmp(root->prop_names[i], name) != 0)
            continue;
        const json_t *list = root->props[i]->enum_values;
        if (!list)
            return true;
        size_t k;
        const json_t *v;
        json_array_foreach(list, k, v) if (json_is_string(v)
                                           && strcmp(json_string_value(v), value)
                                                  == 0) return true;
        return false;
    }
    return false;
}
