/*  referrals.c: the operator CLI's referral commands (PROTOCOL.md §9):
    `referrals` lists the legs, `referral ID` gives one referral's
    timeline, `referrals stats` the times to a first decision per service
    or recipient (the département's "délais de prise en charge"); and the
    legs of one person for subject-report.

    They read the tables of migration 0006, the messages behind each move
    and their consent decisions. They print no person's name and no body:
    the stats read the reason_code of declined messages through
    libmaillage's body accessors (only lib/ includes msgpack.h) and print
    counts. Called by main (maillage.c). */

#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "maillage/body.h"
#include "maillage/codec.h"
#include "maillage/forms.h"
#include "maillage/limits.h"
#include "referrals.h"

/* A leg is overdue when it is open, has had no decision and is past
   its due time, or when the broker told its parties so (it may have
   moved on since). One definition for the list and the stats. */
#define S_OPEN "('sent', 'received', 'waitlisted', 'accepted', 'started')"
#define S_OVERDUE                                                                        \
    "(l.overdue_notified_at is not null or (l.state in " S_OPEN                          \
    " and l.decided_at is null and l.due_at < now()))"

/* --state: a leg's state, or all the open or closed ones. */
static const char *const S_STATES[] = {
    "sent",      "received",  "waitlisted", "accepted", "started", "declined",
    "completed", "cancelled", "superseded", "open",     "closed"};
#define S_NSTATES (sizeof(S_STATES) / sizeof(S_STATES[0]))

/* referral.declined's reason_code (EVENTS.md), and "unknown" for a body
   purged or unreadable. */
static const char *const S_REASONS[] = {"no-capacity", "not-eligible", "out-of-area",
                                        "duplicate",   "other",        "unknown"};
#define S_NREASONS (sizeof(S_REASONS) / sizeof(S_REASONS[0]))

static bool
s_one_of(const char *word, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(word, list[i]) == 0)
            return true;
    return false;
}

/* ---- tables for people ------------------------------------------------- */

/* How a cell shows its JSON value: text, a count (right-aligned), a
   time to the minute or to the second, yes or no, a duration. */
typedef enum { S_TEXT, S_COUNT, S_MINUTE, S_SECOND, S_YESNO, S_DURATION } s_kind_t;

typedef struct {
    const char *key, *title;
    s_kind_t kind;
} s_col_t;

#define S_NCOLS(cols) (sizeof(cols) / sizeof(cols[0]))
#define S_MAXCOLS 12
#define S_CELL 128

/* Seconds for people: "45 s", "12 min", "5 h", "3.2 d". */
static void
s_human(double seconds, char *out, size_t len)
{
    static const struct {
        double unit;
        const char *name;
    } units[] = {{86400, "d"}, {3600, "h"}, {60, "min"}, {1, "s"}};
    size_t u = 0;
    while (u + 1 < sizeof(units) / sizeof(units[0]) && seconds < units[u].unit)
        u++;
    double v = seconds / units[u].unit;
    snprintf(out, len, v < 9.95 ? "%.1f %s" : "%.0f %s", v, units[u].name);
    char *zero = strstr(out, ".0 "); /* "5.0 h" reads "5 h" */
    if (zero)
        memmove(zero, zero + 2, strlen(zero + 2) + 1);
}

static void
s_cell(json_t *v, s_kind_t kind, char *out, size_t len)
{
    if (!v || json_is_null(v)) {
        snprintf(out, len, "-");
        return;
    }
    switch (kind) {
    case S_YESNO: snprintf(out, len, "%s", json_is_true(v) ? "yes" : "no"); break;
    case S_DURATION: s_human(json_number_value(v), out, len); break;
    case S_MINUTE: /* the database's "2027-01-04 10:00:00.123+01", cut */
    case S_SECOND:
        snprintf(out, len, "%.*s", kind == S_MINUTE ? 16 : 19, json_string_value(v));
        break;
    case S_COUNT:
    case S_TEXT:
        if (json_is_integer(v))
            snprintf(out, len, "%lld", (long long)json_integer_value(v));
        else
            snprintf(out, len, "%s", json_is_string(v) ? json_string_value(v) : "?");
        break;
    }
}

/* Rows (JSON objects) as cli_table lays them out: a header, columns two
   spaces apart, "-" for null, "(none)" when there is no row; `indent`
   before each line. */
