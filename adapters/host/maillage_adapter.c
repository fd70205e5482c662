/*  maillage_adapter.c: the adapter host, maillage-adapter.

        maillage-adapter --plugin NAME|PATH --config FILE

    Loads one plugin (include/maillage/adapter.h), joins the broker as the
    configured agency, and moves events both ways: what the plugin's
    poll() gives is published within a window of unconfirmed publishes,
    and each answer goes back to the plugin's outcome(); each delivery goes
    to the plugin's deliver() and is acked only when that succeeded.

    Failures it rides out by itself, logging each: a broker that is down
    or restarts (it joins again with backoff, then sends every unconfirmed
    publish again with its id, so the broker stores none twice), a broker
    that answers UNAVAILABLE (the publish is sent again after a backoff),
    a plugin whose system is down (poll and deliver are tried again after
    a backoff; a delivery waiting for it stays in flight, so it is neither
    lost nor dead-lettered).

    SIGTERM or SIGINT: stops taking work, says BYE (the broker requeues
    what was in flight) and closes the plugin. Unconfirmed publishes are
    the plugin's to give again at the next start. */

#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <czmq.h>

#include "maillage/adapter.h"
#include "maillage/client.h"
#include "maillage/forms.h"

#define S_BACKOFF_MIN_MS 100
#define S_BACKOFF_MAX_MS 5000
#define S_JOIN_TIMEOUT_MS 3000

typedef struct {
    char *config_file;
    char *config_dir;
    zconfig_t *config;
    char agency[MLG_AGENCY_ID_MAX + 1];
    char *endpoint, *client_name, *cert, *server_key;
    uint64_t credit;
    size_t window;
    int poll_ms;
    const mlg_adapter_plugin_t *plugin;
    void *dl;
    void *state;
    mlg_adapter_host_t host;
    zhashx_t *paths; /* key -> resolved path, for config_path() */
} s_adapter_t;

/* A publish answered UNAVAILABLE, to send again at `due`. */
typedef struct {
    int64_t due;
    int delay;
} s_retry_t;

/* A delivery the plugin could not take yet, to try again at `due`. */
typedef struct {
    mlg_msg_t *msg;
    int64_t due;
    int delay;
} s_held_t;

