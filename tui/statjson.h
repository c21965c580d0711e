/* statjson.h - --stats --json: a STATS reply as one JSON object for scripts. Each STAT line
 * becomes a member: a value of digits a number, any other a string; a per-type stat of
 * protocol/stat.h's table ("assigned.FREE") goes into one object per stat, keyed by type
 * ({"assigned":{"NONE":0,"FREE":3,...}}); every other name, known or not, stays as it is sent
 * ("megadeal.queued", or a newer server's). Members keep the reply's order, a group at its
 * first line. Pure: no I/O but the stream it writes. */
#ifndef COUPONCTL_STATJSON_H
#define COUPONCTL_STATJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* STAT lines kept at most: a server sends about 60; the rest of this many is room for newer
 * servers' names, and a bound against a server that sends no end. */
#define STATJSON_MAX  512
#define STATJSON_WORD 64 /* bytes of a name or a value kept: a STAT line's words are short */

struct statjson;

/* An empty reply; NULL when out of memory. */
struct statjson *statjson_new(void);
void statjson_free(struct statjson *j);

/* One data line of the reply. "STAT name value" is kept; false (and nothing kept) for any other
 * line, a word longer than STATJSON_WORD - 1 bytes, or a line past STATJSON_MAX. */
bool statjson_line(struct statjson *j, const char *line, size_t len);

/* Writes the object and a newline to out; false when the stream fails. */
bool statjson_write(const struct statjson *j, FILE *out);

#endif