static void
s_print_rows(json_t *rows, const s_col_t *cols, size_t ncols, const char *indent)
{
    size_t width[S_MAXCOLS] = {0}, i;
    char cell[S_CELL];
    json_t *row;
    if (ncols > S_MAXCOLS)
        ncols = S_MAXCOLS;
    for (size_t c = 0; c < ncols; c++) {
        width[c] = strlen(cols[c].title);
        json_array_foreach(rows, i, row)
        {
            s_cell(json_object_get(row, cols[c].key), cols[c].kind, cell, sizeof(cell));
            if (strlen(cell) > width[c])
                width[c] = strlen(cell);
        }
    }
    for (size_t r = 0; r <= json_array_size(rows); r++) { /* the header, the rows */
        printf("%s", indent);
        for (size_t c = 0; c < ncols; c++) {
            row = r ? json_array_get(rows, r - 1) : NULL;
            if (row)
                s_cell(json_object_get(row, cols[c].key), cols[c].kind, cell,
                       sizeof(cell));
            const char *text = row ? cell : cols[c].title;
            bool last = c + 1 == ncols;
            /* counts to the right; no blanks at the end of a line */
            int pad = cols[c].kind == S_COUNT || !last ? (int)width[c] : 0;
            printf(cols[c].kind == S_COUNT ? "%*s%s" : "%-*s%s", pad, text,
                   last ? "\n" : "  ");
        }
    }
    if (json_array_size(rows) == 0)
        printf("%s(none)\n", indent);
}

/* ---- referrals: the legs ----------------------------------------------- */

/* $1 agency (referrer or recipient), $2 state (or open, closed), $3 only
   the overdue ('t'), $4 service, $5 subject: each NULL for any. */
static const char *SQL_LEGS =
    "select l.referral_id, l.referrer, l.recipient, l.service, l.priority, l.state,"
    " l.opened_at, l.decided_at, l.closed_at, l.due_at, l.overdue_notified_at, " S_OVERDUE
    " as overdue from referral_legs l"
    " where ($1::text is null or l.referrer = $1 or l.recipient = $1)"
    " and ($2::text is null or l.state = $2 or ($2 = 'open' and l.state in " S_OPEN ")"
    " or ($2 = 'closed' and l.state not in " S_OPEN "))"
    " and (not $3::boolean or " S_OVERDUE ")"
    " and ($4::text is null or l.service = $4) and ($5::text is null or l.subject = $5)"
    " order by l.opened_at, l.referral_id, l.recipient";

static const s_col_t S_LEG_COLS[] = {
    {"referral_id", "referral", S_TEXT}, {"referrer", "referrer", S_TEXT},
    {"recipient", "recipient", S_TEXT},  {"service", "service", S_TEXT},
    {"priority", "priority", S_TEXT},    {"state", "state", S_TEXT},
    {"opened_at", "opened", S_MINUTE},   {"decided_at", "decided", S_MINUTE},
    {"due_at", "due", S_MINUTE},         {"overdue", "overdue", S_YESNO}};

typedef struct {
    const char *agency, *state, *service, *subject;
    bool overdue;
} s_list_opts_t;

/* The list's options, each value checked; --json may come here too. */
static int
s_list_opts(cli_t *cli, int argc, char **argv, s_list_opts_t *o)
{
    for (int i = 0; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--json") == 0) {
            cli->json = true;
            continue;
        }
        if (strcmp(opt, "--overdue") == 0) {
            o->overdue = true;
            continue;
        }
        const char *val = i + 1 < argc ? argv[++i] : NULL;
        if (val && strcmp(opt, "--agency") == 0)
            o->agency = val;
        else if (val && strcmp(opt, "--state") == 0)
            o->state = val;
        else if (val && strcmp(opt, "--service") == 0)
            o->service = val;
        else if (val && strcmp(opt, "--subject") == 0)
            o->subject = val;
        else
            return cli_usage(stderr, EXIT_USAGE);
    }
    size_t chars = 0;
    if (o->agency && !mlg_is_agency_id(o->agency, strlen(o->agency)))
        return cli_error(EXIT_USAGE, "'%.64s' is not an agency id", o->agency);
    if (o->state && !s_one_of(o->state, S_STATES, S_NSTATES))
        return cli_error(EXIT_USAGE,
                         "'%.32s' is not a leg state: sent, received, waitlisted,"
                         " accepted, started, declined, completed, cancelled,"
                         " superseded, or open or closed",
                         o->state);
    /* a service is a word of the form of an agency id (home-care) */
    if (o->service && !mlg_is_agency_id(o->service, strlen(o->service)))
        return cli_error(EXIT_USAGE, "'%.64s' is not a service (a word: home-care)",
                         o->service);
    if (o->subject
        && (!mlg_utf8_check(o->subject, strlen(o->subject), &chars) || chars == 0
            || chars > MLG_SUBJECT_MAX))
        return cli_error(EXIT_USAGE, "--subject: 1 to %d characters of UTF-8",
                         MLG_SUBJECT_MAX);
    return 0;
}

