/*  test_cli_referrals.c: the operator CLI's referral commands against the
    real broker and PostgreSQL. Real referrals go through the broker (one
    to two care homes, accepted and started, the other leg superseded; a
    second one for the same person and service, a duplicate, declined as
    such; one declined for lack of places after the consent was revoked;
    one of home care left past its two-second deadline), then `referrals`
    with each filter, `referral ID` and `referrals stats` are checked in
    table and JSON form against what was done, with their errors; and
    subject-report gains the person's legs. No output but subject-report
    holds a person's name, a body's text or the subject. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <czmq.h>
#include <jansson.h>

#include "brokerproc.h"
#include "e2e.h"
#include "maillage/client.h"
#include "maillage/json.h"

static brokerproc_t s_bp;
static PGconn *s_db;
static char s_r1[37], s_r2[37], s_r3[37], s_r4[37], s_r5[37]; /* the referrals */

static const char *s_config = "    ccas\n"
                              "        name = \"CCAS\"\n"
                              "        publish = \"referral.*, consent.*\"\n"
                              "    cd75\n"
                              "        name = \"Departement\"\n"
                              "        publish = \"referral.*, consent.*\"\n"
                              "    ehpad-a\n"
                              "        name = \"EHPAD A\"\n"
                              "        publish = \"referral.*, consent.*\"\n"
                              "    ehpad-b\n"
                              "        name = \"EHPAD B\"\n"
                              "        publish = \"referral.*, consent.*\"\n"
                              "    saad\n"
                              "        name = \"Aide a domicile\"\n"
                              "        publish = \"referral.*, consent.*\"\n"
                              "referrals\n"
                              "    deadline\n"
                              "        home-care\n"
                              "            routine = 2s\n";

/* What no output but subject-report may hold: the name and the reason
   in the bodies of referral.created, and the subjects. */
static const char *s_private[] = {"E. Martin", "autonomie", "P-1", "P-3", "P-4", "P-5"};

static int
setup(void **state)
{
    (void)state;
    return e2e_broker_up_db(&s_bp, &s_db, "e2e_cli_referrals",
                            "    heartbeat_ms = 5000\n", s_config);
}

static int
teardown(void **state)
{
    (void)state;
    return e2e_broker_down_db(&s_bp, &s_db);
}

/* Runs the CLI; its stdout in *out and its stderr in *err (malloc'd),
   its exit code returned. */
