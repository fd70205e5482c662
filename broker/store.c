/*  store.c: the store thread (see store.h for its protocol with the
    loop).

    One loop: wait for a command, take every other command already
    waiting (up to BRK_STORE_MAX_BATCH), run them all in one transaction,
    commit, answer. Within it, publishes go in runs (store_write.c, one
    statement per run), SENT and ACK updates too; any other command keeps
    its place. When the connection is lost, the batch in hand is answered
    UNAVAILABLE (nothing of it is known to be stored), and the store
    reconnects with a growing delay (store_conn.c), answering UNAVAILABLE
    meanwhile. The updates of a failed batch are not answered: they are
    held and written first once the database is back ("Updates held over
    a failure", store_conn.c).

    Here too: the commands and reports that cross the pipe, and the
    helpers the loop sends them with.

    Not done here: deciding anything. The loop decided routing and
    consent; the store writes what it is given, and reads queues. Nor
    SQL: the statements are in store_sql.c. */

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "store_int.h"

void
brk_job_destroy(brk_job_t **job_p)
{
    brk_job_t *job = *job_p;
    if (!job)
        return;
    mlg_msg_destroy(&job->msg);
    brk_consent_destroy(&job->consent);
    free(job->keep);
    free(job->decisions);
    free(job->delivery_ids);
    zframe_destroy(&job->routing_id);
    brk_referral_plan_clear(&job->referral);
    free(job->refusal);
    free(job);
    *job_p = NULL;
}

void
brk_delivery_destroy(brk_delivery_t **row_p)
{
    brk_delivery_t *row = *row_p;
    if (!row)
        return;
    mlg_packed_deliver_destroy(&row->deliver);
    free(row);
    *row_p = NULL;
}

void
brk_update_destroy(brk_update_t **update_p)
{
    brk_update_t *u = *update_p;
    if (!u)
        return;
    free(u->reason);
    free(u);
    *update_p = NULL;
}

void
brk_fetch_destroy(brk_fetch_t **fetch_p)
{
    brk_fetch_t *fetch = *fetch_p;
    if (!fetch)
        return;
    for (size_t i = 0; i < fetch->nrows; i++)
        brk_delivery_destroy(&fetch->rows[i]);
    free(fetch->rows);
    free(fetch);
    *fetch_p = NULL;
}

/* ---- the pipe: commands in, reports out -------------------------------

   Both ways, a message is one frame holding a tagged structure by value;
   the tag's switches have no default, so the compiler names a kind left
   out, and a tag no switch knows is a programmer error. */

static bool
s_op_known(brk_store_op_t op)
{
    switch (op) {
    case BRK_STORE_CMD_PUBLISH:
    case BRK_STORE_CMD_FETCH:
    case BRK_STORE_CMD_UPDATE:
    case BRK_STORE_CMD_AGENCIES: return true;
    }
    return false;
}

/* Frees what a command carries (one the pipe would not take). */
static void
s_cmd_destroy(brk_store_cmd_t *cmd)
{
    switch (cmd->op) {
    case BRK_STORE_CMD_PUBLISH: brk_job_destroy(&cmd->job); break;
    case BRK_STORE_CMD_FETCH: brk_fetch_destroy(&cmd->fetch); break;
    case BRK_STORE_CMD_UPDATE: brk_update_destroy(&cmd->update); break;
    case BRK_STORE_CMD_AGENCIES: zstr_free(&cmd->agencies); break;
    }
}

static int
s_send_cmd(zactor_t *store, brk_store_cmd_t cmd)
{
    zframe_t *frame = zframe_new(&cmd, sizeof(cmd));
    if (frame && zframe_send(&frame, store, 0) == 0)
        return 0;
    zframe_destroy(&frame);
    s_cmd_destroy(&cmd);
    return -1;
}

int
brk_store_publish(zactor_t *store, brk_job_t **job_p)
{
    assert(job_p && *job_p);
    brk_store_cmd_t cmd = {.op = BRK_STORE_CMD_PUBLISH, .job = *job_p};
    *job_p = NULL;
    return s_send_cmd(store, cmd);
}

