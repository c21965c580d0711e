/* pgtest.c - psql and pg_ctl for the store tests (see pgtest.h). */
#include "pgtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

bool
pgtest_is_pg(const char *uri)
{
    return uri != NULL &&
           (strncmp(uri, "postgresql:", 11) == 0 || strncmp(uri, "postgres:", 9) == 0);
}

/* Runs argv with stdout into out (when not NULL, up to len - 1 bytes); true when it exited 0. */
static bool
run(char *const argv[], char *out, size_t len)
{
    int fds[2], status;
    size_t got = 0;
    pid_t pid;

    if (pipe(fds) != 0)
        return false;
    if ((pid = fork()) < 0)
        return false;
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        char buf[256];
        ssize_t n = read(fds[0], buf, sizeof buf);

        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n && out != NULL && got + 1 < len; i++)
            out[got++] = buf[i];
    }
    close(fds[0]);
    if (out != NULL && len > 0)
        out[got] = '\0';
    return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool
pgtest_sql(const char *uri, const char *sql)
{
    char *const argv[] = {"psql",      "-X", "-q",        "-v", "ON_ERROR_STOP=1", "-o",
                          "/dev/null", "-d", (char *)uri, "-c", (char *)sql,       NULL};

    return run(argv, NULL, 0);
}

int
pgtest_sql_start(const char *uri, const char *sql)
{
    char *const argv[] = {"psql",      "-X", "-q",        "-v", "ON_ERROR_STOP=1", "-o",
                          "/dev/null", "-d", (char *)uri, "-c", (char *)sql,       NULL};
    pid_t pid = fork();

    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    return (int)pid;
}

bool
pgtest_sql_wait(int pid)
{
    int status;

    return pid > 0 && waitpid((pid_t)pid, &status, 0) == (pid_t)pid && WIFEXITED(status) &&
           WEXITSTATUS(status) == 0;
}

bool
pgtest_value(const char *uri, const char *sql, char *out, size_t len)
{
    char *const argv[] = {"psql", "-X",        "-q", "-A",        "-t", "-v", "ON_ERROR_STOP=1",
                          "-d",   (char *)uri, "-c", (char *)sql, NULL};
    size_t n;

    if (!run(argv, out, len))
        return false;
    n = strlen(out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
    return true;
}

void
pgtest_wipe(const char *uri)
{
    if (!pgtest_sql(uri, "SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE "
                         "SCHEMA public")) {
        fprintf(stderr, "pgtest: cannot wipe %s\n", uri);
        abort();
    }
}

bool
pgtest_cluster(const char *action)
{
    const char *script = getenv("COUPOND_TEST_PG_SCRIPT");
    char *const argv[] = {"bash", (char *)script, (char *)action, NULL};

    return script != NULL && run(argv, NULL, 0);
}
