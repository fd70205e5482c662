/*  body.h: reading a message's body without msgpack.

    Programs outside libmaillage do not include msgpack.h (STYLE rule 6);
    these read the values of a body by JSON Pointer (RFC 6901: "" is the
    whole body, "/parties/0" the first party, "/collected_by/name" a
    nested member). They work on a message from mlg_msg_decode() (its
    body is decoded already) or on one whose body was set by hand (then
    each call decodes it). Each call costs the pointer's depth times the
    size of the maps it crosses; arrays are indexed directly. */

#ifndef MAILLAGE_BODY_H
#define MAILLAGE_BODY_H

#include <stdbool.h>
#include <stddef.h>

#include "maillage/codec.h"
#include "maillage/export.h"

/* The kinds of value a body holds (JSON's). */
typedef enum {
    MLG_VALUE_NONE, /* nothing at that pointer */
    MLG_VALUE_NULL,
    MLG_VALUE_BOOL,
    MLG_VALUE_NUMBER,
    MLG_VALUE_STRING,
    MLG_VALUE_ARRAY,
    MLG_VALUE_OBJECT,
} mlg_value_kind_t;

/* What is at `pointer`; MLG_VALUE_NONE when nothing is, or the pointer
   or the body is not well formed. */
MLG_EXPORT mlg_value_kind_t mlg_body_kind(const mlg_msg_t *msg, const char *pointer);

/* The items of the array, or the members of the object, at `pointer`;
   0 when it is neither. */
MLG_EXPORT size_t mlg_body_count(const mlg_msg_t *msg, const char *pointer);

/* Copies the string at `pointer` into out (outlen bytes, NUL added).
   False when there is no string there, it holds a NUL, or it does not
   fit: nothing is cut silently. */
MLG_EXPORT bool mlg_body_text(const mlg_msg_t *msg, const char *pointer, char *out,
                              size_t outlen);

#endif
