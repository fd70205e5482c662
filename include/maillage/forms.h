/*  forms.h: the textual forms of PROTOCOL.md §2 and EVENTS.md formats.

    Pure functions on a byte range (not NUL-terminated: msgpack strings are
    not), used by the codec for the envelope and by the validator for the
    `format` keyword. None allocates. */

#ifndef MAILLAGE_FORMS_H
#define MAILLAGE_FORMS_H

#include <stdbool.h>
#include <stddef.h>

#include "maillage/codec.h"
#include "maillage/export.h"

/* Valid UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
   On success *chars (may be NULL) receives the number of code points. */
MLG_EXPORT bool mlg_utf8_check(const char *s, size_t len, size_t *chars);

/* Copies len bytes of s to out as valid UTF-8 text without NUL: each
   byte that is not part of a valid character (and NUL) is written as
   the four characters \xHH. Stops at a character boundary, before the
   text passes max_chars characters or out (cap bytes, cap > 0) would
   lose its terminating NUL. Returns the bytes written. For text from
   outside that goes back out: a reason, a pointer into a body. */
MLG_EXPORT size_t mlg_text_clean(char *out, size_t cap, const char *s, size_t len,
                                 size_t max_chars);

/* Agency id: 1–64 of a-z 0-9 '-', starting with a letter. */
MLG_EXPORT bool mlg_is_agency_id(const char *s, size_t len);

/* Message id: canonical lowercase UUID text, 8-4-4-4-12. */
MLG_EXPORT bool mlg_is_message_id(const char *s, size_t len);

/* UUID text in either case (the `uuid` format of bodies). */
MLG_EXPORT bool mlg_is_uuid(const char *s, size_t len);

/* Event type: dotted lowercase words, `referral.created`, ≤ 64. */
MLG_EXPORT bool mlg_is_event_type(const char *s, size_t len);

/* Subject: 1–128 printable characters: valid UTF-8, no control
   characters (C0, DEL, C1). */
MLG_EXPORT bool mlg_is_subject(const char *s, size_t len);

/* A real calendar date YYYY-MM-DD (2025-02-30 is not one). */
MLG_EXPORT bool mlg_is_date(const char *s, size_t len);

/* RFC 3339 date-time: date "T" time with optional fraction and a
   "Z" or ±hh:mm offset ('t' and 'z' accepted, as RFC 3339 allows). */
MLG_EXPORT bool mlg_is_date_time(const char *s, size_t len);

/* Reads an RFC 3339 date-time (as mlg_is_date_time accepts it) into a
   timestamp in UTC; false if it is not one. */
MLG_EXPORT bool mlg_date_time_parse(const char *s, size_t len, mlg_time_t *t);

/* Writes `t` as RFC 3339 in UTC with microseconds
   (2026-03-01T09:30:00.000000Z), the form maillage gives timestamps in
   JSON. False when the year is outside 0000-9999 or buf is too short
   (28 bytes are enough). */
MLG_EXPORT bool mlg_time_format(mlg_time_t t, char *buf, size_t len);

/* A plain e-mail address: local@domain, no spaces or controls, a dot in
   the domain, ≤ 254 bytes. Not the full RFC 5321 grammar, on purpose. */
MLG_EXPORT bool mlg_is_email(const char *s, size_t len);

#endif
