/*  test_upgrade.c: a database filled by the broker on the layout before
    the hot-path migrations (the migrations up to 0006, through
    MAILLAGE_SQL_DIR), then served by a broker with every migration: it
    migrates the database at start, `maillage verify` passes, what was
    pending is delivered, what was settled stays settled, and new
    publishes go in and verify too. */

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>

#include "e2e.h"
#include "maillage/client.h"

/* the first migration of the layout this test upgrades from */
#define S_FIRST_NEW "0007"
#define S_SENT 6

static const char *s_agencies = "    ccas-paris-13\n"
                                "        name = \"CCAS Paris 13\"\n"
                                "        publish = \"child.protection.alert\"\n"
                                "    cd91\n"
                                "        name = \"Essonne\"\n";

/* A folder with the project's migrations before S_FIRST_NEW (links). */
static void
s_old_migrations(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/mlg-old-sql-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char src[512];
    snprintf(src, sizeof(src), "%s/broker/sql", getenv("MLG_SOURCE_DIR"));
    DIR *d = opendir(src);
    assert_non_null(d);
    int linked = 0;
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, S_FIRST_NEW) >= 0)
            continue;
        char from[1024], to[1024];
        snprintf(from, sizeof(from), "%s/%s", src, e->d_name);
        snprintf(to, sizeof(to), "%s/%s", dir, e->d_name);
        assert_int_equal(symlink(from, to), 0);
        linked++;
    }
    closedir(d);
    assert_int_equal(linked, 6);
}

static void
s_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.')
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* On the old layout: S_SENT alerts to cd91; two acked, one refused
   (dead), three left pending (sent or not when the client leaves). Their
   ids in ids, pending last. */
static void
s_fill_old(brokerproc_t *bp, char ids[S_SENT][37])
{
    mlg_client_t *pub = e2e_client(bp, "ccas-paris-13", 0);
    for (int i = 0; i < S_SENT; i++) {
        mlg_msg_t *m = e2e_alert(ids[i], "cd91", "P-UPGRADE");
        e2e_confirmed(pub, &m);
    }
    mlg_client_destroy(&pub);
    mlg_client_t *sub = e2e_client(bp, "cd91", 3);
    for (int i = 0; i < 3; i++) {
        mlg_msg_t *d = e2e_expect(sub, MLG_OP_DELIVER, 5000);
        assert_string_equal(d->id, ids[i]);
        if (i < 2)
            assert_int_equal(mlg_client_ack(sub, d->delivery), MLG_OK);
        else
            assert_int_equal(mlg_client_nack(sub, d->delivery, false, "refused"), MLG_OK);
        mlg_msg_destroy(&d);
    }
    PGconn *db = brokerproc_db(bp);
    assert_int_equal(e2e_wait_scalar(db, 3, 10000,
                                     "select count(*) from deliveries where state in"
                                     " ('acked', 'dead')"),
                     3);
    PQfinish(db);
    mlg_client_destroy(&sub);
}

static void
test_upgrade_moves_data_verifies_and_serves(void **state)
{
    (void)state;
    char old[64];
    s_old_migrations(old, sizeof(old));
    brokerproc_t bp;
    setenv("MAILLAGE_SQL_DIR", old, 1);
    int up = e2e_broker_up(&bp, "e2e_upgrade", NULL, s_agencies);
    unsetenv("MAILLAGE_SQL_DIR");
    assert_int_equal(up, 0);
    char ids[S_SENT][37];
    s_fill_old(&bp, ids);
    assert_int_equal(brokerproc_stop(&bp, SIGTERM), 0);
    PGconn *db = brokerproc_db(&bp);
    assert_int_equal(e2e_scalar(db, "select count(*) from schema_migrations"), 6);
    assert_int_equal(e2e_scalar(db, "select count(*) from pg_constraint"
                                    " where conname = 'deliveries_message_id_fkey'"),
                     1);

    /* every migration: the database moves at start */
    assert_int_equal(e2e_broker_start(&bp), 0);
    assert_true(e2e_scalar(db, "select count(*) from schema_migrations") > 6);
    assert_int_equal(e2e_scalar(db, "select count(*) from pg_constraint"
                                    " where conname = 'deliveries_message_id_fkey'"),
                     0);
    assert_int_equal(e2e_verify_chain(&bp), 0);

    /* served: the three pending come, in order, then a new one */
    mlg_client_t *sub = e2e_client(&bp, "cd91", 10);
    for (int i = 3; i < S_SENT; i++) {
        mlg_msg_t *d = e2e_expect(sub, MLG_OP_DELIVER, 5000);
        assert_string_equal(d->id, ids[i]);
        assert_int_equal(mlg_client_ack(sub, d->delivery), MLG_OK);
        mlg_msg_destroy(&d);
    }
    mlg_client_t *pub = e2e_client(&bp, "ccas-paris-13", 0);
    char id[37];
    mlg_msg_t *m = e2e_alert(id, "cd91", "P-UPGRADE");
    e2e_confirmed(pub, &m);
    mlg_msg_t *d = e2e_expect(sub, MLG_OP_DELIVER, 5000);
    assert_string_equal(d->id, id);
    assert_int_equal(mlg_client_ack(sub, d->delivery), MLG_OK);
    mlg_msg_destroy(&d);
    assert_null(e2e_next_deliver(sub, 300)); /* nothing twice */
    assert_int_equal(
        e2e_wait_scalar(db, S_SENT, 10000,
                        "select count(*) from deliveries where state = 'acked'"
                        " and attempts >= 1"),
        S_SENT);
    assert_int_equal(e2e_scalar(db,
                                "select count(*) from deliveries where state = 'dead'"
                                " and message_id = '%s'",
                                ids[2]),
                     1);
    assert_int_equal(e2e_scalar(db, "select count(*) from messages"), S_SENT + 1);
    assert_int_equal(e2e_verify_chain(&bp), 0);
    mlg_client_destroy(&pub);
    mlg_client_destroy(&sub);
    PQfinish(db);
    assert_int_equal(e2e_broker_down(&bp), 0);
    s_remove_dir(old);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upgrade_moves_data_verifies_and_serves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
