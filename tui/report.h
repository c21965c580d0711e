/* report.h - an upload's result as text on a stream: what --upload prints when it ends, and
 * what the dashboard prints when it is quit during an upload. */
#ifndef COUPONCTL_REPORT_H
#define COUPONCTL_REPORT_H

#include <stdio.h>

#include "upload.h"

/* Writes the result of a settled upload to out: unless it is complete, one line per run of
 * batches and per REJECT (upload_detail()); then the summary (upload_summary()) with the time
 * taken and the records per second. */
void report_upload(const struct upload *up, FILE *out);

/* Why an upload that upload_resumable() says can be resumed is resumed by running it again. */
extern const char report_resume_why[];

#endif
