/* procstat.h - the server's CPU time and memory from /proc, for coupond-bench's
 * --server-pid: peak and current RSS and CPU use over exactly the measured run. */
#ifndef COUPOND_BENCH_PROCSTAT_H
#define COUPOND_BENCH_PROCSTAT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct procstat {
    double cpu_s;     /* user + system CPU seconds so far */
    uint64_t hwm_kb;  /* VmHWM: peak resident set since start or the last reset */
    uint64_t rss_kb;  /* VmRSS */
    uint64_t anon_kb; /* RssAnon: heap and stacks, without the mapped LMDB file */
    uint64_t file_kb; /* RssFile: mapped file pages, mostly the LMDB map */
};

/* Resets the process's VmHWM to its current RSS (writes 5 to /proc/PID/clear_refs; needs
 * the right to write there, root or the same user). False when that is not possible. */
bool procstat_reset_peak(pid_t pid);

/* Reads /proc/PID/stat and /proc/PID/status. False when the process is gone. */
bool procstat_read(pid_t pid, struct procstat *out);

#endif
