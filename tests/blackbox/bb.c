/* bb.c - black-box test harness: starts and stops the real coupond, raw TCP clients, reply
 * checks that print what the server actually said. See bb.h for the contract of each call. */
#include "bb.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <cmocka.h>

#define BB_TMP_TEMPLATE  "coupond-bb-XXXXXX"
#define BB_NFTW_FDS      16   /* directory fds nftw may hold open */
#define BB_KEY_WAIT_MS   2000 /* admin.key must exist this soon after the port answers */
#define BB_KEY_READ_MAX  128  /* bytes of admin.key read (it holds 65) */
#define BB_RECORD_MAX    192  /* one generated upload record */
#define BB_SCRATCH       4096 /* bytes discarded per recv while waiting for a close */
#define BB_EXIT_SIGNALED 128  /* exit status reported for a death by signal N: 128 + N */
#define BB_EXEC_FAILED   127  /* child's exit status when exec failed */

/* ---- Small utilities ---- */

int64_t
bb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
bb_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void
bb_fmt_time(char *buf, size_t size, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void
bb_fail_at(const char *file, int line, const struct bb_server *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bb: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (s != NULL)
        bb_server_dump_stderr(s);
    _fail(file, line);
    abort(); /* _fail does not return; this keeps the noreturn promise visible to the compiler */
}

void
bb_fmt_at(const char *file, int line, char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size)
        bb_fail_at(file, line, NULL, "formatted text does not fit in %zu bytes", size);
}

bool
bb_raise_nofile(unsigned long n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return false;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= n)
        return true;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < n) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        return false;
    }
    rl.rlim_cur = n;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

static int
exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return BB_EXIT_SIGNALED + WTERMSIG(status);
    return -1;
}

/* Waits for `pid` up to `ms`; true and *status (decoded) when it exited. */
static bool
wait_exit(pid_t pid, int ms, int *status)
{
    int64_t deadline = bb_now_ms() + ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            *status = exit_code(st);
            return true;
        }
        if (r < 0 && errno != EINTR)
            return false;
        if (bb_now_ms() >= deadline)
            return false;
        bb_sleep_ms(BB_POLL_MS / 2);
    }
}

static void
kill_and_reap(pid_t pid)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
}

/* ---- Temporary directories ---- */

bool
bb_tmpdir_make(char buf[BB_PATH_MAX])
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    int n = snprintf(buf, BB_PATH_MAX, "%s/" BB_TMP_TEMPLATE, base);
    if (n < 0 || n >= BB_PATH_MAX)
        return false;
    return mkdtemp(buf) != NULL;
}

static int
remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path); /* best effort: a leftover file must not fail a test */
    return 0;
}

void
bb_tmpdir_remove(const char *dir)
{
    if (dir[0] != '\0')
        nftw(dir, remove_entry, BB_NFTW_FDS, FTW_DEPTH | FTW_PHYS);
}

/* ---- The store: LMDB in the data dir, or a schema of the test cluster's database ---- */

static void child_prepare(pid_t parent);

#define BB_PG_ENV    "COUPOND_TEST_PG_URI" /* the cluster's database (tests/pg/cluster.sh) */
#define BB_PSQL_WAIT 30000 /* ms a psql may take: a busy 2-core machine, a sanitizer build */

bool
bb_on_pg(void)
{
    const char *s = getenv("BB_STORE");
    return s != NULL && strcmp(s, "postgresql") == 0;
}

void
bb_lmdb_only(const char *why)
{
    if (!bb_on_pg())
        return;
    print_message("skipped on PostgreSQL: %s\n", why);
    skip();
}

void
bb_pg_only(const char *why)
{
    if (bb_on_pg())
        return;
    print_message("skipped on LMDB: %s\n", why);
    skip();
}

/* Runs argv (found on PATH) with stdout to /dev/null; true when it exited 0 within
 * BB_PSQL_WAIT (its complaints go to stderr). */
static bool
run_quiet(const char *const *argv)
{
    pid_t parent = getpid(), pid = fork();
    int status;
    if (pid < 0)
        return false;
    if (pid == 0) {
        child_prepare(parent);
        int out = open("/dev/null", O_WRONLY);
        if (out >= 0)
            dup2(out, STDOUT_FILENO);
        execvp(argv[0], (char *const *)argv);
        dprintf(STDERR_FILENO, "bb: exec %s: %s\n", argv[0], strerror(errno));
        _exit(BB_EXEC_FAILED);
    }
    if (!wait_exit(pid, BB_PSQL_WAIT, &status)) {
        kill_and_reap(pid);
        return false;
    }
    return status == 0;
}

static bool
psql(const char *uri, const char *sql)
{
    const char *const argv[] = {"psql", "-qAtX", "-v", "ON_ERROR_STOP=1", "-d", uri,
                                "-c",   sql,     NULL};
    return run_quiet(argv);
}