static int
s_list(cli_t *cli, int argc, char **argv)
{
    s_list_opts_t o = {0};
    int rc = s_list_opts(cli, argc, argv, &o);
    if (rc != 0)
        return rc;
    const char *p[5] = {o.agency, o.state, o.overdue ? "t" : "f", o.service, o.subject};
    PGresult *res = cli_query(cli, SQL_LEGS, 5, p);
    if (!res)
        return EXIT_USAGE;
    json_t *rows = cli_rows(res);
    PQclear(res);
    if (cli->json)
        cli_print_json(rows);
    else
        s_print_rows(rows, S_LEG_COLS, S_NCOLS(S_LEG_COLS), "");
    json_decref(rows);
    return 0;
}

/* ---- legs with their moves: the timeline and subject-report ------------ */

/* $1 a referral, $2 a subject: the legs of either. */
#define S_LEG_FILTER                                                                     \
    " where ($1::uuid is null or l.referral_id = $1::uuid)"                              \
    " and ($2::text is null or l.subject = $2)"

static const char *SQL_LEG_DETAIL =
    "select l.referral_id, l.recipient, l.referrer, l.service, l.priority, l.state,"
    " l.opened_at, l.decided_at, l.closed_at, l.due_at, l.overdue_notified_at,"
    " l.overdue_message_id, " S_OVERDUE " as overdue from referral_legs l" S_LEG_FILTER
    " order by l.opened_at, l.referral_id, l.recipient";

/* Each move with the message behind it, and the latest decision about
   that message's delivery to the leg's other party: the referrer for
   the recipient's events, the recipient for the referrer's and the
   broker's (a leg superseded moves by the broker's notice). */
static const char *SQL_MOVES =
    "select mv.referral_id, mv.recipient, mv.from_state, mv.to_state, mv.moved_at,"
    " mv.message_id, m.type, m.sender, p.party, d.decision, d.basis, d.reason"
    " from referral_moves mv join referral_legs l on l.referral_id = mv.referral_id"
    " and l.recipient = mv.recipient left join messages m on m.id = mv.message_id"
    " cross join lateral (select case when m.sender = l.recipient then l.referrer"
    "  else l.recipient end as party) p"
    " left join lateral (select c.decision, c.basis, c.reason from consent_decisions c"
    "  where c.message_id = mv.message_id and c.recipient = p.party"
    "  order by c.id desc limit 1) d on true" S_LEG_FILTER
    " order by mv.referral_id, mv.recipient, mv.id";

static bool
s_same_leg(json_t *a, json_t *b)
{
    return json_equal(json_object_get(a, "referral_id"),
                      json_object_get(b, "referral_id"))
           && json_equal(json_object_get(a, "recipient"),
                         json_object_get(b, "recipient"));
}

/* The legs of a referral or of a subject, each with its `moves`; NULL
   when a query failed. Pairing them costs legs times moves: a few of
   each for one referral or one person. */
static json_t *
s_legs(cli_t *cli, const char *referral_id, const char *subject)
{
    const char *p[2] = {referral_id, subject};
    PGresult *lr = cli_query(cli, SQL_LEG_DETAIL, 2, p);
    PGresult *mr = lr ? cli_query(cli, SQL_MOVES, 2, p) : NULL;
    json_t *legs = mr ? cli_rows(lr) : NULL, *moves = mr ? cli_rows(mr) : NULL;
    PQclear(lr);
    PQclear(mr);
    size_t i, j;
    json_t *leg, *mv;
    json_array_foreach(legs, i, leg)
    {
        json_t *own = json_array();
        json_array_foreach(moves, j, mv)
        {
            if (s_same_leg(leg, mv))
                json_array_append(own, mv);
        }
        json_object_set_new(leg, "moves", own);
    }
    json_array_foreach(moves, j, mv)
    { /* the leg says which it is */
        json_object_del(mv, "referral_id");
        json_object_del(mv, "recipient");
    }
    json_decref(moves);
    return legs;
}

