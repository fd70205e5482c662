/*  rc.h: the one error vocabulary of maillage.

    Every runtime error in the library, the broker and the tools is an
    mlg_rc_t. The codes that travel on the wire (PROTOCOL.md §5) are the
    first block; mlg_rc_wire() names them, in one place. Codes are never
    reused: a retired code keeps its number. */

#ifndef MAILLAGE_RC_H
#define MAILLAGE_RC_H

#include "maillage/export.h"

typedef enum {
    MLG_OK = 0,

    /* Wire codes, PROTOCOL.md §5. */
    MLG_MALFORMED = 1,
    MLG_UNSUPPORTED_VERSION = 2,
    MLG_HELLO_REQUIRED = 3,
    MLG_UNKNOWN_OP = 4,
    MLG_FORBIDDEN = 5,
    MLG_UNKNOWN_TYPE = 6,
    MLG_INVALID = 7,
    MLG_UNKNOWN_RECIPIENT = 8,
    MLG_ADDRESS_REQUIRED = 9,
    MLG_SUBJECT_REQUIRED = 10,
    MLG_PURPOSE_REQUIRED = 11,
    MLG_TOO_LARGE = 12,
    MLG_UNAVAILABLE = 13,
    MLG_UNKNOWN_DELIVERY = 14,

    /* Local errors, never sent as such. */
    MLG_ERR_NOMEM = 100,  /* could not allocate */
    MLG_ERR_IO = 101,     /* could not read or write a file or socket */
    MLG_ERR_CONFIG = 102, /* a configuration or schema file is wrong */
    MLG_ERR_JSON = 103,   /* a JSON text could not be read or written */
    MLG_ERR_NOT_FOUND = 104,
    MLG_ERR_USAGE = 105, /* a caller passed a value the API does not take */
} mlg_rc_t;

/* A short lowercase sentence for any code. Never NULL. */
MLG_EXPORT const char *mlg_strerror(mlg_rc_t rc);

/* The PROTOCOL.md §5 name of a wire code ("MALFORMED"), or NULL for a
   local error. */
MLG_EXPORT const char *mlg_rc_wire(mlg_rc_t rc);

/* The code named by a §5 string, or MLG_OK when the name is unknown
   (a newer broker may send codes this library does not know). */
MLG_EXPORT mlg_rc_t mlg_rc_from_wire(const char *name);

#endif
