/*  store_sql.c: the text of every statement the store thread sends, by
    name (brk_sql_t), and which of them are prepared on each connection.

    Only text: the parameters are bound where each statement is used
    (store_write.c, store_read.c, store_conn.c), and each entry here says
    what they are. Not here: the migrations (broker/sql/, migrate.c).

    Times cross as microseconds since 1970: a bigint in text parameters,
    a timestamptz in binary arrays. */

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>

#include "log.h"
#include "store_int.h"

/* The fast path's insert: the rows of a run of publishes, one binary
   array per column (store_write.c, S_NCOLS in its order). */
#define S_INSERT_PUBLISHES                                                               \
    "with m as (insert into messages (seq, id, type, version, sender, subject, purpose," \
    "  correlation, occurred_at, received_at, body, chain_seq, body_hash, link)"         \
    "  select * from unnest($1::bigint[], $2::uuid[], $3::text[], $4::int[],"            \
    "  $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[],"               \
    "  $10::timestamptz[], $11::bytea[], $12::bigint[], $13::bytea[], $14::bytea[])),"   \
    " d as (insert into consent_decisions (message_id, recipient, decision, basis,"      \
    "  reason, decided_at, consent_id, detail, chain_seq, link)"                         \
    "  select * from unnest($15::uuid[], $16::text[], $17::text[], $18::text[],"         \
    "  $19::text[], $20::timestamptz[], $21::uuid[], $22::text[], $23::bigint[],"        \
    "  $24::bytea[]))"                                                                   \
    " insert into deliveries (id, message_id, recipient)"                                \
    " select * from unnest($25::bigint[], $26::uuid[], $27::text[])"

/* A run's referral rows (store_referral.c), binary arrays: the
   referrals opened ($1-$7: referral_id, message_id, referrer, subject,
   service, priority, created_at), then the legs as they are after
   ($8-$22: referral_id, recipient, referrer, subject, service,
   priority, state, opened_at, decided_at, closed_at, due_at, overdue
   notified at, the state before ('' for a leg opened), the message that
   moved it, when); a leg whose state changed gets a row of
   referral_moves. The upsert keeps a first decision, closing and overdue
   notice already written. */
/* clang-format off */
#define S_WRITE_LEGS \
    "with r as (insert into referrals (referral_id, message_id, referrer, subject," \
    "  service, priority, created_at) select * from unnest($1::uuid[], $2::uuid[]," \
    "  $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[]))," \
    " x as (select * from unnest($8::uuid[], $9::text[], $10::text[], $11::text[]," \
    "  $12::text[], $13::text[], $14::text[], $15::timestamptz[], $16::timestamptz[]," \
    "  $17::timestamptz[], $18::timestamptz[], $19::timestamptz[], $20::text[]," \
    "  $21::uuid[], $22::timestamptz[]) as x(referral_id, recipient, referrer, subject," \
    "  service, priority, state, opened, decided, closed, due, overdue, before," \
    "  message, at))," \
    " l as (insert into referral_legs as g (referral_id, recipient, referrer, subject," \
    "  service, priority, state, opened_at, decided_at, closed_at, due_at," \
    "  overdue_notified_at, overdue_message_id)" \
    "  select referral_id, recipient, referrer, subject, service, priority, state," \
    "  opened, decided, closed, due, overdue," \
    "  case when overdue is not null then message end from x" \
    "  on conflict (referral_id, recipient) do update set state = excluded.state," \
    "  decided_at = coalesce(g.decided_at, excluded.decided_at)," \
    "  closed_at = coalesce(g.closed_at, excluded.closed_at)," \
    "  overdue_notified_at = coalesce(g.overdue_notified_at," \
    "  excluded.overdue_notified_at), overdue_message_id = coalesce(" \
    "  g.overdue_message_id, excluded.overdue_message_id))" \
    " insert into referral_moves (referral_id, recipient, from_state, to_state," \
    "  message_id, moved_at) select referral_id, recipient, nullif(before, '')," \
    "  state, message, at from x where before <> state"