json_t *
cli_referral_legs_of(cli_t *cli, const char *subject)
{
    return s_legs(cli, NULL, subject);
}

/* ---- referral ID: one timeline ----------------------------------------- */

static const char *SQL_REFERRAL =
    "select referral_id, message_id, referrer, service, priority, created_at"
    " from referrals where referral_id = $1::uuid";

/* The broker's notices about the referral, one row per party told: the
   leg it is about is the one it marked overdue, or the party told that
   is not the referrer. */
static const char *SQL_NOTICES =
    "select m.id as message_id, m.type, coalesce(lo.recipient, (select c2.recipient"
    "  from consent_decisions c2 where c2.message_id = m.id"
    "  and c2.recipient <> r.referrer order by c2.id limit 1)) as leg,"
    " m.received_at, c.recipient, c.decision, c.basis, c.reason"
    " from referrals r join messages m on m.correlation = r.referral_id::text"
    " and m.sender = 'maillage' and m.type in ('referral.overdue', 'referral.superseded')"
    " left join referral_legs lo on lo.referral_id = r.referral_id"
    " and lo.overdue_message_id = m.id"
    " left join consent_decisions c on c.message_id = m.id"
    " where r.referral_id = $1::uuid order by m.seq, c.id";

/* Matches found when it was created (referral_id) and those that later
   referrals found among its legs (duplicate_of). */
static const char *SQL_DUPLICATES =
    "select referral_id, message_id, duplicate_of, duplicate_recipient,"
    " duplicate_referrer, duplicate_state, since, told_publisher, told_recipient,"
    " found_at from referral_duplicates"
    " where referral_id = $1::uuid or duplicate_of = $1::uuid order by id";

static const s_col_t S_MOVE_COLS[] = {
    {"moved_at", "when", S_SECOND}, {"from_state", "from", S_TEXT},
    {"to_state", "to", S_TEXT},     {"message_id", "message", S_TEXT},
    {"type", "type", S_TEXT},       {"sender", "sender", S_TEXT},
    {"party", "party", S_TEXT},     {"decision", "decision", S_TEXT},
    {"reason", "reason", S_TEXT}};

static const s_col_t S_NOTICE_COLS[] = {{"received_at", "when", S_SECOND},
                                        {"type", "type", S_TEXT},
                                        {"leg", "leg", S_TEXT},
                                        {"message_id", "message", S_TEXT},
                                        {"recipient", "to", S_TEXT},
                                        {"decision", "decision", S_TEXT},
                                        {"reason", "reason", S_TEXT}};

static const s_col_t S_DUPLICATE_COLS[] = {
    {"found_at", "found", S_SECOND},
    {"referral_id", "referral", S_TEXT},
    {"duplicate_of", "duplicate of", S_TEXT},
    {"duplicate_recipient", "its recipient", S_TEXT},
    {"duplicate_referrer", "its referrer", S_TEXT},
    {"duplicate_state", "state", S_TEXT},
    {"told_publisher", "told publisher", S_YESNO},
    {"told_recipient", "told recipient", S_YESNO}};