bool
bb_pg_value(const struct bb_server *s, const char *sql, char *out, size_t cap)
{
    const char *const argv[] = {"psql", "-qAtX", "-v", "ON_ERROR_STOP=1", "-d", s->store,
                                "-c",   sql,     NULL};
    int fds[2];
    if (cap == 0 || pipe(fds) != 0)
        return false;
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        child_prepare(parent);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], (char *const *)argv);
        _exit(BB_EXEC_FAILED);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t got;
    while (pid > 0 && (got = read(fds[0], out + n, cap - 1 - n)) > 0 && n + (size_t)got < cap - 1)
        n += (size_t)got;
    close(fds[0]);
    out[n] = '\0';
    out[strcspn(out, "\n")] = '\0';
    int status;
    if (pid < 0 || !wait_exit(pid, BB_PSQL_WAIT, &status)) {
        if (pid > 0)
            kill_and_reap(pid);
        return false;
    }
    return status == 0;
}

bool
bb_pg_cluster(const char *action)
{
    const char *script = getenv("COUPOND_TEST_PG_SCRIPT");
    const char *const argv[] = {"bash", script, action, NULL};
    return bb_on_pg() && script != NULL && run_quiet(argv);
}

/* BB_STORE=postgresql: makes the server's schema, named after its data dir's unique suffix in
 * hex (an identifier without quotes), and its --store URI, which sets it as the search path. */
static bool
pg_store_make(struct bb_server *s)
{
    const char *base = getenv(BB_PG_ENV), *suffix = strrchr(s->dir, '-');
    char schema[64] = "bb_", sql[96];
    if (base == NULL || base[0] == '\0') {
        fprintf(stderr, "bb: BB_STORE=postgresql needs %s (run under tests/pg/cluster.sh)\n",
                BB_PG_ENV);
        return false;
    }
    for (const char *p = suffix != NULL ? suffix + 1 : ""; *p && strlen(schema) + 3 < sizeof schema;
         p++)
        snprintf(schema + strlen(schema), sizeof schema - strlen(schema), "%02x",
                 (unsigned char)*p);
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
    int n = snprintf(s->store, sizeof s->store, "%s%coptions=-csearch_path%%3D%s", base,
                     strchr(base, '?') != NULL ? '&' : '?', schema);
    if (n < 0 || (size_t)n >= sizeof s->store) {
        fprintf(stderr, "bb: %s is too long for a --store URI\n", BB_PG_ENV);
        return false;
    }
    if (!psql(base, sql)) {
        fprintf(stderr, "bb: psql could not make schema %s\n", schema);
        return false;
    }
    return true;
}

/* ---- Processes ---- */

/* In a forked child: die with the test process, plain signal state, then exec. */
static void
child_prepare(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(BB_EXEC_FAILED);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    int in = open("/dev/null", O_RDONLY);
    if (in >= 0 && in != STDIN_FILENO) {
        dup2(in, STDIN_FILENO);
        close(in);
    }
}

static void
child_exec(const char *bin, const char *const *argv)
{
    execv(bin, (char *const *)argv);
    dprintf(STDERR_FILENO, "bb: exec %s: %s\n", bin, strerror(errno));
    _exit(BB_EXEC_FAILED);
}

static uint16_t
pick_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    uint16_t port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static bool
probe_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static bool
read_key(struct bb_server *s)
{
    char path[BB_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/admin.key", s->dir);
    int64_t deadline = bb_now_ms() + BB_KEY_WAIT_MS;
    for (;;) {
        char buf[BB_KEY_READ_MAX];
        ssize_t n = 0;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            n = read(fd, buf, sizeof buf);
            close(fd);
        }
        if (n >= BB_KEY_HEX) {
            memcpy(s->key, buf, BB_KEY_HEX);
            s->key[BB_KEY_HEX] = '\0';
            return true;
        }
        if (bb_now_ms() >= deadline) {
            fprintf(stderr, "bb: %s missing or shorter than %d bytes\n", path, BB_KEY_HEX);
            return false;
        }
        bb_sleep_ms(BB_POLL_MS);
    }
}

