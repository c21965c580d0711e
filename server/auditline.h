/* auditline.h - an audit record as a line of EXPORT AUDIT (and of coupond --verify-audit's
 * report): every field of the record, in the record's order, then its hashes. Only proto_out_*
 * calls.
 *
 *   AUDIT seq=N time=T actor=A verb=V <arguments> outcome=OK <outcome fields> prev=H hash=H
 *
 * T is RFC 3339 UTC; A is "-" for no key name; H is a hash in hex (prev: the stored hash of
 * record N-1, 64 zeros for the first). Field values are the record's bytes, with those outside
 * printable ASCII, '%' (and a lone "-") written %XX (audit.h's audit_escape); field names
 * likewise, and '='. So the fields between verb= and outcome= are the arguments, those after
 * it the outcome, and the record can be encoded again from the line. A record that does not
 * decode is shown as `AUDIT seq=N undecoded=K prev=H hash=H`, K the byte where it went wrong. */
#ifndef COUPOND_AUDITLINE_H
#define COUPOND_AUDITLINE_H

#include "reply.h"
#include "store.h"

/* Writes the line of row. */
void auditline_write(struct proto_out *o, const struct store_audit_row *row);

#endif
