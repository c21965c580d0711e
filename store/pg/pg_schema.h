/* pg_schema.h - the schema of a PostgreSQL store at open: created when missing (under an
 * advisory lock, so that nodes starting together create it once), or checked. Blocking: open
 * runs before the loop serves anything. */
#ifndef COUPOND_PG_SCHEMA_H
#define COUPOND_PG_SCHEMA_H

#include <stddef.h>

#include "store.h"

/* Connects with keys/vals and, for STORE_OPEN_CREATE, creates the schema when there is none or
 * upgrades an older one (pg_sql_upgrade), and records the task key's fingerprint task_key_fp
 * (NULL: none) when the store has none; then checks its version. STORE_NO_STORE: mode EXISTING
 * and no schema. STORE_UNAVAILABLE: no connection. STORE_KEY_MISMATCH: the store recorded
 * another fingerprint (msg names both). STORE_IO: a newer schema version than this code knows,
 * an older one in mode EXISTING (which changes nothing), or any other failure. `where` names
 * the store in msg. */
enum store_err pg_schema_open(const char *const *keys, const char *const *vals,
                              enum store_open_mode mode, const char *task_key_fp, const char *where,
                              char *msg, size_t len);

#endif
