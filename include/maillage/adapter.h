/*  adapter.h: the plugin interface of the adapter host maillage-adapter.

    An adapter bridges a system that does not speak the protocol (a legacy
    database, a folder of files) to the broker. The host does the protocol
    work: it joins the broker as its agency, keeps a bounded window of
    unconfirmed publishes, sends them again after a lost connection or an
    UNAVAILABLE (same id: nothing is doubled), takes deliveries within its
    credit and acks each only once the plugin has handed it over. A plugin
    only maps between its system and events.

    A plugin is a shared object that exports one symbol,

        MLG_ADAPTER_EXPORT const mlg_adapter_plugin_t maillage_adapter_plugin = {
            .abi = MLG_ADAPTER_ABI, .msg_layout = MLG_MSG_LAYOUT,
            .name = "files", ... };

    The host refuses a plugin whose `abi` is not the MLG_ADAPTER_ABI it was
    built with, naming both numbers. The ABI number changes whenever this
    table or the host functions change in a way an old plugin would
    misread. It also refuses a plugin whose `msg_layout` is not its own
    MLG_MSG_LAYOUT, naming both: mlg_msg_t's fields move with limits.h,
    and a plugin built against other limits would misread every message.

    Threading: the host calls every function from one thread, one call at
    a time; a plugin needs no locks. Calls should return promptly (poll
    and deliver within a second or so): heartbeats are sent between calls.

    Ownership: the `state` made by open() is the plugin's, passed back to
    every call and freed by close(). Messages given to deliver() are the
    host's, valid during the call only. Messages a plugin returns from
    poll() become the host's. A `tag` is the plugin's: the host gives it
    back to outcome() exactly once per poll()ed event (or never, if the
    host stops first: then close() frees what is left).

    Crash safety is shared: the host acks a delivery only after deliver()
    returned MLG_ADAPTER_OK, so what the plugin wrote must be durable by
    then and writing the same event twice must be harmless (its `id` is
    the key). An event the plugin published must stay "to be published"
    in its system until outcome() says the broker confirmed or refused it,
    and poll() must give it again, with the same id, after a restart. */

#ifndef MAILLAGE_ADAPTER_H
#define MAILLAGE_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "maillage/codec.h"

#define MLG_ADAPTER_ABI 2

/* What a plugin function returns. */
typedef enum {
    MLG_ADAPTER_OK = 0,
    /* a passing trouble (the legacy database is down): the host tries
       again later; deliver(): the delivery is NACKed with requeue */
    MLG_ADAPTER_RETRY = 1,
    /* deliver(): this event can never be taken (the plugin's system
       refuses it): NACKed without requeue, so it is dead-lettered for an
       operator to see */
    MLG_ADAPTER_REFUSE = 2,
    /* open(): the configuration is wrong; the host stops */
    MLG_ADAPTER_FATAL = 3,
} mlg_adapter_rc_t;

/* The host's services, given to open() and valid until close(). */
typedef struct mlg_adapter_host_t {
    void *self; /* the host's; pass it back to each function */
    /* The value of `key` in the plugin's section of the configuration
       file (a path such as "dir" or "outbox/table"), or NULL when it is
       absent. Valid until close(). */
    const char *(*config)(void *self, const char *key);
    /* The same, turned into a path: a relative value is taken relative
       to the configuration file's folder. NULL when absent. */
    const char *(*config_path)(void *self, const char *key);
    /* Writes a line to the host's log: level "info", "warn" or "error". */
    void (*log)(void *self, const char *level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    const char *agency; /* the agency the host acts for */
} mlg_adapter_host_t;

/* The broker's answer to a publish, for outcome(). */
typedef struct {
    bool confirmed;     /* true: CONFIRM (stored, or stored before) */
    bool duplicate;     /* CONFIRM: the broker had it already */
    uint64_t seq;       /* CONFIRM: the broker's sequence number */
    const char *code;   /* REJECT (or the host's own refusal): a §5 code */
    const char *reason; /* REJECT: the sentence */
} mlg_adapter_outcome_t;

typedef struct {
    uint32_t abi;            /* MLG_ADAPTER_ABI */
    uint32_t msg_layout;     /* MLG_MSG_LAYOUT */
    const char *name;        /* "files", "sql" */
    const char *description; /* one line, for --help */
    /* The configuration keys the plugin reads in its section, NULL-ended;
       a key ending in "/" admits any key below it. The host refuses a
       configuration with any other key, naming it. */
    const char *const *config_keys;

    /* Opens the plugin with its configuration. On failure: a sentence in
       err, and MLG_ADAPTER_FATAL (stop) or MLG_ADAPTER_RETRY (the host
       tries again with backoff). */
    mlg_adapter_rc_t (*open)(const mlg_adapter_host_t *host, void **state, char *err,
                             size_t errlen);

    /* Gives up to `max` events to publish: fills events[0..n-1] with new
       PUBLISH messages (the host owns them) and tags[0..n-1], and sets *n.
       An event already given and not yet through outcome() must not be
       given again. MLG_ADAPTER_RETRY on a passing trouble (log it). */
    mlg_adapter_rc_t (*poll)(void *state, size_t max, mlg_msg_t **events, void **tags,
                             size_t *n);

    /* The broker's answer to an event from poll(), with its tag. After a
       confirmation the plugin marks the event published; after a refusal
       it sets it aside with the code and reason (never to be published
       again as it is). MLG_ADAPTER_RETRY when that mark could not be
       written: the event stays "to be published" and, after a restart,
       the broker answers it CONFIRM duplicate or the same refusal. */
    mlg_adapter_rc_t (*outcome)(void *state, void *tag,
                                const mlg_adapter_outcome_t *outcome);

    /* Hands one DELIVER over to the plugin's system, durably, before it
       returns MLG_ADAPTER_OK; the same event twice (same id) must be
       stored once. On RETRY or REFUSE, a sentence in err. */
    mlg_adapter_rc_t (*deliver)(void *state, const mlg_msg_t *deliver, char *err,
                                size_t errlen);

    /* Frees the state (and any tag still held). */
    void (*close)(void *state);
} mlg_adapter_plugin_t;

/* Marks the plugin's table as exported (a plugin built with hidden
   visibility still exports it). */
#define MLG_ADAPTER_EXPORT __attribute__((visibility("default")))

/* The symbol the host looks up in a plugin. */
#define MLG_ADAPTER_SYMBOL "maillage_adapter_plugin"

#endif
