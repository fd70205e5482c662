/*  test_adapters.c: maillage-adapter with its sql and files plugins,
    against the real broker and PostgreSQL, as separate processes:

    - a row in agency A's outbox reaches agency B's inbox; a row the broker
      refuses is marked with the code and the reason;
    - a file dropped in A's in/ reaches B's out/ and moves to done/; a
      schema-invalid file ends in failed/ beside its reason; a file still
      being written is left alone; links planted in in/ and out/ are
      neither read nor written through;
    - 500 events streamed while the adapters are SIGKILLed at random
      points and restarted: none lost, none inserted twice;
    - the broker killed and restarted under running adapters, which carry
      on by themselves;
    - a plugin of another ABI, one built against another message layout,
      and a configuration with an unknown key, are refused with a clear
      message;
    - SIGTERM at any moment of an adapter's life stops it, exit code 0. */

#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>
#include <jansson.h>

#include "e2e.h"
#include "maillage/adapter.h"
#include "toolutil.h"

static brokerproc_t s_bp;
/* every adapter started and not yet stopped: a failed test leaves its
   adapters running, and the teardown kills them */
static pid_t s_running[64];
static char s_legacy_a[2048]; /* conninfo of agency A's own database (outbox) */
static char s_legacy_b[2048]; /* agency B's (inbox) */

static const char *s_agencies = "    ccas-paris-13\n"
                                "        name = \"CCAS Paris 13\"\n"
                                "        publish = \"service.*\"\n"
                                "    ehpad-les-tilleuls\n"
                                "        name = \"EHPAD\"\n"
                                "        publish = \"service.*\"\n";

typedef struct {
    pid_t pid;
    char cfg[400];
    char log[400];
    const char *plugin;
    bool term_pending; /* started with a SIGTERM blocked and pending */
} adapter_t;

/* ---- helpers ---------------------------------------------------------- */

static void
s_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *
s_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void
s_exec_sql(const char *conninfo, const char *sql)
{
    PGconn *conn = PQconnectdb(conninfo);
    assert_int_equal(PQstatus(conn), CONNECTION_OK);
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(conn));
    PQclear(r);
    PQfinish(conn);
}

static long
s_scalar(const char *conninfo, const char *sql)
{
    PGconn *conn = PQconnectdb(conninfo);
    long v = brokerproc_scalar(conn, sql);
    PQfinish(conn);
    return v;
}

/* Waits until `sql` gives `want`, up to timeout_ms; the last value. */
static long
s_wait_scalar(const char *conninfo, const char *sql, long want, int timeout_ms)
{
    PGconn *conn = PQconnectdb(conninfo);
    long v = e2e_wait_scalar(conn, want, timeout_ms, "%s", sql);
    PQfinish(conn);
    return v;
}

static void
s_adapter_config(adapter_t *a, const char *name, const char *plugin, const char *agency,
                 const char *plugin_section)
{
    snprintf(a->cfg, sizeof(a->cfg), "%s/%s.cfg", s_bp.dir, name);
    snprintf(a->log, sizeof(a->log), "%s/%s.log", s_bp.dir, name);
    a->plugin = plugin;
    FILE *f = fopen(a->cfg, "w");
    assert_non_null(f);
    fprintf(f,
            "adapter\n"
            "    agency = %s\n"
            "    endpoint = %s\n"
            "    client = \"%s@e2e\"\n"
            "    credit = 20\n"
            "    window = 50\n"
            "    poll_ms = 50\n"
            "plugin\n"
            "%s",
            agency, s_bp.endpoint, name, plugin_section);
    fclose(f);
}

static void
s_adapter_start(adapter_t *a)
{
    pid_t pid = e2e_adapter_spawn(a->plugin, a->cfg, a->log, a->term_pending);
    a->pid = pid;
    for (size_t i = 0; i < sizeof(s_running) / sizeof(s_running[0]); i++)
        if (s_running[i] == 0) {
            s_running[i] = pid;
            break;
        }
}

static void
s_pause_us(long us)
{
    struct timespec t = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&t, NULL);
}

/* The adapter `pid` has ended and was waited for. */
static void
s_forget(pid_t pid)
{
    for (size_t i = 0; i < sizeof(s_running) / sizeof(s_running[0]); i++)
        if (s_running[i] == pid)
            s_running[i] = 0;
}

