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

#include "maillage/client.h"
#include "maillage/json.h"
#include "toolutil.h"

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
        printf("]\n");
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

int
main(int argc, char **argv)
{
    const char *endpoint = NULL, *agency = NULL, *cert = NULL, *server_key = NULL;
    long receive = 0, timeout = 3000;
    const char **files = calloc((size_t)argc, sizeof(char *));
    int nfiles = 0;
    for (int i = 1; i < argc; i++) {
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
        else if (strncmp(argv[i], "--", 2) == 0) {
            free(files);
            return s_usage();
        }
        else
            files[nfiles++] = argv[i];
    }
    if (!endpoint || !agency || receive < 0 || timeout < 0) {
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
    mlg_msg_t **early = NULL;
    size_t nearly = 0, next = 0;
    for (int i = 0; i < nfiles; i++) {
        size_t len;
        char *text = tool_read_file(files[i], MLG_MAX_MESSAGE_BYTES_DEFAULT, &len);
        mlg_msg_t *m = NULL;
        if (!text || mlg_publish_from_json(text, len, &m, &err) != MLG_OK) {
            printf("%s: not sent: %s\n", files[i],
                   text ? err.reason : "could not read it");
            free(text);
            status = 1;
            continue;
        }
        free(text);
        mlg_client_send(c, m);
        mlg_msg_t *a = NULL;
        while ((a = mlg_client_recv(c, 10000)) && a->op == MLG_OP_DELIVER) {
            /* a delivery before the answer: kept for the --receive part */
            mlg_msg_t **bigger = realloc(early, (nearly + 1) * sizeof(*early));
            if (!bigger) {
                mlg_msg_destroy(&a);
                continue;
            }
            early = bigger;
            early[nearly++] = a;
        }
        if (!a) {
            printf("%s: no answer within 10 s\n", files[i]);
            status = 1;
        }
        else {
            s_print_answer(files[i], a);
            if (a->op != MLG_OP_CONFIRM)
                status = 1;
        }
        mlg_msg_destroy(&a);
        mlg_msg_destroy(&m);
    }
    for (long got = 0; got < receive;) {
        mlg_msg_t *d = next < nearly ? early[next++] : mlg_client_recv(c, (int)timeout);
        if (!d)
            break;
        if (d->op == MLG_OP_DELIVER) {
            char *body = NULL;
            mlg_msgpack_to_json(d->body, d->body_len, &body, NULL, 0);
            printf("%s: delivery %llu (attempt %llu): %s v%llu from %s about %s: %s\n",
                   agency, (unsigned long long)d->delivery,
                   (unsigned long long)d->attempt, d->type,
                   (unsigned long long)d->version, d->from,
                   d->subject[0] ? d->subject : "-", body ? body : "?");
            free(body);
            mlg_client_ack(c, d->delivery);
            got++;
        }
        mlg_msg_destroy(&d);
    }
    while (next < nearly)
        mlg_msg_destroy(&early[next++]);
    free(early);
    mlg_client_destroy(&c);
    free(files);
    return status;
}