static void
s_timeline_table(json_t *doc)
{
    json_t *r = json_object_get(doc, "referral"), *leg;
    char created[S_CELL], when[4][S_CELL], overdue[8];
    s_cell(json_object_get(r, "created_at"), S_SECOND, created, sizeof(created));
    printf("referral %s from %s: %s, %s, created %s by message %s\n",
           json_string_value(json_object_get(r, "referral_id")),
           json_string_value(json_object_get(r, "referrer")),
           json_string_value(json_object_get(r, "service")),
           json_string_value(json_object_get(r, "priority")), created,
           json_string_value(json_object_get(r, "message_id")));
    size_t i;
    json_array_foreach(json_object_get(doc, "legs"), i, leg)
    {
        const char *keys[4] = {"opened_at", "decided_at", "closed_at", "due_at"};
        for (int k = 0; k < 4; k++)
            s_cell(json_object_get(leg, keys[k]), S_SECOND, when[k], sizeof(when[k]));
        s_cell(json_object_get(leg, "overdue"), S_YESNO, overdue, sizeof(overdue));
        printf("\nleg to %s: %s (opened %s, decided %s, closed %s, due %s, overdue %s)\n",
               json_string_value(json_object_get(leg, "recipient")),
               json_string_value(json_object_get(leg, "state")), when[0], when[1],
               when[2], when[3], overdue);
        s_print_rows(json_object_get(leg, "moves"), S_MOVE_COLS, S_NCOLS(S_MOVE_COLS),
                     "  ");
    }
    if (json_array_size(json_object_get(doc, "legs")) == 0)
        printf("\nno leg: no recipient was allowed to receive it\n");
    printf("\nnotices from the broker\n");
    s_print_rows(json_object_get(doc, "notices"), S_NOTICE_COLS, S_NCOLS(S_NOTICE_COLS),
                 "  ");
    printf("\nduplicate matches\n");
    s_print_rows(json_object_get(doc, "duplicates"), S_DUPLICATE_COLS,
                 S_NCOLS(S_DUPLICATE_COLS), "  ");
}

int
cli_referral(cli_t *cli, int argc, char **argv)
{
    const char *id = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            cli->json = true;
        else if (!id && strncmp(argv[i], "--", 2) != 0)
            id = argv[i];
        else
            return cli_usage(stderr, EXIT_USAGE);
    }
    if (!id)
        return cli_usage(stderr, EXIT_USAGE);
    if (!mlg_is_uuid(id, strlen(id)))
        return cli_error(EXIT_USAGE, "'%.40s%s' is not a referral id (a UUID)", id,
                         strlen(id) > 40 ? "..." : "");
    const char *p[1] = {id};
    PGresult *rr = cli_query(cli, SQL_REFERRAL, 1, p);
    if (!rr)
        return EXIT_USAGE;
    if (PQntuples(rr) == 0) {
        PQclear(rr);
        return cli_error(EXIT_NOT_FOUND, "no referral with id %s", id);
    }
    json_t *doc = json_object(), *r = cli_rows(rr);
    PQclear(rr);
    json_object_set(doc, "referral", json_array_get(r, 0));
    json_decref(r);
    json_t *legs = s_legs(cli, id, NULL);
    PGresult *nr = legs ? cli_query(cli, SQL_NOTICES, 1, p) : NULL;
    PGresult *dr = nr ? cli_query(cli, SQL_DUPLICATES, 1, p) : NULL;
    int rc = dr ? 0 : EXIT_USAGE;
    if (dr) {
        json_object_set(doc, "legs", legs);
        json_object_set_new(doc, "notices", cli_rows(nr));
        json_object_set_new(doc, "duplicates", cli_rows(dr));
        if (cli->json)
            cli_print_json(doc);
        else
            s_timeline_table(doc);
    }
    json_decref(legs);
    PQclear(nr);
    PQclear(dr);
    json_decref(doc);
    return rc;
}

/* ---- referrals stats --------------------------------------------------- */

/* The legs opened in the window ($1 seconds), each in its group ($2:
   recipient, else service), whether it ever reached accepted, and
   whether it is overdue. */
#define S_STATS_LEGS                                                                     \
    "with legs as (select l.*,"                                                          \
    "  case when $2 = 'recipient' then l.recipient else l.service end as grp,"           \
    "  exists (select 1 from referral_moves mv where mv.referral_id = l.referral_id"     \
    "   and mv.recipient = l.recipient and mv.to_state = 'accepted') as reached,"        \
    "  " S_OVERDUE " as overdue from referral_legs l"                                    \
    "  where l.opened_at >= now() - $1::bigint * interval '1 second')"

/* Per group and for all (grouping sets): answered is a first decision
   (waitlisted, accepted, declined); the percentiles are over the legs
   answered, in seconds. */