static int
s_adapter_stop(adapter_t *a, int sig)
{
    if (a->pid <= 0)
        return -1;
    kill(a->pid, sig);
    int status = 0;
    waitpid(a->pid, &status, 0);
    s_forget(a->pid);
    a->pid = 0;
    if (sig != SIGKILL && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        fprintf(stderr, "adapter %s: %s %d\n", a->cfg,
                WIFSIGNALED(status) ? "killed by signal" : "exit code",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        e2e_show_log(a->log);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool
s_alive(const adapter_t *a)
{
    return a->pid > 0 && waitpid(a->pid, NULL, WNOHANG) == 0;
}

/* Runs the adapter to its end (a refused start); its exit code, and its
   stderr in *err. */
static int
s_adapter_run(const char *plugin, const char *cfg, char **err)
{
    char log[400];
    snprintf(log, sizeof(log), "%s/run.log", s_bp.dir);
    unlink(log);
    pid_t pid = e2e_adapter_spawn(plugin, cfg, log, false);
    int status = 0;
    waitpid(pid, &status, 0);
    *err = s_read_file(log);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static const char *
s_sql_section(const char *conninfo, bool outbox, bool inbox)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf),
             "    database = \"%s\"\n"
             "%s%s",
             conninfo, outbox ? "    outbox\n        table = maillage_outbox\n" : "",
             inbox ? "    inbox\n        table = maillage_inbox\n" : "");
    return buf;
}

/* Inserts n outbox rows in A's database, addressed to B, as the legacy
   system would; ids are made by the database. */
static void
s_outbox_insert(int n, int from)
{
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "insert into maillage_outbox (type, version, recipients, body) "
             "select 'service.capacity.changed', 1, array['ehpad-les-tilleuls'], "
             "jsonb_build_object('service_id', 'svc-' || g, 'service', 'home-care', "
             "'places_total', 40, 'places_available', g) "
             "from generate_series(%d, %d) g",
             from, from + n - 1);
    s_exec_sql(s_legacy_a, sql);
}

/* ---- setup ---------------------------------------------------------------- */

static int
s_setup(void **state)
{
    (void)state;
    if (e2e_broker_up(&s_bp, "e2e_adapters", "    heartbeat_ms = 300\n", s_agencies))
        return -1;
    char url[512];
    if (brokerproc_make_db("e2e_legacy_a", url, sizeof(url), s_legacy_a,
                           sizeof(s_legacy_a))
        || brokerproc_make_db("e2e_legacy_b", url, sizeof(url), s_legacy_b,
                              sizeof(s_legacy_b)))
        return -1;
    char path[600];
    snprintf(path, sizeof(path), "%s/adapters/sql/tables.sql", getenv("MLG_SOURCE_DIR"));
    char *tables = s_read_file(path);
    if (!tables)
        return -1;
    const char *dbs[] = {s_legacy_a, s_legacy_b};
    for (int i = 0; i < 2; i++) {
        PGconn *conn = PQconnectdb(dbs[i]);
        PGresult *r = PQexec(conn, tables);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            fprintf(stderr, "tables.sql: %s", PQerrorMessage(conn));
        PQclear(r);
        PQfinish(conn);
        if (!ok) {
            free(tables);
            return -1;
        }
    }
    free(tables);
    return 0;
}

/* After each test: the adapters a failed test left running are killed,
   or they would take the next tests' deliveries. */
static int
s_kill_leftovers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(s_running) / sizeof(s_running[0]); i++)
        if (s_running[i] > 0) {
            kill(s_running[i], SIGKILL);
            waitpid(s_running[i], NULL, 0);
            s_running[i] = 0;
        }
    return 0;
}

static int
s_teardown(void **state)
{
    s_kill_leftovers(state);
    brokerproc_cleanup(&s_bp);
    return 0;
}

static void
s_reset_legacy(void)
{
    s_exec_sql(s_legacy_a, "truncate maillage_outbox, maillage_inbox");
    s_exec_sql(s_legacy_b, "truncate maillage_outbox, maillage_inbox");
}

/* ---- tests ------------------------------------------------------------------ */