static pid_t
spawn_server(const struct bb_server *s)
{
    const char *bin = getenv("COUPOND_BIN");
    char port[8], dir[BB_PATH_MAX], log[BB_PATH_MAX + 16], errlog[BB_PATH_MAX + 16];
    snprintf(port, sizeof port, "%u", (unsigned)s->port);
    snprintf(dir, sizeof dir, "%s", s->dir);
    snprintf(log, sizeof log, "%s/ops.log", s->dir);
    snprintf(errlog, sizeof errlog, "%s/stderr.log", s->dir);
    const char *argv[10 + BB_MAX_ARGS];
    size_t n = 0;
    argv[n++] = "coupond";
    argv[n++] = "-p";
    argv[n++] = port;
    argv[n++] = "-d";
    argv[n++] = dir;
    argv[n++] = "--log";
    argv[n++] = log;
    if (s->store[0] != '\0') {
        argv[n++] = "--store";
        argv[n++] = s->store;
    }
    for (size_t i = 0; s->args[i] != NULL; i++)
        argv[n++] = s->args[i];
    argv[n] = NULL;

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    child_prepare(parent);
    int fd = open(errlog, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    child_exec(bin, argv);
    return -1;
}

/* Starts the process and waits until it listens. On failure the process is gone (s->pid is -1)
 * and *died is its exit status when it exited by itself, else -1. */
static bool
launch(struct bb_server *s, int *died)
{
    *died = -1;
    s->pid = spawn_server(s);
    if (s->pid < 0) {
        fprintf(stderr, "bb: fork: %s\n", strerror(errno));
        return false;
    }
    int64_t deadline = bb_now_ms() + BB_START_TIMEOUT_MS;
    for (;;) {
        int st;
        if (wait_exit(s->pid, 0, &st)) {
            fprintf(stderr, "bb: coupond exited with status %d during start-up (port %u)\n", st,
                    (unsigned)s->port);
            s->pid = -1;
            *died = st;
            return false;
        }
        if (probe_connect(s->port))
            break;
        if (bb_now_ms() >= deadline) {
            fprintf(stderr, "bb: coupond did not accept connections on port %u within %d ms\n",
                    (unsigned)s->port, BB_START_TIMEOUT_MS);
            kill_and_reap(s->pid);
            s->pid = -1;
            return false;
        }
        bb_sleep_ms(BB_POLL_MS);
    }
    if (!read_key(s)) {
        kill_and_reap(s->pid);
        s->pid = -1;
        return false;
    }
    return true;
}

struct bb_server *
bb_server_start(const char *const *args)
{
    const char *bin = getenv("COUPOND_BIN");
    if (bin == NULL) {
        fprintf(stderr, "bb: COUPOND_BIN is not set (CTest sets it to the coupond binary)\n");
        return NULL;
    }
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "bb: COUPOND_BIN %s: %s\n", bin, strerror(errno));
        return NULL;
    }
    struct bb_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->pid = -1;
    for (size_t i = 0; args != NULL && args[i] != NULL; i++) {
        if (i == BB_MAX_ARGS) {
            fprintf(stderr, "bb: more than %d extra server arguments\n", BB_MAX_ARGS);
            bb_server_free(s);
            return NULL;
        }
        s->args[i] = strdup(args[i]);
    }
    if (!bb_tmpdir_make(s->dir)) {
        fprintf(stderr, "bb: mkdtemp: %s\n", strerror(errno));
        s->dir[0] = '\0';
        bb_server_free(s);
        return NULL;
    }
    if (bb_on_pg() && !pg_store_make(s)) {
        bb_server_free(s);
        return NULL;
    }
    for (int attempt = 0; attempt < BB_START_ATTEMPTS; attempt++) {
        int died;
        s->port = pick_port();
        if (launch(s, &died))
            return s;
        if (died < 0 || died == BB_EXEC_FAILED)
            break; /* hung, or no binary, rather than lost a race for the port: do not retry */
    }
    bb_server_dump_stderr(s);
    bb_server_free(s);
    return NULL;
}

/* Copies first's file `name` into dir; false after printing why. */
static bool
copy_key(const char *from_dir, const char *dir, const char *name)
{
    char from[BB_PATH_MAX + 32], to[BB_PATH_MAX + 32], buf[BB_KEY_READ_MAX];
    snprintf(from, sizeof from, "%s/%s", from_dir, name);
    snprintf(to, sizeof to, "%s/%s", dir, name);
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return errno == ENOENT; /* a key the first node has not made */
    ssize_t n = read(in, buf, sizeof buf);
    close(in);
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    bool ok = n > 0 && out >= 0 && write(out, buf, (size_t)n) == n;
    if (out >= 0)
        close(out);
    if (!ok)
        fprintf(stderr, "bb: cannot copy %s to %s\n", from, to);
    return ok;
}

struct bb_server *
bb_server_start_peer(const struct bb_server *first, const char *const *args, bool share_keys)
{
    static const char *const keys[] = {"admin.key", "task.key", "audit.key"};
    struct bb_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->pid = -1;
    for (size_t i = 0; args != NULL && args[i] != NULL && i < BB_MAX_ARGS; i++)
        s->args[i] = strdup(args[i]);
    if (!bb_tmpdir_make(s->dir)) {
        fprintf(stderr, "bb: mkdtemp: %s\n", strerror(errno));
        s->dir[0] = '\0';
        bb_server_free(s);
        return NULL;
    }
    snprintf(s->store, sizeof s->store, "%s", first->store);
    for (size_t i = 0; share_keys && i < sizeof keys / sizeof keys[0]; i++)
        if (!copy_key(first->dir, s->dir, keys[i])) {
            bb_server_free(s);
            return NULL;
        }
    for (int attempt = 0; attempt < BB_START_ATTEMPTS; attempt++) {
        int died;
        s->port = pick_port();
        if (launch(s, &died))
            return s;
        if (died < 0 || died == BB_EXEC_FAILED)
            break;
    }
    bb_server_dump_stderr(s);
    bb_server_free(s);
    return NULL;
}

