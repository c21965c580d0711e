/* auditline.c - an audit record as a reply line (see auditline.h). */
#include "auditline.h"

#include <stdio.h>
#include <string.h>

#include "audit.h"

/* An escaped text: each byte at most three (%XX), and NUL. */
#define ESCAPED_MAX (3 * STORE_AUDIT_REC_MAX + 1)

/* A field's name as the line shows it: a-z 0-9 _ . as they are, any other byte %XX. */
static void
name_escape(const struct audit_text *t, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (size_t i = 0; i < t->len && o + 4 <= cap; i++) {
        unsigned char c = (unsigned char)t->p[i];
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.') {
            out[o++] = (char)c;
            continue;
        }
        out[o++] = '%';
        out[o++] = hex[c >> 4];
        out[o++] = hex[c & 0xf];
    }
    if (o == 0 && cap > 1)
        out[o++] = '-';
    out[o] = '\0';
}

static void
text_field(struct proto_out *o, const char *key, const struct audit_text *t)
{
    char buf[ESCAPED_MAX];

    audit_escape(t, buf, sizeof buf);
    proto_out_field(o, key, buf);
}

static void
fields(struct proto_out *o, const struct audit_field *f, size_t n)
{
    char name[3 * UINT8_MAX + 2];

    for (size_t i = 0; i < n; i++) {
        name_escape(&f[i].name, name, sizeof name);
        text_field(o, name, &f[i].value);
    }
}

static void
hash_field(struct proto_out *o, const char *key, const uint8_t h[STORE_AUDIT_HASH_BYTES])
{
    char hex[AUDIT_HEX_BUF];

    audit_hex(h, hex);
    proto_out_field(o, key, hex);
}

void
auditline_write(struct proto_out *o, const struct store_audit_row *row)
{
    char when[AUDIT_TIME_BUF];
    struct audit_rec r;
    const char *why;
    size_t at = 0;

    proto_out_begin(o, "AUDIT");
    proto_out_field_u64(o, "seq", row->seq);
    if (row->len > STORE_AUDIT_REC_MAX || !audit_decode(row->rec, row->len, &r, &at, &why)) {
        proto_out_field_u64(o, "undecoded", at);
    } else {
        audit_fmt_time(r.time, when);
        proto_out_field(o, "time", when);
        text_field(o, "actor", &r.actor);
        text_field(o, "verb", &r.verb);
        fields(o, r.args, r.nargs);
        text_field(o, "outcome", &r.outcome);
        fields(o, r.outs, r.nouts);
    }
    hash_field(o, "prev", row->prev);
    hash_field(o, "hash", row->hash);
    proto_out_end(o);
}
