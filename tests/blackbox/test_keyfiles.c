/* test_keyfiles.c - the secret files seen from outside: admin.key and task.key are made with
 * mode 0600 even under umask 0, and the server refuses to start, with one line naming the file,
 * when a key file is open to group or others, is owned by another user, or is a symlink. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bb.h"

#define OUT_MAX    BB_RUN_OUT_MAX
#define NOBODY_UID 65534 /* another user, for the ownership check (root only) */
#define PATH_BUF   (BB_PATH_MAX + 32)

static const char *const key_files[] = {"admin.key", "task.key"};

static unsigned
mode_of(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        fail_msg("stat %s: %s", path, strerror(errno));
    return (unsigned)(st.st_mode & 07777);
}

static int
count_lines(const char *s)
{
    int n = 0;
    for (; *s != '\0'; s++)
        if (*s == '\n' || s[1] == '\0')
            n++;
    return n;
}

/* bb_setup with the umask at 0 while the server starts and makes its files. */
static int
umask0_setup(void **state)
{
    mode_t old = umask(0);
    int rc = bb_setup(state);
    umask(old);
    return rc;
}

static void
test_made_0600_under_umask_0(void **state)
{
    struct bb_server *s = *state;
    char sub[PATH_BUF], path[PATH_BUF];
    for (size_t i = 0; i < sizeof key_files / sizeof key_files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", s->dir, key_files[i]);
        if (mode_of(path) != 0600)
            fail_msg("%s has mode %04o under umask 0, expected 0600", path, mode_of(path));
    }
    /* On PostgreSQL (BB_STORE) the data dir holds no LMDB files, only the node's lock. */
    static const char *const private_files[] = {"coupond.lock", "data.mdb", "lock.mdb"};
    size_t n_private = bb_on_pg() ? 1 : sizeof private_files / sizeof private_files[0];
    for (size_t i = 0; i < n_private; i++) {
        snprintf(path, sizeof path, "%s/%s", s->dir, private_files[i]);
        if (mode_of(path) & 077)
            fail_msg("%s has mode %04o under umask 0: open to group or others", path,
                     mode_of(path));
    }
    snprintf(path, sizeof path, "%s/ops.log", s->dir);
    if (mode_of(path) & 007) /* the log names users and codes: never for others */
        fail_msg("%s has mode %04o under umask 0", path, mode_of(path));
    print_message("under umask 0: admin.key and task.key 0600, ops.log %04o\n", mode_of(path));

    /* A data dir that coupond makes itself, under umask 0 too: a server started on it makes
     * it (--check creates nothing), and is stopped once it is listening. */
    snprintf(sub, sizeof sub, "%s/made/by/coupond", s->dir);
    char log_path[BB_PATH_MAX + 16];
    snprintf(log_path, sizeof log_path, "%s/made.log", s->dir);
    const char *const args[] = {"-p", "0", "-d", sub, "--log", log_path, NULL};
    mode_t old = umask(0);
    pid_t pid = bb_spawn(args, NULL);
    umask(old);
    assert_true(pid > 0);
    char line[256];
    assert_true(bb_file_wait_line(log_path, "op=LISTEN", BB_START_TIMEOUT_MS, line, sizeof line));
    kill(pid, SIGTERM);
    assert_int_equal(bb_reap(pid, BB_STOP_TIMEOUT_MS), 0);
    snprintf(path, sizeof path, "%s/made", s->dir);
    assert_int_equal(mode_of(path), 0700);
    assert_int_equal(mode_of(sub), 0700);
}

/* Starting on `dir` must fail with exit status 1 and one line naming `path` and `why`. */
static void
refused(const char *dir, const char *path, const char *why)
{
    static char out[OUT_MAX], err[OUT_MAX];
    char log[PATH_BUF];
    snprintf(log, sizeof log, "%s/ops.log", dir);
    const char *const args[] = {"-d", dir, "-p", "0", "--log", log, NULL};
    int st = bb_run(args, out, OUT_MAX, err, OUT_MAX);
    if (st != 1 || count_lines(err) != 1 || strncmp(err, "coupond: ", 9) != 0 ||
        strstr(err, path) == NULL || strstr(err, why) == NULL)
        fail_msg("start with a bad %s: expected exit 1 and one line naming it (\"%s\"), got "
                 "status %d and:\n%s",
                 path, why, st, err);
}

static void
test_refuses_exposed_key_files(void **state)
{
    static const unsigned modes[] = {0644, 0640, 0604, 0660, 0602, 0620, 0601, 0610};
    struct bb_server *s = *state;
    char first_key[BB_KEY_HEX + 1];
    memcpy(first_key, s->key, sizeof first_key);
    assert_int_equal(bb_server_stop(s), 0);
    for (size_t f = 0; f < sizeof key_files / sizeof key_files[0]; f++) {
        char path[PATH_BUF], real[PATH_BUF + 8];
        snprintf(path, sizeof path, "%s/%s", s->dir, key_files[f]);
        for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
            assert_int_equal(chmod(path, modes[m]), 0);
            refused(s->dir, path, "group or others");
        }
        assert_int_equal(chmod(path, 0600), 0);
        if (geteuid() == 0) {
            assert_int_equal(chown(path, NOBODY_UID, (gid_t)-1), 0);
            refused(s->dir, path, "owned by another user");
            assert_int_equal(chown(path, 0, (gid_t)-1), 0);
        } else {
            print_message("NOTE: not root: the check of a key file owned by another user is "
                          "not run\n");
        }
        snprintf(real, sizeof real, "%s.real", path);
        assert_int_equal(rename(path, real), 0);
        assert_int_equal(symlink(real, path), 0);
        refused(s->dir, path, "cannot open key file");
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rename(real, path), 0);
    }
    /* Mended, it starts again with the same key. */
    if (!bb_server_restart(s))
        fail_msg("coupond did not start with its key files back at 0600");
    assert_string_equal(s->key, first_key);
    struct bb_client *c = bb_connect(s);
    bb_auth(c);
    bb_close(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_made_0600_under_umask_0, umask0_setup, bb_teardown),
        cmocka_unit_test_setup_teardown(test_refuses_exposed_key_files, bb_setup, bb_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
