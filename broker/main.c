/*  main.c: maillage-broker, the daemon.

        maillage-broker --config FILE [--endpoint URL] [--database URL]

    Reads and checks the configuration and the schemas (any error stops
    it here, with the file, key and problem), then runs the event loop
    until SIGTERM or SIGINT, and drains. SIGHUP reloads the agencies
    section (keys, ACLs, subscriptions). Exit 0 after a clean stop, 2 on
    a usage or configuration error, 1 if it could not start. */

#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "config.h"
#include "log.h"

#ifndef MLG_SQL_DIR
#define MLG_SQL_DIR "broker/sql"
#endif

static volatile sig_atomic_t s_stop = 0;
static volatile sig_atomic_t s_reload = 0;

static void
s_on_signal(int sig)
{
    if (sig == SIGHUP)
        s_reload = 1;
    else
        s_stop = 1;
}

static int
s_usage(FILE *out, int rc)
{
    fprintf(out,
            "usage: maillage-broker --config FILE [--endpoint URL] [--database URL]\n");
    return rc;
}

int
main(int argc, char **argv)
{
    const char *config = NULL, *endpoint = NULL, *database = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0)
            return s_usage(stdout, 0);
        if (i + 1 >= argc)
            return s_usage(stderr, 2);
        if (strcmp(argv[i], "--config") == 0)
            config = argv[++i];
        else if (strcmp(argv[i], "--endpoint") == 0)
            endpoint = argv[++i];
        else if (strcmp(argv[i], "--database") == 0)
            database = argv[++i];
        else
            return s_usage(stderr, 2);
    }
    if (!config)
        return s_usage(stderr, 2);

    char err[1024];
    brk_config_t *cfg = brk_config_load(config, err, sizeof(err));
    if (!cfg) {
        brk_log(BRK_LOG_ERROR, "config", "%s", err);
        return 2;
    }
    if (endpoint) {
        free(cfg->endpoint);
        cfg->endpoint = strdup(endpoint);
    }
    if (database) {
        free(cfg->database);
        cfg->database = strdup(database);
    }
    if (!cfg->curve)
        brk_log(BRK_LOG_WARNING, "config",
                "CURVE is off: the broker trusts the agency that HELLO names");
    mlg_registry_t *reg = mlg_registry_load(cfg->schemas, err, sizeof(err));
    if (reg && brk_notices_check(cfg, reg, err, sizeof(err)) != 0)
        mlg_registry_destroy(&reg);
    if (!reg) {
        brk_log(BRK_LOG_ERROR, "config", "%s", err);
        brk_config_destroy(&cfg);
        return 2;
    }
    brk_log(BRK_LOG_INFO, "config", "%s: %zu agencies, %zu schemas from %s", config,
            cfg->nagencies, mlg_registry_size(reg), cfg->schemas);

    /* our own handlers: czmq's would stop the store thread's poller too */
    zsys_handler_set(NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    const char *sql_dir =
        getenv("MAILLAGE_SQL_DIR") ? getenv("MAILLAGE_SQL_DIR") : MLG_SQL_DIR;
    brk_broker_t *broker = brk_broker_new(cfg, reg, sql_dir);
    int rc = 1;
    if (broker) {
        rc = brk_broker_run(broker, &s_stop, &s_reload);
        brk_broker_destroy(&broker);
        brk_log(BRK_LOG_INFO, "loop", "stopped");
    }
    mlg_registry_destroy(&reg);
    brk_config_destroy(&cfg);
    return rc;
}
