/* report.c - an upload's result for people and scripts. */
#include "report.h"

#define MS_PER_S 1000.0

const char report_resume_why[] = "coupond replays the batches it stored (each has a request id "
                                 "derived from its records) and stores the rest";

void
report_upload(const struct upload *up, FILE *out)
{
    char line[UPLOAD_TEXT_MAX];
    int64_t ms = upload_elapsed_ms(up);
    size_t stored = upload_stored(up);

    if (upload_outcome(up) != UPLOAD_COMPLETE)
        for (size_t i = 0; i < upload_detail_count(up); i++) {
            upload_detail(up, i, line, sizeof line);
            fprintf(out, "%s\n", line);
        }
    upload_summary(up, line, sizeof line);
    fprintf(out, "%s (%.2f s, %.0f records/s)\n", line, (double)ms / MS_PER_S,
            ms > 0 ? (double)stored * MS_PER_S / (double)ms : 0.0);
}
