/* csvload.h - reading a CSV file of coupons with libcsv and checking every record with
 * protocol/'s validators before anything is sent. Incremental: csvload_step() reads a bounded
 * number of bytes, so the dashboard stays live while a big file is checked. */
#ifndef COUPONCTL_CSVLOAD_H
#define COUPONCTL_CSVLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CSVLOAD_READ_CHUNK  65536   /* bytes per read(2) */
#define CSVLOAD_MAX_RECORDS 5000000 /* per file: 100 full batches, about 400 MB in memory */
/* Fields per row up to the last one that holds something: the six columns and a few ignored
 * extra ones. Empty fields after it do not count. */
#define CSVLOAD_MAX_FIELDS 32
/* Bytes of the values of a row's six columns together (ignored columns do not count): a
 * valid record's are under 200. */
#define CSVLOAD_ROW_MAX 8192
#define CSVLOAD_FIELD_MAX                                                                          \
    (1u << 20)                   /* libcsv's field buffer at most: an unclosed quote               \
                                  * cannot swallow the whole file into memory */
#define CSVLOAD_ERRORS_KEPT 1000 /* bad records described; more are only counted */
#define CSVLOAD_REASON_MAX  160  /* bytes of one reason, NUL included */
#define CSVLOAD_FAILURE_MAX 300  /* bytes of a read failure message, NUL included */

/* The columns, in the order a file without a header must have them. */
enum csvload_col {
    CSVLOAD_COL_CODE = 0,
    CSVLOAD_COL_TYPE,
    CSVLOAD_COL_DISCOUNT,
    CSVLOAD_COL_KIND,
    CSVLOAD_COL_EXPIRES,
    CSVLOAD_COL_MAX_USES,
    CSVLOAD_NCOLS
};

/* The good records, each already formatted by proto_fmt_record() as the wire line an UPLOAD
 * carries: record i is the bytes [i ? end[i - 1] : 0, end[i]) of text, LF included. */
struct csvload_records {
    const char *text;
    const size_t *end;
    const uint32_t *line; /* line[i]: the file line record i starts on, from 1 */
    size_t n;
};

/* A bad record: the line it starts on and why ("bad discount: more than 2 decimal places"). */
struct csvload_error {
    uint32_t line;
    char reason[CSVLOAD_REASON_MAX];
};

enum csvload_status {
    CSVLOAD_MORE = 0, /* call csvload_step() again */
    CSVLOAD_DONE,     /* the whole file is read and checked */
    CSVLOAD_FAILED    /* the file could not be read: csvload_failure() says why */
};

/* Opens `path` ("-" is standard input) for loading at most `max_records` records
 * (couponctl's limit is CSVLOAD_MAX_RECORDS; at least 1). Returns NULL with a one-line
 * message naming the file in err when it cannot be opened or memory is short. */
struct csvload *csvload_open(const char *path, size_t max_records, char *err, size_t errlen);

/* Reads and checks about `budget` more bytes (at least one chunk). The file is CSV as libcsv
 * reads it (quotes, doubled quotes, CR, LF or CRLF line ends), with these rules:
 *   - a UTF-8 byte order mark at the start is skipped;
 *   - blank lines, and rows whose fields are all empty, are skipped;
 *   - blanks around a value are ignored, quoted or not;
 *   - the first row is a header when two or more of its fields are column names (code, type,
 *     discount, kind, expires, max_uses; any case); then it must name all six, each once,
 *     in any order, and other columns are ignored; without a header a row has the six
 *     columns in that order;
 *   - trailing empty fields beyond the columns are ignored, in the header too;
 *   - a row is bad when it has more than CSVLOAD_MAX_FIELDS fields up to its last one that
 *     holds something, when the values of its six columns exceed CSVLOAD_ROW_MAX bytes, or
 *     when a field exceeds CSVLOAD_FIELD_MAX bytes; then only that row is reported, and
 *     reading goes on at the next line;
 *   - every value is checked with protocol/'s validators, and a code that repeats an
 *     earlier record's is bad too;
 *   - the record after the max_records-th is bad, and reading stops there.
 * CSVLOAD_MORE also comes back when a signal interrupted a read that had nothing yet, so that
 * the caller can look at its stop flag. */
enum csvload_status csvload_step(struct csvload *ld, size_t budget);

/* Progress: bytes and lines read so far. */
uint64_t csvload_bytes(const struct csvload *ld);
uint32_t csvload_lines(const struct csvload *ld);

/* Why the load FAILED; valid while ld is. */
const char *csvload_failure(const struct csvload *ld);

/* Bad records found so far (all of them, also those beyond CSVLOAD_ERRORS_KEPT). */
size_t csvload_bad(const struct csvload *ld);

/* The first min(bad, CSVLOAD_ERRORS_KEPT) bad records, in file order; valid while ld is. */
size_t csvload_errors_kept(const struct csvload *ld);
const struct csvload_error *csvload_error(const struct csvload *ld, size_t i);

/* Whether the first row was a header. */
bool csvload_has_header(const struct csvload *ld);

/* The good records so far; the pointers are valid until the next csvload_step() or
 * csvload_free(). */
void csvload_records(const struct csvload *ld, struct csvload_records *out);

/* Closes the file (unless it is standard input) and frees everything. NULL is allowed. */
void csvload_free(struct csvload *ld);

#endif
