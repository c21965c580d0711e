/* once.h - the checks of the exactly-once crash mode that follow the retry after a restart,
 * when every write has been answered and the model is exact: each user holds what its one
 * REQUEST id gave it, and each id answered OK keeps that one outcome when sent again. */
#ifndef CRASH_ONCE_H
#define CRASH_ONCE_H

#include <stdbool.h>

#include "bb.h"
#include "model.h"

#define ONCE_USERS_WINDOW   256 /* COUPONS sent before their replies are read (~200 B each) */
#define ONCE_REPLAYS_WINDOW 16  /* writes sent again before their replies are read */

/* COUPONS of every user of this cycle (all users with `full`): exactly the coupon the model
 * gave it (one line, count=1), or nothing (count=0) when its REQUEST failed. A user is made by
 * one REQUEST with one id, so two coupons would be one id done twice. */
void once_check_users(struct model *m, struct bb_client *c, bool full);

/* Every write answered OK this cycle (every one of the run with `full`), sent again with its
 * request id: the reply is the first one again with " replayed=1" added, byte for byte (for a
 * MEGADEAL REQUEST: its grant). The caller checks with STATS that nothing changed. */
void once_check_replays(struct model *m, struct bb_client *c, bool full);

#endif
