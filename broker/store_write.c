/*  store_write.c: what a store transaction writes. Publishes, in one
    write path: a run of them with one statement for the messages, their
    decisions and their deliveries (binary arrays), a single publish
    being a run of one; a consent event's own step (the consents row of a
    grant; a revocation, and the settling of the deliveries it stops);
    the delivery updates; the audit chain's links and head.

    Not here: when a transaction begins, commits or fails (store.c),
    store_mark and the agencies table (store_conn.c), the statements'
    text (store_sql.c), reads (store_read.c). Called by the store thread
    only, inside the transaction in hand. */

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgbin.h"
#include "store_int.h"

/* A text[] literal of words: {a,b,c}. */
static void
s_array(char **list, size_t n, char *buf, size_t len)
{
    size_t at = (size_t)snprintf(buf, len, "{");
    for (size_t i = 0; i < n && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%s", i ? "," : "", list[i]);
    if (at < len)
        snprintf(buf + at, len - at, "}");
}

/* ---- the audit chain ---------------------------------------------------- */

/* The next position of the chain is taken, with this link. */
static void
s_chain_take(brk_store_t *self, const uint8_t link[BRK_LINK_BYTES])
{
    self->chain_seq++;
    memcpy(self->link, link, BRK_LINK_BYTES);
}

/* A message row's text fields, as the chain covers them and the INSERT
   writes them; the buffers hold the numbers. */
typedef struct {
    char chain_seq[24], version[24], occurred[24], received[24];
    brk_chain_message_t row;
} s_msg_fields_t;

static void
s_msg_fields(const brk_store_t *self, const brk_job_t *job, s_msg_fields_t *out)
{
    const mlg_msg_t *m = job->msg;
    snprintf(out->chain_seq, sizeof(out->chain_seq), "%llu",
             (unsigned long long)self->chain_seq + 1);
    snprintf(out->version, sizeof(out->version), "%llu", (unsigned long long)m->version);
    snprintf(out->occurred, sizeof(out->occurred), "%lld",
             (long long)mlg_time_us(m->occurred_at));
    snprintf(out->received, sizeof(out->received), "%lld", (long long)job->received_us);
    out->row = (brk_chain_message_t){
        .chain_seq = out->chain_seq,
        .id = m->id,
        .type = m->type,
        .version = out->version,
        .sender = job->sender,
        .subject = m->subject[0] ? m->subject : NULL,
        .purpose = m->purpose[0] ? m->purpose : NULL,
        .correlation = m->correlation[0] ? m->correlation : NULL,
        .occurred_at = m->has_occurred_at ? out->occurred : NULL,
        .received_at = out->received,
    };
}

/* The link a decision of `job` takes at the next position of the chain
   (not taken yet: s_chain_take). */
static void
s_decision_link(const brk_store_t *self, const brk_job_t *job, const brk_decision_t *d,
                char dseq[24], const char *received, uint8_t link[BRK_LINK_BYTES])
{
    snprintf(dseq, 24, "%llu", (unsigned long long)self->chain_seq + 1);
    brk_chain_decision_t row = {
        .chain_seq = dseq,
        .message_id = job->msg->id,
        .recipient = d->recipient,
        .decision = d->allow ? "allow" : "deny",
        .basis = mlg_basis_name(d->basis),
        .consent_id = d->consent_id[0] ? d->consent_id : NULL,
        .reason = d->reason[0] ? d->reason : NULL,
        .detail = d->detail[0] ? d->detail : NULL,
        .decided_at = received,
    };
    brk_chain_decision(self->link, &row, link);
}

/* A column's text, NULL for a NULL. */
static const char *
s_value(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* Links decision rows that SQL inserted (the settling of a revocation):
   `res` holds id, message_id, recipient, decision, basis, consent_id,
   reason, detail, decided_at in microseconds. */
static bool
s_chain_decisions(brk_store_t *self, PGresult *res)
{
    for (int i = 0; i < PQntuples(res); i++) {
        char seq[24], hex[2 * BRK_LINK_BYTES + 3];
        snprintf(seq, sizeof(seq), "%llu", (unsigned long long)self->chain_seq + 1);
        brk_chain_decision_t row = {
            .chain_seq = seq,
            .message_id = s_value(res, i, 1),
            .recipient = s_value(res, i, 2),
            .decision = s_value(res, i, 3),
            .basis = s_value(res, i, 4),
            .consent_id = s_value(res, i, 5),
            .reason = s_value(res, i, 6),
            .detail = s_value(res, i, 7),
            .decided_at = s_value(res, i, 8),
        };
        uint8_t link[BRK_LINK_BYTES];
        brk_chain_decision(self->link, &row, link);
        brk_chain_hex(link, BRK_LINK_BYTES, hex);
        const char *v[3] = {seq, hex, PQgetvalue(res, i, 0)};
        if (!brk_store_exec(self, BRK_SQL_CHAIN_DECISION, 3, v))
            return false;
        s_chain_take(self, link);
    }
    return true;
}

/* Moves chain_head to the batch's last link, if nobody else moved it
   since this connection read it (two brokers writing one chain would
   fork it: the batch fails, and the head is read again after the
   rollback). */
bool
brk_store_move_head(brk_store_t *self)
{
    char seq[24], old[24], hex[2 * BRK_LINK_BYTES + 3];
    snprintf(seq, sizeof(seq), "%llu", (unsigned long long)self->chain_seq);
    snprintf(old, sizeof(old), "%llu", (unsigned long long)self->batch_chain_seq);
    brk_chain_hex(self->link, BRK_LINK_BYTES, hex);
    const char *v[3] = {seq, hex, old};
    /* sent ahead, so the moved row count is not read: the statement
       fails (a text that is not a number) when no row moved */
    return brk_store_ahead(self, BRK_SENT_HEAD, BRK_SQL_MOVE_HEAD, 3, v, NULL, NULL);
}

/* ---- statements with binary arrays ------------------------------------- */

/* The same, and its result: what was sent ahead before it is answered
   in the same round trip. NULL on failure (logged). */
static PGresult *
s_query_arrays(brk_store_t *self, brk_sql_t stmt, int n, brk_pgbin_t *arrays)
{
    PGresult *res = NULL;
    return brk_store_send_arrays(self, stmt, n, arrays) && brk_store_collect(self, &res)
               ? res
               : NULL;
}

/* "{1,2,3}" to numbers; how many were read. */
static size_t
s_ids(const char *text, uint64_t *out, size_t max)
{
    size_t n = 0;
    const char *c = text[0] == '{' ? text + 1 : text;
    while (*c >= '0' && *c <= '9' && n < max) {
        char *end;
        out[n++] = strtoull(c, &end, 10);
        c = *end == ',' ? end + 1 : end;
    }
    return n;
}

/* ---- publishes ---------------------------------------------------------- */

/* The columns of the three tables a publish writes, one array
   each, in this order. */
enum {
    S_M_SEQ,
    S_M_ID,
    S_M_TYPE,
    S_M_VERSION,
    S_M_SENDER,
    S_M_SUBJECT,
    S_M_PURPOSE,
    S_M_CORRELATION,
    S_M_OCCURRED,
    S_M_RECEIVED,
    S_M_BODY,
    S_M_CHAIN_SEQ,
    S_M_BODY_HASH,
    S_M_LINK,
    S_D_MESSAGE,
    S_D_RECIPIENT,
    S_D_DECISION,
    S_D_BASIS,
    S_D_REASON,
    S_D_DECIDED,
    S_D_CONSENT,
    S_D_DETAIL,
    S_D_CHAIN_SEQ,
    S_D_LINK,
    S_V_ID,
    S_V_MESSAGE,
    S_V_RECIPIENT,
    S_NCOLS
};

static const uint32_t s_col_oids[S_NCOLS] = {
    BRK_OID_INT8,  BRK_OID_UUID, BRK_OID_TEXT,  BRK_OID_INT4,        BRK_OID_TEXT,
    BRK_OID_TEXT,  BRK_OID_TEXT, BRK_OID_TEXT,  BRK_OID_TIMESTAMPTZ, BRK_OID_TIMESTAMPTZ,
    BRK_OID_BYTEA, BRK_OID_INT8, BRK_OID_BYTEA, BRK_OID_BYTEA,       BRK_OID_UUID,
    BRK_OID_TEXT,  BRK_OID_TEXT, BRK_OID_TEXT,  BRK_OID_TEXT,        BRK_OID_TIMESTAMPTZ,
    BRK_OID_UUID,  BRK_OID_TEXT, BRK_OID_INT8,  BRK_OID_BYTEA,       BRK_OID_INT8,
    BRK_OID_UUID,  BRK_OID_TEXT};

/* A run of publishes on its way: the rows of the three tables, one
   binary array per column, and the numbers drawn for them. */
typedef struct {
    brk_pgbin_t cols[S_NCOLS];
    bool rows;             /* some row is in cols, not sent yet */
    bool *fresh;           /* per job: neither stored already nor earlier in the run */
    uint64_t *seqs, *dids; /* messages.seq and delivery ids, in the jobs' order */
    size_t ks, kd;         /* the next of each to take */
} s_run_t;

static void
s_run_start(s_run_t *run)
{
    for (int c = 0; c < S_NCOLS; c++)
        brk_pgbin_array_start(&run->cols[c], s_col_oids[c]);
    run->rows = false;
}

/* The ids stored already, as a set. "{uuid,uuid}": uuids need no quoting. */
static void
s_stored_ids(const char *text, zhashx_t *seen)
{
    char one[MLG_UUID_LEN + 1];
    for (const char *c = text[0] == '{' ? text + 1 : text; *c && *c != '}';) {
        size_t len = strcspn(c, ",}");
        snprintf(one, sizeof(one), "%.*s", (int)len, c);
        zhashx_insert(seen, one, (void *)1);
        c += len;
        if (*c == ',')
            c++;
    }
}

/* Which ids are stored already (and the second of two alike in the run),
   with seq and delivery ids drawn in the jobs' order (a queue's first
   attempts follow seq), so that only rows sure to go in take a place in
   the audit chain. */
static bool
s_run_check(brk_store_t *self, s_run_t *run, brk_job_t *const *jobs, size_t n)
{
    size_t nallow = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t d = 0; d < jobs[i]->ndecisions; d++)
            nallow += jobs[i]->decisions[d].allow;
    run->fresh = calloc(n, sizeof(bool));
    run->seqs = calloc(n, sizeof(uint64_t));
    run->dids = calloc(nallow ? nallow : 1, sizeof(uint64_t));
    zhashx_t *seen = zhashx_new();
    /* $1 the ids, $2 how many message and delivery ids to draw */
    brk_pgbin_t check[2] = {{0}, {0}};
    brk_pgbin_array_start(&check[0], BRK_OID_UUID);
    for (size_t i = 0; i < n; i++)
        brk_pgbin_uuid(&check[0], jobs[i]->msg->id);
    brk_pgbin_array_start(&check[1], BRK_OID_INT4);
    brk_pgbin_int(&check[1], n, 4);
    brk_pgbin_int(&check[1], nallow, 4);
    PGresult *res = run->fresh && run->seqs && run->dids && seen
                        ? s_query_arrays(self, BRK_SQL_PUBLISH_CHECK, 2, check)
                        : NULL;
    free(check[0].p);
    free(check[1].p);
    bool ok = res != NULL;
    if (ok
        && (s_ids(PQgetvalue(res, 0, 1), run->seqs, n) != n
            || s_ids(PQgetvalue(res, 0, 2), run->dids, nallow) != nallow)) {
        brk_log(BRK_LOG_ERROR, "store", "could not draw message and delivery ids");
        ok = false;
    }
    if (ok) {
        s_stored_ids(PQgetvalue(res, 0, 0), seen);
        for (size_t i = 0; i < n; i++)
            run->fresh[i] = zhashx_insert(seen, jobs[i]->msg->id, (void *)1) == 0;
    }
    PQclear(res);
    zhashx_destroy(&seen);
    return ok;
}

/* The message's row, at the chain's next position. */
static void
s_run_message(brk_store_t *self, s_run_t *run, brk_job_t *job)
{
    const mlg_msg_t *m = job->msg;
    job->seq = run->seqs[run->ks++];
    s_msg_fields_t mf;
    s_msg_fields(self, job, &mf);
    uint8_t body_hash[BRK_LINK_BYTES], link[BRK_LINK_BYTES];
    brk_chain_body_hash(m->body, m->body_len, body_hash);
    mf.row.body_hash = body_hash;
    brk_chain_message(self->link, &mf.row, link);
    brk_pgbin_t *cols = run->cols;
    brk_pgbin_int(&cols[S_M_SEQ], job->seq, 8);
    brk_pgbin_uuid(&cols[S_M_ID], m->id);
    brk_pgbin_text(&cols[S_M_TYPE], m->type);
    brk_pgbin_int(&cols[S_M_VERSION], (uint32_t)m->version, 4);
    brk_pgbin_text(&cols[S_M_SENDER], job->sender);
    brk_pgbin_text(&cols[S_M_SUBJECT], mf.row.subject);
    brk_pgbin_text(&cols[S_M_PURPOSE], mf.row.purpose);
    brk_pgbin_text(&cols[S_M_CORRELATION], mf.row.correlation);
    if (m->has_occurred_at)
        brk_pgbin_time(&cols[S_M_OCCURRED], mlg_time_us(m->occurred_at));
    else
        brk_pgbin_null(&cols[S_M_OCCURRED]);
    brk_pgbin_time(&cols[S_M_RECEIVED], job->received_us);
    brk_pgbin_bytes(&cols[S_M_BODY], m->body, m->body_len);
    brk_pgbin_int(&cols[S_M_CHAIN_SEQ], self->chain_seq + 1, 8);
    brk_pgbin_bytes(&cols[S_M_BODY_HASH], body_hash, BRK_LINK_BYTES);
    brk_pgbin_bytes(&cols[S_M_LINK], link, BRK_LINK_BYTES);
    s_chain_take(self, link);
    run->rows = true;
}

/* Its decisions, each at the chain's next position, and a delivery for
   each allow. */
static bool
s_run_decisions(brk_store_t *self, s_run_t *run, brk_job_t *job)
{
    const mlg_msg_t *m = job->msg;
    brk_pgbin_t *cols = run->cols;
    char received[24];
    snprintf(received, sizeof(received), "%lld", (long long)job->received_us);
    free(job->delivery_ids);
    job->delivery_ids = calloc(job->ndecisions ? job->ndecisions : 1, sizeof(uint64_t));
    if (!job->delivery_ids)
        return false;
    for (size_t d = 0; d < job->ndecisions; d++) {
        const brk_decision_t *dec = &job->decisions[d];
        char dseq[24];
        uint8_t dlink[BRK_LINK_BYTES];
        s_decision_link(self, job, dec, dseq, received, dlink);
        brk_pgbin_uuid(&cols[S_D_MESSAGE], m->id);
        brk_pgbin_text(&cols[S_D_RECIPIENT], dec->recipient);
        brk_pgbin_text(&cols[S_D_DECISION], dec->allow ? "allow" : "deny");
        brk_pgbin_text(&cols[S_D_BASIS], mlg_basis_name(dec->basis));
        brk_pgbin_text(&cols[S_D_REASON], dec->reason[0] ? dec->reason : NULL);
        brk_pgbin_time(&cols[S_D_DECIDED], job->received_us);
        brk_pgbin_uuid(&cols[S_D_CONSENT], dec->consent_id);
        brk_pgbin_text(&cols[S_D_DETAIL], dec->detail[0] ? dec->detail : NULL);
        brk_pgbin_int(&cols[S_D_CHAIN_SEQ], self->chain_seq + 1, 8);
        brk_pgbin_bytes(&cols[S_D_LINK], dlink, BRK_LINK_BYTES);
        s_chain_take(self, dlink);
        if (dec->allow) {
            job->delivery_ids[d] = run->dids[run->kd++];
            job->created_deliveries = true;
            brk_depths_created(self->depths, dec->recipient, job->delivery_ids[d],
                               job->received_us);
            brk_pgbin_int(&cols[S_V_ID], job->delivery_ids[d], 8);
            brk_pgbin_uuid(&cols[S_V_MESSAGE], m->id);
            brk_pgbin_text(&cols[S_V_RECIPIENT], dec->recipient);
        }
        run->rows = true;
    }
    return true;
}

/* The rows so far, in one statement sent ahead (its answer comes with
   the COMMIT's, or with the next statement that needs one). */
static bool
s_run_send(brk_store_t *self, s_run_t *run)
{
    if (!run->rows)
        return true;
    bool ok = brk_store_send_arrays(self, BRK_SQL_PUBLISH_INSERT, S_NCOLS, run->cols);
    s_run_start(run);
    return ok;
}

/* A grant's row of `consents`. */
static bool
s_insert_consent(brk_store_t *self, const brk_job_t *job)
{
    const brk_consent_t *c = job->consent;
    char parties[4096], purposes[1024], categories[1024], from[24], until[24];
    s_array(c->parties, c->nparties, parties, sizeof(parties));
    s_array(c->purposes, c->npurposes, purposes, sizeof(purposes));
    s_array(c->categories, c->ncategories, categories, sizeof(categories));
    snprintf(from, sizeof(from), "%lld", (long long)c->valid_from);
    snprintf(until, sizeof(until), "%lld", (long long)c->valid_until);
    const char *v[9] = {c->id,
                        c->subject,
                        parties,
                        purposes,
                        categories,
                        from,
                        c->valid_until == BRK_FOREVER ? NULL : until,
                        job->sender,
                        job->msg->id};
    return brk_store_exec(self, BRK_SQL_GRANT, 9, v);
}

/* Deliveries settled `revoked` (BRK_SQL_SETTLE_REVOKED), and their new
   decisions linked into the audit chain: all the pending deliveries of a
   consent just revoked but those in flight, or one found revoked or
   expired as it was about to go. The one statement for both. */
typedef struct {
    const char *consent_id;
    const char *code;   /* the decision's reason: REVOKED or EXPIRED */
    const char *event;  /* the delivery event's reason */
    const char *detail; /* the decision's detail */
    const char *actor;
    const char *keep;     /* "{id,...}": deliveries left alone (in flight) */
    const char *delivery; /* this one only, or NULL: all of the consent's */
} s_settle_t;

static bool
s_settle_revoked(brk_store_t *self, const s_settle_t *r)
{
    const char *v[7] = {r->consent_id, r->code, r->event,   r->detail,
                        r->actor,      r->keep, r->delivery};
    PGresult *res = brk_store_query(self, BRK_SQL_SETTLE_REVOKED, 7, v);
    if (res) /* a row per delivery settled, its recipient third */
        brk_store_depths_settled(
            self, res, 2, r->delivery ? strtoull(r->delivery, NULL, 10) : 0, false);
    bool ok = res && s_chain_decisions(self, res);
    PQclear(res);
    return ok;
}

/* Revokes the consent and settles `revoked` every pending delivery that
   relied on it, but those in flight (job->keep). */
static bool
s_revoke_consent(brk_store_t *self, const brk_job_t *job)
{
    char received[24];
    snprintf(received, sizeof(received), "%lld", (long long)job->received_us);
    const char *v[3] = {job->consent_id, received, job->msg->id};
    if (!brk_store_exec(self, BRK_SQL_REVOKE, 3, v))
        return false;
    size_t len = 3 + job->nkeep * 21;
    char *keep = malloc(len);
    if (!keep)
        return false;
    size_t at = (size_t)snprintf(keep, len, "{");
    for (size_t i = 0; i < job->nkeep; i++)
        at += (size_t)snprintf(keep + at, len - at, "%s%llu", i ? "," : "",
                               (unsigned long long)job->keep[i]);
    snprintf(keep + at, len - at, "}");
    s_settle_t r = {job->consent_id,
                    "REVOKED",
                    "the consent was revoked",
                    "the consent was revoked before delivery",
                    job->sender,
                    keep,
                    NULL};
    bool ok = s_settle_revoked(self, &r);
    free(keep);
    return ok;
}

/* A consent event's own step, after its message row and before its
   decisions (which name the consent: a grant's row must be there). */
static bool
s_consent_step(brk_store_t *self, const brk_job_t *job)
{
    switch (job->kind) {
    case BRK_JOB_PLAIN: return true;
    case BRK_JOB_GRANT: return s_insert_consent(self, job);
    case BRK_JOB_REVOKE: return s_revoke_consent(self, job);
    }
    return false;
}

/* Publishes, in order: the one write path for messages (a single
   publish is a run of one). Plain ones go in with one statement for the
   three tables; a consent event's own step (s_consent_step) keeps its
   place between its message and its decisions, the rows before it sent
   first. Jobs whose ids are stored already are answered as duplicates
   afterwards. false on a database error: then nothing of the
   transaction stays. */
bool
brk_store_write_publishes(brk_store_t *self, brk_job_t *const *jobs, size_t n)
{
    s_run_t run;
    memset(&run, 0, sizeof(run));
    bool ok = s_run_check(self, &run, jobs, n);
    brk_referral_rows_t legs;
    brk_referral_rows_start(&legs);
    if (ok)
        s_run_start(&run);
    for (size_t i = 0; ok && i < n; i++) {
        if (!run.fresh[i])
            continue;
        if (jobs[i]->refused != MLG_OK) { /* not stored before: refused now */
            jobs[i]->rc = jobs[i]->refused;
            continue;
        }
        s_run_message(self, &run, jobs[i]);
        if (jobs[i]->kind != BRK_JOB_PLAIN)
            ok = s_run_send(self, &run) && s_consent_step(self, jobs[i]);
        ok = ok && s_run_decisions(self, &run, jobs[i]);
        if (ok && jobs[i]->referral.step != BRK_REFERRAL_NONE)
            ok = brk_referral_rows_add(&legs, &jobs[i]->referral, true);
        if (ok)
            jobs[i]->rc = MLG_OK;
    }
    ok = ok && s_run_send(self, &run) && brk_store_write_referral_rows(self, &legs);
    brk_referral_rows_free(&legs);
    for (size_t i = 0; ok && i < n; i++)
        if (!run.fresh[i])
            ok = brk_store_read_duplicate(self, jobs[i]);
    for (int c = 0; c < S_NCOLS; c++)
        free(run.cols[c].p);
    free(run.fresh);
    free(run.seqs);
    free(run.dids);
    return ok;
}

/* ---- delivery updates --------------------------------------------------- */

/* SENT and ACK updates, in order, with one UPDATE: a delivery sent and
   acked in the same transaction is written once. They commute with
   each other (an ACK settles, a SENT counts) and with new publishes
   (other rows); a requeue, which is not one of them, ends the run, so a
   delivery is sent at most once in it. */
bool
brk_store_write_sent_acks(brk_store_t *self, brk_update_t *const *ups, size_t n)
{
    brk_pgbin_t arrays[3];
    memset(arrays, 0, sizeof(arrays));
    brk_pgbin_array_start(&arrays[0], BRK_OID_INT8);
    brk_pgbin_array_start(&arrays[1], BRK_OID_INT8);
    brk_pgbin_array_start(&arrays[2], BRK_OID_INT8);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t id = ups[i]->delivery;
        brk_pgbin_int(&arrays[ups[i]->kind == BRK_UPDATE_SENT ? 0 : 1], id, 8);
        if (ups[i]->kind == BRK_UPDATE_ACK && ups[i]->sent)
            brk_pgbin_int(&arrays[0], id, 8); /* sent and acked: one update */
        /* in flight, so pending: an ACK settles it (store_depth.c) */
        if (ups[i]->kind == BRK_UPDATE_ACK)
            brk_depths_settled(self->depths, ups[i]->recipient, id, false);
        lo = id < lo ? id : lo;
        hi = id > hi ? id : hi;
    }
    brk_pgbin_int(&arrays[2], lo, 8);
    brk_pgbin_int(&arrays[2], hi, 8);
    /* sent ahead: its answer comes with the COMMIT's */
    bool ok = brk_store_send_arrays(self, BRK_SQL_SENT_ACK, 3, arrays);
    free(arrays[0].p);
    free(arrays[1].p);
    free(arrays[2].p);
    return ok;
}

