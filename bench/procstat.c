/* procstat.c - CPU time and memory of a process from /proc (see procstat.h). */
#include "procstat.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PROC_PATH_MAX 64
#define STAT_BUF      1024
#define CLEAR_PEAK    "5" /* clear_refs command: reset the peak RSS (VmHWM) */

bool
procstat_reset_peak(pid_t pid)
{
    char path[PROC_PATH_MAX];
    snprintf(path, sizeof path, "/proc/%ld/clear_refs", (long)pid);
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    bool ok = fputs(CLEAR_PEAK, f) >= 0;
    return fclose(f) == 0 && ok;
}

/* utime and stime: fields 14 and 15 of /proc/PID/stat, counted after the command name, which
 * is in parentheses and may itself hold spaces and parentheses. */
static bool
read_cpu(pid_t pid, double *cpu_s)
{
    char path[PROC_PATH_MAX], buf[STAT_BUF];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    /* After ')': state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
     * utime stime. */
    if (!p ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return false;
    long hz = sysconf(_SC_CLK_TCK);
    *cpu_s = (double)(ut + st) / (double)(hz > 0 ? hz : 100);
    return true;
}

bool
procstat_read(pid_t pid, struct procstat *out)
{
    struct procstat s;
    memset(&s, 0, sizeof s);
    if (!read_cpu(pid, &s.cpu_s))
        return false;
    char path[PROC_PATH_MAX], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    static const char *const names[] = {"VmHWM:", "VmRSS:", "RssAnon:", "RssFile:"};
    uint64_t *const dst[] = {&s.hwm_kb, &s.rss_kb, &s.anon_kb, &s.file_kb};
    while (fgets(line, sizeof line, f)) {
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            size_t nl = strlen(names[i]);
            unsigned long long v;
            if (strncmp(line, names[i], nl) == 0 && sscanf(line + nl, "%llu", &v) == 1)
                *dst[i] = v;
        }
    }
    fclose(f);
    *out = s;
    return true;
}
