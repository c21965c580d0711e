/* keycli.h - `coupond -d DIR key add NAME ROLE | list | revoke NAME [ID]`: the keys file managed
 * from the command line, beside a running server or not (it never takes the data dir's lock;
 * a running server reads the changes on SIGHUP). */
#ifndef COUPOND_KEYCLI_H
#define COUPOND_KEYCLI_H

#include <stdio.h>

#define KEYCLI_LOCK_FILE "keys.lock" /* serialises two `key` commands' read-change-write */

enum keycli_status {
    KEYCLI_OK = 0,     /* done */
    KEYCLI_FAILED = 1, /* the file could not be read or written, or nothing matched */
    KEYCLI_USAGE = 2   /* bad words */
};

/* Runs the words after `key` (argv[0] is "add", "list" or "revoke") on DIR's keys file: output
 * on `out`, one-line reasons on `err`. sodium_init() must have run. */
enum keycli_status keycli_run(const char *dir, int argc, char *const *argv, FILE *out, FILE *err);

#endif