static void
test_sql_outbox_reaches_inbox(void **state)
{
    (void)state;
    s_reset_legacy();
    adapter_t a = {0}, b = {0};
    s_adapter_config(&a, "sql-a", "sql", "ccas-paris-13",
                     s_sql_section(s_legacy_a, true, false));
    s_adapter_config(&b, "sql-b", "sql", "ehpad-les-tilleuls",
                     s_sql_section(s_legacy_b, false, true));
    s_adapter_start(&a);
    s_adapter_start(&b);

    s_exec_sql(s_legacy_a,
               "insert into maillage_outbox (id, type, version, recipients, correlation, "
               "occurred_at, body) values ('0b9f7c7e-3f5c-4c1e-9a59-000000000001', "
               "'service.capacity.changed', 1, array['ehpad-les-tilleuls'], 'case-7', "
               "'2026-03-01T09:30:00Z', '{\"service_id\": \"ssiad-13\", \"service\": "
               "\"home-care\", \"places_total\": 40, \"places_available\": 3}')");
    /* refused by the broker: places_total missing */
    s_exec_sql(s_legacy_a,
               "insert into maillage_outbox (id, type, recipients, body) values "
               "('0b9f7c7e-3f5c-4c1e-9a59-000000000002', 'service.capacity.changed', "
               "array['ehpad-les-tilleuls'], '{\"service_id\": \"x\", \"service\": "
               "\"home-care\", \"places_available\": 3}')");
    /* refused by the plugin itself: not a valid envelope */
    s_exec_sql(s_legacy_a,
               "insert into maillage_outbox (id, type, recipients, body) values "
               "('0b9f7c7e-3f5c-4c1e-9a59-000000000003', 'Not A Type', "
               "array['ehpad-les-tilleuls'], '{}')");

    long got = s_wait_scalar(s_legacy_b, "select count(*) from maillage_inbox", 1, 15000);
    if (got != 1) {
        e2e_show_log(a.log);
        e2e_show_log(b.log);
    }
    assert_int_equal(got, 1);
    PGconn *conn = PQconnectdb(s_legacy_b);
    PGresult *r =
        PQexec(conn, "select id::text, type, version, sender, correlation, "
                     "occurred_at = '2026-03-01T09:30:00Z', body->>'service_id', "
                     "(body->>'places_available')::int, received_at is not null "
                     "from maillage_inbox");
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0), "0b9f7c7e-3f5c-4c1e-9a59-000000000001");
    assert_string_equal(PQgetvalue(r, 0, 1), "service.capacity.changed");
    assert_string_equal(PQgetvalue(r, 0, 2), "1");
    assert_string_equal(PQgetvalue(r, 0, 3), "ccas-paris-13");
    assert_string_equal(PQgetvalue(r, 0, 4), "case-7");
    assert_string_equal(PQgetvalue(r, 0, 5), "t");
    assert_string_equal(PQgetvalue(r, 0, 6), "ssiad-13");
    assert_string_equal(PQgetvalue(r, 0, 7), "3");
    assert_string_equal(PQgetvalue(r, 0, 8), "t");
    PQclear(r);
    PQfinish(conn);

    /* the outbox says what became of each row */
    assert_int_equal(
        s_wait_scalar(s_legacy_a,
                      "select count(*) from maillage_outbox where sent_at is not "
                      "null or error_code is not null",
                      3, 10000),
        3);
    conn = PQconnectdb(s_legacy_a);
    r = PQexec(conn,
               "select right(id::text, 1), sent_at is not null, broker_seq is not null, "
               "coalesce(error_code, ''), coalesce(error_reason, '') "
               "from maillage_outbox order by id");
    assert_int_equal(PQntuples(r), 3);
    assert_string_equal(PQgetvalue(r, 0, 1), "t");
    assert_string_equal(PQgetvalue(r, 0, 2), "t");
    assert_string_equal(PQgetvalue(r, 0, 3), "");
    assert_string_equal(PQgetvalue(r, 1, 1), "f");
    assert_string_equal(PQgetvalue(r, 1, 3), "INVALID");
    assert_non_null(strstr(PQgetvalue(r, 1, 4), "/places_total"));
    assert_string_equal(PQgetvalue(r, 2, 1), "f");
    assert_string_equal(PQgetvalue(r, 2, 3), "MALFORMED");
    PQclear(r);
    PQfinish(conn);

    /* the broker stored the first only, and B acked it */
    PGconn *db = brokerproc_db(&s_bp);
    assert_int_equal(brokerproc_scalar(db, "select count(*) from messages where id = "
                                           "'0b9f7c7e-3f5c-4c1e-9a59-000000000001'"),
                     1);
    assert_int_equal(brokerproc_scalar(db, "select count(*) from messages where id in "
                                           "('0b9f7c7e-3f5c-4c1e-9a59-000000000002', "
                                           "'0b9f7c7e-3f5c-4c1e-9a59-000000000003')"),
                     0);
    assert_int_equal(e2e_wait_scalar(db, 1, 5000,
                                     "select count(*) from deliveries where message_id = "
                                     "'0b9f7c7e-3f5c-4c1e-9a59-000000000001' and state = "
                                     "'acked'"),
                     1);
    PQfinish(db);

    assert_int_equal(s_adapter_stop(&a, SIGTERM), 0);
    assert_int_equal(s_adapter_stop(&b, SIGTERM), 0);
}

/* Waits for a file to exist (lstat: a link counts); true when it does. */
static bool
s_wait_exists(const char *path, int timeout_ms)
{
    struct stat st;
    int64_t deadline = zclock_mono() + timeout_ms;
    while (lstat(path, &st) != 0) {
        if (zclock_mono() >= deadline)
            return false;
        zclock_sleep(25);
    }
    return true;
}

/* Writes `text` to dir/.NAME.part, then renames it dir/NAME: the adapter
   may poll at any moment, and must see the whole file or none of it. */