int
brk_store_fetch(zactor_t *store, brk_fetch_t **fetch_p)
{
    assert(fetch_p && *fetch_p);
    brk_store_cmd_t cmd = {.op = BRK_STORE_CMD_FETCH, .fetch = *fetch_p};
    *fetch_p = NULL;
    return s_send_cmd(store, cmd);
}

int
brk_store_update(zactor_t *store, brk_update_t **update_p)
{
    assert(update_p && *update_p);
    brk_store_cmd_t cmd = {.op = BRK_STORE_CMD_UPDATE, .update = *update_p};
    *update_p = NULL;
    return s_send_cmd(store, cmd);
}

int
brk_store_agencies(zactor_t *store, char **json_p)
{
    assert(json_p && *json_p);
    brk_store_cmd_t cmd = {.op = BRK_STORE_CMD_AGENCIES, .agencies = *json_p};
    *json_p = NULL;
    return s_send_cmd(store, cmd);
}

/* The next command: 1, or 0 for none (a frame no helper above wrote,
   a programmer error), or -1 at "$TERM" (zactor_destroy) or when the
   pipe is gone. */
static int
s_recv_cmd(zsock_t *pipe, brk_store_cmd_t *cmd)
{
    zframe_t *frame = zframe_recv(pipe);
    if (!frame || zframe_streq(frame, "$TERM")) {
        zframe_destroy(&frame);
        return -1;
    }
    bool ok = zframe_size(frame) == sizeof(*cmd);
    if (ok)
        memcpy(cmd, zframe_data(frame), sizeof(*cmd));
    zframe_destroy(&frame);
    ok = ok && s_op_known(cmd->op);
    assert(ok);
    if (!ok)
        brk_log(BRK_LOG_ERROR, "store", "a command of no known kind: ignored");
    return ok ? 1 : 0;
}

static bool
s_report_known(brk_store_report_kind_t kind)
{
    switch (kind) {
    case BRK_STORE_DONE:
    case BRK_STORE_FETCHED:
    case BRK_STORE_REPLAY:
    case BRK_STORE_CONSENTS:
    case BRK_STORE_REFERRALS:
    case BRK_STORE_DB_UP:
    case BRK_STORE_DB_DOWN: return true;
    }
    return false;
}

/* Tells the loop; what the report carries is the loop's now. */
void
brk_store_report(zsock_t *pipe, brk_store_report_t report)
{
    zframe_t *frame = zframe_new(&report, sizeof(report));
    if (frame && zframe_send(&frame, pipe, 0) != 0)
        zframe_destroy(&frame); /* the loop is gone: it was stopping */
}

int
brk_store_recv(zsock_t *pipe, brk_store_report_t *report)
{
    zframe_t *frame = zframe_recv(pipe);
    /* anything else is the actor's signal that it has ended (zactor) */
    bool ok = frame && zframe_size(frame) == sizeof(*report);
    if (ok)
        memcpy(report, zframe_data(frame), sizeof(*report));
    zframe_destroy(&frame);
    if (!ok)
        return -1;
    ok = s_report_known(report->kind);
    assert(ok); /* only brk_store_report writes on this pipe */
    return ok ? 0 : -1;
}

/* A command's answer: publishes and reads go back to the loop; an update
   is freed once written, and held otherwise. */
static void
s_answer(brk_store_t *self, zsock_t *pipe, brk_store_cmd_t *cmd, bool committed)
{
    switch (cmd->op) {
    case BRK_STORE_CMD_PUBLISH:
        if (!committed) {
            cmd->job->rc = MLG_UNAVAILABLE;
            cmd->job->duplicate = false;
            cmd->job->created_deliveries = false;
            free(cmd->job->delivery_ids);
            cmd->job->delivery_ids = NULL;
        }
        brk_store_report(pipe,
                         (brk_store_report_t){.kind = BRK_STORE_DONE, .job = cmd->job});
        break;
    case BRK_STORE_CMD_FETCH:
        cmd->fetch->ok = committed;
        brk_store_report(
            pipe, (brk_store_report_t){.kind = BRK_STORE_FETCHED, .fetch = cmd->fetch});
        break;
    case BRK_STORE_CMD_UPDATE:
        if (committed)
            brk_update_destroy(&cmd->update);
        else
            brk_store_hold(self, cmd);
        break;
    case BRK_STORE_CMD_AGENCIES:
        assert(false); /* never in a batch: written as it comes */
        break;
    }
}

