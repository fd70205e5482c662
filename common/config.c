/*  config.c: reads maillage.cfg (ZPL) into a brk_config_t.

    Strict like the schema loader: an unknown section or key is an error
    (a misspelt `max_atempts` must not silently leave the default in
    force), and every error names the file, the key and the problem.
    Called at start by the broker (main.c, and on SIGHUP), and by the
    operator CLI and the benchmark, which read a broker's configuration
    (the internal library common/, shared by those three). */

#include <czmq.h>
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "file.h"
#include "maillage/forms.h"

static int
s_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static void
s_free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

void
brk_config_destroy(brk_config_t **self_p)
{
    brk_config_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->nagencies; i++) {
        brk_agency_t *a = &self->agencies[i];
        free(a->name);
        free(a->public_keys);
        s_free_list(a->publish, a->npublish);
        s_free_list(a->subscribe, a->nsubscribe);
    }
    free(self->agencies);
    free(self->deadlines);
    free(self->path);
    free(self->endpoint);
    free(self->database);
    free(self->schemas);
    free(self->http);
    free(self->secret_cert);
    free(self);
    *self_p = NULL;
}

/* A pattern: "*", a type, or a dotted prefix followed by ".*". */
static bool
s_valid_pattern(const char *p)
{
    size_t n = strlen(p);
    if (strcmp(p, "*") == 0)
        return true;
    if (n > 2 && strcmp(p + n - 2, ".*") == 0)
        return mlg_is_event_type(p, n - 2);
    return mlg_is_event_type(p, n);
}

bool
brk_pattern_match(const char *pattern, const char *type)
{
    size_t n = strlen(pattern);
    if (strcmp(pattern, "*") == 0)
        return true;
    if (n > 2 && strcmp(pattern + n - 2, ".*") == 0)
        return strncmp(type, pattern, n - 1) == 0 && type[n - 1] != '\0';
    return strcmp(pattern, type) == 0;
}

static bool
s_any_match(char **patterns, size_t n, const char *type)
{
    for (size_t i = 0; i < n; i++)
        if (brk_pattern_match(patterns[i], type))
            return true;
    return false;
}

bool
brk_agency_may_publish(const brk_agency_t *agency, const char *type)
{
    return s_any_match(agency->publish, agency->npublish, type);
}

bool
brk_agency_subscribes(const brk_agency_t *agency, const char *type)
{
    return s_any_match(agency->subscribe, agency->nsubscribe, type);
}

/* "a, b ,c" -> ["a", "b", "c"], each checked as a pattern. */
static int
s_patterns(const char *value, char ***list, size_t *n, const char *file, const char *key,
           char *err, size_t errlen)
{
    *list = NULL;
    *n = 0;
    char *copy = strdup(value);
    if (!copy)
        return s_fail(err, errlen, "%s: %s: could not allocate", file, key);
    int rc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save)) {
        if (!s_valid_pattern(tok)) {
            rc = s_fail(err, errlen,
                        "%s: %s: '%s' is not a type pattern (a type, a prefix "
                        "ending in .*, or *)",
                        file, key, tok);
            break;
        }
        char **bigger = realloc(*list, (*n + 1) * sizeof(char *));
        if (bigger)
            bigger[*n] = strdup(tok);
        if (!bigger || !bigger[*n]) {
            if (bigger)
                *list = bigger;
            rc = s_fail(err, errlen, "%s: %s: could not allocate", file, key);
            break;
        }
        *list = bigger;
        (*n)++;
    }
    free(copy);
    return rc;
}