static int
cli(char **out, char **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *args = zsys_vprintf(fmt, ap);
    va_end(ap);
    assert_non_null(args);
    char path[300], epath[310];
    snprintf(path, sizeof(path), "%s/cli.out", s_bp.dir);
    snprintf(epath, sizeof(epath), "%s.err", path);
    char *cmd = zsys_sprintf("%s --database '%s' %s >%s 2>%s", getenv("MLG_CLI_BIN"),
                             s_bp.database, args, path, epath);
    assert_non_null(cmd);
    int status = system(cmd);
    zstr_free(&cmd);
    zstr_free(&args);
    const char *paths[2] = {path, epath};
    char **texts[2] = {out, err};
    for (int i = 0; i < 2; i++) {
        *texts[i] = calloc(1, 1 << 20);
        assert_non_null(*texts[i]);
        FILE *f = fopen(paths[i], "r");
        if (f) {
            size_t n = fread(*texts[i], 1, (1 << 20) - 1, f);
            (*texts[i])[n] = '\0';
            fclose(f);
        }
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The CLI's JSON answer, which must exit 0 and hold nothing private. */
static json_t *
cli_json(const char *fmt, const char *arg)
{
    char *out, *err;
    int rc = cli(&out, &err, fmt, arg);
    if (rc != 0)
        print_error("%s: exit %d: %s\n", fmt, rc, err);
    assert_int_equal(rc, 0);
    for (size_t i = 0; i < sizeof(s_private) / sizeof(s_private[0]); i++)
        assert_null(strstr(out, s_private[i]));
    json_error_t jerr;
    json_t *doc = json_loads(out, 0, &jerr);
    if (!doc)
        print_error("%s: not JSON: %s\n%s\n", fmt, jerr.text, out);
    assert_non_null(doc);
    free(out);
    free(err);
    return doc;
}

/* The CLI's table, which must exit 0 and hold nothing private. */
static char *
cli_table(const char *fmt, const char *arg)
{
    char *out, *err;
    int rc = cli(&out, &err, fmt, arg);
    if (rc != 0)
        print_error("%s: exit %d: %s\n", fmt, rc, err);
    assert_int_equal(rc, 0);
    for (size_t i = 0; i < sizeof(s_private) / sizeof(s_private[0]); i++)
        assert_null(strstr(out, s_private[i]));
    free(err);
    return out;
}

/* The CLI refuses: exit code `rc`, and `says` in its stderr. */
static void
cli_refuses(int rc, const char *says, const char *args)
{
    char *out, *err;
    int got = cli(&out, &err, "%s", args);
    if (got != rc || !strstr(err, says))
        print_error("%s: exit %d, stderr: %s\n", args, got, err);
    assert_int_equal(got, rc);
    assert_non_null(strstr(err, says));
    free(out);
    free(err);
}

/* The line of `text` that holds `needle`, its runs of blanks made one
   space (table columns are padded to their widest cell); "" if none. */
/* The first line of `text` that holds `needle` once its runs of blanks
   are made one space (table columns are padded to their widest cell),
   so squeezed; "" if none. */
static const char *
line_with(const char *text, const char *needle)
{
    static char line[1024];
    for (const char *at = text; *at; at += *at == '\n') {
        size_t n = 0;
        for (; *at && *at != '\n'; at++)
            if (n + 1 < sizeof(line) && (*at != ' ' || (n > 0 && line[n - 1] != ' ')))
                line[n++] = *at;
        line[n] = '\0';
        if (strstr(line, needle))
            return line;
    }
    line[0] = '\0';
    return line;
}

static mlg_client_t *
client(const char *agency)
{
    mlg_client_t *c = brokerproc_client(&s_bp, agency, 0);
    assert_non_null(c);
    return c;
}

/* Sends an event (JSON without its id); the CONFIRM is expected. */
static void
send_ok(mlg_client_t *c, const char *fmt, ...)
{
    char body[2048], json[4096], id[37];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    brokerproc_new_id(id);
    snprintf(json, sizeof(json), "{\"id\": \"%s\", %s}", id, body);
    mlg_msg_t *m = NULL;
    mlg_error_t err;
    if (mlg_publish_from_json(json, strlen(json), &m, &err) != MLG_OK)
        print_error("%s: %s\n", json, err.reason);
    assert_non_null(m);
    assert_int_equal(mlg_client_send(c, m), MLG_OK);
    mlg_msg_destroy(&m);
    mlg_msg_t *a = brokerproc_answer(c, 10000);
    assert_non_null(a);
    if (a->op != MLG_OP_CONFIRM)
        print_error("%s: %s %s\n", json, a->code, a->reason);
    assert_int_equal(a->op, MLG_OP_CONFIRM);
    mlg_msg_destroy(&a);
}

static void
grant(mlg_client_t *c, const char *subject, const char *consent, const char *parties)
{
    send_ok(c,
            "\"type\": \"consent.granted\", \"version\": 1, \"subject\": \"%s\","
            " \"body\": {\"consent_id\": \"%s\", \"parties\": [%s], \"purposes\":"
            " [\"orientation\"], \"categories\": [\"social\"], \"valid_from\":"
            " \"2020-01-01T00:00:00Z\", \"collected_by\": {\"name\": \"E. Martin\","
            " \"role\": \"AS\"}, \"method\": \"written\"}",
            subject, consent, parties);
}

static void
create(mlg_client_t *c, const char *rid, const char *to, const char *subject,
       const char *service)
{
    send_ok(c,
            "\"type\": \"referral.created\", \"version\": 1, \"to\": [%s],"
            " \"subject\": \"%s\", \"purpose\": \"orientation\", \"correlation\": \"%s\","
            " \"body\": {\"referral_id\": \"%s\", \"service\": \"%s\", \"reason\":"
            " \"Perte d'autonomie.\", \"priority\": \"routine\", \"requested_by\":"
            " {\"name\": \"E. Martin\", \"role\": \"AS\"}}",
            to, subject, rid, rid, service);
}

/* A recipient's move of `rid` (referral.<what>) about `subject`, to the
   referrer; `extra` is more of the body (",\"reason_code\": ..."). */
static void
move(mlg_client_t *c, const char *what, const char *rid, const char *referrer,
     const char *subject, const char *extra)
{
    send_ok(c,
            "\"type\": \"referral.%s\", \"version\": 1, \"to\": [\"%s\"], \"subject\":"
            " \"%s\", \"purpose\": \"orientation\", \"correlation\": \"%s\", \"body\":"
            " {\"referral_id\": \"%s\"%s}",
            what, referrer, subject, rid, rid, extra);
}

static long
q(const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    return brokerproc_scalar(s_db, sql);
}

/* Waits until a query counts `n`, up to ms. */
static void
wait_count(long n, int ms, const char *sql)
{
    int64_t until = zclock_mono() + ms;
    while (q("%s", sql) != n && zclock_mono() < until)
        zclock_sleep(50);
    assert_int_equal(q("%s", sql), n);
}

/* The referrals everything below reads. */
static void
test_make_referrals(void **state)
{
    (void)state;
    mlg_client_t *ccas = client("ccas"), *cd75 = client("cd75"), *a = client("ehpad-a"),
                 *b = client("ehpad-b"), *saad = client("saad");
    const char *k3 = "cccccccc-0000-4000-8000-000000000003";
    grant(ccas, "P-1", "cccccccc-0000-4000-8000-000000000001",
          "\"ccas\", \"cd75\", \"ehpad-a\", \"ehpad-b\"");
    grant(ccas, "P-3", k3, "\"ccas\", \"ehpad-b\"");
    grant(ccas, "P-4", "cccccccc-0000-4000-8000-000000000004", "\"ccas\", \"saad\"");
    brokerproc_new_id(s_r1);
    brokerproc_new_id(s_r2);
    brokerproc_new_id(s_r3);
    brokerproc_new_id(s_r4);
    /* R1 to both care homes; R2, the same person and service from the
       département, to A: a duplicate of R1's two legs, declined so */
    create(ccas, s_r1, "\"ehpad-a\", \"ehpad-b\"", "P-1", "nursing-home");
    create(cd75, s_r2, "\"ehpad-a\"", "P-1", "nursing-home");
    move(a, "declined", s_r2, "cd75", "P-1", ", \"reason_code\": \"duplicate\"");
    /* A takes R1: B's leg is superseded */
    move(a, "received", s_r1, "ccas", "P-1", "");
    move(a, "accepted", s_r1, "ccas", "P-1", "");
    move(a, "started", s_r1, "ccas", "P-1", ", \"start_date\": \"2027-01-04\"");
    /* R3: received, the consent revoked, then declined a second later:
       the leg moves, its delivery to the CCAS is denied (and those still
       pending are settled as denied) */
    create(ccas, s_r3, "\"ehpad-b\"", "P-3", "nursing-home");
    move(b, "received", s_r3, "ccas", "P-3", "");
    send_ok(b,
            "\"type\": \"consent.revoked\", \"version\": 1, \"subject\": \"P-3\","
            " \"body\": {\"consent_id\": \"%s\"}",
            k3);
    zclock_sleep(1200);
    move(b, "declined", s_r3, "ccas", "P-3", ", \"reason_code\": \"no-capacity\"");
    /* R4: home care, due two seconds after it opens, left unanswered */
    create(ccas, s_r4, "\"saad\"", "P-4", "home-care");
    char sql[512];
    snprintf(sql, sizeof(sql),
             "select count(*) from referral_legs where referral_id = '%s'"
             " and overdue_notified_at is not null",
             s_r4);
    wait_count(1, 10000, sql);
    wait_count(2, 5000,
               "select count(*) from consent_decisions c join messages m on m.id ="
               " c.message_id where m.sender = 'maillage' and m.type ="
               " 'referral.superseded'");
    assert_int_equal(q("select count(*) from referral_legs"), 5);
    mlg_client_destroy(&ccas);
    mlg_client_destroy(&cd75);
    mlg_client_destroy(&a);
    mlg_client_destroy(&b);
    mlg_client_destroy(&saad);
}

/* The legs of `rows` as "referral/recipient=state" words, in order, the
   referrals named r1 to r4. */
static void
legs_text(json_t *rows, char *out, size_t len)
{
    size_t i;
    json_t *row;
    out[0] = '\0';
    json_array_foreach(rows, i, row)
    {
        const char *rid = json_string_value(json_object_get(row, "referral_id"));
        const char *name = strcmp(rid, s_r1) == 0   ? "r1"
                           : strcmp(rid, s_r2) == 0 ? "r2"
                           : strcmp(rid, s_r3) == 0 ? "r3"
                           : strcmp(rid, s_r4) == 0 ? "r4"
                           : strcmp(rid, s_r5) == 0 ? "r5"
                                                    : "?";
        size_t at = strlen(out);
        snprintf(out + at, len - at, "%s%s/%s=%s%s", at ? " " : "", name,
                 json_string_value(json_object_get(row, "recipient")),
                 json_string_value(json_object_get(row, "state")),
                 json_is_true(json_object_get(row, "overdue")) ? "!" : "");
    }
}

static void
expect_legs(const char *args, const char *expected)
{
    json_t *rows = cli_json("--json referrals %s", args);
    char got[1024];
    legs_text(rows, got, sizeof(got));
    if (strcmp(got, expected) != 0)
        print_error("referrals %s: %s\n", args, got);
    assert_string_equal(got, expected);
    json_decref(rows);
}

static void
test_list(void **state)
{
    (void)state;
    expect_legs("", "r1/ehpad-a=started r1/ehpad-b=superseded r2/ehpad-a=declined"
                    " r3/ehpad-b=declined r4/saad=sent!");
    expect_legs("--agency ehpad-b", "r1/ehpad-b=superseded r3/ehpad-b=declined");
    expect_legs("--agency ccas", "r1/ehpad-a=started r1/ehpad-b=superseded"
                                 " r3/ehpad-b=declined r4/saad=sent!");
    expect_legs("--agency cd75", "r2/ehpad-a=declined");
    expect_legs("--state superseded", "r1/ehpad-b=superseded");
    expect_legs("--state open", "r1/ehpad-a=started r4/saad=sent!");
    expect_legs("--state closed",
                "r1/ehpad-b=superseded r2/ehpad-a=declined r3/ehpad-b=declined");
    expect_legs("--overdue", "r4/saad=sent!");
    expect_legs("--service home-care", "r4/saad=sent!");
    expect_legs("--subject P-1", "r1/ehpad-a=started r1/ehpad-b=superseded"
                                 " r2/ehpad-a=declined");
    expect_legs("--subject P-1 --agency ehpad-a --state declined", "r2/ehpad-a=declined");
    expect_legs("--service accommodation", "");
    /* --json after the command too; each leg's times and parties */
    json_t *rows = cli_json("referrals --overdue --json%s", "");
    json_t *leg = json_array_get(rows, 0);
    assert_string_equal(json_string_value(json_object_get(leg, "referrer")), "ccas");
    assert_string_equal(json_string_value(json_object_get(leg, "service")), "home-care");
    assert_string_equal(json_string_value(json_object_get(leg, "priority")), "routine");
    assert_true(json_is_string(json_object_get(leg, "opened_at")));
    assert_true(json_is_string(json_object_get(leg, "due_at")));
    assert_true(json_is_string(json_object_get(leg, "overdue_notified_at")));
    assert_true(json_is_null(json_object_get(leg, "decided_at")));
    json_decref(rows);

    /* the table: a header, one line per leg */
    char *out = cli_table("referrals --overdue%s", "");
    assert_string_equal(line_with(out, "referral"),
                        "referral referrer recipient service priority state opened"
                        " decided due overdue");
    const char *line = line_with(out, s_r4);
    assert_non_null(strstr(line, " ccas saad home-care routine sent 20"));
    assert_non_null(strstr(line, " - 20")); /* not decided */
    assert_int_equal(strcmp(line + strlen(line) - 4, " yes"), 0);
    assert_null(strstr(out, s_r1));
    free(out);
    out = cli_table("referrals --state superseded%s", "");
    line = line_with(out, s_r1);
    assert_non_null(strstr(line, " ccas ehpad-b nursing-home routine superseded "));
    assert_int_equal(strcmp(line + strlen(line) - 3, " no"), 0);
    free(out);
    out = cli_table("referrals --agency nobody%s", "");
    assert_non_null(strstr(out, "(none)"));
    free(out);
}

static void
test_list_errors(void **state)
{
    (void)state;
    cli_refuses(2, "'pending' is not a leg state", "referrals --state pending");
    cli_refuses(2, "is not an agency id", "referrals --agency Not_An_Agency");
    cli_refuses(2, "is not a service", "referrals --service 'home care'");
    cli_refuses(2, "--subject", "referrals --subject ''");
    cli_refuses(2, "usage:", "referrals --frobnicate");
    cli_refuses(2, "usage:", "referrals --agency");
    cli_refuses(2, "usage:", "referrals ccas");
}

static json_t *
leg_of(json_t *doc, const char *recipient)
{
    size_t i;
    json_t *leg;
    json_array_foreach(json_object_get(doc, "legs"), i, leg)
    {
        if (strcmp(json_string_value(json_object_get(leg, "recipient")), recipient) == 0)
            return leg;
    }
    fail_msg("no leg to %s", recipient);
    return NULL;
}

/* The moves of a leg as "from>to type sender party:decision" lines. */
static void
moves_text(json_t *leg, char *out, size_t len)
{
    size_t i;
    json_t *mv;
    out[0] = '\0';
    json_array_foreach(json_object_get(leg, "moves"), i, mv)
    {
        json_t *from = json_object_get(mv, "from_state");
        json_t *decision = json_object_get(mv, "decision");
        json_t *reason = json_object_get(mv, "reason");
        size_t at = strlen(out);
        snprintf(out + at, len - at, "%s>%s %s %s %s:%s%s%s;",
                 json_is_null(from) ? "-" : json_string_value(from),
                 json_string_value(json_object_get(mv, "to_state")),
                 json_string_value(json_object_get(mv, "type")),
                 json_string_value(json_object_get(mv, "sender")),
                 json_string_value(json_object_get(mv, "party")),
                 json_is_null(decision) ? "-" : json_string_value(decision),
                 json_is_null(reason) ? "" : "/",
                 json_is_null(reason) ? "" : json_string_value(reason));
    }
}

static void
expect_moves(json_t *doc, const char *recipient, const char *expected)
{
    char got[2048];
    moves_text(leg_of(doc, recipient), got, sizeof(got));
    if (strcmp(got, expected) != 0)
        print_error("moves of %s: %s\n", recipient, got);
    assert_string_equal(got, expected);
}

static void
test_timeline(void **state)
{
    (void)state;
    json_t *doc = cli_json("--json referral %s", s_r1);
    json_t *r = json_object_get(doc, "referral");
    assert_string_equal(json_string_value(json_object_get(r, "referral_id")), s_r1);
    assert_string_equal(json_string_value(json_object_get(r, "referrer")), "ccas");
    assert_string_equal(json_string_value(json_object_get(r, "service")), "nursing-home");
    assert_int_equal(json_array_size(json_object_get(doc, "legs")), 2);
    expect_moves(doc, "ehpad-a",
                 "->sent referral.created ccas ehpad-a:allow;"
                 "sent>received referral.received ehpad-a ccas:allow;"
                 "received>accepted referral.accepted ehpad-a ccas:allow;"
                 "accepted>started referral.started ehpad-a ccas:allow;");
    /* B's leg closed by the broker's notice, sent to B */
    expect_moves(doc, "ehpad-b",
                 "->sent referral.created ccas ehpad-b:allow;"
                 "sent>superseded referral.superseded maillage ehpad-b:allow;");
    assert_true(json_is_string(json_object_get(leg_of(doc, "ehpad-a"), "decided_at")));
    assert_true(json_is_null(json_object_get(leg_of(doc, "ehpad-b"), "decided_at")));
    assert_true(json_is_string(json_object_get(leg_of(doc, "ehpad-b"), "closed_at")));
    /* the broker's notice: to B and to the referrer, about B's leg */
    json_t *notices = json_object_get(doc, "notices");
    assert_int_equal(json_array_size(notices), 2);
    char told[128] = "";
    size_t i;
    json_t *n;
    json_array_foreach(notices, i, n)
    {
        assert_string_equal(json_string_value(json_object_get(n, "type")),
                            "referral.superseded");
        assert_string_equal(json_string_value(json_object_get(n, "leg")), "ehpad-b");
        assert_string_equal(json_string_value(json_object_get(n, "basis")),
                            "service_notice");
        strcat(told, json_string_value(json_object_get(n, "recipient")));
        strcat(told, json_string_value(json_object_get(n, "decision")));
        strcat(told, " ");
    }
    assert_true(strcmp(told, "ehpad-ballow ccasallow ") == 0
                || strcmp(told, "ccasallow ehpad-ballow ") == 0);
    /* R2 found R1's two open legs */
    json_t *dups = json_object_get(doc, "duplicates");
    assert_int_equal(json_array_size(dups), 2);
    json_array_foreach(dups, i, n)
    {
        assert_string_equal(json_string_value(json_object_get(n, "referral_id")), s_r2);
        assert_string_equal(json_string_value(json_object_get(n, "duplicate_of")), s_r1);
        assert_string_equal(json_string_value(json_object_get(n, "duplicate_state")),
                            "sent");
        assert_true(json_is_boolean(json_object_get(n, "told_recipient")));
    }
    json_decref(doc);

    /* R3: its decline stored and the leg moved, its delivery denied; the
       deliveries of the two moves before, still pending (no credit), were
       settled as denied when the consent was revoked: the latest decision
       shows */
    doc = cli_json("--json referral %s", s_r3);
    expect_moves(doc, "ehpad-b",
                 "->sent referral.created ccas ehpad-b:deny/REVOKED;"
                 "sent>received referral.received ehpad-b ccas:deny/REVOKED;"
                 "received>declined referral.declined ehpad-b ccas:deny/REVOKED;");
    assert_int_equal(json_array_size(json_object_get(doc, "notices")), 0);
    assert_int_equal(json_array_size(json_object_get(doc, "duplicates")), 0);
    json_decref(doc);

    /* R4: overdue, one notice to each party */
    doc = cli_json("referral %s --json", s_r4);
    json_t *leg = leg_of(doc, "saad");
    assert_true(json_is_true(json_object_get(leg, "overdue")));
    assert_true(json_is_string(json_object_get(leg, "overdue_message_id")));
    notices = json_object_get(doc, "notices");
    assert_int_equal(json_array_size(notices), 2);
    json_array_foreach(notices, i, n)
    {
        assert_string_equal(json_string_value(json_object_get(n, "type")),
                            "referral.overdue");
        assert_string_equal(json_string_value(json_object_get(n, "leg")), "saad");
        assert_true(json_equal(json_object_get(n, "message_id"),
                               json_object_get(leg, "overdue_message_id")));
    }
    json_decref(doc);
}

static void
test_timeline_table(void **state)
{
    (void)state;
    char *out = cli_table("referral %s", s_r1);
    assert_non_null(strstr(out, "from ccas: nursing-home, routine"));
    assert_non_null(strstr(out, "leg to ehpad-a: started"));
    assert_non_null(strstr(out, "leg to ehpad-b: superseded"));
    assert_non_null(strstr(line_with(out, "referral.accepted"), " received accepted "));
    assert_non_null(strstr(line_with(out, "referral.accepted"),
                           " referral.accepted ehpad-a ccas allow"));
    assert_non_null(strstr(line_with(out, "sent superseded"), " sent superseded "));
    assert_non_null(strstr(line_with(out, "sent superseded"),
                           " referral.superseded maillage ehpad-b allow"));
    assert_non_null(strstr(out, "notices from the broker"));
    assert_non_null(strstr(out, "referral.superseded"));
    assert_non_null(strstr(out, "duplicate matches"));
    assert_non_null(strstr(out, s_r2));
    free(out);
    out = cli_table("referral %s", s_r3);
    assert_non_null(strstr(out, "deny"));
    assert_non_null(strstr(out, "REVOKED"));
    assert_non_null(strstr(out, "(none)"));
    free(out);
    cli_refuses(2, "'not-a-uuid' is not a referral id", "referral not-a-uuid");
    cli_refuses(1, "no referral with id 00000000-0000-4000-8000-000000000000",
                "referral 00000000-0000-4000-8000-000000000000");
    cli_refuses(2, "usage:", "referral");
    cli_refuses(2, "usage:", "referral 00000000-0000-4000-8000-000000000000 more");
}

/* percentile_cont over three values, as the stats should give it. */
static double
percentile(const double v[3], double p)
{
    double at = p * 2;
    int lo = (int)at;
    return lo >= 2 ? v[2] : v[lo] + (at - lo) * (v[lo + 1] - v[lo]);
}

static json_t *
group_of(json_t *doc, const char *by, const char *name)
{
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(doc, "groups"), i, g)
    {
        if (strcmp(json_string_value(json_object_get(g, by)), name) == 0)
            return g;
    }
    fail_msg("no group %s", name);
    return NULL;
}

static void
expect_group(json_t *g, long opened, long answered, long accepted, long declined,
             long overdue)
{
    const char *keys[5] = {"opened", "answered", "accepted", "declined", "overdue"};
    long want[5] = {opened, answered, accepted, declined, overdue};
    for (int k = 0; k < 5; k++) {
        long got = (long)json_integer_value(json_object_get(g, keys[k]));
        if (got != want[k])
            print_error("%s: %ld, not %ld\n", keys[k], got, want[k]);
        assert_int_equal(got, want[k]);
    }
    assert_true(json_is_number(json_object_get(g, "overdue_share")));
    assert_true(json_number_value(json_object_get(g, "overdue_share"))
                == (double)overdue / (double)opened);
}

static long
reason(json_t *g, const char *code)
{
    json_t *n = json_object_get(json_object_get(g, "declined_by_reason"), code);
    assert_true(json_is_integer(n));
    return (long)json_integer_value(n);
}

static void
test_stats(void **state)
{
    (void)state;
    json_t *doc = cli_json("--json referrals stats%s", "");
    assert_string_equal(json_string_value(json_object_get(doc, "by")), "service");
    assert_string_equal(json_string_value(json_object_get(doc, "since")), "90d");
    assert_int_equal(json_array_size(json_object_get(doc, "groups")), 2);
    json_t *home = group_of(doc, "service", "home-care");
    json_t *nursing = group_of(doc, "service", "nursing-home");
    json_t *total = json_object_get(doc, "total");
    expect_group(home, 1, 0, 0, 0, 1);
    expect_group(nursing, 4, 3, 1, 2, 0);
    expect_group(total, 5, 3, 1, 2, 1);
    assert_null(json_object_get(total, "service"));
    assert_int_equal(reason(nursing, "duplicate"), 1);
    assert_int_equal(reason(nursing, "no-capacity"), 1);
    assert_int_equal(reason(nursing, "other"), 0);
    assert_int_equal(reason(nursing, "unknown"), 0);
    assert_int_equal(reason(total, "no-capacity"), 1);
    assert_int_equal(reason(home, "duplicate"), 0);
    assert_true(json_is_null(json_object_get(home, "first_decision_p50_seconds")));
    /* the three first decisions, as the database has them: R3's came
       after more than a second */
    PGresult *res = PQexec(s_db, "select extract(epoch from decided_at - opened_at)"
                                 "::float8 from referral_legs where decided_at is not"
                                 " null order by 1");
    assert_int_equal(PQntuples(res), 3);
    double v[3];
    for (int i = 0; i < 3; i++)
        v[i] = strtod(PQgetvalue(res, i, 0), NULL);
    PQclear(res);
    assert_true(v[2] >= 1.2 && v[2] < 30);
    double p50 =
        json_number_value(json_object_get(nursing, "first_decision_p50_seconds"));
    double p90 =
        json_number_value(json_object_get(nursing, "first_decision_p90_seconds"));
    double d50 = p50 - percentile(v, 0.5), d90 = p90 - percentile(v, 0.9);
    if (d50 * d50 > 1e-12 || d90 * d90 > 1e-12)
        print_error("p50 %f p90 %f; values %f %f %f\n", p50, p90, v[0], v[1], v[2]);
    assert_true(d50 * d50 < 1e-12);
    assert_true(d90 * d90 < 1e-12);
    assert_true(p50 > 0 && p50 < 30 && p90 >= 0.9 && p90 >= p50);
    json_decref(doc);

    doc = cli_json("referrals stats --by recipient --since 1d --json%s", "");
    assert_int_equal(json_array_size(json_object_get(doc, "groups")), 3);
    expect_group(group_of(doc, "recipient", "ehpad-a"), 2, 2, 1, 1, 0);
    expect_group(group_of(doc, "recipient", "ehpad-b"), 2, 1, 0, 1, 0);
    expect_group(group_of(doc, "recipient", "saad"), 1, 0, 0, 0, 1);
    assert_int_equal(reason(group_of(doc, "recipient", "ehpad-a"), "duplicate"), 1);
    assert_int_equal(reason(group_of(doc, "recipient", "ehpad-a"), "no-capacity"), 0);
    assert_int_equal(reason(group_of(doc, "recipient", "ehpad-b"), "no-capacity"), 1);
    json_decref(doc);
}

/* The window: R3's leg opened 100 days ago counts for --since 120d, not
   for the default 90d; the legs as they were afterwards. */
static void
test_stats_window(void **state)
{
    (void)state;
    char sql[256];
    snprintf(sql, sizeof(sql),
             "update referral_legs set opened_at = opened_at - interval '100 days'"
             " where referral_id = '%s'",
             s_r3);
    PQclear(PQexec(s_db, sql));
    json_t *doc = cli_json("--json referrals stats%s", "");
    expect_group(group_of(doc, "service", "nursing-home"), 3, 2, 1, 1, 0);
    assert_int_equal(reason(group_of(doc, "service", "nursing-home"), "no-capacity"), 0);
    json_decref(doc);
    doc = cli_json("--json referrals stats --since 120d%s", "");
    expect_group(group_of(doc, "service", "nursing-home"), 4, 3, 1, 2, 0);
    json_decref(doc);
    snprintf(sql, sizeof(sql),
             "update referral_legs set opened_at = opened_at + interval '100 days'"
             " where referral_id = '%s'",
             s_r3);
    PQclear(PQexec(s_db, sql));
    /* nothing opened in the last second: the total alone, all zero */
    doc = cli_json("--json referrals stats --since 1s%s", "");
    assert_int_equal(json_array_size(json_object_get(doc, "groups")), 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(doc, "total"), "opened")), 0);
    json_decref(doc);
}

