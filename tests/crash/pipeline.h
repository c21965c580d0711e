/* pipeline.h - the crash test's checks send their commands pipelined, in windows, over one
 * blocking client, and hand each whole reply to a callback in order. */
#ifndef CRASH_PIPELINE_H
#define CRASH_PIPELINE_H

#include <stddef.h>

#include "bb.h"

/* Writes command i (with its LF, and an UPLOAD's records) into buf (cap bytes) and returns its
 * length. */
typedef size_t pipeline_cmd_fn(void *arg, size_t i, char *buf, size_t cap);
/* Handles the whole reply of command i; status is its last line. */
typedef void pipeline_reply_fn(void *arg, size_t i, const char *reply, const char *status);

/* Sends n commands in windows of `window` (each at most cmd_max bytes) and hands every reply
 * to on_reply, in order. A window's replies must fit in the socket buffers, so that nothing
 * stalls. Fails the test when a reply does not come. */
void pipeline_run(struct bb_client *c, size_t n, size_t window, size_t cmd_max,
                  pipeline_cmd_fn *cmd, pipeline_reply_fn *on_reply, void *arg);

#endif
