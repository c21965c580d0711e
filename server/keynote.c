/* keynote.c - key changes as audit notes (see keynote.h). */
#include "keynote.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "keyring.h"
#include "log.h"
#include "store.h"

struct keynote {
    struct ev_loop *loop;
    struct group *group;
    struct log *log;
    char dir[PATH_MAX];
    struct keyring *noted;  /* what the chain holds */
    struct keyring *target; /* being noted: its notes are in flight */
    struct keyring *next;   /* the newest comparison waiting for them */
    size_t pending;         /* notes in flight */
    bool failed;            /* one of them failed */
};

/* One note on its way to the store. */
struct keynote_op {
    struct store_op op;
    struct store_audit_note note;
    struct keynote *kn;
};

static void start(struct keynote *kn, struct keyring *target);

struct keynote *
keynote_new(struct ev_loop *loop, struct group *g, struct log *lg, const char *dir, char *errbuf,
            size_t errlen)
{
    struct keynote *kn = calloc(1, sizeof *kn);

    if (kn == NULL) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    kn->loop = loop;
    kn->group = g;
    kn->log = lg;
    snprintf(kn->dir, sizeof kn->dir, "%s", dir);
    if (!keyring_load(dir, KEYNOTE_FILE, &kn->noted, errbuf, errlen)) {
        free(kn);
        return NULL;
    }
    return kn;
}

void
keynote_free(struct keynote *kn)
{
    if (kn == NULL)
        return;
    keyring_free(kn->noted);
    keyring_free(kn->target);
    keyring_free(kn->next);
    free(kn);
}

static void
note_field(struct store_audit_note *n, const char *name, const char *value)
{
    snprintf(n->f[n->n].name, sizeof n->f[n->n].name, "%s", name);
    snprintf(n->f[n->n].value, sizeof n->f[n->n].value, "%s", value);
    n->n++;
}

/* All of a comparison's notes are done: keys.noted follows when they all held. */
static void
settle(struct keynote *kn)
{
    char err[PATH_MAX + 128];

    if (!kn->failed && keyring_save(kn->target, kn->dir, KEYNOTE_FILE, err, sizeof err)) {
        keyring_free(kn->noted);
        kn->noted = kn->target;
    } else {
        if (!kn->failed) {
            const struct log_field f[] = {log_str("reason", err)};
            log_event(kn->log, ev_now(kn->loop), "KEYS_NOTED_FAILED", f, LOG_NFIELDS(f));
        }
        keyring_free(kn->target);
    }
    kn->target = NULL;
    kn->failed = false;
    struct keyring *next = kn->next;
    kn->next = NULL;
    if (next != NULL)
        start(kn, next);
}

static void
note_done(struct store_op *op)
{
    struct keynote_op *ko = op->arg;
    struct keynote *kn = ko->kn;

    if (op->err != STORE_OK) {
        const struct log_field f[] = {log_str("verb", ko->note.verb),
                                      log_str("reason", store_strerror(op->err))};
        log_event(kn->log, ev_now(kn->loop), "KEY_NOTE_FAILED", f, LOG_NFIELDS(f));
        kn->failed = true;
    }
    free(ko);
    if (--kn->pending == 0)
        settle(kn);
}

/* Appends one note of entry e: KEY_ADD or KEY_REVOKE. */
static void
submit(struct keynote *kn, const char *verb, const struct keyring_entry *e)
{
    struct keynote_op *ko = calloc(1, sizeof *ko);

    if (ko == NULL) {
        kn->failed = true;
        return;
    }
    ko->kn = kn;
    snprintf(ko->note.verb, sizeof ko->note.verb, "%s", verb);
    note_field(&ko->note, "name", e->name);
    note_field(&ko->note, "role", keyring_role_name(e->role));
    note_field(&ko->note, "key_id", e->id);
    ko->op.kind = STORE_OP_AUDIT_NOTE;
    ko->op.now = (int64_t)floor(ev_now(kn->loop));
    ko->op.in.note = &ko->note;
    ko->op.done = note_done;
    ko->op.arg = ko;
    kn->pending++;
    group_add(kn->group, &ko->op);
}

/* The notes of what `from` has and `to` lacks. */
static void
submit_missing(struct keynote *kn, const char *verb, const struct keyring *from,
               const struct keyring *to)
{
    for (size_t i = 0; i < keyring_count(from); i++) {
        const struct keyring_entry *e = keyring_at(from, i);
        if (keyring_find(to, e->name, e->hash) == NULL)
            submit(kn, verb, e);
    }
}

static void
start(struct keynote *kn, struct keyring *target)
{
    kn->target = target;
    kn->pending = 1; /* held until every note is submitted: none settles the comparison early */
    submit_missing(kn, "KEY_ADD", target, kn->noted);
    submit_missing(kn, "KEY_REVOKE", kn->noted, target);
    if (--kn->pending == 0)
        settle(kn);
}

void
keynote_sync(struct keynote *kn, const struct keyring *now)
{
    struct keyring *copy = keyring_dup(now);

    if (copy == NULL)
        return;
    if (kn->target != NULL) {
        keyring_free(kn->next);
        kn->next = copy;
        return;
    }
    start(kn, copy);
}