static void
test_stats_table(void **state)
{
    (void)state;
    char *out = cli_table("referrals stats%s", "");
    assert_non_null(strstr(out, "referral legs opened in the last 90d, by service"));
    /* service opened answered accepted declined why overdue p50 p90 */
    const char *line = line_with(out, "nursing-home");
    assert_non_null(
        strstr(line, "nursing-home 4 3 1 2 no-capacity 1, duplicate 1 0 (0 %) "));
    assert_int_equal(strcmp(line + strlen(line) - 2, " s"), 0); /* seconds here */
    line = line_with(out, "home-care");
    assert_string_equal(line, "home-care 1 0 0 0 - 1 (100 %) - -");
    assert_non_null(strstr(line_with(out, "(all)"), "(all) 5 3 1 2 "));
    assert_non_null(strstr(out, "(all)"));
    free(out);
    cli_refuses(2, "--since", "referrals stats --since forever");
    cli_refuses(2, "--by", "referrals stats --by agency");
    cli_refuses(2, "usage:", "referrals stats --bogus");
    cli_refuses(2, "usage:", "referrals stats --since");
}

/* Overdue without the broker's notice: an open leg with no decision past
   its due time (moved there in the table: the broker, which keeps its
   own due times, does not tell); before, the same leg is not overdue.
   And with the notice: R4, answered late, is still overdue. */
