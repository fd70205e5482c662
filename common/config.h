/*  config.h: the broker's configuration (DESIGN.md "Configuration"), a
    ZPL file read with czmq's zconfig and checked key by key. */

#ifndef BRK_CONFIG_H
#define BRK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "maillage/limits.h"

typedef struct {
    char id[MLG_AGENCY_ID_MAX + 1];
    char *name;
    char *public_keys; /* as written: one or two Z85 keys; CURVE is not in yet */
    char **publish;    /* type patterns: "referral.*", "situation.shared", "*" */
    size_t npublish;
    char **subscribe; /* patterns of non-personal types */
    size_t nsubscribe;
} brk_agency_t;

/* A referral leg's deadline (referrals/deadline/SERVICE/PRIORITY). */
#define BRK_DEADLINE_WORD_MAX 32
typedef struct {
    char service[BRK_DEADLINE_WORD_MAX
                 + 1]; /* "default" or a service of referral.created */
    char priority[BRK_DEADLINE_WORD_MAX + 1];
    int64_t us;
} brk_deadline_t;

/* Without a key: 15 days for a routine referral, 3 for an urgent one. */
#define BRK_DEADLINE_ROUTINE_US (15LL * 86400 * 1000000)
#define BRK_DEADLINE_URGENT_US (3LL * 86400 * 1000000)

typedef struct {
    char *path; /* the file read */
    char *endpoint;
    char *database;
    char *schemas; /* resolved against the file's folder */
    char *http;
    uint64_t heartbeat_ms;
    uint64_t max_attempts;
    uint64_t max_message_bytes;
    uint64_t max_outstanding;
    uint64_t max_clients;                /* sessions after HELLO */
    uint64_t max_clients_per_agency;     /* of those, one agency's */
    uint64_t max_outstanding_per_client; /* one client's publishes at the store */
    bool curve;
    char *secret_cert;
    brk_agency_t *agencies;
    size_t nagencies;
    brk_deadline_t *deadlines; /* as given, in the file's order */
    size_t ndeadlines;
} brk_config_t;

/* Reads and checks FILE. NULL on failure with "FILE: key: problem" in
   err: an unknown section or key, a bad value, a missing required key. */
brk_config_t *brk_config_load(const char *path, char *err, size_t errlen);

/* The same on the text of a configuration (NUL-terminated); `path` names
   it in errors and anchors its relative paths. */
brk_config_t *brk_config_parse(const char *text, const char *path, char *err,
                               size_t errlen);

void brk_config_destroy(brk_config_t **self_p);

/* Swaps the agencies sections of two configurations (a reload takes the
   new file's agencies and leaves the running broker settings alone). */
void brk_config_swap_agencies(brk_config_t *a, brk_config_t *b);

/* The deadline (µs) of a leg of that service and priority among `list`
   (a configuration's deadlines): the key SERVICE/PRIORITY, else
   default/PRIORITY, else the built-in one. */
int64_t brk_deadline_us(const brk_deadline_t *list, size_t n, const char *service,
                        const char *priority);

/* Reads "15d", "36h", "90m", "30s" (1 s to 3650 d) as microseconds; -1
   for anything else. */
int64_t brk_duration_us(const char *text);

/* Is `key` (Z85) one of the agency's public keys? */
bool brk_agency_has_key(const brk_agency_t *agency, const char *key);

/* The agency with that id, or NULL. O(number of agencies). */
const brk_agency_t *brk_config_agency(const brk_config_t *self, const char *id);

/* Does a pattern of a `publish` or `subscribe` list match the type?
   "*" matches all; "referral.*" matches "referral.created" (and deeper);
   anything else matches itself only. */
bool brk_pattern_match(const char *pattern, const char *type);

bool brk_agency_may_publish(const brk_agency_t *agency, const char *type);
bool brk_agency_subscribes(const brk_agency_t *agency, const char *type);

#endif
