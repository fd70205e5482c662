/*  limits.h: every hard limit on untrusted input, in one place.

    The codec, the validator and the broker check these before they
    allocate. Lengths of envelope strings count characters (Unicode code
    points), as JSON Schema's maxLength does; the buffers that hold them
    are sized for the worst case of four UTF-8 bytes a character. */

#ifndef MAILLAGE_LIMITS_H
#define MAILLAGE_LIMITS_H

/* Protocol version spoken by this library (PROTOCOL.md). */
#define MLG_PROTOCOL_VERSION 1

/* Default largest frame the broker takes (PROTOCOL.md §1). */
#define MLG_MAX_MESSAGE_BYTES_DEFAULT (1024u * 1024u)

/* Default bounds on sessions (after HELLO) in the broker: all of them,
   and one agency's. A share of the first, max_clients / agencies up to
   the second, is kept for every registered agency (SECURITY.md). A
   connection that has not said HELLO holds no session. */
#define MLG_MAX_CLIENTS_DEFAULT 1000
#define MLG_MAX_CLIENTS_PER_AGENCY_DEFAULT 100

/* Identifiers (PROTOCOL.md §2). */
#define MLG_AGENCY_ID_MAX 64 /* characters of a-z 0-9 - */
#define MLG_UUID_LEN 36      /* canonical text form */
#define MLG_TYPE_MAX 64      /* dotted lowercase words */
#define MLG_SUBJECT_MAX 128  /* printable characters */
#define MLG_PURPOSE_MAX 32   /* one vocabulary word */
#define MLG_CORRELATION_MAX 128
#define MLG_CLIENT_MAX 128
#define MLG_SESSION_MAX 64
#define MLG_CODE_MAX 32     /* a §5 or §7 code: upper case and _ */
#define MLG_REASON_MAX 1000 /* REJECT, ERROR and NACK reasons */

/* Byte buffers for a string of N characters, with its NUL. */
#define MLG_STRBUF(n) ((n)*4 + 1)

/* Addresses in `to`, and recipients in a CONFIRM's `routed`/`denied`. */
#define MLG_MAX_RECIPIENTS 1000
#define MLG_MAX_NOTICES 1000     /* notices of one CONFIRM or DELIVER */
#define MLG_NOTICE_STATE_MAX 15  /* a leg state word in a notice */

/* Nesting of maps and arrays in one frame; the envelope map is level 1,
   the body level 2. Deeper input is MALFORMED before anything is built. */
#define MLG_MAX_DEPTH 32

/* Schema files: the largest file the registry reads. */
#define MLG_MAX_SCHEMA_FILE_BYTES (256u * 1024u)

#endif
