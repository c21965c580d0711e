/* main.c - coupond: start-up (flags, data dir, keys, store, log, fd limit), the loop, exit. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "auditverify.h"
#include "keycli.h"
#include "keys.h"
#include "log.h"
#include "notify.h"
#include "opts.h"
#include "server.h"
#include "store.h"
#include "task.h"

#define LOCK_FILE    "coupond.lock"
#define EXIT_STARTUP 1
#define EXIT_USAGE   2
#define ERRBUF_MAX   (PATH_MAX + 256) /* a path and a reason */

/* Start-up failures: one line on stderr, exit status 1. */
static int
die(const char *reason)
{
    fprintf(stderr, "coupond: %s\n", reason);
    return EXIT_STARTUP;
}

/* What this run made, so that a start that fails can take it back and leave nothing behind. */
struct made {
    size_t top_len; /* the data dir path up to the first directory this run made; 0: none */
    bool log;       /* the --log file did not exist before this run */
};

/* mkdir -p with mode 0700 for what it makes; notes in *made the first directory it made. */
static bool
make_dirs(const char *dir, struct made *made)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return false;
    size_t len = strlen(path);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        path[i] = '\0';
        bool ok = mkdir(path, 0700) == 0;
        if (ok && made->top_len == 0)
            made->top_len = i;
        if (!ok && errno != EEXIST)
            return false;
        path[i] = i < len ? '/' : '\0';
    }
    return true;
}

/* A start failed: removes the log file if this run made it (nothing is logged before the server
 * listens, so it is empty), and the data dir if this run made it. The data dir did not exist
 * when the run began and was made 0700, so every file in it is this run's (keys, database,
 * lock, maybe the log); then the directories this run made are removed, deepest first. Nothing
 * in a directory that existed before is touched. */
static void
undo_start(const struct opts *o, const struct made *made)
{
    if (made->log)
        unlink(o->log_path);
    if (made->top_len == 0)
        return;
    DIR *d = opendir(o->data_dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlinkat(dirfd(d), e->d_name, 0);
    if (d)
        closedir(d);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", o->data_dir);
    for (char *slash; strlen(path) >= made->top_len;) {
        rmdir(path);
        if (!(slash = strrchr(path, '/')))
            break;
        *slash = '\0';
    }
}

static bool
prepare_data_dir(const char *dir, struct made *made, char *errbuf, size_t errlen)
{
    struct stat sb;
    if (!make_dirs(dir, made) || stat(dir, &sb) != 0) {
        snprintf(errbuf, errlen, "cannot create data dir %s: %s", dir, strerror(errno));
        return false;
    }
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(errbuf, errlen, "data dir %s is not a directory", dir);
        return false;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        snprintf(errbuf, errlen, "data dir %s is not writable: %s", dir, strerror(errno));
        return false;
    }
    return true;
}

/* One server per data dir: two would each trust their own in-memory counters. The lock is
 * held (by the open descriptor) until the process exits. */
static bool
lock_data_dir(const char *dir, char *errbuf, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, LOCK_FILE);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(errbuf, errlen, "cannot open %s: %s", path, strerror(errno));
        return false;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(errbuf, errlen, "another coupond is running on %s", dir);
        close(fd);
        return false;
    }
    return true;
}

/* Raises the descriptor limit to fit --max-clients; warns when the hard limit is lower. */
static void
raise_fd_limit(const struct opts *o)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)o->max_clients + SERVER_FD_RESERVE;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    struct rlimit raised = {want, rl.rlim_max > want ? rl.rlim_max : want};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
        return;
    raised.rlim_max = rl.rlim_max;
    raised.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &raised);
    fprintf(stderr,
            "coupond: warning: RLIMIT_NOFILE hard limit is %llu, below the %llu that "
            "--max-clients %u needs; raise it (LimitNOFILE= in systemd, ulimit -n) or lower "
            "--max-clients\n",
            (unsigned long long)rl.rlim_max, (unsigned long long)want, o->max_clients);
}

static void
check_done(struct store_op *op)
{
    *(bool *)op->arg = true;
}

/* Runs one read to its end on `loop` (a store may answer later than at once). */
static void
read_now(struct ev_loop *loop, struct store *st, struct store_op *op)
{
    bool done = false;

    op->done = check_done;
    op->arg = &done;
    store_read(st, op);
    while (!done)
        ev_run(loop, EVRUN_ONCE);
}

/* --check: opens what is there read-only, creates nothing, and verifies it. */
static int
run_check(const struct opts *o, struct ev_loop *loop)
{
    char err[ERRBUF_MAX];
    struct store *st;
    struct store_config cfg = {.loop = loop,
                               .mode = STORE_OPEN_EXISTING,
                               .map_size = o->map_size,
                               .node_name = o->node_name};
    static struct store_op op; /* large; main runs once */

    if (store_open(opts_store_uri(o), &cfg, &st, err, sizeof err) != STORE_OK)
        return die(err);
    op.kind = STORE_OP_CHECK;
    op.now = (int64_t)time(NULL);
    read_now(loop, st, &op);
    store_close(st);
    if (op.err != STORE_OK) {
        char msg[ERRBUF_MAX + 16];
        snprintf(msg, sizeof msg, "check failed: %s", op.out.msg);
        return die(msg);
    }
    /* A URI may hold a password: a PostgreSQL store is named by its kind alone. */
    printf("coupond: %s: store is consistent\n", o->store_uri != NULL ? "postgresql" : o->data_dir);
    return EXIT_SUCCESS;
}

