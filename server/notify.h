/* notify.h - readiness for a service manager: the sd_notify(3) datagram protocol of systemd,
 * spoken directly (coupond does not link libsystemd). */
#ifndef COUPOND_NOTIFY_H
#define COUPOND_NOTIFY_H

#include <stdbool.h>

/* Sends `state` ("READY=1", "STOPPING=1", newline-separated assignments) in one datagram to
 * the AF_UNIX socket named by $NOTIFY_SOCKET: a path, or an abstract name when it starts with
 * '@'. Does nothing and returns true when the variable is unset or empty. False, with errno
 * set, when the variable is malformed or the datagram cannot be sent; the caller may ignore it,
 * as a failed notification does not stop the server from serving. */
bool notify_send(const char *state);

#endif