static void
s_drop(const char *dir, const char *name, const char *text)
{
    char tmp[800], path[800];
    snprintf(tmp, sizeof(tmp), "%s/.%s.part", dir, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    s_write_file(tmp, text);
    assert_int_equal(rename(tmp, path), 0);
}

/* The two files adapters of a test, named name-a and name-b: A
   (ccas-paris-13) on the folder `a_setting` (as its configuration says
   it: relative to the configuration's folder, or absolute) that is
   dir_a, and B (ehpad-les-tilleuls) on dir_b; started, and A's in/ and
   B's out/ made. */
static void
s_files_pair(adapter_t *a, adapter_t *b, const char *name, const char *a_setting,
             const char *dir_a, const char *dir_b)
{
    char cfg_name[64], section[600], path[800];
    snprintf(cfg_name, sizeof(cfg_name), "%s-a", name);
    snprintf(section, sizeof(section), "    dir = %s\n", a_setting);
    s_adapter_config(a, cfg_name, "files", "ccas-paris-13", section);
    snprintf(cfg_name, sizeof(cfg_name), "%s-b", name);
    snprintf(section, sizeof(section), "    dir = %s\n", dir_b);
    s_adapter_config(b, cfg_name, "files", "ehpad-les-tilleuls", section);
    s_adapter_start(a);
    s_adapter_start(b);
    /* the folders are made by the adapters */
    snprintf(path, sizeof(path), "%s/in", dir_a);
    assert_true(s_wait_exists(path, 5000));
    snprintf(path, sizeof(path), "%s/out", dir_b);
    assert_true(s_wait_exists(path, 5000));
}

/* The files of dir whose names do not start with a dot, once there are
   `want` of them or after 5 s. */
static int
s_count_files(const char *dir, int want)
{
    int files = 0;
    for (int i = 0; i < 100; i++) {
        files = 0;
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d && (e = readdir(d)))
            files += e->d_name[0] != '.';
        if (d)
            closedir(d);
        if (files >= want)
            break;
        zclock_sleep(50);
    }
    return files;
}

/* In A's in/: a file still being written (its name does not end in
   .json), a good event, a schema-invalid one (places_available is a
   string) and one with no id; each complete one written then renamed. */
static void
s_drop_four(const char *dir_a)
{
    char in[600], tmp[800];
    snprintf(in, sizeof(in), "%s/in", dir_a);
    snprintf(tmp, sizeof(tmp), "%s/.capacity.json.tmp", in);
    s_write_file(tmp, "{\"type\": \"service.capacity.changed\", \"vers");
    s_drop(in, "good.json",
           "{\"id\": \"7d1e0c1a-4b7e-4e0b-8f5e-0000000000f1\", "
           "\"type\": \"service.capacity.changed\", \"version\": 1, "
           "\"to\": [\"ehpad-les-tilleuls\"], \"correlation\": \"files-1\", "
           "\"body\": {\"service_id\": \"ssiad-13\", \"service\": \"home-care\", "
           "\"places_total\": 40, \"places_available\": 12}}");
    s_drop(in, "invalid.json",
           "{\"id\": \"7d1e0c1a-4b7e-4e0b-8f5e-0000000000f2\", "
           "\"type\": \"service.capacity.changed\", \"version\": 1, "
           "\"to\": [\"ehpad-les-tilleuls\"], "
           "\"body\": {\"service_id\": \"ssiad-13\", \"service\": \"home-care\", "
           "\"places_total\": 40, \"places_available\": \"many\"}}");
    s_drop(in, "noid.json",
           "{\"type\": \"service.capacity.changed\", \"version\": 1, "
           "\"to\": [\"ehpad-les-tilleuls\"], "
           "\"body\": {\"service_id\": \"noid\", \"service\": \"home-care\", "
           "\"places_total\": 1, \"places_available\": 1}}");
}

/* B's out/ gets the good one as JSON, from A, with its correlation and
   body and the time the broker received it. */
static void
s_good_reaches_b(const char *dir_b, const adapter_t *a, const adapter_t *b)
{
    char path[800];
    snprintf(path, sizeof(path), "%s/out/7d1e0c1a-4b7e-4e0b-8f5e-0000000000f1.json",
             dir_b);
    char *text = NULL;
    for (int i = 0; i < 300 && !(text = s_read_file(path)); i++)
        zclock_sleep(50);
    if (!text) {
        e2e_show_log(a->log);
        e2e_show_log(b->log);
    }
    assert_non_null(text);
    json_error_t jerr;
    json_t *got = json_loads(text, 0, &jerr);
    free(text);
    assert_non_null(got);
    assert_string_equal(json_string_value(json_object_get(got, "from")), "ccas-paris-13");
    assert_string_equal(json_string_value(json_object_get(got, "type")),
                        "service.capacity.changed");
    assert_string_equal(json_string_value(json_object_get(got, "correlation")),
                        "files-1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(got, "body"),
                                                        "places_available")),
                     12);
    assert_non_null(json_string_value(json_object_get(got, "received_at")));
    json_decref(got);
}

/* A's files: good and noid in done/, invalid in failed/ with its
   reason, the partial file untouched in in/. */