bool
bb_server_restart(struct bb_server *s)
{
    if (s->pid > 0) {
        fprintf(stderr, "bb: restart of a server that is still running\n");
        return false;
    }
    int died;
    if (launch(s, &died))
        return true;
    bb_server_dump_stderr(s);
    return false;
}

bool
bb_server_restart_any_port(struct bb_server *s)
{
    if (s->pid > 0) {
        fprintf(stderr, "bb: restart of a server that is still running\n");
        return false;
    }
    for (int attempt = 0; attempt < BB_START_ATTEMPTS; attempt++) {
        int died;
        if (launch(s, &died))
            return true;
        if (died < 0 || died == BB_EXEC_FAILED)
            break; /* hung, or no binary: another port would not help */
        s->port = pick_port();
    }
    bb_server_dump_stderr(s);
    return false;
}

int
bb_server_wait(struct bb_server *s, int ms)
{
    if (s->pid <= 0)
        return -1;
    int status;
    if (!wait_exit(s->pid, ms, &status)) {
        fprintf(stderr, "bb: coupond did not exit within %d ms; killed\n", ms);
        kill_and_reap(s->pid);
        s->pid = -1;
        bb_server_dump_stderr(s);
        return -1;
    }
    s->pid = -1;
    if (status != 0) {
        fprintf(stderr, "bb: coupond exited with status %d\n", status);
        bb_server_dump_stderr(s);
    }
    return status;
}

int
bb_server_stop(struct bb_server *s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    return bb_server_wait(s, BB_STOP_TIMEOUT_MS);
}

void
bb_server_signal(const struct bb_server *s, int sig)
{
    if (s->pid > 0)
        kill(s->pid, sig);
}

void
bb_server_kill(struct bb_server *s)
{
    if (s->pid > 0)
        kill_and_reap(s->pid);
    s->pid = -1;
}

void
bb_server_free(struct bb_server *s)
{
    if (s == NULL)
        return;
    while (s->clients != NULL)
        bb_close(s->clients);
    bb_server_kill(s);
    if (getenv("BB_KEEP_DIRS") == NULL)
        bb_tmpdir_remove(s->dir);
    else if (s->dir[0] != '\0')
        fprintf(stderr, "bb: kept %s\n", s->dir);
    for (size_t i = 0; i < BB_MAX_ARGS; i++)
        free(s->args[i]);
    free(s);
}

void
bb_server_dump_stderr(const struct bb_server *s)
{
    char path[BB_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/stderr.log", s->dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size == 0) {
        close(fd);
        return;
    }
    if (st.st_size > BB_STDERR_TAIL)
        lseek(fd, st.st_size - BB_STDERR_TAIL, SEEK_SET);
    fprintf(stderr, "---- coupond stderr (%s) ----\n", path);
    char buf[BB_STDERR_TAIL];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        fwrite(buf, 1, (size_t)n, stderr);
    fprintf(stderr, "---- end of coupond stderr ----\n");
    close(fd);
}

int
bb_setup(void **state)
{
    const char *const *args = *state;
    struct bb_server *s = bb_server_start(args);
    if (s == NULL)
        return -1;
    *state = s;
    return 0;
}

int
bb_teardown(void **state)
{
    struct bb_server *s = *state;
    if (s == NULL)
        return 0;
    int rc = 0;
    while (s->clients != NULL)
        bb_close(s->clients);
    if (s->pid > 0 && bb_server_stop(s) != 0)
        rc = -1;
    bb_server_free(s);
    *state = NULL;
    return rc;
}

/* ---- One-shot runs ---- */

/* Appends what one read of fd gives to out; false at EOF or error. */
static bool
drain_into(int fd, char *out, size_t size, size_t *used)
{
    char buf[BB_SCRATCH];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
        return true;
    if (n <= 0)
        return false;
    size_t room = size - 1 - *used;
    size_t take = (size_t)n < room ? (size_t)n : room;
    memcpy(out + *used, buf, take);
    *used += take;
    out[*used] = '\0';
    return true;
}