static const char *SQL_STATS =
    S_STATS_LEGS " select grp, grouping(grp) = 1 as everything, count(*) as opened,"
                 " count(decided_at) as answered, count(*) filter (where reached) as"
                 " accepted, count(*) filter (where state = 'declined') as declined,"
                 " count(*) filter (where overdue) as overdue,"
                 " (count(*) filter (where overdue))::float8 / nullif(count(*), 0)"
                 " as overdue_share, percentile_cont(0.5) within group (order by"
                 " extract(epoch from decided_at - opened_at)::float8)"
                 " as first_decision_p50_seconds, percentile_cont(0.9) within group"
                 " (order by extract(epoch from decided_at - opened_at)::float8)"
                 " as first_decision_p90_seconds"
                 " from legs group by grouping sets ((grp), ()) order by 2, grp";

/* The message that declined each leg of the window, for its reason. */
static const char *SQL_DECLINED = S_STATS_LEGS
    " select l.grp, m.body from legs l join referral_moves mv"
    " on mv.referral_id = l.referral_id and mv.recipient = l.recipient"
    " and mv.to_state = 'declined' left join messages m on m.id = mv.message_id";

/* tally[group][code] += 1, the group's counts made on first use with
   every code at 0 (a stable layout for scripts). */
static void
s_count(json_t *tally, const char *group, const char *code)
{
    json_t *counts = json_object_get(tally, group);
    if (!counts) {
        counts = json_object();
        for (size_t k = 0; k < S_NREASONS; k++)
            json_object_set_new(counts, S_REASONS[k], json_integer(0));
        json_object_set_new(tally, group, counts);
    }
    json_int_t n = json_integer_value(json_object_get(counts, code));
    json_object_set_new(counts, code, json_integer(n + 1));
}

/* The reason_code of each declined leg, read from its message's body
   with libmaillage: {group: {code: n}}, and all groups under `all`. A
   body purge cleared counts as "unknown". NULL when the query failed. */
static json_t *
s_decline_reasons(cli_t *cli, const char *const *p, json_t **all)
{
    PGresult *res = cli_query(cli, SQL_DECLINED, 2, p);
    mlg_msg_t *m = res ? mlg_msg_new(MLG_OP_PUBLISH) : NULL;
    if (!m) {
        PQclear(res);
        return NULL;
    }
    json_t *tally = json_object();
    *all = json_object();
    for (int i = 0; i < PQntuples(res); i++) {
        char code[32] = "";
        size_t len = 0;
        unsigned char *raw =
            PQgetisnull(res, i, 1)
                ? NULL
                : PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 1), &len);
        if (!raw || mlg_msg_set_body(m, raw, len) != MLG_OK
            || !mlg_body_text(m, "/reason_code", code, sizeof(code))
            || !s_one_of(code, S_REASONS, S_NREASONS))
            snprintf(code, sizeof(code), "unknown");
        PQfreemem(raw);
        s_count(tally, PQgetvalue(res, i, 0), code);
        s_count(*all, "all", code);
    }
    mlg_msg_destroy(&m);
    PQclear(res);
    return tally;
}

/* One row of SQL_STATS as the JSON layout gives it: the group under the
   name of --by first, its declines by reason after `declined`. */
static json_t *
s_stats_group(json_t *row, const char *by, json_t *reasons)
{
    json_t *g = json_object(), *v;
    const char *key;
    if (!json_is_true(json_object_get(row, "everything")))
        json_object_set(g, by, json_object_get(row, "grp"));
    json_object_foreach(row, key, v)
    {
        if (strcmp(key, "grp") == 0 || strcmp(key, "everything") == 0)
            continue;
        json_object_set(g, key, v);
        if (strcmp(key, "declined") == 0) {
            json_t *none = json_object();
            for (size_t k = 0; k < S_NREASONS; k++)
                json_object_set_new(none, S_REASONS[k], json_integer(0));
            json_object_set(g, "declined_by_reason", reasons ? reasons : none);
            json_decref(none);
        }
    }
    return g;
}

/* The stats as a table: counts, the reasons given, overdue as a share,
   and the percentiles as durations. */