/* A run's duplicates, binary arrays: referral_id, message_id,
   duplicate_of, duplicate_recipient, duplicate_referrer,
   duplicate_state, since, told_publisher and told_recipient ('t' or
   'f'), found_at. */
#define S_WRITE_DUPLICATES \
    "insert into referral_duplicates (referral_id, message_id, duplicate_of," \
    "  duplicate_recipient, duplicate_referrer, duplicate_state, since, told_publisher," \
    "  told_recipient, found_at) select a, b, c, d, e, f, g, h::boolean, i::boolean, j" \
    "  from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[]," \
    "  $6::text[], $7::timestamptz[], $8::text[], $9::text[], $10::timestamptz[])" \
    "  as y(a, b, c, d, e, f, g, h, i, j)"
/* clang-format on */

/* The settling of revoked deliveries: $1 the consent, $2 the decision's
   reason (REVOKED or EXPIRED), $3 the delivery event's reason, $4 the
   decision's detail, $5 the actor, $6 the deliveries left alone (in
   flight, bigint[] text), $7 one delivery, or NULL for all the pending
   ones that rely on the consent. Returns the new decisions as the audit
   chain covers them. */
#define S_SETTLE_REVOKED                                                                 \
    "with r as (update deliveries d set state = 'revoked', settled_at = now(),"          \
    "  updated_at = now() from consent_decisions c"                                      \
    "  where c.message_id = d.message_id and c.recipient = d.recipient"                  \
    "  and c.decision = 'allow' and c.basis = 'consent' and c.consent_id = $1"           \
    "  and d.state = 'pending' and d.id <> all($6::bigint[])"                            \
    "  and ($7::bigint is null or d.id = $7::bigint)"                                    \
    "  returning d.id, d.message_id, d.recipient, d.attempts),"                          \
    " e as (insert into delivery_events (delivery_id, attempt, event, reason, actor)"    \
    "  select id, attempts, 'revoked', $3, $5 from r)"                                   \
    " insert into consent_decisions (message_id, recipient, decision, basis,"            \
    "  consent_id, reason, detail, decided_at)"                                          \
    " select message_id, recipient, 'deny', 'consent', $1, $2, $4, now() from r"         \
    " returning id, message_id, recipient, decision, basis, consent_id, reason,"         \
    "  detail, (extract(epoch from decided_at) * 1000000)::bigint"

/* The queues' depths (store_depth.c). A queue's oldest pending
   delivery, for each agency `a.recipient`: its lowest id pending (ids
   grow with each publish), one probe of deliveries_pending (recipient,
   id), and its message's received_at in µs; none: NULLs. */
#define S_OLDEST_PENDING                                                                 \
    " left join lateral (select d.id,"                                                   \
    "  (extract(epoch from m.received_at) * 1000000)::bigint as us"                      \
    "  from deliveries d join messages m on m.id = d.message_id"                         \
    "  where d.recipient = a.recipient and d.state = 'pending' order by d.id limit 1) o" \
    " on true"