int
bb_run(const char *const *args, char *out, size_t out_size, char *err, size_t err_size)
{
    const char *bin = getenv("COUPOND_BIN");
    if (bin == NULL)
        return -1;
    const char *argv[BB_MAX_ARGS + 2];
    size_t n = 0;
    argv[n++] = "coupond";
    for (size_t i = 0; args[i] != NULL && n <= BB_MAX_ARGS; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int po[2], pe[2];
    if (pipe2(po, O_CLOEXEC) != 0)
        return -1;
    if (pipe2(pe, O_CLOEXEC) != 0) {
        close(po[0]);
        close(po[1]);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        child_prepare(parent);
        dup2(po[1], STDOUT_FILENO);
        dup2(pe[1], STDERR_FILENO);
        child_exec(bin, argv);
    }
    close(po[1]);
    close(pe[1]);
    out[0] = err[0] = '\0';
    size_t out_used = 0, err_used = 0;
    struct pollfd pfd[2] = {{.fd = po[0], .events = POLLIN}, {.fd = pe[0], .events = POLLIN}};
    int64_t deadline = bb_now_ms() + BB_RUN_TIMEOUT_MS;
    while ((pfd[0].fd >= 0 || pfd[1].fd >= 0) && bb_now_ms() < deadline) {
        if (poll(pfd, 2, (int)(deadline - bb_now_ms())) <= 0)
            continue;
        if (pfd[0].revents != 0 && !drain_into(po[0], out, out_size, &out_used))
            pfd[0].fd = -1;
        if (pfd[1].revents != 0 && !drain_into(pe[0], err, err_size, &err_used))
            pfd[1].fd = -1;
    }
    close(po[0]);
    close(pe[0]);
    int status;
    int64_t left = deadline - bb_now_ms();
    if (pid < 0 || !wait_exit(pid, left > 0 ? (int)left : 0, &status)) {
        if (pid > 0)
            kill_and_reap(pid);
        return -1;
    }
    return status;
}

/* ---- Clients ---- */

void
bb_set_timeout(struct bb_client *c, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

struct bb_client *
bb_connect_opt(struct bb_server *s, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(s->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct bb_client *c = malloc(sizeof *c);
    if (c == NULL) {
        close(fd);
        return NULL;
    }
    c->fd = fd;
    c->srv = s;
    c->len = 0;
    bb_set_timeout(c, BB_IO_TIMEOUT_MS);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        free(c);
        errno = e;
        return NULL;
    }
    c->prev = NULL;
    c->next = s->clients;
    if (s->clients != NULL)
        s->clients->prev = c;
    s->clients = c;
    return c;
}

struct bb_client *
bb_connect_at(const char *file, int line, struct bb_server *s)
{
    struct bb_client *c = bb_connect_opt(s, 0);
    if (c == NULL)
        bb_fail_at(file, line, s, "connect to 127.0.0.1:%u: %s", (unsigned)s->port,
                   strerror(errno));
    return c;
}

void
bb_close(struct bb_client *c)
{
    if (c == NULL)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->srv->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    close(c->fd);
    free(c);
}

int
bb_try_send(struct bb_client *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EWOULDBLOCK ? EAGAIN : errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void
bb_send_at(const char *file, int line, struct bb_client *c, const void *data, size_t len)
{
    int e = bb_try_send(c, data, len);
    if (e != 0)
        bb_fail_at(file, line, c->srv, "send of %zu bytes: %s", len,
                   e == EAGAIN ? "timed out (server not reading)" : strerror(e));
}

enum bb_read
bb_read_line(struct bb_client *c, char *line, size_t cap)
{
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl != NULL) {
            size_t n = (size_t)(nl - c->buf);
            if (n + 1 > cap)
                return BB_READ_ERROR;
            memcpy(line, c->buf, n);
            line[n] = '\0';
            c->len -= n + 1;
            memmove(c->buf, nl + 1, c->len);
            return BB_READ_LINE;
        }
        if (c->len == sizeof c->buf)
            return BB_READ_ERROR;
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (r > 0) {
            c->len += (size_t)r;
            continue;
        }
        if (r == 0)
            return BB_READ_CLOSED;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return BB_READ_TIMEOUT;
        if (errno == ECONNRESET)
            return BB_READ_CLOSED;
        return BB_READ_ERROR;
    }
}

static bool
is_status_line(const char *line)
{
    return bb_has_prefix(line, "OK") || bb_has_prefix(line, "ERR");
}

static const char *
read_name(enum bb_read r)
{
    switch (r) {
    case BB_READ_LINE:
        return "line";
    case BB_READ_CLOSED:
        return "connection closed";
    case BB_READ_TIMEOUT:
        return "timed out";
    case BB_READ_ERROR:
        break;
    }
    return "read error or over-long line";
}

/* bb_read_reply, also telling why it stopped. */
static int
read_reply(struct bb_client *c, char *reply, enum bb_read *why)
{
    static char line[BB_LINE_MAX];
    size_t used = 0;
    int lines = 0;
    reply[0] = '\0';
    for (;;) {
        *why = bb_read_line(c, line, sizeof line);
        if (*why != BB_READ_LINE)
            return -1;
        size_t len = strlen(line);
        if (used + len + 2 > BB_REPLY_MAX) {
            *why = BB_READ_ERROR;
            return -1;
        }
        if (lines > 0)
            reply[used++] = '\n';
        memcpy(reply + used, line, len + 1);
        used += len;
        lines++;
        if (is_status_line(line))
            return lines;
    }
}

int
bb_read_reply(struct bb_client *c, char *reply)
{
    enum bb_read why;
    return read_reply(c, reply, &why);
}

static const char *
status_line(const char *reply)
{
    const char *nl = strrchr(reply, '\n');
    return nl != NULL ? nl + 1 : reply;
}

const char *
bb_get_reply_at(const char *file, int line, struct bb_client *c, char *reply)
{
    enum bb_read why;
    if (read_reply(c, reply, &why) < 0)
        bb_fail_at(file, line, c->srv, "no complete reply (%s); received so far: \"%s\"",
                   read_name(why), reply);
    return status_line(reply);
}

const char *
bb_cmd_at(const char *file, int line, struct bb_client *c, const char *cmd, char *reply)
{
    size_t len = strlen(cmd);
    char *buf = malloc(len + 1);
    if (buf == NULL)
        bb_fail_at(file, line, NULL, "out of memory");
    memcpy(buf, cmd, len);
    buf[len] = '\n';
    int e = bb_try_send(c, buf, len + 1);
    free(buf);
    if (e != 0)
        bb_fail_at(file, line, c->srv, "sending \"%.200s\": %s", cmd, strerror(e));
    enum bb_read why;
    if (read_reply(c, reply, &why) < 0)
        bb_fail_at(file, line, c->srv, "\"%.200s\": no complete reply (%s); received: \"%s\"", cmd,
                   read_name(why), reply);
    return status_line(reply);
}

static bool
is_word_char(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-' || ch == '.';
}

bool
bb_has_prefix(const char *line, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(line, prefix, n) != 0)
        return false;
    if (n == 0 || !is_word_char(prefix[n - 1]))
        return true; /* "OK task=" or "OK code=X " end at a boundary of their own */
    return line[n] == '\0' || line[n] == ' ';
}