static int
s_uint(const char *value, uint64_t min, uint64_t max, uint64_t *out, const char *file,
       const char *key, char *err, size_t errlen)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || !end || *end != '\0' || value[0] == '\0' || value[0] == '-' || v < min
        || v > max)
        return s_fail(err, errlen, "%s: %s: '%s' is not a whole number from %llu to %llu",
                      file, key, value, (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return 0;
}

/* A path relative to the configuration file's folder. */
static char *
s_resolve(const char *cfgpath, const char *value)
{
    if (value[0] == '/')
        return strdup(value);
    char *copy = strdup(cfgpath);
    if (!copy)
        return NULL;
    const char *dir = dirname(copy);
    size_t n = strlen(dir) + strlen(value) + 2;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s/%s", dir, value);
    free(copy);
    return out;
}

/* Was a key (or section) of this name given before, beside this one? A
   second one would silently win over the first: it is an error. */
static bool
s_given_before(zconfig_t *parent, zconfig_t *item)
{
    for (zconfig_t *k = zconfig_child(parent); k && k != item; k = zconfig_next(k))
        if (strcmp(zconfig_name(k), zconfig_name(item)) == 0)
            return true;
    return false;
}

static int
s_broker_section(brk_config_t *cfg, zconfig_t *section, char *err, size_t errlen)
{
    const char *file = cfg->path;
    for (zconfig_t *k = zconfig_child(section); k; k = zconfig_next(k)) {
        const char *name = zconfig_name(k);
        const char *value = zconfig_value(k) ? zconfig_value(k) : "";
        char key[128];
        snprintf(key, sizeof(key), "broker/%s", name);
        if (s_given_before(section, k))
            return s_fail(err, errlen, "%s: %s: given twice", file, key);
        int rc = 0;
        if (strcmp(name, "endpoint") == 0)
            rc = (cfg->endpoint = strdup(value)) ? 0 : -1;
        else if (strcmp(name, "database") == 0)
            rc = (cfg->database = strdup(value)) ? 0 : -1;
        else if (strcmp(name, "schemas") == 0)
            rc = (cfg->schemas = s_resolve(file, value)) ? 0 : -1;
        else if (strcmp(name, "http") == 0)
            rc = (cfg->http = strdup(value)) ? 0 : -1;
        else if (strcmp(name, "heartbeat_ms") == 0)
            rc = s_uint(value, 10, 3600000, &cfg->heartbeat_ms, file, key, err, errlen);
        else if (strcmp(name, "max_attempts") == 0)
            rc = s_uint(value, 1, 1000, &cfg->max_attempts, file, key, err, errlen);
        else if (strcmp(name, "max_message_bytes") == 0)
            rc = s_uint(value, 1024, 256u * 1024 * 1024, &cfg->max_message_bytes, file,
                        key, err, errlen);
        else if (strcmp(name, "max_outstanding") == 0)
            rc =
                s_uint(value, 1, 10000000, &cfg->max_outstanding, file, key, err, errlen);
        else if (strcmp(name, "max_clients") == 0)
            rc = s_uint(value, 1, 100000, &cfg->max_clients, file, key, err, errlen);
        else if (strcmp(name, "max_clients_per_agency") == 0)
            rc = s_uint(value, 1, 100000, &cfg->max_clients_per_agency, file, key, err,
                        errlen);
        else if (strcmp(name, "max_outstanding_per_client") == 0)
            rc = s_uint(value, 1, 10000000, &cfg->max_outstanding_per_client, file, key,
                        err, errlen);
        else
            return s_fail(err, errlen, "%s: %s: unknown key", file, key);
        if (rc)
            return err[0] ? -1
                          : s_fail(err, errlen, "%s: %s: could not allocate", file, key);
    }
    return 0;
}

static int
s_security_section(brk_config_t *cfg, zconfig_t *section, char *err, size_t errlen)
{
    const char *file = cfg->path;
    for (zconfig_t *k = zconfig_child(section); k; k = zconfig_next(k)) {
        const char *name = zconfig_name(k);
        const char *value = zconfig_value(k) ? zconfig_value(k) : "";
        if (s_given_before(section, k))
            return s_fail(err, errlen, "%s: security/%s: given twice", file, name);
        if (strcmp(name, "curve") == 0) {
            if (strcmp(value, "0") && strcmp(value, "1"))
                return s_fail(err, errlen, "%s: security/curve: '%s' is not 0 or 1", file,
                              value);
            cfg->curve = value[0] == '1';
        }
        else if (strcmp(name, "secret_cert") == 0) {
            cfg->secret_cert = s_resolve(file, value);
            if (!cfg->secret_cert)
                return s_fail(err, errlen, "%s: security/secret_cert: could not allocate",
                              file);
        }
        else
            return s_fail(err, errlen, "%s: security/%s: unknown key", file, name);
    }
    return 0;
}

int64_t
brk_duration_us(const char *text)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || text[0] < '0' || text[0] > '9' || !end || !end[0]
        || end[1])
        return -1;
    int64_t unit = end[0] == 's'   ? 1
                   : end[0] == 'm' ? 60
                   : end[0] == 'h' ? 3600
                   : end[0] == 'd' ? 86400
                                   : 0;
    if (!unit || v < 1 || v * unit > 3650LL * 86400)
        return -1;
    return v * unit * 1000000;
}

