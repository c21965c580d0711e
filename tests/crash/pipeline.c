/* pipeline.c - commands in windows, replies in order. */
#include "pipeline.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>

#include <cmocka.h>

void
pipeline_run(struct bb_client *c, size_t n, size_t window, size_t cmd_max, pipeline_cmd_fn *cmd,
             pipeline_reply_fn *on_reply, void *arg)
{
    size_t cap = window * cmd_max;
    char *buf = malloc(cap), *reply = malloc(BB_REPLY_MAX);
    if (buf == NULL || reply == NULL)
        fail_msg("crash: out of memory");
    for (size_t i = 0; i < n; i += window) {
        size_t k = n - i < window ? n - i : window;
        size_t len = 0;
        for (size_t j = 0; j < k; j++)
            len += cmd(arg, i + j, buf + len, cap - len);
        bb_send(c, buf, len);
        for (size_t j = 0; j < k; j++) {
            const char *status = bb_get_reply(c, reply);
            on_reply(arg, i + j, reply, status);
        }
    }
    free(buf);
    free(reply);
}