void
bb_expect_at(const char *file, int line, struct bb_client *c, const char *cmd, const char *want)
{
    static char reply[BB_REPLY_MAX];
    bb_cmd_at(file, line, c, cmd, reply);
    if (strcmp(reply, want) != 0)
        bb_fail_at(file, line, c->srv, "\"%.200s\": expected \"%s\", got \"%s\"", cmd, want, reply);
}

const char *
bb_expect_prefix_at(const char *file, int line, struct bb_client *c, const char *cmd,
                    const char *prefix)
{
    static char reply[BB_REPLY_MAX];
    const char *status = bb_cmd_at(file, line, c, cmd, reply);
    if (!bb_has_prefix(status, prefix))
        bb_fail_at(file, line, c->srv, "\"%.200s\": expected \"%s ...\", got \"%s\"", cmd, prefix,
                   reply);
    return status;
}

const char *
bb_expect_reply_prefix_at(const char *file, int line, struct bb_client *c, const char *prefix)
{
    static char reply[BB_REPLY_MAX];
    const char *status = bb_get_reply_at(file, line, c, reply);
    if (!bb_has_prefix(status, prefix))
        bb_fail_at(file, line, c->srv, "expected a reply \"%s ...\", got \"%s\"", prefix, reply);
    return status;
}

void
bb_auth_at(const char *file, int line, struct bb_client *c)
{
    char cmd[BB_KEY_HEX + 8];
    snprintf(cmd, sizeof cmd, "AUTH %s", c->srv->key);
    bb_expect_at(file, line, c, cmd, "OK");
}

struct bb_client *
bb_connect_admin_at(const char *file, int line, struct bb_server *s)
{
    struct bb_client *c = bb_connect_at(file, line, s);
    bb_auth_at(file, line, c);
    return c;
}

/* Sends an UPLOAD of the given bytes (records, each ending in LF) and expects OK uploaded=n. */
static void
upload_expect_ok(const char *file, int line, struct bb_client *c, char *buf, size_t len, size_t n)
{
    int e = bb_try_send(c, buf, len);
    free(buf);
    if (e != 0)
        bb_fail_at(file, line, c->srv, "sending UPLOAD %zu: %s", n, strerror(e));
    static char reply[BB_REPLY_MAX];
    bb_get_reply_at(file, line, c, reply);
    char want[64];
    snprintf(want, sizeof want, "OK uploaded=%zu", n);
    if (strcmp(reply, want) != 0)
        bb_fail_at(file, line, c->srv, "UPLOAD %zu: expected \"%s\", got \"%s\"", n, want, reply);
}