/* The run of like commands a command joins; one that joins none keeps
   its place, the runs before it written first. */
typedef enum {
    S_ALONE,
    S_RUN_PUBLISH, /* publishes: one write path (store_write.c) */
    S_RUN_SENT_ACK /* SENT and ACK updates: they touch other rows than new
                      publishes, and commute */
} s_run_kind_t;

static s_run_kind_t
s_run_kind(const brk_store_cmd_t *cmd)
{
    switch (cmd->op) {
    case BRK_STORE_CMD_PUBLISH: return S_RUN_PUBLISH;
    case BRK_STORE_CMD_UPDATE:
        return cmd->update->kind == BRK_UPDATE_SENT || cmd->update->kind == BRK_UPDATE_ACK
                   ? S_RUN_SENT_ACK
                   : S_ALONE;
    case BRK_STORE_CMD_FETCH:
    case BRK_STORE_CMD_AGENCIES: return S_ALONE;
    }
    return S_ALONE;
}

/* The commands' statements, in the transaction begun; false on a
   database error. */
static bool
s_write(brk_store_t *self, brk_store_cmd_t *cmds, size_t n, brk_job_t **jobs,
        brk_update_t **ups)
{
    size_t njobs = 0, nups = 0;
    for (size_t i = 0; i <= n; i++) {
        s_run_kind_t kind = i < n ? s_run_kind(&cmds[i]) : S_ALONE;
        if (kind == S_RUN_PUBLISH) {
            jobs[njobs++] = cmds[i].job;
            continue;
        }
        if (kind == S_RUN_SENT_ACK) {
            ups[nups++] = cmds[i].update;
            continue;
        }
        if (njobs && !brk_store_write_publishes(self, jobs, njobs))
            return false;
        if (nups && !brk_store_write_sent_acks(self, ups, nups))
            return false;
        njobs = nups = 0;
        if (i == n)
            break;
        bool ok = false;
        switch (cmds[i].op) {
        case BRK_STORE_CMD_FETCH: ok = brk_store_read_queue(self, cmds[i].fetch); break;
        case BRK_STORE_CMD_UPDATE:
            ok = brk_store_write_update(self, cmds[i].update);
            break;
        case BRK_STORE_CMD_PUBLISH: /* in a run */
        case BRK_STORE_CMD_AGENCIES: /* never in a batch */ assert(false); break;
        }
        if (!ok)
            return false;
    }
    return true;
}

/* After a transaction failed: the connection dropped when it is lost
   (the outcome of its `nupdates` in doubt if it had begun), or the
   transaction rolled back and what another writer moved read again. */
static void
s_failed(brk_store_t *self, zsock_t *pipe, bool begun, size_t nupdates)
{
    /* nothing of the batch was kept: neither are its links */
    self->chain_seq = self->batch_chain_seq;
    memcpy(self->link, self->batch_link, BRK_LINK_BYTES);
    if (!self->conn)
        return;
    if (PQstatus(self->conn) != CONNECTION_OK || self->broken) {
        brk_store_disconnect(self, pipe);
        if (begun && nupdates) {
            assert(self->ndoubt == 0); /* settled when this connection began */
            self->ndoubt = nupdates;
        }
        return;
    }
    PQclear(PQexec(self->conn, brk_sql_text(BRK_SQL_ROLLBACK)));
    if (self->head_stale && brk_store_read_head(self, self->conn))
        self->head_stale = false;
    if (self->mark_stale && brk_store_read_mark(self, self->conn))
        self->mark_stale = false;
}

/* Runs the commands in one transaction; true when it committed. The
   commands stay the caller's. When the connection is lost after BEGIN
   with updates in the transaction, its outcome is in doubt: those
   updates must be the first held (or about to be), and the next
   connection settles it (brk_store_read_mark). */
