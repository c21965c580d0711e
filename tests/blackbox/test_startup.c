/* test_startup.c - starting up, as coupond(8) describes it: -l takes a host name and listens on
 * every address it resolves to, a malformed -l value is a usage error (exit 2) and a name that
 * does not resolve a start-up failure (exit 1); a failed start leaves no data dir it made; and
 * readiness is signalled to $NOTIFY_SOCKET once the server listens, and stopping on SIGTERM. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bb.h"

#define PATH_BUF      (BB_PATH_MAX + 64)
#define UP_TIMEOUT_MS 10000 /* spawn until listening, or the READY=1 datagram */
#define EXIT_NO_NS    77    /* the child could not make its own mount namespace: skip */
#define NOTIFY_MAX    256   /* one notify datagram */

/* ---- helpers ---- */

static int
count_lines(const char *s)
{
    int n = 0;
    for (; *s != '\0'; s++)
        if (*s == '\n' || s[1] == '\0')
            n++;
    return n;
}

static int
tmpdir_setup(void **state)
{
    char *dir = malloc(BB_PATH_MAX);
    if (dir == NULL || !bb_tmpdir_make(dir)) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

static int
tmpdir_teardown(void **state)
{
    bb_tmpdir_remove(*state);
    free(*state);
    return 0;
}

static bool
exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Connects to addr:port (an IPv4 or IPv6 literal) and expects PING to be answered. */
static void
expect_served_at(const char *addr, unsigned port)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        len = sizeof *a4;
    } else {
        assert_int_equal(inet_pton(AF_INET6, addr, &a6->sin6_addr), 1);
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        len = sizeof *a6;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = BB_IO_TIMEOUT_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&ss, len) != 0)
        fail_msg("connect to %s port %u: %s", addr, port, strerror(errno));
    char buf[64] = {0};
    assert_int_equal(send(fd, "PING\n", 5, MSG_NOSIGNAL), 5);
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    close(fd);
    if (n < 8 || strncmp(buf, "OK PONG\n", 8) != 0)
        fail_msg("PING at %s port %u: got \"%s\"", addr, port, n > 0 ? buf : "");
}

/* The "op=LISTEN addr=A port=P" line for `addr` in the log, waited for; fails when none. */
static unsigned
listen_port_of(const char *log, const char *addr)
{
    char needle[128], line[BB_LINE_MAX], val[64];
    bb_fmt(needle, sizeof needle, "op=LISTEN addr=%s port=", addr);
    if (!bb_file_wait_line(log, needle, UP_TIMEOUT_MS, line, sizeof line))
        fail_msg("no \"%s\" line in %s", needle, log);
    assert_int_equal(bb_logfmt_field(line, "port", val, sizeof val), 1);
    return (unsigned)strtoul(val, NULL, 10);
}

static bool
have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* ---- listening on a host name ---- */

/* issue 9: -l localhost exited 1 with "Name or service not known". */
static void
test_listen_localhost(void **state)
{
    (void)state;
    static const char *const args[] = {"-l", "localhost", NULL};
    struct bb_server *s = bb_server_start(args); /* waits for 127.0.0.1 to answer */
    if (s == NULL)
        fail_msg("coupond -l localhost did not start");
    char log[PATH_BUF], port[8];
    bb_fmt(log, sizeof log, "%s/ops.log", s->dir);
    bb_fmt(port, sizeof port, "%u", (unsigned)s->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *list;
    assert_int_equal(getaddrinfo("localhost", port, &hints, &list), 0);
    int n = 0;
    for (struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next, n++) {
        char addr[INET6_ADDRSTRLEN];
        assert_int_equal(
            getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof addr, NULL, 0, NI_NUMERICHOST),
            0);
        print_message("localhost is %s here\n", addr);
        assert_int_equal(listen_port_of(log, addr), s->port);
        expect_served_at(addr, s->port);
    }
    freeaddrinfo(list);
    assert_true(n > 0);
    assert_int_equal(bb_server_stop(s), 0);
    bb_server_free(s);
}

/* Runs coupond in a mount namespace of its own, where /etc/hosts is `hosts`. Returns its pid, or
 * -1. The child exits EXIT_NO_NS when the namespace cannot be made (not root, or no support). */
static pid_t
spawn_with_hosts(const char *hosts, const char *const *args, const char *out)
{
    const char *bin = getenv("COUPOND_BIN");
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount(hosts, "/etc/hosts", NULL, MS_BIND, NULL) != 0)
        _exit(EXIT_NO_NS);
    int fd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
    }
    const char *argv[BB_MAX_ARGS + 2] = {"coupond"};
    for (size_t i = 0; args[i] != NULL && i < BB_MAX_ARGS; i++)
        argv[i + 1] = args[i];
    execv(bin, (char *const *)argv);
    _exit(127);
}