void
bb_upload_gen_at(const char *file, int line, struct bb_client *c, const char *prefix,
                 const char *type, size_t n, const char *expires, unsigned max_uses)
{
    size_t cap = 32 + n * BB_RECORD_MAX;
    char *buf = malloc(cap);
    if (buf == NULL)
        bb_fail_at(file, line, NULL, "out of memory");
    size_t len = (size_t)snprintf(buf, cap, "UPLOAD %zu\n", n);
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(buf + len, cap - len, "%s%06zu,%s,10,FLAT,%s,%u\n", prefix, i, type,
                         expires != NULL ? expires : BB_FAR_EXPIRY, max_uses);
        if (w < 0 || w >= BB_RECORD_MAX) {
            free(buf);
            bb_fail_at(file, line, NULL, "generated record too long");
        }
        len += (size_t)w;
    }
    upload_expect_ok(file, line, c, buf, len, n);
}

void
bb_upload_at(const char *file, int line, struct bb_client *c, const char *const *records, size_t n)
{
    size_t cap = 32;
    for (size_t i = 0; i < n; i++)
        cap += strlen(records[i]) + 1;
    char *buf = malloc(cap);
    if (buf == NULL)
        bb_fail_at(file, line, NULL, "out of memory");
    size_t len = (size_t)snprintf(buf, cap, "UPLOAD %zu\n", n);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(records[i]);
        memcpy(buf + len, records[i], l);
        len += l;
        buf[len++] = '\n';
    }
    upload_expect_ok(file, line, c, buf, len, n);
}

bool
bb_wait_closed(struct bb_client *c, int ms)
{
    c->len = 0;
    int64_t deadline = bb_now_ms() + ms;
    for (;;) {
        int64_t left = deadline - bb_now_ms();
        if (left < 0)
            return false;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        char scratch[BB_SCRATCH];
        ssize_t n = recv(c->fd, scratch, sizeof scratch, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return false;
    }
}

bool
bb_quiet(struct bb_client *c, int ms)
{
    if (c->len > 0)
        return false;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int r;
    while ((r = poll(&p, 1, ms)) < 0 && errno == EINTR) {
    }
    return r == 0;
}

/* ---- STATS ---- */

bool
bb_stat_text(const char *reply, const char *name, char *buf, size_t cap)
{
    size_t nlen = strlen(name);
    for (const char *p = reply; p != NULL && *p != '\0';) {
        const char *eol = strchr(p, '\n');
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
        if (len > 5 + nlen + 1 && strncmp(p, "STAT ", 5) == 0 && strncmp(p + 5, name, nlen) == 0 &&
            p[5 + nlen] == ' ') {
            size_t n = len - (5 + nlen + 1);
            if (cap == 0)
                return false;
            snprintf(buf, cap, "%.*s", (int)(n < cap ? n : cap - 1), p + 5 + nlen + 1);
            return true;
        }
        p = eol != NULL ? eol + 1 : NULL;
    }
    return false;
}

bool
bb_stat_find(const char *reply, const char *name, uint64_t *value)
{
    size_t nlen = strlen(name);
    for (const char *p = reply; p != NULL && *p != '\0';) {
        const char *eol = strchr(p, '\n');
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
        if (len > 5 + nlen + 1 && strncmp(p, "STAT ", 5) == 0 && strncmp(p + 5, name, nlen) == 0 &&
            p[5 + nlen] == ' ') {
            uint64_t v = 0;
            size_t i = 5 + nlen + 1;
            if (i == len)
                return false;
            for (; i < len; i++) {
                if (p[i] < '0' || p[i] > '9')
                    return false;
                v = v * 10 + (uint64_t)(p[i] - '0');
            }
            *value = v;
            return true;
        }
        p = eol != NULL ? eol + 1 : NULL;
    }
    return false;
}

uint64_t
bb_stat_at(const char *file, int line, struct bb_client *c, const char *name)
{
    static char reply[BB_REPLY_MAX];
    const char *status = bb_cmd_at(file, line, c, "STATS", reply);
    uint64_t v;
    if (strcmp(status, "OK") != 0 || !bb_stat_find(reply, name, &v))
        bb_fail_at(file, line, c->srv, "STATS: no numeric \"STAT %s\" in a reply ending in OK:\n%s",
                   name, reply);
    return v;
}

/* ---- The server process, seen from /proc ---- */

long
bb_proc_kb(const struct bb_server *s, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)s->pid);
    FILE *f = s->pid > 0 ? fopen(path, "re") : NULL;
    if (f == NULL)
        return -1;
    size_t flen = strlen(field);
    long kb = -1;
    while (kb < 0 && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, flen) == 0 && line[flen] == ':')
            kb = strtol(line + flen + 1, NULL, 10);
    fclose(f);
    return kb;
}

