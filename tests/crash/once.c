/* once.c - COUPONS of each user and replays of each acknowledged write, after the retry. */
#include "once.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pipeline.h"

#define COUPONS_CMD_MAX (16 + MODEL_USER_MAX)

/* ---- COUPONS ---- */

struct users {
    struct model *m;
    uint32_t *v;
    size_t n;
};

static size_t
coupons_cmd(void *arg, size_t i, char *buf, size_t cap)
{
    const struct users *us = arg;
    char name[MODEL_USER_MAX];
    model_user_name(us->v[i], name);
    return (size_t)snprintf(buf, cap, "COUPONS %s\n", name);
}

static void
coupons_reply(void *arg, size_t i, const char *reply, const char *status)
{
    struct users *us = arg;
    struct model *m = us->m;
    uint32_t u = us->v[i];
    const struct user *usr = &m->users[u];
    char want[MODEL_CODE_MAX + 16] = "", code[MODEL_CODE_MAX];
    bool holds = usr->state == USER_ASSIGNED;
    if (holds) {
        model_code(m, usr->coupon, code);
        snprintf(want, sizeof want, "COUPON code=%s ", code);
    }
    /* One REQUEST, one id: one coupon line when it got one, none when it did not. */
    bool ok = holds ? strncmp(reply, want, strlen(want)) == 0 && status != reply &&
                          strchr(reply, '\n') == status - 1 && strcmp(status, "OK count=1") == 0
                    : status == reply && strcmp(status, "OK count=0") == 0;
    model_check(m, ok, "COUPONS u%u (made by REQUEST %s id=w%u): expected %s, got \"%s\"",
                (unsigned)u, proto_type_name(usr->type), (unsigned)usr->req_op,
                holds ? code : "no coupon", reply);
    if (!ok && holds)
        model_history(m, usr->coupon);
}

void
once_check_users(struct model *m, struct bb_client *c, bool full)
{
    struct users us = {.m = m};
    us.v = malloc((m->n_users + 1) * sizeof *us.v);
    if (us.v == NULL)
        fail_msg("crash: out of memory");
    for (size_t u = full ? 0 : m->cycle_user0; u < m->n_users; u++)
        if (m->users[u].req_op != MODEL_NONE)
            us.v[us.n++] = (uint32_t)u;
    pipeline_run(c, us.n, ONCE_USERS_WINDOW, COUPONS_CMD_MAX, coupons_cmd, coupons_reply, &us);
    free(us.v);
}

/* ---- replays ---- */

struct replays {
    struct model *m;
    uint32_t *v;
    size_t n;
    char *req; /* scratch for one request */
    size_t req_cap;
};

static size_t
replay_cmd(void *arg, size_t i, char *buf, size_t cap)
{
    struct replays *r = arg;
    size_t n = model_op_request(r->m, r->v[i], &r->req, &r->req_cap);
    if (n > cap)
        fail_msg("crash: a replay of %zu bytes does not fit its window", n);
    memcpy(buf, r->req, n);
    return n;
}

static void
replay_reply(void *arg, size_t i, const char *reply, const char *status)
{
    struct replays *r = arg;
    struct model *m = r->m;
    uint32_t op = r->v[i];
    const struct op *o = &m->ops[op];
    size_t n = strlen(o->reply);
    m->tally.replay_checks++;
    bool ok = status == reply && strncmp(reply, o->reply, n) == 0 &&
              strcmp(reply + n, MODEL_REPLAYED) == 0;
    model_check(m, ok,
                "%s w%u (cycle %u), answered \"%s\" first, sent again with its id: expected that "
                "reply with%s, got \"%s\"",
                model_op_name((enum op_kind)o->kind), (unsigned)op, (unsigned)o->cycle, o->reply,
                MODEL_REPLAYED, reply);
}

void
once_check_replays(struct model *m, struct bb_client *c, bool full)
{
    struct replays r = {.m = m};
    size_t cmd_max = 0;
    r.v = malloc((m->n_ops + 1) * sizeof *r.v);
    if (r.v == NULL)
        fail_msg("crash: out of memory");
    for (size_t i = full ? 0 : m->cycle_op0; i < m->n_ops; i++) {
        const struct op *o = &m->ops[i];
        if (o->reply == NULL || !model_op_is_write((enum op_kind)o->kind))
            continue;
        r.v[r.n++] = (uint32_t)i;
        size_t len = model_op_request(m, (uint32_t)i, &r.req, &r.req_cap);
        cmd_max = len > cmd_max ? len : cmd_max;
    }
    pipeline_run(c, r.n, ONCE_REPLAYS_WINDOW, cmd_max + 1, replay_cmd, replay_reply, &r);
    free(r.v);
    free(r.req);
}
