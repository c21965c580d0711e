/* app.h - the interactive dashboard: one poll(2) loop over the terminal and the connections,
 * and the one place where keys are dispatched and KEY_RESIZE is handled. */
#ifndef COUPONCTL_APP_H
#define COUPONCTL_APP_H

#include "cli.h"
#include "client.h"

#define APP_FRAME_MS         40        /* redraw at most 25 times a second: smooth, cheap */
#define APP_LIVE_MS          250       /* redraw this often while a countdown or bar moves */
#define APP_STATS_TIMEOUT_MS 10000     /* a STATS reply later than this: the link is dead */
#define APP_CHECK_BUDGET     (1 << 20) /* CSV bytes checked per loop turn: ~40 ms of work */
#define APP_NOTICE_MS        5000      /* a notice in the banner row stays this long */
#define APP_MIN_COLS         40        /* below this only a "too small" note is drawn */
#define APP_MIN_ROWS         12
#define APP_PANEL_MIN_ROWS   3 /* a panel's title, its question or first line, and its hint */

/* Runs the dashboard until q, a stop signal, or a refused key. The dashboard's connection
 * polls STATS every o->interval_ms and reconnects with backoff; uploads and purges each get
 * a connection of their own, so the dashboard keeps updating while they run. q while one
 * runs asks first. Messages for the operator go to stderr after the terminal is restored;
 * an upload ended by quitting prints its result on stdout as --upload does. Returns an exit
 * code: CLI_EXIT_FAILED after such an upload, CLI_EXIT_USAGE without a usable terminal. */
int app_run(const struct cli_opts *o, const struct client_addr *addr, const char *key);

#endif