static volatile sig_atomic_t s_stop = 0;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static void
s_vlog(const char *agency, const char *level, const char *fmt, va_list ap)
{
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(stderr, "%s maillage-adapter[%s] %s: ", when, agency, level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
}

static void s_log(s_adapter_t *self, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
s_log(s_adapter_t *self, const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vlog(self->agency[0] ? self->agency : "-", level, fmt, ap);
    va_end(ap);
}

/* ---- the host's services to the plugin ----------------------------- */

static void s_host_log(void *ctx, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
s_host_log(void *ctx, const char *level, const char *fmt, ...)
{
    s_adapter_t *self = ctx;
    va_list ap;
    va_start(ap, fmt);
    s_vlog(self->agency, level, fmt, ap);
    va_end(ap);
}

static const char *
s_host_config(void *ctx, const char *key)
{
    s_adapter_t *self = ctx;
    char path[512];
    snprintf(path, sizeof(path), "plugin/%s", key);
    zconfig_t *item = zconfig_locate(self->config, path);
    return item ? zconfig_value(item) : NULL;
}

static const char *
s_host_config_path(void *ctx, const char *key)
{
    s_adapter_t *self = ctx;
    const char *value = s_host_config(ctx, key);
    if (!value || !*value)
        return NULL;
    const char *known = zhashx_lookup(self->paths, key);
    if (known)
        return known;
    char *path =
        value[0] == '/' ? strdup(value) : zsys_sprintf("%s/%s", self->config_dir, value);
    if (!path)
        return NULL;
    zhashx_insert(self->paths, key, path);
    return zhashx_lookup(self->paths, key);
}

/* ---- configuration -------------------------------------------------- */

static int s_fail(const char *file, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
s_fail(const char *file, const char *key, const char *fmt, ...)
{
    fprintf(stderr, "maillage-adapter: %s: %s: ", file, key);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -1;
}

static int
s_uint(const char *file, const char *key, const char *value, uint64_t lo, uint64_t hi,
       uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (!*value || *end || errno || value[0] == '-' || v < lo || v > hi)
        return s_fail(file, key, "'%s' is not a whole number from %llu to %llu", value,
                      (unsigned long long)lo, (unsigned long long)hi);
    *out = v;
    return 0;
}

/* Is `path` (below plugin/) one of the plugin's keys? */
static bool
s_plugin_key(const mlg_adapter_plugin_t *plugin, const char *path)
{
    for (const char *const *k = plugin->config_keys; k && *k; k++) {
        size_t len = strlen(*k);
        if (len && (*k)[len - 1] == '/' ? strncmp(path, *k, len) == 0 && path[len]
                                        : strcmp(path, *k) == 0)
            return true;
    }
    return false;
}

/* Every leaf below `item` (a plugin section) must be a key the plugin
   reads; `prefix` is the path so far. */
static int
s_check_plugin_keys(s_adapter_t *self, zconfig_t *item, const char *prefix)
{
    for (zconfig_t *child = zconfig_child(item); child; child = zconfig_next(child)) {
        char path[512];
        snprintf(path, sizeof(path), "%s%s", prefix, zconfig_name(child));
        if (zconfig_child(child)) {
            char below[520];
            snprintf(below, sizeof(below), "%s/", path);
            bool any = false;
            for (const char *const *k = self->plugin->config_keys; k && *k; k++)
                any |= strncmp(*k, below, strlen(below)) == 0
                       || strncmp(below, *k, strlen(*k)) == 0;
            if (!any)
                return s_fail(self->config_file, path, "unknown section for plugin '%s'",
                              self->plugin->name);
            if (s_check_plugin_keys(self, child, below))
                return -1;
        }
        else if (!s_plugin_key(self->plugin, path))
            return s_fail(self->config_file, path, "unknown key for plugin '%s'",
                          self->plugin->name);
    }
    return 0;
}

static int
s_load_config(s_adapter_t *self)
{
    const char *file = self->config_file;
    self->config = zconfig_load(file);
    if (!self->config) {
        fprintf(stderr, "maillage-adapter: %s: cannot read or parse the file\n", file);
        return -1;
    }
    char *slash = strrchr(file, '/');
    self->config_dir = slash ? strndup(file, (size_t)(slash - file)) : strdup(".");
    self->credit = 16;
    self->window = 100;
    self->poll_ms = 500;
    bool has_agency = false, has_endpoint = false;
    for (zconfig_t *top = zconfig_child(self->config); top; top = zconfig_next(top)) {
        const char *section = zconfig_name(top);
        if (strcmp(section, "plugin") == 0)
            continue;
        if (strcmp(section, "adapter") != 0)
            return s_fail(file, section,
                          "unknown section (adapter and plugin are known)");
        for (zconfig_t *item = zconfig_child(top); item; item = zconfig_next(item)) {
            const char *name = zconfig_name(item);
            const char *value = zconfig_value(item);
            char key[300];
            snprintf(key, sizeof(key), "adapter/%s", name);
            if (zconfig_child(item))
                return s_fail(file, key, "is a section; a value was expected");
            uint64_t n = 0;
            if (strcmp(name, "agency") == 0) {
                if (!mlg_is_agency_id(value, strlen(value)))
                    return s_fail(file, key, "'%s' is not an agency id", value);
                snprintf(self->agency, sizeof(self->agency), "%s", value);
                has_agency = true;
            }
            else if (strcmp(name, "endpoint") == 0) {
                free(self->endpoint);
                self->endpoint = strdup(value);
                has_endpoint = *value != '\0';
            }
            else if (strcmp(name, "client") == 0) {
                free(self->client_name);
                self->client_name = strdup(value);
            }
            else if (strcmp(name, "cert") == 0) {
                free(self->cert);
                self->cert = value[0] == '/'
                                 ? strdup(value)
                                 : zsys_sprintf("%s/%s", self->config_dir, value);
            }
            else if (strcmp(name, "server_key") == 0) {
                if (strlen(value) != 40)
                    return s_fail(file, key, "is not a Z85 public key (40 characters)");
                free(self->server_key);
                self->server_key = strdup(value);
            }
            else if (strcmp(name, "credit") == 0) {
                if (s_uint(file, key, value, 1, 100000, &n))
                    return -1;
                self->credit = n;
            }
            else if (strcmp(name, "window") == 0) {
                if (s_uint(file, key, value, 1, 100000, &n))
                    return -1;
                self->window = (size_t)n;
            }
            else if (strcmp(name, "poll_ms") == 0) {
                if (s_uint(file, key, value, 1, 3600000, &n))
                    return -1;
                self->poll_ms = (int)n;
            }
            else
                return s_fail(file, key, "unknown key");
        }
    }
    if (!has_agency)
        return s_fail(file, "adapter/agency", "is required");
    if (!has_endpoint)
        return s_fail(file, "adapter/endpoint", "is required");
    if (!self->cert != !self->server_key)
        return s_fail(file, self->cert ? "adapter/server_key" : "adapter/cert",
                      "CURVE needs both cert and server_key");
    return 0;
}

/* ---- the plugin ------------------------------------------------------- */

static int
s_load_plugin(s_adapter_t *self, const char *name, const char *self_exe)
{
    char path[8192 + 64];
    if (strchr(name, '/'))
        snprintf(path, sizeof(path), "%s", name);
    else {
        bool ok = true;
        for (const char *c = name; *c; c++)
            ok &= (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'
                  || *c == '_';
        if (!ok || !*name) {
            fprintf(stderr,
                    "maillage-adapter: --plugin '%s': not a plugin name or a path\n",
                    name);
            return -1;
        }
        /* beside the executable (the build tree), else the install folder */
        char exe[4096];
        ssize_t len = readlink(self_exe, exe, sizeof(exe) - 1);
        exe[len > 0 ? len : 0] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        snprintf(path, sizeof(path), "%s/maillage-plugin-%s.so", slash ? exe : ".", name);
        if (access(path, R_OK) != 0)
            snprintf(path, sizeof(path), "%s/maillage-plugin-%s.so", MLG_PLUGIN_DIR,
                     name);
    }
    self->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!self->dl) {
        fprintf(stderr, "maillage-adapter: cannot load plugin %s: %s\n", path, dlerror());
        return -1;
    }
    self->plugin = dlsym(self->dl, MLG_ADAPTER_SYMBOL);
    if (!self->plugin) {
        fprintf(stderr, "maillage-adapter: %s is not a maillage plugin (no symbol %s)\n",
                path, MLG_ADAPTER_SYMBOL);
        return -1;
    }
    if (self->plugin->abi != MLG_ADAPTER_ABI) {
        fprintf(stderr,
                "maillage-adapter: plugin %s was built for plugin ABI %u; this host "
                "speaks ABI "
                "%u: rebuild the plugin against this version's maillage/adapter.h\n",
                path, (unsigned)self->plugin->abi, (unsigned)MLG_ADAPTER_ABI);
        return -1;
    }
    if (self->plugin->msg_layout != MLG_MSG_LAYOUT) {
        fprintf(stderr,
                "maillage-adapter: plugin %s was built with message layout %08x; this "
                "host's is %08x (limits.h differs): rebuild the plugin against this "
                "version's headers\n",
                path, (unsigned)self->plugin->msg_layout, (unsigned)MLG_MSG_LAYOUT);
        return -1;
    }
    if (!self->plugin->open || !self->plugin->poll || !self->plugin->outcome
        || !self->plugin->deliver || !self->plugin->close || !self->plugin->name) {
        fprintf(stderr,
                "maillage-adapter: plugin %s leaves a function of its table empty\n",
                path);
        return -1;
    }
    return 0;
}

/* ---- the loop ----------------------------------------------------------- */

static int
s_next_delay(int delay)
{
    return delay < S_BACKOFF_MIN_MS       ? S_BACKOFF_MIN_MS
           : delay * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS
                                          : delay * 2;
}

static mlg_client_t *
s_join(s_adapter_t *self, mlg_error_t *err)
{
    if (self->cert)
        return mlg_client_new_curve(self->endpoint, self->agency, self->client_name,
                                    self->credit, S_JOIN_TIMEOUT_MS, self->cert,
                                    self->server_key, err);
    return mlg_client_new(self->endpoint, self->agency, self->client_name, self->credit,
                          S_JOIN_TIMEOUT_MS, err);
}

static void
s_outcome(s_adapter_t *self, void *tag, const char *id, const mlg_adapter_outcome_t *out)
{
    if (out->confirmed)
        s_log(self, "info", "%s confirmed%s (seq %llu)", id,
              out->duplicate ? ", duplicate" : "", (unsigned long long)out->seq);
    else
        s_log(self, "warn", "%s refused: %s %s", id, out->code, out->reason);
    if (self->plugin->outcome(self->state, tag, out) != MLG_ADAPTER_OK)
        s_log(self, "warn",
              "%s: the plugin could not record the answer; it will publish it "
              "again",
              id);
}

static void
s_held_free(void **item_p)
{
    s_held_t *h = *item_p;
    if (h) {
        mlg_msg_destroy(&h->msg);
        free(h);
        *item_p = NULL;
    }
}

/* Hands a delivery to the plugin; acks, nacks, or holds it. */
static void
s_deliver(s_adapter_t *self, mlg_client_t *client, zlistx_t *held, mlg_msg_t *msg,
          int delay)
{
    char err[512] = "";
    mlg_adapter_rc_t rc = self->plugin->deliver(self->state, msg, err, sizeof(err));
    if (rc == MLG_ADAPTER_OK) {
        mlg_client_ack(client, msg->delivery);
        s_log(self, "info", "delivery %llu (%s %s from %s) handed over and acked",
              (unsigned long long)msg->delivery, msg->id, msg->type, msg->from);
        mlg_msg_destroy(&msg);
    }
    else if (rc == MLG_ADAPTER_REFUSE) {
        mlg_client_nack(client, msg->delivery, false,
                        err[0] ? err : "refused by the plugin");
        s_log(self, "warn", "delivery %llu (%s) refused by the plugin: %s",
              (unsigned long long)msg->delivery, msg->id, err);
        mlg_msg_destroy(&msg);
    }
    else {
        s_held_t *h = calloc(1, sizeof(*h));
        if (!h) {
            mlg_client_nack(client, msg->delivery, true, "out of memory");
            mlg_msg_destroy(&msg);
            return;
        }
        h->msg = msg;
        h->delay = s_next_delay(delay);
        h->due = zclock_mono() + h->delay;
        zlistx_add_end(held, h);
        s_log(self, "warn", "delivery %llu (%s) not taken yet, again in %d ms: %s",
              (unsigned long long)msg->delivery, msg->id, h->delay, err);
    }
}

/* The state of the run loop: the connection, what waits for its time. */
typedef struct {
    s_adapter_t *self;
    mlg_client_t *client;
    zhashx_t *retries; /* id -> s_retry_t: publishes answered UNAVAILABLE */
    zlistx_t *held;    /* s_held_t: deliveries the plugin could not take yet */
    int join_delay, poll_delay;
    int64_t next_join, next_poll;
    mlg_msg_t **events; /* poll()'s room, `window` of each */
    void **tags;
} s_loop_t;

static void
s_loop_destroy(s_loop_t *l)
{
    mlg_client_destroy(&l->client);
    zlistx_destroy(&l->held);
    zhashx_destroy(&l->retries);
    free(l->events);
    free(l->tags);
}

static int
s_loop_init(s_loop_t *l, s_adapter_t *self)
{
    memset(l, 0, sizeof(*l));
    l->self = self;
    l->retries = zhashx_new();
    l->held = zlistx_new();
    l->events = calloc(self->window, sizeof(*l->events));
    l->tags = calloc(self->window, sizeof(*l->tags));
    if (!l->retries || !l->held || !l->events || !l->tags) {
        s_loop_destroy(l);
        return -1;
    }
    zhashx_set_destructor(l->retries, (zhashx_destructor_fn *)zstr_free);
    zlistx_set_destructor(l->held, s_held_free);
    return 0;
}

/* After a new connection the broker has requeued the old one's
   deliveries and the client has sent the unconfirmed publishes again:
   what the loop held for the old one is void. */
static void
s_loop_forget(s_loop_t *l)
{
    zlistx_purge(l->held);
    zhashx_purge(l->retries);
}

/* Joins again on the same client (`why` is logged); on failure the next
   try waits for the backoff. */
static void
s_rejoin(s_loop_t *l, const char *why)
{
    s_log(l->self, "warn", "%s: joining again", why);
    mlg_error_t err;
    if (mlg_client_reconnect(l->client, S_JOIN_TIMEOUT_MS, &err) == MLG_OK) {
        s_loop_forget(l);
        s_log(l->self, "info", "joined again, %zu unconfirmed sent again",
              mlg_client_unconfirmed(l->client));
        return;
    }
    l->join_delay = s_next_delay(l->join_delay);
    l->next_join = zclock_mono() + l->join_delay;
    s_log(l->self, "warn", "cannot join: %s", err.reason);
}

/* Step 1: a connection. False while there is none (it has waited a
   little, or logged why and set the backoff). */
static bool
s_connected(s_loop_t *l, int64_t now)
{
    s_adapter_t *self = l->self;
    if (l->client && mlg_client_connected(l->client))
        return true;
    if (now < l->next_join) {
        zclock_sleep((int)(l->next_join - now < 200 ? l->next_join - now : 200));
        return false;
    }
    mlg_error_t err;
    mlg_rc_t rc = MLG_OK;
    if (!l->client) {
        l->client = s_join(self, &err);
        rc = l->client ? MLG_OK : err.rc;
    }
    else
        rc = mlg_client_reconnect(l->client, S_JOIN_TIMEOUT_MS, &err);
    if (rc != MLG_OK) {
        l->join_delay = s_next_delay(l->join_delay);
        l->next_join = zclock_mono() + l->join_delay;
        s_log(self, "warn", "cannot join %s as %s: %s %s; again in %d ms", self->endpoint,
              self->agency, mlg_rc_wire(rc) ? mlg_rc_wire(rc) : "", err.reason,
              l->join_delay);
        if (rc == MLG_ERR_USAGE || rc == MLG_FORBIDDEN)
            s_log(self, "error", "check the configuration: the broker refuses it");
        return false;
    }
    l->join_delay = 0;
    s_loop_forget(l);
    s_log(self, "info", "joined %s as %s (session %s), %zu unconfirmed sent again",
          self->endpoint, self->agency, mlg_client_session(l->client),
          mlg_client_unconfirmed(l->client));
    return true;
}

/* Steps 2 and 3: publishes answered UNAVAILABLE, and deliveries the
   plugin could not take, whose time has come. Lowers *wake to the next
   one's time. */
static void
s_due(s_loop_t *l, int64_t now, int64_t *wake)
{
    for (s_retry_t *r = zhashx_first(l->retries); r; r = zhashx_next(l->retries)) {
        if (r->due && r->due <= now) {
            const char *id = zhashx_cursor(l->retries);
            r->due = 0;
            if (mlg_client_resend(l->client, id) == MLG_OK)
                s_log(l->self, "info", "%s sent again", id);
        }
        else if (r->due && r->due < *wake)
            *wake = r->due;
    }
    for (s_held_t *h = zlistx_first(l->held); h; h = zlistx_next(l->held)) {
        if (h->due > now) {
            if (h->due < *wake)
                *wake = h->due;
            continue;
        }
        mlg_msg_t *msg = h->msg;
        int delay = h->delay;
        h->msg = NULL;
        zlistx_delete(l->held, zlistx_cursor(l->held));
        s_deliver(l->self, l->client, l->held, msg, delay);
        break; /* the list changed: look again on the next turn */
    }
}

/* Step 4: new events from the plugin, within the window. */
static void
s_poll_plugin(s_loop_t *l, int64_t now, int64_t *wake)
{
    s_adapter_t *self = l->self;
    size_t unconfirmed = mlg_client_unconfirmed(l->client);
    if (unconfirmed < self->window && now >= l->next_poll) {
        size_t open_slots = self->window - unconfirmed, n = 0;
        mlg_adapter_rc_t rc =
            self->plugin->poll(self->state, open_slots, l->events, l->tags, &n);
        if (n > open_slots)
            n = open_slots; /* a plugin bug; what is over is dropped */
        for (size_t i = 0; i < n; i++) {
            char id[MLG_UUID_LEN + 1];
            snprintf(id, sizeof(id), "%s", l->events[i]->id);
            if (mlg_client_publish(l->client, l->events[i], l->tags[i])
                == MLG_ERR_USAGE) {
                mlg_adapter_outcome_t out = {
                    .code = "INVALID",
                    .reason = "another event with this id is waiting for the broker's "
                              "answer"};
                s_outcome(self, l->tags[i], id, &out);
            }
            else
                s_log(self, "info", "published %s (%s)", id, l->events[i]->type);
            mlg_msg_destroy(&l->events[i]);
        }
        if (rc != MLG_ADAPTER_OK) {
            l->poll_delay = s_next_delay(l->poll_delay);
            l->next_poll = now + l->poll_delay;
        }
        else {
            l->poll_delay = 0;
            l->next_poll = n == open_slots && n > 0 ? now : now + self->poll_ms;
        }
    }
    if (mlg_client_unconfirmed(l->client) < self->window && l->next_poll < *wake)
        *wake = l->next_poll;
}

/* A REJECT: UNAVAILABLE is tried again with backoff, a lost session
   joined again, anything else is the event's outcome. */
static void
s_on_reject(s_loop_t *l, const mlg_msg_t *msg)
{
    if (msg->code_rc == MLG_UNAVAILABLE) {
        s_retry_t *r = zhashx_lookup(l->retries, msg->id);
        if (!r) {
            r = calloc(1, sizeof(*r));
            if (!r || zhashx_insert(l->retries, msg->id, r) != 0) {
                free(r);
                return; /* sent again at the next reconnection */
            }
        }
        r->delay = s_next_delay(r->delay);
        r->due = zclock_mono() + r->delay;
        s_log(l->self, "warn", "%s: broker unavailable (%s); again in %d ms", msg->id,
              msg->reason, r->delay);
        return;
    }
    if (msg->code_rc == MLG_HELLO_REQUIRED) {
        s_rejoin(l, "the broker lost this session");
        return;
    }
    void *tag = NULL;
    if (mlg_client_settle(l->client, msg->id, &tag)) {
        zhashx_delete(l->retries, msg->id);
        mlg_adapter_outcome_t out = {.code = msg->code, .reason = msg->reason};
        s_outcome(l->self, tag, msg->id, &out);
    }
}

/* Step 5: one message from the broker (taken: a DELIVER's is kept). */
static void
s_on_message(s_loop_t *l, mlg_msg_t *msg)
{
    void *tag = NULL;
    switch (msg->op) {
    case MLG_OP_CONFIRM:
        if (mlg_client_settle(l->client, msg->id, &tag)) {
            zhashx_delete(l->retries, msg->id);
            mlg_adapter_outcome_t out = {
                .confirmed = true, .duplicate = msg->duplicate, .seq = msg->seq};
            s_outcome(l->self, tag, msg->id, &out);
        }
        break;
    case MLG_OP_REJECT: s_on_reject(l, msg); break;
    case MLG_OP_DELIVER:
        s_deliver(l->self, l->client, l->held, msg, 0);
        return; /* the delivery is s_deliver's now */
    case MLG_OP_ERROR:
        if (msg->code_rc == MLG_HELLO_REQUIRED)
            s_rejoin(l, "the broker lost this session");
        else
            s_log(l->self, "warn", "broker: ERROR %s %s", msg->code, msg->reason);
        break;
    default: break;
    }
    mlg_msg_destroy(&msg);
}

static int
s_run(s_adapter_t *self)
{
    s_loop_t l;
    if (s_loop_init(&l, self) != 0) {
        s_log(self, "error", "out of memory");
        return 1;
    }
    while (!s_stop) {
        int64_t now = zclock_mono();
        if (!s_connected(&l, now))
            continue;
        int64_t wake = now + 200;
        s_due(&l, now, &wake);
        s_poll_plugin(&l, now, &wake);
        int wait = (int)(wake - zclock_mono());
        mlg_msg_t *msg = mlg_client_recv(l.client, wait > 0 ? wait : 0);
        if (msg)
            s_on_message(&l, msg);
        else {
            uint64_t beat = mlg_client_heartbeat_ms(l.client);
            if (beat && mlg_client_silence_ms(l.client) > (int64_t)(3 * beat))
                s_rejoin(&l, "the broker has been silent for three heartbeats");
        }
    }
    s_log(self, "info",
          "stopping: %zu publishes unconfirmed (published again at the next "
          "start), %zu deliveries held (requeued by the broker)",
          l.client ? mlg_client_unconfirmed(l.client) : 0, zlistx_size(l.held));
    s_loop_destroy(&l);
    return 0;
}

static void
s_usage(FILE *out)
{
    fprintf(out, "usage: maillage-adapter --plugin NAME|PATH --config FILE\n"
                 "\n"
                 "Bridges a system to the maillage broker through a plugin: 'files'\n"
                 "(a drop folder), 'sql' (outbox and inbox tables of a PostgreSQL\n"
                 "database), or the path of a plugin of your own (README, Adapters).\n"
                 "\n"
                 "The configuration (ZPL) has an 'adapter' section (agency, endpoint,\n"
                 "client, credit, window, poll_ms, cert, server_key) and a 'plugin'\n"
                 "section read by the plugin. --check loads the plugin and checks the\n"
                 "configuration, then exits (0: fit to run, 2: not).\n");
}

/* SIGTERM and SIGINT are ours from the first moment, and czmq is told
   to leave them alone before it starts: zsys_init() would otherwise
   catch them into zsys_interrupted, which nothing here reads (a SIGTERM
   then was lost and the adapter ran on), and disabling its handler
   afterwards put back the default action, which kills. */
static void
s_take_signals(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = s_on_signal;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    /* a parent may have left them blocked: one sent already is taken now */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigprocmask(SIG_UNBLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    zsys_handler_set(NULL);
    zsys_init();
}

/* Opens the plugin, again with backoff while it says RETRY. 0 when open,
   1 when stopped first, 2 when it refuses its configuration. */
static int
s_open_plugin(s_adapter_t *self)
{
    int delay = 0;
    while (!s_stop) {
        char err[512] = "";
        mlg_adapter_rc_t rc =
            self->plugin->open(&self->host, &self->state, err, sizeof(err));
        if (rc == MLG_ADAPTER_OK)
            return 0;
        if (rc != MLG_ADAPTER_RETRY) {
            fprintf(stderr, "maillage-adapter: %s: plugin '%s': %s\n", self->config_file,
                    self->plugin->name, err);
            return 2;
        }
        delay = s_next_delay(delay);
        s_log(self, "warn", "plugin '%s' cannot open yet: %s; again in %d ms",
              self->plugin->name, err, delay);
        zclock_sleep(delay);
    }
    return 1;
}

/* Loads the plugin and the configuration and checks the plugin's keys;
   0, or the exit status. */
static int
s_prepare(s_adapter_t *self, const char *plugin_name)
{
    self->paths = zhashx_new();
    if (!self->paths)
        return 2;
    zhashx_set_destructor(self->paths, (zhashx_destructor_fn *)zstr_free);
    if (s_load_plugin(self, plugin_name, "/proc/self/exe") != 0
        || s_load_config(self) != 0)
        return 2;
    zconfig_t *section = zconfig_locate(self->config, "plugin");
    if (section && s_check_plugin_keys(self, section, "") != 0)
        return 2;
    self->host.self = self;
    self->host.config = s_host_config;
    self->host.config_path = s_host_config_path;
    self->host.log = s_host_log;
    self->host.agency = self->agency;
    return 0;
}

int
main(int argc, char **argv)
{
    const char *plugin_name = NULL;
    s_adapter_t self;
    memset(&self, 0, sizeof(self));
    static const struct option options[] = {{"plugin", required_argument, NULL, 'p'},
                                            {"config", required_argument, NULL, 'c'},
                                            {"check", no_argument, NULL, 'k'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    s_take_signals();
    int opt;
    bool check_only = false;
    for (opt = getopt_long(argc, argv, "p:c:h", options, NULL); opt != -1;
         opt = getopt_long(argc, argv, "p:c:h", options, NULL)) {
        if (opt == 'k')
            check_only = true;
        else if (opt == 'p')
            plugin_name = optarg;
        else if (opt == 'c')
            self.config_file = optarg;
        else if (opt == 'h') {
            s_usage(stdout);
            return 0;
        }
        else {
            s_usage(stderr);
            return 2;
        }
    }
    if (!plugin_name || !self.config_file || optind != argc) {
        s_usage(stderr);
        return 2;
    }
    int status = s_prepare(&self, plugin_name);
    if (status == 0 && check_only)
        printf("%s: fit to run plugin '%s' (ABI %u) as %s\n", self.config_file,
               self.plugin->name, (unsigned)self.plugin->abi, self.agency);
    else if (status == 0) {
        if (!self.cert)
            s_log(&self, "warn",
                  "no CURVE certificate (adapter/cert): the connection is not "
                  "encrypted; development only");
        status = s_open_plugin(&self);
        if (status == 1)
            status = 0; /* stopped before the plugin opened */
        else if (status == 0) {
            s_log(&self, "info", "plugin '%s' open; broker %s, window %zu, credit %llu",
                  self.plugin->name, self.endpoint, self.window,
                  (unsigned long long)self.credit);
            status = s_run(&self);
            self.plugin->close(self.state);
        }
    }
    zconfig_destroy(&self.config);
    zhashx_destroy(&self.paths);
    free(self.config_dir);
    free(self.endpoint);
    free(self.client_name);
    free(self.cert);
    free(self.server_key);
    /* the plugin stays loaded: czmq's atexit handlers may run its code */
    return status;
}