/* A name with an IPv4 and an IPv6 address, one of them listed twice, and -p 0: both addresses
 * are listened on, on one port. Here the name is given those addresses by a private /etc/hosts,
 * which needs a mount namespace; without one the test is skipped. */
static void
test_listen_every_address_of_a_name(void **state)
{
    const char *tmp = *state;
    char hosts[PATH_BUF], dir[PATH_BUF], log[PATH_BUF], out[PATH_BUF], line[BB_LINE_MAX];
    bb_fmt(hosts, sizeof hosts, "%s/hosts", tmp);
    bb_fmt(dir, sizeof dir, "%s/data", tmp);
    bb_fmt(log, sizeof log, "%s/ops.log", tmp);
    bb_fmt(out, sizeof out, "%s/stderr.log", tmp);
    bool v6 = have_ipv6_loopback();
    FILE *f = fopen(hosts, "w");
    assert_non_null(f);
    fprintf(f, "127.0.0.1 twofold.test\n%s127.0.0.1 twofold.test\n",
            v6 ? "::1 twofold.test\n" : "");
    fclose(f);
    const char *const args[] = {"-l", "twofold.test", "-p", "0", "-d", dir, "--log", log, NULL};
    pid_t pid = spawn_with_hosts(hosts, args, out);
    assert_true(pid > 0);
    int64_t deadline = bb_now_ms() + UP_TIMEOUT_MS;
    while (!bb_file_wait_line(log, "op=START", BB_POLL_MS, line, sizeof line)) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            if (WIFEXITED(st) && WEXITSTATUS(st) == EXIT_NO_NS) {
                print_message("NOTE: no mount namespace here (not root?): skipped\n");
                skip();
            }
            fail_msg("coupond -l twofold.test exited during start-up (status 0x%x)", st);
        }
        if (bb_now_ms() > deadline) {
            bb_reap(pid, 0);
            fail_msg("coupond -l twofold.test did not start within %d ms", UP_TIMEOUT_MS);
        }
    }
    unsigned port = listen_port_of(log, "127.0.0.1");
    expect_served_at("127.0.0.1", port);
    if (v6) {
        assert_int_equal(listen_port_of(log, "::1"), port);
        expect_served_at("::1", port);
    } else {
        print_message("NOTE: no IPv6 loopback here: only 127.0.0.1 is checked\n");
    }
    assert_int_equal(bb_file_count(log, "op=LISTEN "), v6 ? 2 : 1);
    kill(pid, SIGTERM);
    assert_int_equal(bb_reap(pid, BB_STOP_TIMEOUT_MS), 0);
}

/* A malformed -l value is a usage error, exit 2; a well-formed name that does not resolve fails
 * the start, exit 1; each with one line on stderr, and no data dir left behind. */
static void
test_listen_bad_values(void **state)
{
    const char *tmp = *state;
    static const struct {
        const char *value;
        int status;
        const char *says;
    } cases[] = {
        {"bad host", 2, "--listen"},
        {"999.1.1.1", 2, "--listen"},
        {"", 2, "--listen"},
        {"-dash.example", 2, "--listen"},
        {"no.such.host.invalid", 1, "no.such.host.invalid"},
    };
    static char out[BB_RUN_OUT_MAX], err[BB_RUN_OUT_MAX];
    char dir[PATH_BUF];
    bb_fmt(dir, sizeof dir, "%s/new", tmp);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const args[] = {"-d", dir, "-p", "0", "-l", cases[i].value, NULL};
        int st = bb_run(args, out, sizeof out, err, sizeof err);
        if (st != cases[i].status || count_lines(err) != 1 || strncmp(err, "coupond: ", 9) != 0 ||
            strstr(err, cases[i].says) == NULL)
            fail_msg("-l '%s': expected exit %d and one line naming %s, got %d and:\n%s",
                     cases[i].value, cases[i].status, cases[i].says, st, err);
        if (exists(dir))
            fail_msg("-l '%s': the failed start left its new data dir %s", cases[i].value, dir);
    }
}