static void
s_files_sorted(const char *dir_a)
{
    char path[800];
    struct stat st;
    char *text = NULL;
    snprintf(path, sizeof(path), "%s/failed/invalid.json.error", dir_a);
    for (int i = 0; i < 200 && !(text = s_read_file(path)); i++)
        zclock_sleep(50);
    assert_non_null(text);
    assert_non_null(strstr(text, "INVALID"));
    assert_non_null(strstr(text, "/places_available"));
    free(text);
    snprintf(path, sizeof(path), "%s/failed/invalid.json", dir_a);
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof(path), "%s/done/noid.json", dir_a);
    for (int i = 0; i < 200 && stat(path, &st) != 0; i++)
        zclock_sleep(50);
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof(path), "%s/done/good.json", dir_a);
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof(path), "%s/in/good.json", dir_a);
    assert_int_not_equal(stat(path, &st), 0);
    snprintf(path, sizeof(path), "%s/in/.capacity.json.tmp", dir_a);
    assert_int_equal(stat(path, &st), 0);
}

static void
test_files_drop_folder(void **state)
{
    (void)state;
    char dir_a[400], dir_b[400], out[500];
    snprintf(dir_a, sizeof(dir_a), "%s/drop-a", s_bp.dir);
    snprintf(dir_b, sizeof(dir_b), "%s/drop-b", s_bp.dir);
    adapter_t a = {0}, b = {0};
    /* A's folder relative to its configuration's (the broker's folder),
       B's absolute */
    s_files_pair(&a, &b, "files", "drop-a", dir_a, dir_b);
    s_drop_four(dir_a);
    s_good_reaches_b(dir_b, &a, &b);
    s_files_sorted(dir_a);
    /* B got two events in all: good and noid */
    snprintf(out, sizeof(out), "%s/out", dir_b);
    assert_int_equal(s_count_files(out, 2), 2);

    assert_int_equal(s_adapter_stop(&a, SIGTERM), 0);
    assert_int_equal(s_adapter_stop(&b, SIGTERM), 0);
}

/* Links planted in the drop folders by someone else who can write there:
   one in in/ is never read (what it points to reaches neither failed/
   nor the broker), one in out/ in the place of a delivery's file or of
   its temporary file is never written through. */

/* out/: both names of the coming delivery `id` are links to files of
   B's (precious-1 and precious-2 in the broker's folder). */
static void
s_plant_out_links(const char *dir_b, const char *id)
{
    char target[800], path[800];
    snprintf(target, sizeof(target), "%s/precious-1", s_bp.dir);
    s_write_file(target, "PRECIOUS-1\n");
    snprintf(path, sizeof(path), "%s/out/.%s.json.tmp", dir_b, id);
    assert_int_equal(symlink(target, path), 0);
    snprintf(target, sizeof(target), "%s/precious-2", s_bp.dir);
    s_write_file(target, "PRECIOUS-2\n");
    snprintf(path, sizeof(path), "%s/out/%s.json", dir_b, id);
    assert_int_equal(symlink(target, path), 0);
}

/* in/: links to a secret that is not JSON (leak.json), and to one that
   is an event (leak-event.json). */
static void
s_plant_in_links(const char *dir_a)
{
    char secret[800], path[800];
    snprintf(secret, sizeof(secret), "%s/secret.txt", s_bp.dir);
    s_write_file(secret, "SECRET-TOKEN-4242 and more\n");
    snprintf(path, sizeof(path), "%s/in/leak.json", dir_a);
    assert_int_equal(symlink(secret, path), 0);
    snprintf(secret, sizeof(secret), "%s/secret.json", s_bp.dir);
    s_write_file(secret, "{\"id\": \"7d1e0c1a-4b7e-4e0b-8f5e-0000000000a2\", "
                         "\"type\": \"service.capacity.changed\", \"version\": 1, "
                         "\"to\": [\"ehpad-les-tilleuls\"], "
                         "\"body\": {\"service_id\": \"SECRET-SERVICE\", \"service\": "
                         "\"home-care\", \"places_total\": 4, \"places_available\": 2}}");
    snprintf(path, sizeof(path), "%s/in/leak-event.json", dir_a);
    assert_int_equal(symlink(secret, path), 0);
}

/* The links in in/ are dealt with: each moves on, unread (their errors
   do not quote the secret, and the event behind one is not stored). */
static void
s_in_links_unread(const char *dir_a, const adapter_t *a, const adapter_t *b)
{
    char path[800], done_path[800], failed_path[800];
    snprintf(path, sizeof(path), "%s/failed/leak.json.error", dir_a);
    bool leak_done = s_wait_exists(path, 15000);
    snprintf(done_path, sizeof(done_path), "%s/done/leak-event.json", dir_a);
    snprintf(failed_path, sizeof(failed_path), "%s/failed/leak-event.json.error", dir_a);
    bool event_done = false;
    for (int i = 0; i < 300 && !event_done; i++, zclock_sleep(50))
        event_done = s_wait_exists(done_path, 0) || s_wait_exists(failed_path, 0);
    if (!leak_done || !event_done) {
        e2e_show_log(a->log);
        e2e_show_log(b->log);
    }
    assert_true(leak_done);
    assert_true(event_done);
    char *error = s_read_file(path);
    assert_non_null(error);
    if (strstr(error, "SECRET"))
        fail_msg("failed/leak.json.error shows the secret: %s", error);
    assert_non_null(strstr(error, "NOT_A_FILE"));
    free(error);
    error = s_read_file(failed_path);
    assert_non_null(error);
    assert_null(strstr(error, "SECRET"));
    free(error);
    PGconn *db = brokerproc_db(&s_bp);
    assert_int_equal(brokerproc_scalar(db, "select count(*) from messages where id = "
                                           "'7d1e0c1a-4b7e-4e0b-8f5e-0000000000a2'"),
                     0);
    PQfinish(db);
}

