/*  json.h: JSON text to and from MessagePack bytes.

    For people and for systems that speak JSON: the adapters (files and
    SQL rows), the CLI's `publish`, and the tests. Objects become maps
    with string keys, integers become int or uint, other numbers float64.
    Going back, msgpack timestamps become RFC 3339 strings; bin and other
    extension values have no JSON form and are refused.

    Both directions refuse duplicate object keys and nesting deeper than
    MLG_MAX_DEPTH. Output buffers are malloc'd; the caller frees them. */

#ifndef MAILLAGE_JSON_H
#define MAILLAGE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "maillage/codec.h"
#include "maillage/export.h"
#include "maillage/rc.h"

/* Converts `len` bytes of JSON text (one value, any type) to msgpack.
   On failure returns MLG_ERR_JSON with a sentence in err (if errlen). */
MLG_EXPORT mlg_rc_t mlg_json_to_msgpack(const char *text, size_t len, uint8_t **out,
                                        size_t *out_len, char *err, size_t errlen);

/* Converts one msgpack object to compact JSON text (NUL-terminated).
   MLG_MALFORMED for bytes that are not one msgpack object,
   MLG_ERR_JSON for a value JSON cannot hold. */
MLG_EXPORT mlg_rc_t mlg_msgpack_to_json(const uint8_t *data, size_t len, char **out,
                                        char *err, size_t errlen);

/* Reads a PUBLISH written as JSON, the form the file-drop adapter and
   the tools use: an object with the envelope keys of PROTOCOL.md §3
   (id, type, version, to, subject, purpose, correlation, occurred_at as
   an RFC 3339 string) and `body` as an object; "op" may be left out.
   The result went through mlg_msg_decode(), so it obeys exactly the
   rules a broker applies. MLG_ERR_JSON (with err->reason) for text that
   is not such an object, else as mlg_msg_decode(). */
MLG_EXPORT mlg_rc_t mlg_publish_from_json(const char *text, size_t len, mlg_msg_t **msg_p,
                                          mlg_error_t *err);

/* Writes a DELIVER as one JSON object, the form the adapters hand to
   systems that speak JSON: id, type, version, from, subject, purpose,
   correlation and occurred_at (when present), received_at (RFC 3339,
   UTC, microseconds), delivery, attempt, and body as an object.
   MLG_ERR_JSON when the body holds what JSON cannot. */
MLG_EXPORT mlg_rc_t mlg_deliver_to_json(const mlg_msg_t *msg, char **out, char *err,
                                        size_t errlen);

#endif
