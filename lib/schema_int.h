/*  schema_int.h: the compiled form of a schema, shared by the loader
    (schema.c) and the validator (validate.c). Not installed. */

#ifndef MAILLAGE_SCHEMA_INT_H
#define MAILLAGE_SCHEMA_INT_H

#include <regex.h>

#include <jansson.h>

#include "maillage/schema.h"

enum {
    S_T_OBJECT = 1 << 0,
    S_T_ARRAY = 1 << 1,
    S_T_STRING = 1 << 2,
    S_T_INTEGER = 1 << 3,
    S_T_NUMBER = 1 << 4,
    S_T_BOOLEAN = 1 << 5,
    S_T_NULL = 1 << 6,
};

typedef enum {
    S_FMT_NONE = 0,
    S_FMT_DATE,
    S_FMT_DATE_TIME,
    S_FMT_UUID,
    S_FMT_EMAIL,
    S_FMT_AGENCY,
    S_FMT_PURPOSE,
    S_FMT_CATEGORY,
} s_format_t;

typedef struct mlg_node_t mlg_node_t;

struct mlg_node_t {
    unsigned types; /* S_T_* bits; 0 when `type` is absent: any type */

    /* object */
    size_t nprops;
    char **prop_names;
    mlg_node_t **props;
    size_t nrequired;
    size_t *required; /* indices into props */
    bool additional;  /* additionalProperties, default true */

    /* array */
    mlg_node_t *items; /* NULL: any item */
    bool has_min_items, has_max_items, unique_items;
    uint64_t min_items, max_items;

    /* string */
    bool has_min_length, has_max_length;
    uint64_t min_length, max_length; /* in characters */
    bool has_pattern;
    regex_t pattern;
    char *pattern_src;
    s_format_t format;

    /* number */
    json_t *minimum, *maximum; /* NULL when absent */

    /* any */
    json_t *enum_values; /* a non-empty array, or NULL */
    bool has_const;
    json_t *const_value;
};

typedef struct {
    size_t count;
    char **words;
} s_wordlist_t;

struct mlg_schema_t {
    char *type;
    uint64_t version;
    bool personal;
    mlg_basis_t basis;
    char *category;
    mlg_node_t *root;
    const mlg_registry_t *vocabulary; /* not owned */
};

struct mlg_registry_t {
    s_wordlist_t purposes, categories;
    size_t count;
    mlg_schema_t **schemas;
};

bool mlg_wordlist_has(const s_wordlist_t *list, const char *s, size_t len);

#endif
