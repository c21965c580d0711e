/* outfile.h - a file couponctl writes (--export, --generate), put in place whole or not at
 * all: the rows go to a temporary file beside it, which takes the file's name only once
 * everything is written and synced. A failed or interrupted run leaves the file as it was. */
#ifndef COUPONCTL_OUTFILE_H
#define COUPONCTL_OUTFILE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The temporary file's name: the file's, then this and six random characters (mkstemp). */
#define OUTFILE_TMP_SUFFIX ".tmp-XXXXXX"

struct outfile {
    FILE *f;                 /* where to write; NULL when closed */
    bool is_stdout;          /* the file is "-": standard output, written as it comes */
    char path[PATH_MAX];     /* as given */
    char abs_path[PATH_MAX]; /* absolute, its directory resolved (realpath(3)); "-" for stdout */
    char tmp[PATH_MAX];      /* the temporary file; "" when there is none */
};

/* Opens `path` for writing: "-" is standard output; any other path gets a temporary file in
 * the same directory, created with mode 0600 (the rows hold coupon codes, which customers
 * redeem). False with a message naming the file in err when the directory cannot be resolved
 * or the temporary file cannot be created. */
bool outfile_open(struct outfile *o, const char *path, char *err, size_t errlen);

/* Flushes, syncs and closes the temporary file and renames it to the file, replacing what was
 * there. False with a message in err (the temporary file is removed) when any step fails. For
 * standard output: flushes it. */
bool outfile_commit(struct outfile *o, char *err, size_t errlen);

/* Closes and removes the temporary file; the file stays as it was. Safe to call after
 * outfile_commit() or twice. */
void outfile_abort(struct outfile *o);

#endif
