/*  maillage_send.c: `maillage-send`, a small client for developers and
    demos: publishes events written as JSON, and takes deliveries.

        maillage-send --endpoint URL --as AGENCY [FILE.json...]
                      [--receive N] [--timeout MS]
                      [--cert NAME_secret --server-key KEY]      (CURVE)

    Each FILE is one PUBLISH as JSON (see maillage-check); its answer is
    printed as one line (confirm, with seq, routed and denied; or reject
    with the code and reason). With --receive N it then waits for N
    deliveries (or --timeout ms of quiet, default 3000), prints each and
    acknowledges it. Exit 0 when every publish was confirmed, 1 when one
    was rejected, 2 on usage or connection errors. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "maillage/client.h"
#include "maillage/json.h"
#include "file.h"
#include "toolutil.h"

/* A CONFIRM's or DELIVER's notices (PROTOCOL.md §9), when it has any:
   " notices [CODE referral_id recipient state since, ...]". */
static void
s_print_notices(const mlg_msg_t *m)
{
    if (!m->notices_count)
        return;
    printf(", notices [");
    for (size_t i = 0; i < m->notices_count; i++) {
        const mlg_notice_t *n = &m->notices[i];
        printf("%s%s", i ? ", " : "", n->code);
        if (n->referral_id[0])
            printf(" referral %s", n->referral_id);
        if (n->recipient[0])
            printf(" to %s", n->recipient);
        if (n->state[0])
            printf(" (%s)", n->state);
        if (n->has_since) {
            time_t t = (time_t)n->since.sec;
            struct tm tm;
            char when[32];
            gmtime_r(&t, &tm);
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
            printf(" since %s", when);
        }
    }
    printf("]");
}

static void
s_print_answer(const char *path, const mlg_msg_t *a)
{
    if (a->op == MLG_OP_CONFIRM) {
        printf("%s: confirm seq %llu%s, routed [", path, (unsigned long long)a->seq,
               a->duplicate ? " (duplicate)" : "");
        for (size_t i = 0; i < a->routed_count; i++)
            printf("%s%s", i ? " " : "", a->routed[i].id);
        printf("], denied [");
        for (size_t i = 0; i < a->denied_count; i++)
            printf("%s%s %s", i ? ", " : "", a->denied[i].recipient, a->denied[i].reason);
        printf("]");
        s_print_notices(a);
        printf("\n");
    }
    else
        printf("%s: %s %s: %s\n", path, a->op == MLG_OP_REJECT ? "reject" : "error",
               a->code, a->reason);
}

static int
s_usage(void)
{
    fprintf(stderr, "usage: maillage-send --endpoint URL --as AGENCY [FILE.json...]"
                    " [--receive N] [--timeout MS] [--cert FILE --server-key KEY]\n");
    return 2;
}

/* Deliveries that came before a publish's answer, kept for --receive. */
typedef struct {
    mlg_msg_t **msgs;
    size_t count, next;
} s_early_t;

/* Sends one file's event and prints its answer; 0 when confirmed. */
static int
s_send_file(mlg_client_t *c, const char *file, s_early_t *early)
{
    size_t len;
    mlg_error_t err;
    char why[512];
    char *text =
        brk_read_file(file, MLG_MAX_MESSAGE_BYTES_DEFAULT, &len, why, sizeof(why));
    mlg_msg_t *m = NULL;
    if (!text || mlg_publish_from_json(text, len, &m, &err) != MLG_OK) {
        printf("%s: not sent: %s\n", file, text ? err.reason : why);
        free(text);
        return 1;
    }
    free(text);
    mlg_client_send(c, m);
    mlg_msg_destroy(&m);
    mlg_msg_t *a = mlg_client_recv(c, 10000);
    while (a && a->op == MLG_OP_DELIVER) {
        mlg_msg_t **bigger = realloc(early->msgs, (early->count + 1) * sizeof(*bigger));
        if (bigger) {
            early->msgs = bigger;
            early->msgs[early->count++] = a;
        }
        else
            mlg_msg_destroy(&a);
        a = mlg_client_recv(c, 10000);
    }
    if (!a) {
        printf("%s: no answer within 10 s\n", file);
        return 1;
    }
    s_print_answer(file, a);
    int status = a->op == MLG_OP_CONFIRM ? 0 : 1;
    mlg_msg_destroy(&a);
    return status;
}