/* The real event `id` reaches B's out/ as a file of its own (and B acks
   it); the files the links pointed to are untouched. */
static void
s_real_reaches_b(const char *dir_b, const char *id, const adapter_t *a,
                 const adapter_t *b)
{
    PGconn *db = brokerproc_db(&s_bp);
    long acked = e2e_wait_scalar(db, 1, 15000,
                                 "select count(*) from deliveries where message_id = '%s'"
                                 " and state = 'acked'",
                                 id);
    PQfinish(db);
    if (acked != 1) {
        e2e_show_log(a->log);
        e2e_show_log(b->log);
    }
    assert_int_equal(acked, 1);
    char path[800];
    for (int k = 1; k <= 2; k++) {
        char want[32];
        snprintf(path, sizeof(path), "%s/precious-%d", s_bp.dir, k);
        snprintf(want, sizeof(want), "PRECIOUS-%d\n", k);
        char *got = s_read_file(path);
        assert_non_null(got);
        assert_string_equal(got, want);
        free(got);
    }
    struct stat st;
    snprintf(path, sizeof(path), "%s/out/%s.json", dir_b, id);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    char *got = s_read_file(path);
    assert_non_null(got);
    assert_non_null(strstr(got, "\"real\""));
    free(got);
}

static void
test_files_planted_links(void **state)
{
    (void)state;
    char dir_a[400], dir_b[400], in[500], text[600];
    snprintf(dir_a, sizeof(dir_a), "%s/links-a", s_bp.dir);
    snprintf(dir_b, sizeof(dir_b), "%s/links-b", s_bp.dir);
    adapter_t a = {0}, b = {0};
    s_files_pair(&a, &b, "links", dir_a, dir_a, dir_b);
    const char *id = "7d1e0c1a-4b7e-4e0b-8f5e-0000000000a1";
    s_plant_out_links(dir_b, id);
    s_plant_in_links(dir_a);
    /* and a real event for B, written then renamed */
    snprintf(in, sizeof(in), "%s/in", dir_a);
    snprintf(text, sizeof(text),
             "{\"id\": \"%s\", \"type\": \"service.capacity.changed\", \"version\": 1, "
             "\"to\": [\"ehpad-les-tilleuls\"], \"body\": {\"service_id\": \"real\", "
             "\"service\": \"home-care\", \"places_total\": 4, \"places_available\": 1}}",
             id);
    s_drop(in, "real.json", text);
    s_in_links_unread(dir_a, &a, &b);
    s_real_reaches_b(dir_b, id, &a, &b);
    assert_int_equal(s_adapter_stop(&a, SIGTERM), 0);
    assert_int_equal(s_adapter_stop(&b, SIGTERM), 0);
}

