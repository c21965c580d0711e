/* sig.h - the stop signals (SIGINT, SIGTERM, SIGHUP) turned into a flag the loops poll, so
 * that couponctl always restores the terminal and finishes the batch on the wire. */
#ifndef COUPONCTL_SIG_H
#define COUPONCTL_SIG_H

#include <stdbool.h>

/* Installs the handlers (without SA_RESTART, so poll(2) returns EINTR) and ignores SIGPIPE:
 * a closed socket is seen as an error from send(2) instead. */
void sig_install(void);

/* True once a stop signal has arrived. */
bool sig_stop_requested(void);

#endif