bool
brk_store_write_update(brk_store_t *self, brk_update_t *u)
{
    char id[24], attempt[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)u->delivery);
    snprintf(attempt, sizeof(attempt), "%llu", (unsigned long long)u->attempt);
    const char *ev[5] = {id, attempt, NULL, u->reason, u->actor};
    switch (u->kind) {
    case BRK_UPDATE_SENT:
    case BRK_UPDATE_ACK: return brk_store_write_sent_acks(self, &u, 1);
    case BRK_UPDATE_REVOKED: {
        s_settle_t r = {u->consent_id, u->code, u->reason, u->reason, u->actor, "{}", id};
        return s_settle_revoked(self, &r);
    }
    case BRK_UPDATE_NACK: ev[2] = "nack"; break;
    case BRK_UPDATE_REQUEUED: ev[2] = "requeued"; break;
    case BRK_UPDATE_DEAD: ev[2] = "dead"; break;
    }
    if (!brk_store_exec(self, BRK_SQL_DELIVERY_EVENT, 5, ev))
        return false;
    const char *le[2] = {id, u->reason};
    if (u->kind != BRK_UPDATE_DEAD)
        return brk_store_exec(self, BRK_SQL_LAST_ERROR, 2, le);
    PGresult *res = brk_store_query(self, BRK_SQL_DEAD, 2, le);
    bool ok = res != NULL;
    if (ok) /* a row when it was pending */
        brk_store_depths_settled(self, res, 0, u->delivery, true);
    PQclear(res);
    return ok;
}