static bool
s_transact(brk_store_t *self, zsock_t *pipe, brk_store_cmd_t *cmds, size_t n)
{
    brk_job_t **jobs = calloc(n, sizeof(*jobs));
    brk_update_t **ups = calloc(n, sizeof(*ups));
    size_t nupdates = 0;
    for (size_t i = 0; i < n; i++)
        nupdates += cmds[i].op == BRK_STORE_CMD_UPDATE;
    bool ok = jobs && ups && brk_store_connect(self, pipe);
    bool begun = false;
    int64_t began = zclock_usecs();
    self->batch_chain_seq = self->chain_seq;
    memcpy(self->batch_link, self->link, BRK_LINK_BYTES);
    if (ok)
        ok = begun =
            brk_store_ahead(self, BRK_SENT_PLAIN, BRK_SQL_BEGIN, 0, NULL, NULL, NULL);
    ok = ok && s_write(self, cmds, n, jobs, ups);
    free(jobs);
    free(ups);
    if (ok && self->chain_seq != self->batch_chain_seq)
        ok = brk_store_move_head(self);
    if (ok && nupdates)
        ok = brk_store_move_mark(self);
    if (ok)
        ok = brk_store_ahead(self, BRK_SENT_COMMIT, BRK_SQL_COMMIT, 0, NULL, NULL, NULL)
             && brk_store_collect(self, NULL);
    else if (self->conn && brk_store_piped(self))
        brk_store_collect(self, NULL); /* what was sent before the failure */
    if (!ok) {
        brk_depths_rollback(self->depths);
        s_failed(self, pipe, begun, nupdates);
        return false;
    }
    brk_depths_commit(self->depths); /* the queues' depths, as committed */
    brk_metrics_commit_seconds(self->metrics, (double)(zclock_usecs() - began) / 1e6);
    if (nupdates)
        self->mark++;
    return true;
}

/* The first n held updates in a transaction, tried twice while the
   connection stands: a first failure may be another writer's (the mark
   or the chain's head moved, read again since). */
static bool
s_try_held(brk_store_t *self, zsock_t *pipe, size_t n)
{
    for (int tries = 0; tries < 2 && self->conn; tries++)
        if (s_transact(self, pipe, self->held, n))
            return true;
    return false;
}

/* Writes the held updates, oldest first, BRK_STORE_MAX_BATCH to a transaction.
   True when none is left; false when the database is away. */
static bool
s_flush_held(brk_store_t *self, zsock_t *pipe)
{
    while (self->nheld) {
        /* connected first: a new connection may find some of them
           written already (brk_store_read_mark) */
        if (!brk_store_connect(self, pipe))
            return false;
        if (!self->nheld)
            break;
        size_t n = self->nheld < BRK_STORE_MAX_BATCH ? self->nheld : BRK_STORE_MAX_BATCH;
        if (s_try_held(self, pipe, n)) {
            brk_store_held_drop(self, n);
            continue;
        }
        if (!self->conn)
            return false;
        /* refused with the connection up: one at a time, so that an
           update the database will never take does not hold the others
           back for ever */
        for (size_t i = 0; i < n; i++) {
            if (s_try_held(self, pipe, 1)) {
                brk_store_held_drop(self, 1);
                continue;
            }
            if (!self->conn)
                return false;
            brk_update_t *u = self->held[0].update;
            brk_log(BRK_LOG_ERROR, "store",
                    "the database refused the %s update of delivery %llu: dropped",
                    brk_store_update_name(u->kind), (unsigned long long)u->delivery);
            brk_store_held_drop(self, 1);
        }
    }
    if (self->dropped) {
        brk_log(BRK_LOG_ERROR, "store",
                "%zu update(s) were dropped while the database was away: their "
                "deliveries stay pending there",
                self->dropped);
        self->dropped = 0;
    }
    return true;
}

/* A batch from the loop: after the held updates, in a transaction of its
   own; everything of it is answered. */
static void
s_run_batch(brk_store_t *self, zsock_t *pipe, brk_store_cmd_t *cmds, size_t n)
{
    bool ok = s_flush_held(self, pipe) && s_transact(self, pipe, cmds, n);
    for (size_t i = 0; i < n; i++) {
        if (!ok && cmds[i].op == BRK_STORE_CMD_FETCH) {
            /* rows read in a failed transaction are not handed out */
            brk_fetch_t *f = cmds[i].fetch;
            for (size_t k = 0; k < f->nrows; k++)
                brk_delivery_destroy(&f->rows[k]);
            f->nrows = 0;
        }
        s_answer(self, pipe, &cmds[i], ok);
    }
}