static const struct {
    /* the name it is prepared under on each connection, or NULL: sent
       with its text each time, planned for the values in hand (a generic
       plan for `= any($1)` was measured 5-10 times slower; not
       session-wide force_custom_plan, which would replan the foreign key
       checks' queries for every row) */
    const char *prepared;
    const char *text;
} s_sql[BRK_SQL_NSTATEMENTS] = {
    [BRK_SQL_BEGIN] = {NULL, "begin"},
    [BRK_SQL_COMMIT] = {NULL, "commit"},
    [BRK_SQL_ROLLBACK] = {NULL, "rollback"},
    /* operators' replays (maillage dlq replay) come as notifications */
    [BRK_SQL_LISTEN] = {NULL, "listen maillage_replay"},

    [BRK_SQL_READ_HEAD] = {NULL, "select chain_seq, link from chain_head where id = 1"},
    /* $1 the new position, $2 its link (bytea text), $3 the position this
       store read. Sent ahead, so its row count is not read: it fails (a
       text that is not a number) when another writer moved the head. */
    [BRK_SQL_MOVE_HEAD] =
        {NULL, "with h as (update chain_head set chain_seq = $1, link = $2::bytea"
               " where id = 1 and chain_seq = $3 returning 1)"
               " select (case when count(*) = 1 then '1'"
               " else 'the audit chain was extended by another writer' end)::int from h"},

    [BRK_SQL_READ_MARK] = {NULL, "select batch from store_mark where id = 1"},
    /* $1 the next number, $2 the one this store read: fails as MOVE_HEAD */
    [BRK_SQL_MOVE_MARK] =
        {NULL, "with m as (update store_mark set batch = $1 where id = 1 and batch = $2"
               " returning 1)"
               " select (case when count(*) = 1 then '1'"
               " else 'store_mark was moved by another writer' end)::int from m"},

    [BRK_SQL_READ_CONSENTS] =
        {NULL, "select id, subject, parties::text, purposes::text, categories::text,"
               " (extract(epoch from valid_from) * 1000000)::bigint,"
               " (extract(epoch from valid_until) * 1000000)::bigint,"
               " (extract(epoch from revoked_at) * 1000000)::bigint, granted_by,"
               " granted_message_id, coalesce(revoked_message_id::text, '')"
               " from consents order by id"},

    /* $1 the registry as JSON (DESIGN.md "Database"): rows upserted,
       agencies no longer configured removed */
    [BRK_SQL_WRITE_AGENCIES] =
        {NULL,
         "with cfg as (select * from json_to_recordset($1::json) as x(id text, name text,"
         " public_keys text[], publish text[], subscribe text[])),"
         " gone as (delete from agencies where id not in (select id from cfg))"
         " insert into agencies (id, name, public_keys, publish, subscribe, updated_at)"
         " select id, name, public_keys, publish, subscribe, now() from cfg"
         " on conflict (id) do update set name = excluded.name,"
         " public_keys = excluded.public_keys, publish = excluded.publish,"
         " subscribe = excluded.subscribe, updated_at = now()"
         " where (agencies.name, agencies.public_keys, agencies.publish,"
         " agencies.subscribe)"
         " is distinct from (excluded.name, excluded.public_keys, excluded.publish,"
         " excluded.subscribe)"},

    /* binary arrays: $1 a run's message ids, $2 {messages, deliveries}:
       which ids are stored already, and the numbers of the new rows */
    [BRK_SQL_PUBLISH_CHECK] = {NULL, "select array(select id::text from messages"
                                     "  where id = any($1::uuid[])),"
                                     " array(select nextval('messages_seq')"
                                     "  from generate_series(1, ($2::int[])[1])),"
                                     " array(select nextval('deliveries_id_seq')"
                                     "  from generate_series(1, ($2::int[])[2]))"},
    [BRK_SQL_PUBLISH_INSERT] = {"publish_insert", S_INSERT_PUBLISHES},
    /* $1 a message id: a duplicate, or another agency's id */
    [BRK_SQL_STORED_MESSAGE] = {NULL, "select seq, sender from messages where id = $1"},
    /* $1 a message id: the answer decided when it was first stored */
    [BRK_SQL_STORED_DECISIONS] =
        {NULL, "select recipient, decision = 'allow', coalesce(reason, ''), basis"
               " from consent_decisions where message_id = $1 order by id"},

    /* $1 id, $2 subject, $3 parties, $4 purposes, $5 categories (text[]
       literals), $6 valid_from, $7 valid_until or NULL (µs), $8 the
       granting agency, $9 the consent.granted message */
    [BRK_SQL_GRANT] =
        {NULL, "insert into consents (id, subject, parties, purposes, categories,"
               " valid_from, valid_until, granted_by, granted_message_id) values"
               " ($1, $2, $3, $4, $5,"
               " 'epoch'::timestamptz + $6::bigint * interval '1 microsecond',"
               " 'epoch'::timestamptz + $7::bigint * interval '1 microsecond', $8, $9)"},
    /* $1 the consent, $2 revoked_at (µs), $3 the consent.revoked message */
    [BRK_SQL_REVOKE] =
        {NULL, "update consents set revoked_at = 'epoch'::timestamptz + $2::bigint *"
               " interval '1 microsecond', revoked_message_id = $3"
               " where id = $1 and revoked_at is null"},
    [BRK_SQL_SETTLE_REVOKED] = {NULL, S_SETTLE_REVOKED},
    /* $1 chain_seq, $2 link (bytea text), $3 the decision's id */
    [BRK_SQL_CHAIN_DECISION] = {NULL, "update consent_decisions set chain_seq = $1,"
                                      " link = $2::bytea where id = $3"},

    /* $1 the recipient, $2 delivery ids greater than this, $3 how many */
    [BRK_SQL_READ_QUEUE] =
        {NULL,
         "select d.id, d.attempts, m.id, m.type, m.version, coalesce(m.subject, ''),"
         " coalesce(m.purpose, ''), coalesce(m.correlation, ''),"
         " (extract(epoch from m.occurred_at) * 1000000)::bigint, m.sender,"
         " (extract(epoch from m.received_at) * 1000000)::bigint, m.body,"
         " coalesce(c.consent_id::text, ''),"
         /* a referral's duplicates told to this recipient (§9), "id us,..." */
         " case when m.type = 'referral.created' then (select string_agg("
         " r.duplicate_of::text || ' ' || (extract(epoch from r.since) * "
         "1000000)::bigint,"
         " ',' order by r.id) from referral_duplicates r where r.message_id = m.id"
         " and r.duplicate_recipient = d.recipient and r.told_recipient) end"
         " from deliveries d join messages m on m.id = d.message_id"
         " left join consent_decisions c on c.message_id = d.message_id"
         " and c.recipient = d.recipient and c.decision = 'allow' and c.basis = 'consent'"
         " where d.recipient = $1 and d.state = 'pending' and d.id > $2::bigint"
         " order by d.id limit $3::int"},

    /* binary arrays: $1 deliveries sent, $2 acked, $3 {lowest, highest}
       of all: the range lets the planner see a few pages of the primary
       key, not a share of the table worth a sequential scan (ids are
       recent, and correlated with the heap's order) */
    [BRK_SQL_SENT_ACK] =
        {NULL, "update deliveries set"
               " attempts = attempts + case when id = any($1::bigint[]) then 1"
               "  else 0 end,"
               " first_sent_at = case when id = any($1::bigint[])"
               "  then coalesce(first_sent_at, now()) else first_sent_at end,"
               " state = case when id = any($2::bigint[]) and state = 'pending'"
               "  then 'acked' else state end,"
               " settled_at = case when id = any($2::bigint[])"
               "  and state = 'pending' then now() else settled_at end,"
               " updated_at = now()"
               " where id between ($3::bigint[])[1] and ($3::bigint[])[2]"
               " and (id = any($1::bigint[]) or id = any($2::bigint[]))"},
    [BRK_SQL_WRITE_LEGS] = {"mlg_write_legs", S_WRITE_LEGS},
    [BRK_SQL_WRITE_DUPLICATES] = {"mlg_write_duplicates", S_WRITE_DUPLICATES},
    [BRK_SQL_READ_REFERRALS] =
        {NULL, "select referral_id, referrer, subject, service, priority,"
               " (extract(epoch from created_at) * 1000000)::bigint from referrals"},
    [BRK_SQL_READ_LEGS] =
        {NULL, "select referral_id, recipient, referrer, subject, service, priority,"
               " state, (extract(epoch from opened_at) * 1000000)::bigint,"
               " coalesce((extract(epoch from decided_at) * 1000000)::bigint, 0),"
               " coalesce((extract(epoch from closed_at) * 1000000)::bigint, 0),"
               " (extract(epoch from due_at) * 1000000)::bigint,"
               " coalesce((extract(epoch from overdue_notified_at) * 1000000)::bigint, 0)"
               " from referral_legs"},
    /* the referral.* messages stored before the legs were, in order, each
       with its recipients and whether each was allowed */
    [BRK_SQL_REBUILD_MESSAGES] =
        {NULL,
         "select m.id, m.type, m.sender, coalesce(m.subject, ''), m.body,"
         " (extract(epoch from m.received_at) * 1000000)::bigint,"
         " coalesce(string_agg(c.recipient || ' ' || c.decision, ',' order by c.id),"
         " '') from messages m left join consent_decisions c on c.message_id = m.id"
         " and c.basis <> 'service_notice'"
         " where m.type like 'referral.%' and m.sender <> 'maillage'"
         " group by m.seq, m.id order by m.seq"},
    /* $1 delivery, $2 attempt, $3 event, $4 reason, $5 actor */
    [BRK_SQL_DELIVERY_EVENT] =
        {NULL, "insert into delivery_events (delivery_id, attempt, event, reason, actor)"
               " values ($1, $2, $3, $4, $5)"},
    /* $1 delivery, $2 the reason or NULL; its recipient when it died */
    [BRK_SQL_DEAD] = {NULL, "update deliveries set state = 'dead', last_error ="
                            " coalesce($2, last_error), settled_at = now(),"
                            " updated_at = now() where id = $1 and state = 'pending'"
                            " returning recipient"},
    [BRK_SQL_LAST_ERROR] = {NULL, "update deliveries set last_error = coalesce($2,"
                                  " last_error), updated_at = now() where id = $1"},

    /* On the count's own connection: a snapshot taken by the select, so
       that every transaction of the store after it is not in the count */
    [BRK_SQL_COUNT_SNAPSHOT] = {NULL, "begin transaction isolation level repeatable"
                                      " read, read only; select 1"},
    /* Every queue's pending and dead deliveries (agency, pending, dead;
       an agency in one row or two): index-only scans of the partial
       indexes deliveries_pending and deliveries_dead, so the count costs
       the backlog, not the deliveries' history */
    [BRK_SQL_COUNT_QUEUES] =
        {NULL, "select recipient, count(*), 0::bigint from deliveries"
               " where state = 'pending' group by recipient"
               " union all select recipient, 0::bigint, count(*) from deliveries"
               " where state = 'dead' group by recipient"},
    /* $1 agencies (text[]): each one's pending and dead deliveries, and
       its oldest pending one (id, µs, or NULLs) */
    [BRK_SQL_RECOUNT_QUEUES] =
        {NULL, "select a.recipient, (select count(*) from deliveries d"
               " where d.recipient = a.recipient and d.state = 'pending'),"
               " (select count(*) from deliveries d where d.recipient = a.recipient"
               " and d.state = 'dead'), o.id, o.us"
               " from unnest($1::text[]) as a(recipient)" S_OLDEST_PENDING},
    /* $1 agencies (text[]): each one's oldest pending delivery (id, µs,
       or NULLs) */
    [BRK_SQL_OLDEST_PENDING] =
        {NULL, "select a.recipient, o.id, o.us"
               " from unnest($1::text[]) as a(recipient)" S_OLDEST_PENDING},
};

const char *
brk_sql_text(brk_sql_t sql)
{
    assert(sql < BRK_SQL_NSTATEMENTS && s_sql[sql].text);
    return s_sql[sql].text;
}

const char *
brk_sql_prepared(brk_sql_t sql)
{
    assert(sql < BRK_SQL_NSTATEMENTS);
    return s_sql[sql].prepared;
}

bool
brk_sql_prepare(PGconn *conn)
{
    for (size_t i = 0; i < BRK_SQL_NSTATEMENTS; i++) {
        if (!s_sql[i].prepared)
            continue;
        PGresult *res = PQprepare(conn, s_sql[i].prepared, s_sql[i].text, 0, NULL);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            brk_log(BRK_LOG_ERROR, "store", "could not prepare %s: %s", s_sql[i].prepared,
                    PQresultErrorMessage(res));
        PQclear(res);
        if (!ok)
            return false;
    }
    return true;
}