int64_t
brk_deadline_us(const brk_deadline_t *list, size_t n, const char *service,
                const char *priority)
{
    const brk_deadline_t *fallback = NULL;
    for (size_t i = 0; i < n; i++) {
        const brk_deadline_t *d = &list[i];
        if (strcmp(d->priority, priority) != 0)
            continue;
        if (strcmp(d->service, service) == 0)
            return d->us;
        if (strcmp(d->service, "default") == 0)
            fallback = d;
    }
    if (fallback)
        return fallback->us;
    return strcmp(priority, "urgent") == 0 ? BRK_DEADLINE_URGENT_US
                                           : BRK_DEADLINE_ROUTINE_US;
}

/* A word of a deadline's key: a-z, 0-9 and '-', starting with a letter. */
static bool
s_word(const char *w)
{
    size_t n = strlen(w);
    if (n == 0 || n > BRK_DEADLINE_WORD_MAX || w[0] < 'a' || w[0] > 'z')
        return false;
    return strspn(w, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

/* referrals/deadline/SERVICE/PRIORITY = DURATION, each key once. */
static int
s_referrals_section(brk_config_t *cfg, zconfig_t *section, char *err, size_t errlen)
{
    const char *file = cfg->path;
    for (zconfig_t *k = zconfig_child(section); k; k = zconfig_next(k))
        if (strcmp(zconfig_name(k), "deadline") != 0 || s_given_before(section, k))
            return s_fail(err, errlen, "%s: referrals/%s: %s", file, zconfig_name(k),
                          s_given_before(section, k) ? "given twice" : "unknown key");
    zconfig_t *deadline = zconfig_locate(section, "deadline");
    for (zconfig_t *sv = deadline ? zconfig_child(deadline) : NULL; sv;
         sv = zconfig_next(sv)) {
        const char *service = zconfig_name(sv);
        if (!s_word(service) || s_given_before(deadline, sv))
            return s_fail(err, errlen, "%s: referrals/deadline/%s: %s", file, service,
                          s_word(service) ? "given twice" : "not a service word");
        for (zconfig_t *p = zconfig_child(sv); p; p = zconfig_next(p)) {
            const char *priority = zconfig_name(p);
            const char *value = zconfig_value(p) ? zconfig_value(p) : "";
            char key[128];
            snprintf(key, sizeof(key), "referrals/deadline/%s/%s", service, priority);
            if (!s_word(priority) || s_given_before(sv, p))
                return s_fail(err, errlen, "%s: %s: %s", file, key,
                              s_word(priority) ? "given twice" : "not a priority word");
            int64_t us = brk_duration_us(value);
            if (us < 0)
                return s_fail(err, errlen,
                              "%s: %s: '%s' is not a duration (a whole number and s, m, "
                              "h or d: 15d, 36h; 1 s to 3650 d)",
                              file, key, value);
            brk_deadline_t *more =
                realloc(cfg->deadlines, (cfg->ndeadlines + 1) * sizeof(*more));
            if (!more)
                return s_fail(err, errlen, "%s: %s: could not allocate", file, key);
            cfg->deadlines = more;
            brk_deadline_t *d = &cfg->deadlines[cfg->ndeadlines++];
            snprintf(d->service, sizeof(d->service), "%s", service);
            snprintf(d->priority, sizeof(d->priority), "%s", priority);
            d->us = us;
        }
    }
    return 0;
}

static int
s_agency(brk_config_t *cfg, zconfig_t *node, brk_agency_t *a, char *err, size_t errlen)
{
    const char *file = cfg->path;
    const char *id = zconfig_name(node);
    if (strcmp(id, "maillage") == 0)
        return s_fail(err, errlen,
                      "%s: agencies/maillage: the id is reserved for the broker's own "
                      "notices (PROTOCOL.md §9)",
                      file);
    if (!mlg_is_agency_id(id, strlen(id)))
        return s_fail(err, errlen,
                      "%s: agencies/%s: not an agency id (1-64 of a-z 0-9 -, starting "
                      "with a letter)",
                      file, id);
    if (brk_config_agency(cfg, id))
        return s_fail(err, errlen, "%s: agencies/%s: defined twice", file, id);
    strcpy(a->id, id);
    for (zconfig_t *k = zconfig_child(node); k; k = zconfig_next(k)) {
        const char *name = zconfig_name(k);
        const char *value = zconfig_value(k) ? zconfig_value(k) : "";
        char key[160];
        snprintf(key, sizeof(key), "agencies/%s/%s", id, name);
        if (s_given_before(node, k))
            return s_fail(err, errlen, "%s: %s: given twice", file, key);
        if (strcmp(name, "name") == 0)
            a->name = strdup(value);
        else if (strcmp(name, "public_key") == 0)
            a->public_keys = strdup(value);
        else if (strcmp(name, "publish") == 0) {
            if (s_patterns(value, &a->publish, &a->npublish, file, key, err, errlen))
                return -1;
        }
        else if (strcmp(name, "subscribe") == 0) {
            if (s_patterns(value, &a->subscribe, &a->nsubscribe, file, key, err, errlen))
                return -1;
        }
        else
            return s_fail(err, errlen, "%s: %s: unknown key", file, key);
    }
    if (!a->name || !a->name[0])
        return s_fail(err, errlen, "%s: agencies/%s/name: required", file, id);
    return 0;
}

brk_config_t *
brk_config_parse(const char *text, const char *path, char *err, size_t errlen)
{
    err[0] = '\0';
    brk_config_t *cfg = calloc(1, sizeof(*cfg));
    if (cfg)
        cfg->path = strdup(path);
    if (!cfg || !cfg->path) {
        free(cfg);
        s_fail(err, errlen, "%s: could not allocate", path);
        return NULL;
    }
    cfg->heartbeat_ms = 1000;
    cfg->max_attempts = 5;
    cfg->max_message_bytes = MLG_MAX_MESSAGE_BYTES_DEFAULT;
    cfg->max_outstanding = 10000;
    cfg->max_clients = MLG_MAX_CLIENTS_DEFAULT;
    cfg->max_clients_per_agency = MLG_MAX_CLIENTS_PER_AGENCY_DEFAULT;
    cfg->max_outstanding_per_client = 1000;
    cfg->curve = true;

    zconfig_t *root = zconfig_str_load(text);
    if (!root) {
        s_fail(err, errlen, "%s: could not parse it as ZPL (czmq zconfig format)", path);
        brk_config_destroy(&cfg);
        return NULL;
    }
    int rc = 0;
    for (zconfig_t *s = zconfig_child(root); s && rc == 0; s = zconfig_next(s)) {
        const char *name = zconfig_name(s);
        if (s_given_before(root, s))
            rc = s_fail(err, errlen, "%s: %s: section given twice", path, name);
        else if (strcmp(name, "broker") == 0)
            rc = s_broker_section(cfg, s, err, errlen);
        else if (strcmp(name, "security") == 0)
            rc = s_security_section(cfg, s, err, errlen);
        else if (strcmp(name, "referrals") == 0)
            rc = s_referrals_section(cfg, s, err, errlen);
        else if (strcmp(name, "agencies") == 0) {
            size_t n = 0;
            for (zconfig_t *a = zconfig_child(s); a; a = zconfig_next(a))
                n++;
            cfg->agencies = calloc(n ? n : 1, sizeof(brk_agency_t));
            if (!cfg->agencies)
                rc = s_fail(err, errlen, "%s: agencies: could not allocate", path);
            for (zconfig_t *a = zconfig_child(s); a && rc == 0; a = zconfig_next(a)) {
                rc = s_agency(cfg, a, &cfg->agencies[cfg->nagencies], err, errlen);
                cfg->nagencies++;
            }
        }
        else
            rc = s_fail(err, errlen,
                        "%s: %s: unknown section (broker, security, referrals, agencies)",
                        path, name);
    }
    zconfig_destroy(&root);
    if (rc == 0 && (!cfg->endpoint || !cfg->endpoint[0]))
        rc = s_fail(err, errlen, "%s: broker/endpoint: required", path);
    if (rc == 0 && (!cfg->database || !cfg->database[0]))
        rc = s_fail(err, errlen, "%s: broker/database: required", path);
    if (rc == 0 && !cfg->schemas && !(cfg->schemas = s_resolve(path, "schemas")))
        rc = s_fail(err, errlen, "%s: broker/schemas: could not allocate", path);
    if (rc == 0 && cfg->curve && (!cfg->secret_cert || !cfg->secret_cert[0]))
        rc =
            s_fail(err, errlen,
                   "%s: security/secret_cert: required when curve = 1 (the broker's zcert"
                   " secret file)",
                   path);
    if (rc == 0 && cfg->nagencies == 0)
        rc = s_fail(err, errlen, "%s: agencies: at least one agency is required", path);
    if (rc)
        brk_config_destroy(&cfg);
    return cfg;
}

const brk_agency_t *
brk_config_agency(const brk_config_t *self, const char *id)
{
    for (size_t i = 0; i < self->nagencies; i++)
        if (strcmp(self->agencies[i].id, id) == 0)
            return &self->agencies[i];
    return NULL;
}

void
brk_config_swap_agencies(brk_config_t *a, brk_config_t *b)
{
    brk_agency_t *agencies = a->agencies;
    size_t n = a->nagencies;
    a->agencies = b->agencies;
    a->nagencies = b->nagencies;
    b->agencies = agencies;
    b->nagencies = n;
}

bool
brk_agency_has_key(const brk_agency_t *agency, const char *key)
{
    if (!agency->public_keys || strlen(key) != 40)
        return false;
    for (const char *p = strstr(agency->public_keys, key); p; p = strstr(p + 1, key))
        if ((p == agency->public_keys || p[-1] == ' ') && (p[40] == '\0' || p[40] == ' '))
            return true;
    return false;
}

brk_config_t *
brk_config_load(const char *path, char *err, size_t errlen)
{
    err[0] = '\0';
    /* a configuration is a few kilobytes; 16 MiB is past any real one */
    size_t len = 0;
    char *text = brk_read_file(path, 16u << 20, &len, err, errlen);
    if (!text)
        return NULL;
    if (memchr(text, '\0', len)) {
        s_fail(err, errlen, "%s: holds a NUL byte: not a text file", path);
        free(text);
        return NULL;
    }
    brk_config_t *cfg = brk_config_parse(text, path, err, errlen);
    free(text);
    return cfg;
}