static void
s_actor(zsock_t *pipe, void *args)
{
    brk_store_t *self = args;
    zsock_signal(pipe, 0);
    brk_store_cmd_t *cmds = calloc(BRK_STORE_MAX_BATCH, sizeof(brk_store_cmd_t));
    zpoller_t *poller = zpoller_new(pipe, NULL);
    bool terminated = false;
    while (!terminated) {
        /* idle: look for notifications twice a second, and for the
           queues' count often while it is out; while disconnected,
           wake up to retry */
        void *which = zpoller_wait(poller, self->counter ? 50
                                           : self->conn  ? 500
                                                         : BRK_STORE_BACKOFF_MIN_MS);
        if (!which) {
            if (zpoller_terminated(poller))
                break;
            if (self->conn)
                brk_store_check_notifies(self, pipe);
            else
                brk_store_connect(self, pipe);
            if (self->conn && self->nheld)
                s_flush_held(self, pipe); /* nothing else may come to write them */
            brk_store_depths_refresh(self);
            continue;
        }
        size_t n = 0;
        while (n < BRK_STORE_MAX_BATCH && (n == 0 || (zsock_events(pipe) & ZMQ_POLLIN))) {
            int got = s_recv_cmd(pipe, &cmds[n]);
            if (got < 0) {
                terminated = true;
                break;
            }
            if (got == 0)
                continue;
            if (cmds[n].op != BRK_STORE_CMD_AGENCIES) {
                n++;
                continue;
            }
            free(self->agencies);
            self->agencies = cmds[n].agencies;
            self->agencies_dirty = true;
            brk_store_write_agencies(self);
            if (!(zsock_events(pipe) & ZMQ_POLLIN))
                break; /* nothing else waiting: do not block for more */
        }
        if (n)
            s_run_batch(self, pipe, cmds, n);
        brk_store_check_notifies(self, pipe);
        brk_store_depths_refresh(self); /* once per batch */
    }
    zpoller_destroy(&poller);
    free(cmds);
    /* on the way out, one more try while the connection stands; not a new
       connection, which could hold the broker's exit for a long time */
    if (self->conn && self->nheld)
        s_flush_held(self, pipe);
    if (self->nheld)
        brk_log(BRK_LOG_ERROR, "store",
                "stopping with %zu delivery update(s) not written: their deliveries are "
                "pending in the database and will be delivered again",
                self->nheld);
    brk_store_held_drop(self, self->nheld);
    free(self->held);
    if (self->counter)
        PQfinish(self->counter);
    brk_depths_destroy(&self->depths);
    if (self->conn)
        PQfinish(self->conn);
    free(self->database);
    free(self->sql_dir);
    free(self->deadlines);
    free(self->agencies);
    free(self);
}

zactor_t *
brk_store_new(const char *database, const char *sql_dir, brk_metrics_t *metrics,
              const brk_deadline_t *deadlines, size_t ndeadlines)
{
    if (brk_chain_init() != 0) {
        brk_log(BRK_LOG_ERROR, "store", "libsodium could not start");
        return NULL;
    }
    brk_store_t *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->metrics = metrics;
    self->database = strdup(database);
    self->sql_dir = strdup(sql_dir);
    self->backoff_ms = BRK_STORE_BACKOFF_MIN_MS;
    self->deadlines = malloc((ndeadlines ? ndeadlines : 1) * sizeof(brk_deadline_t));
    if (self->deadlines && ndeadlines)
        memcpy(self->deadlines, deadlines, ndeadlines * sizeof(brk_deadline_t));
    self->ndeadlines = ndeadlines;
    self->depths = brk_depths_new();
    if (!self->database || !self->sql_dir || !self->deadlines || !self->depths) {
        free(self->database);
        free(self->sql_dir);
        free(self->deadlines);
        brk_depths_destroy(&self->depths);
        free(self);
        return NULL;
    }
    return zactor_new(s_actor, self);
}
