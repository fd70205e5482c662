/*  cli.c: what the operator CLI's commands share: errors, queries,
    rows as a table or as JSON, durations. Not the commands themselves,
    nor the connection: main (maillage.c) opens it. */

#include <jansson.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "maillage/json.h"

int
cli_error(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "maillage: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return rc;
}

/* Runs a query; NULL (and the error printed) on failure. */
PGresult *
cli_query(cli_t *cli, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(cli->db, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return res;
    char *msg = PQerrorMessage(cli->db);
    fprintf(stderr, "maillage: query failed: %.*s\n", (int)strcspn(msg, "\n"), msg);
    PQclear(res);
    return NULL;
}

/* Rows as a JSON array of objects, one member per column; NULL values
   stay null. Columns named `body` (bytea) become their JSON form;
   integers, booleans and numbers stay JSON's. */
json_t *
cli_rows(PGresult *res)
{
    json_t *rows = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *row = json_object();
        for (int c = 0; c < PQnfields(res); c++) {
            const char *name = PQfname(res, c);
            if (PQgetisnull(res, i, c)) {
                json_object_set_new(row, name, json_null());
                continue;
            }
            const char *v = PQgetvalue(res, i, c);
            if (strcmp(name, "body") == 0) {
                size_t len = 0;
                unsigned char *raw = PQunescapeBytea((const unsigned char *)v, &len);
                char *text = NULL;
                json_t *body = NULL;
                if (raw && mlg_msgpack_to_json(raw, len, &text, NULL, 0) == MLG_OK)
                    body = json_loads(text, 0, NULL);
                free(text);
                PQfreemem(raw);
                json_object_set_new(row, name, body ? body : json_null());
            }
            else if (PQftype(res, c) == 20 || PQftype(res, c) == 23) /* int8, int4 */
                json_object_set_new(row, name, json_integer(strtoll(v, NULL, 10)));
            else if (PQftype(res, c) == 16) /* bool: "t" or "f" */
                json_object_set_new(row, name, json_boolean(v[0] == 't'));
            else if (PQftype(res, c) == 701
                     || PQftype(res, c) == 1700) /* float8, numeric */
                json_object_set_new(row, name, json_real(strtod(v, NULL)));
            else
                json_object_set_new(row, name, json_string(v));
        }
        json_array_append_new(rows, row);
    }
    return rows;
}

/* A table for people: a header and one line per row, columns aligned. */
void
cli_table(PGresult *res, const char *title)
{
    if (title)
        printf("%s\n", title);
    int n = PQnfields(res);
    size_t width[32] = {0};
    for (int c = 0; c < n && c < 32; c++) {
        width[c] = strlen(PQfname(res, c));
        for (int i = 0; i < PQntuples(res); i++)
            if (strlen(PQgetvalue(res, i, c)) > width[c])
                width[c] = strlen(PQgetvalue(res, i, c));
        if (width[c] > 60)
            width[c] = 60;
    }
    for (int c = 0; c < n && c < 32; c++)
        printf("%-*s%s", (int)width[c], PQfname(res, c), c + 1 < n ? "  " : "\n");
    for (int i = 0; i < PQntuples(res); i++)
        for (int c = 0; c < n && c < 32; c++) {
            const char *v = PQgetisnull(res, i, c) ? "-" : PQgetvalue(res, i, c);
            printf("%-*.*s%s", (int)width[c], 60, v, c + 1 < n ? "  " : "\n");
        }
    if (PQntuples(res) == 0)
        printf("(none)\n");
}

void
cli_print_json(json_t *doc)
{
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    printf("%s\n", text ? text : "null");
    free(text);
}

/* "365d", "12h", "30m", "45s" -> seconds; -1 if not such a duration. */
long long
cli_duration(const char *text)
{
    char *end = NULL;
    long long n = strtoll(text, &end, 10);
    if (!end || end == text || n < 0 || end[0] == '\0' || end[1] != '\0')
        return -1;
    switch (end[0]) {
    case 'd': return n * 86400;
    case 'h': return n * 3600;
    case 'm': return n * 60;
    case 's': return n;
    default: return -1;
    }
}
