/* batch.h - couponctl for scripts and cron: --stats, --upload FILE, --purge, --export and
 * --generate, without a terminal user interface. Results go to stdout, messages to stderr,
 * progress to stderr only when it is a terminal. */
#ifndef COUPONCTL_BATCH_H
#define COUPONCTL_BATCH_H

#include "cli.h"
#include "client.h"

#define BATCH_PROGRESS_MS 200       /* progress line refresh on a terminal */
#define BATCH_LOAD_BUDGET (4 << 20) /* CSV bytes per step while loading */

/* Runs o->mode (not CLI_MODE_DASHBOARD) against the server at addr with the admin key, and
 * returns the exit code (enum cli_exit). */
int batch_run(const struct cli_opts *o, const struct client_addr *addr, const char *key);

#endif
