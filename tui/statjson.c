/* statjson.c - a STATS reply as one JSON object (see statjson.h). */
#include "statjson.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "stat.h"

/* Digits of a value written as a number: 19 always fit a signed 64-bit integer, which every JSON
 * reader holds; a longer value (no counter gets there) is written as a string. */
#define NUMBER_DIGITS 19

struct entry {
    char name[STATJSON_WORD];  /* the stat's name without ".TYPE" when `typed` */
    char value[STATJSON_WORD]; /* as sent */
    char type[STATJSON_WORD];  /* typed: the type's name */
    bool typed;                /* a per-type stat of stat.h's table */
    bool text;                 /* a text stat of stat.h's table (node, store): always a string */
};

struct statjson {
    size_t n;
    struct entry e[STATJSON_MAX];
};

struct statjson *
statjson_new(void)
{
    return calloc(1, sizeof(struct statjson));
}

void
statjson_free(struct statjson *j)
{
    free(j);
}

/* Copies s[0..len) into a word; false when it does not fit. */
static bool
word(char out[STATJSON_WORD], const char *s, size_t len)
{
    if (len == 0 || len >= STATJSON_WORD)
        return false;
    memcpy(out, s, len);
    out[len] = '\0';
    return true;
}

bool
statjson_line(struct statjson *j, const char *line, size_t len)
{
    const char *name, *value;
    size_t name_len, value_len;
    enum proto_stat stat;
    enum proto_type type;

    if (j->n == STATJSON_MAX || len < 5 || memcmp(line, "STAT ", 5) != 0)
        return false;
    name = line + 5;
    name_len = strcspn(name, " ");
    if (name + name_len >= line + len)
        return false;
    value = name + name_len + 1;
    value_len = (size_t)(line + len - value);
    struct entry *e = &j->e[j->n];
    memset(e, 0, sizeof *e);
    if (!word(e->value, value, value_len) || memchr(value, ' ', value_len) != NULL)
        return false;
    bool known = proto_stat_lookup(name, name_len, &stat, &type);
    e->typed = known && proto_stat_defs[stat].per_type;
    e->text = known && proto_stat_defs[stat].kind == PROTO_STAT_TEXT;
    if (e->typed) {
        snprintf(e->name, sizeof e->name, "%s", proto_stat_defs[stat].name);
        snprintf(e->type, sizeof e->type, "%s", proto_type_name(type));
    } else if (!word(e->name, name, name_len)) {
        return false;
    }
    j->n++;
    return true;
}

/* A JSON string: quotes, and escapes for what JSON asks (STAT words are printable ASCII). */
static void
put_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        if ((unsigned char)*s < 0x20)
            fprintf(out, "\\u%04x", (unsigned)(unsigned char)*s);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

/* Digits only, without a leading zero unless it is 0, and not too many: a number. */
static bool
is_number(const char *s)
{
    size_t n = strspn(s, "0123456789");

    return n > 0 && s[n] == '\0' && n <= NUMBER_DIGITS && (s[0] != '0' || n == 1);
}

static void
put_value(FILE *out, const char *v)
{
    if (is_number(v))
        fputs(v, out);
    else
        put_string(out, v);
}

/* The object of per-type stat `name`: every line of it, in order. */
static void
put_group(FILE *out, const struct statjson *j, size_t first)
{
    bool more = false;

    put_string(out, j->e[first].name);
    fputs(":{", out);
    for (size_t i = first; i < j->n; i++) {
        const struct entry *e = &j->e[i];
        if (!e->typed || strcmp(e->name, j->e[first].name) != 0)
            continue;
        if (more)
            fputc(',', out);
        more = true;
        put_string(out, e->type);
        fputc(':', out);
        put_value(out, e->value);
    }
    fputc('}', out);
}

/* True when a per-type stat's group began at an earlier line. */
static bool
grouped_before(const struct statjson *j, size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (j->e[k].typed && strcmp(j->e[k].name, j->e[i].name) == 0)
            return true;
    return false;
}

bool
statjson_write(const struct statjson *j, FILE *out)
{
    bool more = false;

    fputc('{', out);
    for (size_t i = 0; i < j->n; i++) {
        const struct entry *e = &j->e[i];
        if (e->typed && grouped_before(j, i))
            continue;
        if (more)
            fputc(',', out);
        more = true;
        if (e->typed) {
            put_group(out, j, i);
            continue;
        }
        put_string(out, e->name);
        fputc(':', out);
        if (e->text) /* a node named 7 is "7", not a number */
            put_string(out, e->value);
        else
            put_value(out, e->value);
    }
    fputs("}\n", out);
    return !ferror(out);
}