static void
test_overdue_past_due(void **state)
{
    (void)state;
    mlg_client_t *ccas = client("ccas");
    grant(ccas, "P-5", "cccccccc-0000-4000-8000-000000000005", "\"ccas\", \"ehpad-a\"");
    brokerproc_new_id(s_r5);
    create(ccas, s_r5, "\"ehpad-a\"", "P-5", "accommodation");
    mlg_client_destroy(&ccas);
    expect_legs("--subject P-5", "r5/ehpad-a=sent");
    expect_legs("--overdue --service accommodation", "");
    char sql[256];
    snprintf(sql, sizeof(sql),
             "update referral_legs set due_at = now() - interval '1 hour'"
             " where referral_id = '%s'",
             s_r5);
    PQclear(PQexec(s_db, sql));
    expect_legs("--subject P-5", "r5/ehpad-a=sent!");
    expect_legs("--overdue --service accommodation", "r5/ehpad-a=sent!");
    json_t *rows = cli_json("--json referrals --subject P-5%s", "");
    assert_true(
        json_is_null(json_object_get(json_array_get(rows, 0), "overdue_notified_at")));
    json_decref(rows);
    json_t *doc = cli_json("--json referrals stats%s", "");
    expect_group(group_of(doc, "service", "accommodation"), 1, 0, 0, 0, 1);
    json_decref(doc);
    /* a leg told overdue stays so once answered late */
    mlg_client_t *saad = client("saad");
    move(saad, "accepted", s_r4, "ccas", "P-4", "");
    mlg_client_destroy(&saad);
    expect_legs("--overdue", "r4/saad=accepted! r5/ehpad-a=sent!");
    /* accepted, not started: counted as accepted; answered, late */
    doc = cli_json("--json referrals stats%s", "");
    json_t *home = group_of(doc, "service", "home-care");
    expect_group(home, 1, 1, 1, 0, 1);
    assert_true(json_number_value(json_object_get(home, "first_decision_p50_seconds"))
                >= 2.0);
    json_decref(doc);
}