static void
s_stats_table(json_t *doc)
{
    static const s_col_t cols[] = {{"group", "", S_TEXT},
                                   {"opened", "opened", S_COUNT},
                                   {"answered", "answered", S_COUNT},
                                   {"accepted", "accepted", S_COUNT},
                                   {"declined", "declined", S_COUNT},
                                   {"why", "declined for", S_TEXT},
                                   {"late", "overdue", S_TEXT},
                                   {"p50", "p50", S_DURATION},
                                   {"p90", "p90", S_DURATION}};
    const char *by = json_string_value(json_object_get(doc, "by"));
    json_t *rows = json_array(), *g;
    size_t i;
    json_t *all = json_copy(json_object_get(doc, "groups"));
    json_array_append(all, json_object_get(doc, "total"));
    json_array_foreach(all, i, g)
    {
        json_t *row = json_copy(g), *v;
        json_t *name = json_object_get(g, by);
        json_object_set_new(row, "group", name ? json_copy(name) : json_string("(all)"));
        char why[S_CELL] = "", late[32];
        const char *code;
        json_object_foreach(json_object_get(g, "declined_by_reason"), code, v)
        {
            size_t at = strlen(why);
            if (json_integer_value(v) > 0 && at < sizeof(why))
                snprintf(why + at, sizeof(why) - at, "%s%s %lld", at ? ", " : "", code,
                         (long long)json_integer_value(v));
        }
        json_object_set_new(row, "why", why[0] ? json_string(why) : json_null());
        double share = json_number_value(json_object_get(g, "overdue_share"));
        snprintf(late, sizeof(late), "%lld (%.0f %%)",
                 (long long)json_integer_value(json_object_get(g, "overdue")),
                 share * 100);
        json_object_set_new(row, "late", json_string(late));
        json_object_set(row, "p50", json_object_get(g, "first_decision_p50_seconds"));
        json_object_set(row, "p90", json_object_get(g, "first_decision_p90_seconds"));
        json_array_append_new(rows, row);
    }
    json_decref(all);
    s_col_t shown[S_NCOLS(cols)];
    memcpy(shown, cols, sizeof(cols));
    shown[0].title = by;
    printf("referral legs opened in the last %s, by %s\n",
           json_string_value(json_object_get(doc, "since")), by);
    s_print_rows(rows, shown, S_NCOLS(shown), "");
    printf("answered: a first decision (waitlisted, accepted or declined); overdue: past"
           " its deadline with none;\np50, p90: time from the leg's opening to its first"
           " decision, over the legs answered\n");
    json_decref(rows);
}

static int
s_stats(cli_t *cli, int argc, char **argv)
{
    const char *since = "90d", *by = "service";
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            cli->json = true;
        else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc)
            since = argv[++i];
        else if (strcmp(argv[i], "--by") == 0 && i + 1 < argc)
            by = argv[++i];
        else
            return cli_usage(stderr, EXIT_USAGE);
    }
    long long seconds = cli_duration(since);
    if (seconds < 0)
        return cli_error(EXIT_USAGE, "--since: give a duration such as 90d or 12h");
    if (strcmp(by, "service") != 0 && strcmp(by, "recipient") != 0)
        return cli_error(EXIT_USAGE, "--by: service or recipient");
    char secs[32];
    snprintf(secs, sizeof(secs), "%lld", seconds);
    const char *p[2] = {secs, by};
    json_t *all = NULL;
    json_t *reasons = s_decline_reasons(cli, p, &all);
    PGresult *res = reasons ? cli_query(cli, SQL_STATS, 2, p) : NULL;
    if (!res) {
        json_decref(reasons);
        json_decref(all);
        return EXIT_USAGE;
    }
    json_t *rows = cli_rows(res), *row;
    PQclear(res);
    json_t *doc = json_pack("{s:s, s:I, s:s}", "since", since, "since_seconds",
                            (json_int_t)seconds, "by", by);
    json_t *groups = json_array();
    json_object_set_new(doc, "groups", groups);
    size_t i;
    json_array_foreach(rows, i, row)
    {
        bool everything = json_is_true(json_object_get(row, "everything"));
        const char *name = json_string_value(json_object_get(row, "grp"));
        json_t *g =
            s_stats_group(row, by,
                          json_object_get(everything ? all : reasons, everything ? "all"
                                                                      : name     ? name
                                                                                 : ""));
        if (everything)
            json_object_set_new(doc, "total", g);
        else
            json_array_append_new(groups, g);
    }
    if (cli->json)
        cli_print_json(doc);
    else
        s_stats_table(doc);
    json_decref(doc);
    json_decref(rows);
    json_decref(reasons);
    json_decref(all);
    return 0;
}

int
cli_referrals(cli_t *cli, int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "stats") == 0)
        return s_stats(cli, argc - 1, argv + 1);
    return s_list(cli, argc, argv);
}
