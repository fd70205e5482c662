/*  referrals.h: the CLI's referral commands (PROTOCOL.md §9). */

#ifndef MLG_CLI_REFERRALS_H
#define MLG_CLI_REFERRALS_H

#include <jansson.h>

#include "cli.h"

/* `referrals [--agency A] [--state S] [--overdue] [--service V]
   [--subject P] [--json]`: the legs, one row each; and
   `referrals stats [--since D] [--by service|recipient] [--json]`: per
   service (or recipient), what was opened in the window, answered,
   accepted, declined and why, overdue, and the time to a first
   decision. argv starts after the command's name. */
int cli_referrals(cli_t *cli, int argc, char **argv);

/* `referral REFERRAL_ID [--json]`: one referral's timeline, leg by leg,
   with the broker's notices and the duplicate matches. */
int cli_referral(cli_t *cli, int argc, char **argv);

/* The legs of one person (subject-report, the person's own report):
   each with its moves. A new array (the caller owns it); NULL when the
   query failed (the error printed). */
json_t *cli_referral_legs_of(cli_t *cli, const char *subject);

#endif