static void
test_subject_report(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(cli(&out, &err, "subject-report P-1"), 0);
    json_t *doc = json_loads(out, 0, NULL);
    assert_non_null(doc);
    free(out);
    free(err);
    json_t *legs = json_object_get(doc, "referrals");
    char got[1024];
    legs_text(legs, got, sizeof(got));
    assert_string_equal(got, "r1/ehpad-a=started r1/ehpad-b=superseded"
                             " r2/ehpad-a=declined");
    json_t *first = json_array_get(legs, 0);
    assert_int_equal(json_array_size(json_object_get(first, "moves")), 4);
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(first, "moves"), 3), "to_state")),
        "started");
    json_decref(doc);
    assert_int_equal(cli(&out, &err, "subject-report P-4"), 0);
    doc = json_loads(out, 0, NULL);
    legs = json_object_get(doc, "referrals");
    legs_text(legs, got, sizeof(got));
    assert_string_equal(got, "r4/saad=accepted!");
    json_decref(doc);
    free(out);
    free(err);
}

static void
test_help(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(cli(&out, &err, "--help"), 0);
    assert_non_null(strstr(out, "referrals [--agency AGENCY]"));
    assert_non_null(strstr(out, "referral REFERRAL_ID"));
    assert_non_null(strstr(out, "referrals stats"));
    free(out);
    free(err);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_make_referrals),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_list_errors),
        cmocka_unit_test(test_timeline),
        cmocka_unit_test(test_timeline_table),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_stats_window),
        cmocka_unit_test(test_stats_table),
        cmocka_unit_test(test_overdue_past_due),
        cmocka_unit_test(test_subject_report),
        cmocka_unit_test(test_help),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