static void
test_sql_survives_sigkill(void **state)
{
    (void)state;
    s_reset_legacy();
    adapter_t a = {0}, b = {0};
    s_adapter_config(&a, "kill-a", "sql", "ccas-paris-13",
                     s_sql_section(s_legacy_a, true, false));
    s_adapter_config(&b, "kill-b", "sql", "ehpad-les-tilleuls",
                     s_sql_section(s_legacy_b, false, true));
    PGconn *db = brokerproc_db(&s_bp);
    const char *count_sql =
        "select count(*) from messages where sender = 'ccas-paris-13'";
    long before = brokerproc_scalar(db, count_sql);
    s_adapter_start(&a);
    s_adapter_start(&b);
    unsigned seed = (unsigned)time(NULL);
    fprintf(stderr, "random seed %u\n", seed);
    srand(seed);
    int kills = 0;
    /* 500 events in ten bursts; after each, a random pause and a SIGKILL
       of A, B or both, then a restart */
    for (int burst = 0; burst < 10; burst++) {
        s_outbox_insert(50, burst * 50 + 1);
        zclock_sleep(20 + rand() % 300);
        int which = rand() % 3;
        if (which != 1) {
            s_adapter_stop(&a, SIGKILL);
            kills++;
        }
        if (which != 0) {
            s_adapter_stop(&b, SIGKILL);
            kills++;
        }
        zclock_sleep(rand() % 100);
        if (!a.pid)
            s_adapter_start(&a);
        if (!b.pid)
            s_adapter_start(&b);
    }
    fprintf(stderr, "%d SIGKILLs\n", kills);
    long got =
        s_wait_scalar(s_legacy_b, "select count(*) from maillage_inbox", 500, 60000);
    if (got != 500) {
        e2e_show_log(a.log);
        e2e_show_log(b.log);
    }
    assert_int_equal(got, 500);
    /* the same 500 ids on both sides, each once */
    PGconn *conn = PQconnectdb(s_legacy_b);
    PGresult *r =
        PQexec(conn, "select count(distinct id), count(distinct body->>'service_id') "
                     "from maillage_inbox");
    assert_string_equal(PQgetvalue(r, 0, 0), "500");
    assert_string_equal(PQgetvalue(r, 0, 1), "500");
    PQclear(r);
    PQfinish(conn);
    assert_int_equal(
        s_wait_scalar(s_legacy_a,
                      "select count(*) from maillage_outbox where sent_at is not null",
                      500, 20000),
        500);
    assert_int_equal(s_scalar(s_legacy_a, "select count(*) from maillage_outbox where "
                                          "error_code is not null"),
                     0);
    /* the broker stored each event once; every delivery ends acked */
    assert_int_equal(brokerproc_scalar(db, count_sql) - before, 500);
    assert_int_equal(e2e_wait_scalar(db, 0, 10000,
                                     "select count(*) from deliveries where recipient = "
                                     "'ehpad-les-tilleuls' and state = 'pending'"),
                     0);
    assert_int_equal(
        brokerproc_scalar(db, "select count(*) from deliveries where state = 'dead'"), 0);
    PQfinish(db);
    s_adapter_stop(&a, SIGTERM);
    s_adapter_stop(&b, SIGTERM);
}

static void
test_broker_restart_under_adapters(void **state)
{
    (void)state;
    s_reset_legacy();
    adapter_t a = {0}, b = {0};
    s_adapter_config(&a, "restart-a", "sql", "ccas-paris-13",
                     s_sql_section(s_legacy_a, true, false));
    s_adapter_config(&b, "restart-b", "sql", "ehpad-les-tilleuls",
                     s_sql_section(s_legacy_b, false, true));
    s_adapter_start(&a);
    s_adapter_start(&b);
    s_outbox_insert(20, 1);
    assert_int_equal(
        s_wait_scalar(s_legacy_b, "select count(*) from maillage_inbox", 20, 15000), 20);

    /* the broker dies; events keep coming into the outbox */
    brokerproc_stop(&s_bp, SIGKILL);
    s_outbox_insert(20, 21);
    zclock_sleep(1500);
    assert_int_equal(s_scalar(s_legacy_b, "select count(*) from maillage_inbox"), 20);
    assert_true(s_alive(&a));
    assert_true(s_alive(&b));
    assert_int_equal(brokerproc_start(&s_bp), 0);
    s_outbox_insert(20, 41);

    long got =
        s_wait_scalar(s_legacy_b, "select count(*) from maillage_inbox", 60, 30000);
    if (got != 60) {
        e2e_show_log(a.log);
        e2e_show_log(b.log);
    }
    assert_int_equal(got, 60);
    assert_int_equal(
        s_wait_scalar(s_legacy_a,
                      "select count(*) from maillage_outbox where sent_at is not null",
                      60, 10000),
        60);
    /* the same processes all along */
    assert_true(s_alive(&a));
    assert_true(s_alive(&b));
    char *log = s_read_file(a.log);
    assert_non_null(log);
    assert_non_null(strstr(log, "joined"));
    free(log);
    assert_int_equal(s_adapter_stop(&a, SIGTERM), 0);
    assert_int_equal(s_adapter_stop(&b, SIGTERM), 0);
}

static void
test_refuses_bad_plugin_and_config(void **state)
{
    (void)state;
    char *err = NULL;
    adapter_t a = {0};
    s_adapter_config(&a, "abi", "files", "ccas-paris-13", "    dir = abi\n");
    assert_int_equal(s_adapter_run(getenv("MLG_OLD_PLUGIN"), a.cfg, &err), 2);
    assert_non_null(err);
    assert_non_null(strstr(err, "ABI 999"));
    assert_non_null(strstr(err, "ABI 2"));
    free(err);
    /* the same ABI, built against other limits: refused, both named */
    assert_int_equal(s_adapter_run(getenv("MLG_LAYOUT_PLUGIN"), a.cfg, &err), 2);
    assert_non_null(err);
    char layouts[64];
    snprintf(layouts, sizeof(layouts), "layout %08x; this host's is %08x",
             (unsigned)(MLG_MSG_LAYOUT + 1), (unsigned)MLG_MSG_LAYOUT);
    assert_non_null(strstr(err, layouts));
    free(err);

    s_adapter_config(&a, "typo", "sql", "ccas-paris-13",
                     "    database = \"dbname=x\"\n    outbox\n        tabel = t\n");
    assert_int_equal(s_adapter_run("sql", a.cfg, &err), 2);
    assert_non_null(strstr(err, "outbox/tabel"));
    free(err);

    s_adapter_config(&a, "noplugin", "files", "ccas-paris-13", "    dir = x\n");
    assert_int_equal(s_adapter_run("no-such-plugin", a.cfg, &err), 2);
    assert_non_null(strstr(err, "cannot load plugin"));
    free(err);
}