/* Prints and acks `receive` deliveries, the early ones first. */
static void
s_receive(mlg_client_t *c, const char *agency, long receive, long timeout,
          s_early_t *early)
{
    for (long got = 0; got < receive;) {
        mlg_msg_t *d = early->next < early->count ? early->msgs[early->next++]
                                                  : mlg_client_recv(c, (int)timeout);
        if (!d)
            break;
        if (d->op == MLG_OP_DELIVER) {
            char *body = NULL;
            mlg_msgpack_to_json(d->body, d->body_len, &body, NULL, 0);
            printf("%s: delivery %llu (attempt %llu): %s v%llu from %s about %s", agency,
                   (unsigned long long)d->delivery, (unsigned long long)d->attempt,
                   d->type, (unsigned long long)d->version, d->from,
                   d->subject[0] ? d->subject : "-");
            s_print_notices(d);
            printf(": %s\n", body ? body : "?");
            free(body);
            mlg_client_ack(c, d->delivery);
            got++;
        }
        mlg_msg_destroy(&d);
    }
    while (early->next < early->count)
        mlg_msg_destroy(&early->msgs[early->next++]);
    free(early->msgs);
}

int
main(int argc, char **argv)
{
    const char *endpoint = NULL, *agency = NULL, *cert = NULL, *server_key = NULL;
    long receive = 0, timeout = 3000;
    const char **files = calloc((size_t)argc, sizeof(char *));
    int nfiles = 0;
    bool bad = false;
    for (int i = 1; files && !bad && i < argc; i++) {
        if (strcmp(argv[i], "--endpoint") == 0 && i + 1 < argc)
            endpoint = argv[++i];
        else if (strcmp(argv[i], "--as") == 0 && i + 1 < argc)
            agency = argv[++i];
        else if (strcmp(argv[i], "--receive") == 0 && i + 1 < argc)
            receive = atol(argv[++i]);
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            timeout = atol(argv[++i]);
        else if (strcmp(argv[i], "--cert") == 0 && i + 1 < argc)
            cert = argv[++i];
        else if (strcmp(argv[i], "--server-key") == 0 && i + 1 < argc)
            server_key = argv[++i];
        else if (strncmp(argv[i], "--", 2) == 0)
            bad = true;
        else
            files[nfiles++] = argv[i];
    }
    if (!files || bad || !endpoint || !agency || receive < 0 || timeout < 0) {
        free(files);
        return s_usage();
    }
    mlg_error_t err;
    mlg_client_t *c =
        cert ? mlg_client_new_curve(endpoint, agency, "maillage-send", (uint64_t)receive,
                                    5000, cert, server_key, &err)
             : mlg_client_new(endpoint, agency, "maillage-send", (uint64_t)receive, 5000,
                              &err);
    if (!c) {
        fprintf(stderr, "maillage-send: could not join %s as %s: %s%s%s\n", endpoint,
                agency, mlg_rc_wire(err.rc) ? mlg_rc_wire(err.rc) : "",
                mlg_rc_wire(err.rc) ? ": " : "", err.reason);
        free(files);
        return 2;
    }
    int status = 0;
    s_early_t early = {NULL, 0, 0};
    for (int i = 0; i < nfiles; i++)
        status |= s_send_file(c, files[i], &early);
    s_receive(c, agency, receive, timeout, &early);
    mlg_client_destroy(&c);
    free(files);
    return status;
}
