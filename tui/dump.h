/* dump.h - --export and --generate: one request whose long reply becomes a CSV file, written
 * as its lines arrive (csvout.h) and put in place only when the reply ended with OK and every
 * row is written (outfile.h). GENERATE carries a request id derived from the command and its
 * file (reqid.h), so the same command run again after a failure gets the same codes back,
 * replayed, instead of a second batch. It does no network I/O: the batch client (batch.h) sends
 * the request and hands it the reply's lines. It prints its result: one line on standard output
 * (on standard error when the CSV itself goes to standard output), failures on standard error,
 * each naming what went wrong. */
#ifndef COUPONCTL_DUMP_H
#define COUPONCTL_DUMP_H

#include <stdbool.h>
#include <stddef.h>

#include "cli.h"
#include "proto.h"

/* Request line (LF included) and NUL: GENERATE with its longest values and the request id. */
#define DUMP_REQUEST_MAX (PROTO_REQUEST_BUF + 8)

/* Prepares the job of o (mode CLI_MODE_EXPORT or CLI_MODE_GENERATE): opens the output file,
 * writes the CSV header and makes the request. Returns NULL with a one-line message in err
 * when the file cannot be written (nothing is sent then) or memory is short. */
struct dump *dump_new(const struct cli_opts *o, char *err, size_t errlen);

/* The request to send, a NUL-terminated line with its LF; valid while d is. */
const char *dump_request(const struct dump *d);

/* Records that the request went out (client_send() took it). */
void dump_sent(struct dump *d);

/* One line of the reply. Returns true when the job is over: the reply ended (OK: the file is
 * put in place and the result printed; ERR: nothing is written), or a line could not be read
 * or written (printed; the rest of the reply is not wanted). Then dump_exit() tells the exit
 * code. */
bool dump_line(struct dump *d, const char *line, size_t len, enum proto_reply_kind kind);

/* The reply will not end: the connection was lost, the key refused, or couponctl interrupted.
 * Removes the temporary file, and when the request had gone out, says what that leaves open
 * (for GENERATE: whether codes were generated, and that the same command again is safe).
 * Does nothing once the job is over. */
void dump_abandon(struct dump *d);

/* The exit code of a job that is over (enum cli_exit). */
int dump_exit(const struct dump *d);

/* Frees the job, removing its temporary file if it is still there. NULL is allowed. */
void dump_free(struct dump *d);

#endif
