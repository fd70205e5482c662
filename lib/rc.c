/*  rc.c: names and sentences for mlg_rc_t.

    The switches have no default case, so the compiler warns when a code
    is added to rc.h without its text here. */

#include <string.h>

#include "maillage/rc.h"

const char *
mlg_strerror(mlg_rc_t rc)
{
    switch (rc) {
    case MLG_OK: return "success";
    case MLG_MALFORMED: return "malformed message";
    case MLG_UNSUPPORTED_VERSION: return "unsupported protocol version";
    case MLG_HELLO_REQUIRED: return "HELLO required first";
    case MLG_UNKNOWN_OP: return "unknown op";
    case MLG_FORBIDDEN: return "forbidden";
    case MLG_UNKNOWN_TYPE: return "unknown event type or version";
    case MLG_INVALID: return "body does not match its schema";
    case MLG_UNKNOWN_RECIPIENT: return "unknown recipient";
    case MLG_ADDRESS_REQUIRED: return "personal event without addressees";
    case MLG_SUBJECT_REQUIRED: return "personal event without subject";
    case MLG_PURPOSE_REQUIRED: return "purpose required";
    case MLG_TOO_LARGE: return "message too large";
    case MLG_UNAVAILABLE: return "storage unavailable, retry later";
    case MLG_UNKNOWN_DELIVERY: return "unknown delivery";
    case MLG_ERR_NOMEM: return "could not allocate memory";
    case MLG_ERR_IO: return "input/output error";
    case MLG_ERR_CONFIG: return "configuration error";
    case MLG_ERR_JSON: return "JSON error";
    case MLG_ERR_NOT_FOUND: return "not found";
    case MLG_ERR_USAGE: return "invalid argument";
    }
    return "unknown error";
}

const char *
mlg_rc_wire(mlg_rc_t rc)
{
    switch (rc) {
    case MLG_MALFORMED: return "MALFORMED";
    case MLG_UNSUPPORTED_VERSION: return "UNSUPPORTED_VERSION";
    case MLG_HELLO_REQUIRED: return "HELLO_REQUIRED";
    case MLG_UNKNOWN_OP: return "UNKNOWN_OP";
    case MLG_FORBIDDEN: return "FORBIDDEN";
    case MLG_UNKNOWN_TYPE: return "UNKNOWN_TYPE";
    case MLG_INVALID: return "INVALID";
    case MLG_UNKNOWN_RECIPIENT: return "UNKNOWN_RECIPIENT";
    case MLG_ADDRESS_REQUIRED: return "ADDRESS_REQUIRED";
    case MLG_SUBJECT_REQUIRED: return "SUBJECT_REQUIRED";
    case MLG_PURPOSE_REQUIRED: return "PURPOSE_REQUIRED";
    case MLG_TOO_LARGE: return "TOO_LARGE";
    case MLG_UNAVAILABLE: return "UNAVAILABLE";
    case MLG_UNKNOWN_DELIVERY: return "UNKNOWN_DELIVERY";
    case MLG_OK:
    case MLG_ERR_NOMEM:
    case MLG_ERR_IO:
    case MLG_ERR_CONFIG:
    case MLG_ERR_JSON:
    case MLG_ERR_NOT_FOUND:
    case MLG_ERR_USAGE: return NULL;
    }
    return NULL;
}

mlg_rc_t
mlg_rc_from_wire(const char *name)
{
    for (int rc = MLG_MALFORMED; rc <= MLG_UNKNOWN_DELIVERY; rc++) {
        const char *wire = mlg_rc_wire((mlg_rc_t)rc);
        if (wire && strcmp(wire, name) == 0)
            return (mlg_rc_t)rc;
    }
    return MLG_OK;
}