/* issue 9: a start that failed left the data dir and key files it had just made. */
static void
test_failed_start_leaves_no_new_dir(void **state)
{
    const char *tmp = *state;
    static char out[BB_RUN_OUT_MAX], err[BB_RUN_OUT_MAX];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    char port[8], top[PATH_BUF], dir[PATH_BUF], log[PATH_BUF], old[PATH_BUF], mine[PATH_BUF];
    bb_fmt(port, sizeof port, "%u", (unsigned)ntohs(a.sin_port));

    /* A new data dir two levels deep, with the new log file in it. */
    bb_fmt(top, sizeof top, "%s/fresh", tmp);
    bb_fmt(dir, sizeof dir, "%s/data", top);
    bb_fmt(log, sizeof log, "%s/ops.log", dir);
    const char *const args[] = {"-d", dir, "-p", port, "--log", log, NULL};
    int st = bb_run(args, out, sizeof out, err, sizeof err);
    if (st != 1 || count_lines(err) != 1 || strstr(err, "in use") == NULL)
        fail_msg("port in use: expected exit 1 and one line, got %d and:\n%s", st, err);
    if (exists(top))
        fail_msg("the failed start left %s behind", exists(dir) ? dir : top);

    /* A data dir that was there before keeps what it held, and stays. */
    bb_fmt(old, sizeof old, "%s/old", tmp);
    bb_fmt(mine, sizeof mine, "%s/mine.txt", old);
    assert_int_equal(mkdir(old, 0700), 0);
    FILE *f = fopen(mine, "w");
    assert_non_null(f);
    fclose(f);
    const char *const args_old[] = {"-d", old, "-p", port, NULL};
    assert_int_equal(bb_run(args_old, out, sizeof out, err, sizeof err), 1);
    close(fd);
    assert_true(exists(mine));
}

/* ---- readiness ---- */

/* Binds a datagram socket at `name` (a path, or "@name" for an abstract one). */
static int
notify_bind(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    assert_true(len < sizeof a.sun_path);
    memcpy(a.sun_path, name, len);
    if (name[0] == '@')
        a.sun_path[0] = '\0';
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (bind(fd, (struct sockaddr *)&a, alen) != 0)
        fail_msg("bind %s: %s", name, strerror(errno));
    return fd;
}

/* Waits for one datagram; false on a timeout. */
static bool
notify_recv(int fd, char *buf, size_t cap, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return false;
    ssize_t n = recv(fd, buf, cap - 1, 0);
    if (n < 0)
        return false;
    buf[n] = '\0';
    return true;
}

/* Starts coupond with NOTIFY_SOCKET=`name`, expects READY=1 once it listens (a connect
 * succeeds the moment it arrives), then STOPPING=1 on SIGTERM, and exit 0. */
static void
expect_notified(const char *tmp, const char *name, int fd)
{
    char dir[PATH_BUF], log[PATH_BUF], out[PATH_BUF], msg[NOTIFY_MAX];
    bb_fmt(dir, sizeof dir, "%s/data", tmp);
    bb_fmt(log, sizeof log, "%s/ops.log", tmp);
    bb_fmt(out, sizeof out, "%s/stderr.log", tmp);
    unlink(log);
    const char *const args[] = {"-p", "0", "-d", dir, "--log", log, NULL};
    setenv("NOTIFY_SOCKET", name, 1);
    pid_t pid = bb_spawn(args, out);
    unsetenv("NOTIFY_SOCKET");
    assert_true(pid > 0);
    bool ready = notify_recv(fd, msg, sizeof msg, UP_TIMEOUT_MS);
    if (!ready) {
        bb_reap(pid, 0);
        fail_msg("NOTIFY_SOCKET=%s: no datagram within %d ms", name, UP_TIMEOUT_MS);
    }
    print_message("NOTIFY_SOCKET=%s: %s\n", name, msg);
    assert_string_equal(msg, "READY=1");
    /* READY=1 means listening: the LISTEN line is written before it and the port answers. */
    expect_served_at("127.0.0.1", listen_port_of(log, "127.0.0.1"));
    kill(pid, SIGTERM);
    bool stopping = notify_recv(fd, msg, sizeof msg, UP_TIMEOUT_MS);
    assert_int_equal(bb_reap(pid, BB_STOP_TIMEOUT_MS), 0);
    assert_true(stopping);
    assert_string_equal(msg, "STOPPING=1");
}

static void
test_notify_ready_and_stopping(void **state)
{
    const char *tmp = *state;
    char path[PATH_BUF], abstract[64];
    bb_fmt(path, sizeof path, "%s/notify.sock", tmp);
    int fd = notify_bind(path);
    expect_notified(tmp, path, fd);
    close(fd);
    bb_fmt(abstract, sizeof abstract, "@coupond-test-notify-%d", (int)getpid());
    fd = notify_bind(abstract);
    expect_notified(tmp, abstract, fd);
    close(fd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_localhost),
        cmocka_unit_test_setup_teardown(test_listen_every_address_of_a_name, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_listen_bad_values, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_failed_start_leaves_no_new_dir, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_notify_ready_and_stopping, tmpdir_setup,
                                        tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
