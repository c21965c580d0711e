/* verify.h - the crash test's checks after each kill -9: the store checker on the dead server's
 * data dir, then, over the protocol on the restarted server, that everything acknowledged is
 * there and everything unacknowledged is wholly there or wholly absent. */
#ifndef CRASH_VERIFY_H
#define CRASH_VERIFY_H

#include <stdbool.h>

#include "bb.h"
#include "model.h"

/* Runs `coupond --check -d DIR` on the stopped server's data dir: every record decodes, the
 * indexes agree with the records, no coupon has uses above max_uses, the counters equal a full
 * recount. It must exit 0. Then `coupond --verify-audit -d DIR`: the audit chain recomputes and
 * its head verifies; it must exit 0 too. */
void verify_store_check(struct model *m, const struct bb_server *s);

/* On the restarted server, in this order:
 *   STATS: created, assigned and redeemed of each type lie between what was acknowledged and
 *          that plus what was unacknowledged; available = created - assigned; purged = 0; the
 *          MEGADEAL queue is empty;
 *   UPLOAD probes (each batch's codes plus one malformed record, so nothing is stored; the
 *          REJECT lines name the codes that exist): every acknowledged batch is wholly stored,
 *          every unacknowledged one wholly or not at all;
 *   VALIDATE of each unanswered REQUEST's user against every free coupon of its type: it holds
 *          one coupon or none, and no coupon has two holders;
 *   VALIDATE of every assignment: still its holder's, with acknowledged uses <= uses <=
 *          acknowledged + unacknowledged;
 *   STATS again equal to the now exact model;
 *   AUDIT: the chain has exactly one record per stored batch, assignment and redemption;
 *   STATUS of each MEGADEAL task queued before the kill: UNKNOWN_TASK, or granted with the
 *          coupon its user holds.
 * Without `full`, only this cycle's batches and coupons plus a rotating window of older ones are
 * probed and validated; with it, all of them. Afterwards the model is exact again. */
void verify_after_restart(struct model *m, struct bb_server *s, bool full);

/* Exactly-once mode, on the restarted server, in this order:
 *   the retry (workload_retry): every unanswered write of the cycle sent again with its id
 *          until it is answered, each reply checked as in the workload;
 *   STATS: exactly the model's counts, held and unredeemed included;
 *   UPLOAD probes: every batch wholly stored;
 *   VALIDATE of every assignment touched (all with `full`): uses exactly the model's, EXHAUSTED
 *          exactly when uses and live holds reach max_uses;
 *   COUPONS of every user touched (all with `full`): the one coupon the model gave it, or none;
 *          never two for one REQUEST id;
 *   replays: every write answered OK this cycle (all with `full`) sent again with its id gets
 *          its first reply again with replayed=1, and changes nothing;
 *   STATS again exactly the model's; STATUS of the cycle's MEGADEAL tasks. */
void verify_exactly_once(struct model *m, struct bb_server *s, bool full);

#endif
