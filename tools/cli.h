/*  cli.h: what the operator CLI's commands share (tools/maillage.c and
    the files of its commands): the connection, running a query, rows as
    a table for people or as JSON for scripts, errors and exit codes. Not
    for the other tools: they link no PostgreSQL. */

#ifndef MLG_CLI_H
#define MLG_CLI_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>

#define EXIT_NOT_FOUND 1
#define EXIT_USAGE 2

typedef struct {
    PGconn *db;
    bool json;
    const char *http; /* the broker's HTTP address, for live figures */
} cli_t;

/* Prints the usage (to stdout for --help, stderr for a mistake) and
   returns rc. Defined in maillage.c, beside main. */
int cli_usage(FILE *out, int rc);

/* "maillage: " and the sentence on stderr; returns rc. */
int cli_error(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Runs a query with text parameters; NULL (and the error printed) on
   failure. The caller clears the result. */
PGresult *cli_query(cli_t *cli, const char *sql, int n, const char *const *params);

/* Rows as a JSON array of objects, one member per column; NULL values
   stay null. Columns named `body` (bytea) become their JSON form; int4
   and int8 columns integers, bool ones true or false, float8 and numeric
   ones numbers; the others strings as the database writes them. */
json_t *cli_rows(PGresult *res);

/* A table for people: a header and one line per row, columns aligned;
   "(none)" when there is no row. */
void cli_table(PGresult *res, const char *title);

/* The document, indented, on stdout. */
void cli_print_json(json_t *doc);

/* "365d", "12h", "30m", "45s" -> seconds; -1 if not such a duration. */
long long cli_duration(const char *text);

#endif