/* The fingerprint of DIR/task.key (made on first start), which a store shared by nodes
 * compares with the one it recorded. */
static bool
task_fingerprint(const char *dir, char fp[TASK_FP_BUF], char *err, size_t errlen)
{
    struct task_key *k = task_key_load(dir, err, errlen);

    if (k == NULL)
        return false;
    task_key_fingerprint(k, fp);
    task_key_free(k);
    return true;
}

static int
serve(const struct opts *o, struct ev_loop *loop, struct made *made)
{
    char fp[TASK_FP_BUF];
    char err[ERRBUF_MAX];
    unsigned char key[KEYS_BYTES];
    struct store_config cfg = {.loop = loop,
                               .mode = STORE_OPEN_CREATE,
                               .map_size = o->map_size,
                               .node_name = o->node_name};

    if (!prepare_data_dir(o->data_dir, made, err, sizeof err) ||
        !lock_data_dir(o->data_dir, err, sizeof err) ||
        !keys_load_or_create(o->data_dir, KEYS_ADMIN_FILE, KEYS_HEX, key, err, sizeof err) ||
        !task_fingerprint(o->data_dir, fp, err, sizeof err))
        return die(err);
    cfg.task_key_fp = fp;
    raise_fd_limit(o);
    struct store *st;
    if (store_open(opts_store_uri(o), &cfg, &st, err, sizeof err) != STORE_OK)
        return die(err);
    made->log = o->log_path && access(o->log_path, F_OK) != 0 && errno == ENOENT;
    struct log *lg = log_open(o->log_path, err, sizeof err);
    if (!lg) {
        store_close(st);
        return die(err);
    }
    struct server *srv = server_new(loop, o, st, lg, key, err, sizeof err);
    sodium_memzero(key, sizeof key);
    if (srv == NULL) {
        log_close(lg);
        store_close(st);
        return die(err);
    }
    const struct log_field start[] = {
        log_str("version", COUPOND_VERSION), log_str("data_dir", o->data_dir),
        log_str("store", store_backend(st)), log_str("node", o->node_name),
        log_uint("commit_delay_us", opts_commit_delay_us(o, store_commit_delay(st)))};
    log_event(lg, ev_time(), "START", start, LOG_NFIELDS(start));
    notify_send("READY=1"); /* listening: a Type=notify unit is started */
    server_run(srv);
    /* A commit still in flight (the shutdown grace ran out) is waited for; then the server's
     * state can go. */
    store_close(st);
    server_free(srv);
    log_event(lg, ev_time(), "STOP", NULL, 0);
    log_close(lg);
    return EXIT_SUCCESS;
}

int
main(int argc, char **argv)
{
    struct opts o;
    char err[ERRBUF_MAX];
    char node[STORE_NODE_MAX + 1]; /* the host name, when it names the node: lives as long as o */
    opts_defaults(&o);
    switch (opts_parse(&o, argc, argv, stdout, err, sizeof err)) {
    case OPTS_EXIT_OK:
        return EXIT_SUCCESS;
    case OPTS_USAGE:
        fprintf(stderr, "coupond: %s\n", err);
        return EXIT_USAGE;
    case OPTS_RUN:
        break;
    }
    if (!opts_default_node_name(&o, node, sizeof node, err, sizeof err))
        return die(err);
    signal(SIGPIPE, SIG_IGN);
    if (sodium_init() < 0)
        return die("cannot initialise libsodium");
    if (o.mode == OPTS_MODE_KEY) /* the keys file alone: no lock, no store, no loop */
        return (int)keycli_run(o.data_dir, o.key_argc, o.key_argv, stdout, stderr);
    struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
    if (loop == NULL)
        return die("cannot start the event loop");
    if (o.mode == OPTS_MODE_CHECK) /* reads what is there; creates nothing */
        return run_check(&o, loop);
    if (o.mode == OPTS_MODE_VERIFY_AUDIT) { /* the same: reads, creates nothing */
        const struct auditverify_config vc = {.uri = opts_store_uri(&o),
                                              .data_dir = o.data_dir,
                                              .node_name = o.node_name,
                                              .map_size = o.map_size,
                                              .head = o.audit_head};
        return auditverify_run(loop, &vc, stdout, stderr);
    }
    struct made made = {0};
    int status = serve(&o, loop, &made);
    if (status != EXIT_SUCCESS)
        undo_start(&o, &made);
    return status;
}