long
bb_proc_cpu_ms(const struct bb_server *s)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)s->pid);
    FILE *f = s->pid > 0 ? fopen(path, "re") : NULL;
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces: the fields that follow start after its ')'. Then
     * state is field 3 and utime, stime are fields 14 and 15. */
    const char *p = strrchr(buf, ')');
    unsigned long long utime, stime;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    long tck = sysconf(_SC_CLK_TCK);
    return tck > 0 ? (long)((utime + stime) * 1000ULL / (unsigned long long)tck) : -1;
}

int
bb_file_count(const char *path, const char *needle)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    char line[BB_LINE_MAX];
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strstr(line, needle) != NULL)
            n++;
    fclose(f);
    return n;
}

/* ---- Servers started by hand, and their operation log ---- */

pid_t
bb_spawn(const char *const *args, const char *out_path)
{
    const char *bin = getenv("COUPOND_BIN");
    if (bin == NULL)
        return -1;
    const char *argv[BB_MAX_ARGS + 2];
    size_t n = 0;
    argv[n++] = "coupond";
    for (size_t i = 0; args[i] != NULL && n <= BB_MAX_ARGS; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    child_prepare(parent);
    int fd = out_path != NULL ? open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0600) : -1;
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    child_exec(bin, argv);
    return -1;
}

int
bb_reap(pid_t pid, int ms)
{
    int status;
    if (pid <= 0)
        return -1;
    if (wait_exit(pid, ms, &status))
        return status;
    kill_and_reap(pid);
    return -1;
}

/* Copies the first line of the file that contains `needle` into line; false when none does. */
static bool
find_line(const char *path, const char *needle, char *line, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return false;
    static char buf[BB_LINE_MAX];
    bool found = false;
    while (!found && fgets(buf, sizeof buf, f) != NULL) {
        if (strstr(buf, needle) == NULL)
            continue;
        buf[strcspn(buf, "\n")] = '\0';
        snprintf(line, cap, "%s", buf);
        found = true;
    }
    fclose(f);
    return found;
}

bool
bb_file_wait_line(const char *path, const char *needle, int ms, char *line, size_t cap)
{
    int64_t deadline = bb_now_ms() + ms;
    while (!find_line(path, needle, line, cap)) {
        if (bb_now_ms() >= deadline)
            return false;
        bb_sleep_ms(BB_POLL_MS);
    }
    return true;
}

int
bb_file_wait_count(const char *path, const char *needle, int n, int ms)
{
    int64_t deadline = bb_now_ms() + ms;
    int seen;
    while ((seen = bb_file_count(path, needle)) < n && bb_now_ms() < deadline)
        bb_sleep_ms(BB_POLL_MS);
    return seen;
}

static int
hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

static bool
bare_char(unsigned char ch)
{
    return ch > ' ' && ch < 0x7f && ch != '"' && ch != '=' && ch != '\\';
}

/* Reads one quoted value starting after its opening quote; returns the position after the
 * closing quote, or NULL when it is malformed. The value goes to val when it is not NULL. */
static const char *
logfmt_quoted(const char *p, char *val, size_t cap)
{
    size_t n = 0;
    for (;;) {
        unsigned char ch = (unsigned char)*p++;
        int hi, lo;
        if (ch == '"')
            break;
        if (ch == '\0' || ch < ' ' || ch >= 0x7f)
            return NULL;
        if (ch == '\\') {
            ch = (unsigned char)*p++;
            if (ch == 'x') {
                if ((hi = hex_digit(p[0])) < 0 || (lo = hex_digit(p[1])) < 0)
                    return NULL;
                ch = (unsigned char)(hi * 16 + lo);
                p += 2;
            } else if (ch != '"' && ch != '\\') {
                return NULL;
            }
        }
        if (val != NULL && n + 1 < cap)
            val[n++] = (char)ch;
    }
    if (val != NULL && cap > 0)
        val[n] = '\0';
    return p;
}

int
bb_logfmt_field(const char *line, const char *key, char *val, size_t cap)
{
    int found = 0;
    const char *p = line;
    for (;;) {
        const char *k = p;
        while (is_word_char(*p))
            p++;
        if (p == k || *p != '=')
            return -1;
        bool wanted = !found && (size_t)(p - k) == strlen(key) && strncmp(k, key, strlen(key)) == 0;
        char *out = wanted ? val : NULL;
        p++;
        if (*p == '"') {
            p = logfmt_quoted(p + 1, out, cap);
            if (p == NULL)
                return -1;
        } else {
            const char *v = p;
            while (bare_char((unsigned char)*p))
                p++;
            if (p == v)
                return -1;
            if (out != NULL)
                snprintf(out, cap, "%.*s", (int)(p - v), v);
        }
        found |= wanted;
        if (*p == '\0')
            return found;
        if (*p != ' ')
            return -1;
        p++;
    }
}