/* SIGTERM at any moment ends the adapter and never goes unheard:

   - an adapter started with a SIGTERM pending (blocked by its parent)
     takes it as soon as it starts, and exits 0;
   - 200 adapters are sent SIGTERM at random moments of their start
     (0 to 25 ms after the fork). Each must be gone within 5 s: exit code
     0, or killed by the signal when it came before main() had a handler.
     A SIGTERM caught by czmq's own handler during zsys_init() used to be
     lost, and the adapter ran on for ever;
   - 20 more once they are up (before and after joining, while events
     flow), the files and the sql plugins alternately: exit code 0. */
static void
test_sigterm_stops_cleanly(void **state)
{
    (void)state;
    s_reset_legacy();
    unsigned seed = (unsigned)time(NULL);
    fprintf(stderr, "random seed %u\n", seed);
    srand(seed);

    adapter_t a = {0};
    s_adapter_config(&a, "term-early", "files", "ccas-paris-13", "    dir = term\n");
    a.term_pending = true;
    s_adapter_start(&a);
    a.term_pending = false;
    int status = 0;
    pid_t done = 0;
    for (int64_t end = zclock_mono() + 5000; !done && zclock_mono() < end;)
        if (!(done = waitpid(a.pid, &status, WNOHANG)))
            zclock_sleep(5);
    if (!done) {
        kill(a.pid, SIGKILL);
        waitpid(a.pid, &status, 0);
    }
    s_forget(a.pid);
    a.pid = 0;
    if (!done)
        fail_msg("an adapter started with a SIGTERM pending did not stop");
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    int clean = 0, early = 0, deaf = 0, other = 0;
    for (int round = 0; round < 200; round++) {
        s_adapter_start(&a);
        s_pause_us(rand() % 25000);
        kill(a.pid, SIGTERM);
        status = 0;
        done = 0;
        for (int64_t end = zclock_mono() + 5000; !done && zclock_mono() < end;) {
            done = waitpid(a.pid, &status, WNOHANG);
            if (!done)
                zclock_sleep(5);
        }
        if (!done) {
            deaf++;
            kill(a.pid, SIGKILL);
            waitpid(a.pid, &status, 0);
        }
        else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            clean++;
        else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM)
            early++;
        else
            other++;
        s_forget(a.pid);
        a.pid = 0;
    }
    fprintf(stderr,
            "SIGTERM during the start: %d exited 0, %d killed before main, %d did not "
            "stop, %d other\n",
            clean, early, deaf, other);
    if (deaf || other)
        e2e_show_log(a.log);
    assert_int_equal(deaf, 0);
    assert_int_equal(other, 0);

    adapter_t b = {0};
    s_adapter_config(&b, "term-b", "sql", "ehpad-les-tilleuls",
                     s_sql_section(s_legacy_b, false, true));
    s_adapter_start(&b);
    for (int round = 0; round < 20; round++) {
        char name[64], section[100];
        snprintf(name, sizeof(name), "term-%d", round);
        snprintf(section, sizeof(section), "    dir = %s\n", name);
        s_adapter_config(&a, name, round % 2 ? "sql" : "files", "ccas-paris-13",
                         round % 2 ? s_sql_section(s_legacy_a, true, false) : section);
        s_adapter_start(&a);
        assert_int_equal(tool_wait_text(a.log, "open;", 0, 10000), 0);
        if (round % 4 >= 2)
            assert_int_equal(tool_wait_text(a.log, "joined", 0, 10000), 0);
        if (round % 4 == 3)
            s_outbox_insert(20, round * 100);
        s_pause_us(rand() % 60000);
        assert_int_equal(s_adapter_stop(&a, SIGTERM), 0);
    }
    assert_int_equal(s_adapter_stop(&b, SIGTERM), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_refuses_bad_plugin_and_config, s_kill_leftovers),
        cmocka_unit_test_teardown(test_sql_outbox_reaches_inbox, s_kill_leftovers),
        cmocka_unit_test_teardown(test_files_drop_folder, s_kill_leftovers),
        cmocka_unit_test_teardown(test_files_planted_links, s_kill_leftovers),
        cmocka_unit_test_teardown(test_sql_survives_sigkill, s_kill_leftovers),
        cmocka_unit_test_teardown(test_broker_restart_under_adapters, s_kill_leftovers),
        cmocka_unit_test_teardown(test_sigterm_stops_cleanly, s_kill_leftovers),
    };
    /* MLG_TEST_FILTER=test_sigterm* runs the matching tests only */
    if (getenv("MLG_TEST_FILTER"))
        cmocka_set_test_filter(getenv("MLG_TEST_FILTER"));
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
