/* outfile.c - write to a temporary file, then rename it into place. */
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The directory and the last component of path, resolved to an absolute path in out. */
static bool
absolute(const char *path, char out[PATH_MAX], char *err, size_t errlen)
{
    char dir_copy[PATH_MAX], base_copy[PATH_MAX], dir_abs[PATH_MAX];

    if (strlen(path) >= PATH_MAX) {
        snprintf(err, errlen, "cannot write %.64s...: the path is too long", path);
        return false;
    }
    snprintf(dir_copy, sizeof dir_copy, "%s", path);
    snprintf(base_copy, sizeof base_copy, "%s", path);
    const char *dir = dirname(dir_copy), *base = basename(base_copy);
    if (path[strlen(path) - 1] == '/' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        snprintf(err, errlen, "cannot write %s: it names a directory", path);
        return false;
    }
    if (realpath(dir, dir_abs) == NULL) {
        snprintf(err, errlen, "cannot write %s: %s: %s", path, dir, strerror(errno));
        return false;
    }
    if ((size_t)snprintf(out, PATH_MAX, "%s/%s", strcmp(dir_abs, "/") == 0 ? "" : dir_abs, base) >=
        PATH_MAX) {
        snprintf(err, errlen, "cannot write %s: the path is too long", path);
        return false;
    }
    return true;
}

bool
outfile_open(struct outfile *o, const char *path, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    snprintf(o->path, sizeof o->path, "%s", path);
    if (strcmp(path, "-") == 0) {
        o->is_stdout = true;
        o->f = stdout;
        snprintf(o->abs_path, sizeof o->abs_path, "-");
        return true;
    }
    if (!absolute(path, o->abs_path, err, errlen))
        return false;
    if ((size_t)snprintf(o->tmp, sizeof o->tmp, "%s%s", o->abs_path, OUTFILE_TMP_SUFFIX) >=
        sizeof o->tmp) {
        snprintf(err, errlen, "cannot write %s: the path is too long", path);
        return false;
    }
    int fd = mkstemp(o->tmp); /* mode 0600 */
    if (fd < 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        o->tmp[0] = '\0';
        return false;
    }
    o->f = fdopen(fd, "w");
    if (o->f == NULL) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        close(fd);
        outfile_abort(o);
        return false;
    }
    return true;
}

/* Syncs the directory of path, so that the rename survives a crash too. A failure changes
 * nothing the caller can act on: the file is in place for this system's run. */
static void
sync_dir(const char *path)
{
    char copy[PATH_MAX];

    snprintf(copy, sizeof copy, "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    (void)fsync(fd);
    close(fd);
}

bool
outfile_commit(struct outfile *o, char *err, size_t errlen)
{
    int e = 0;

    if (o->is_stdout) {
        if (fflush(stdout) == 0)
            return true;
        snprintf(err, errlen, "cannot write to standard output: %s", strerror(errno));
        return false;
    }
    if (fflush(o->f) != 0 || fsync(fileno(o->f)) != 0)
        e = errno;
    if (fclose(o->f) != 0 && e == 0)
        e = errno;
    o->f = NULL;
    if (e == 0 && rename(o->tmp, o->abs_path) != 0)
        e = errno;
    if (e != 0) {
        snprintf(err, errlen, "cannot write %s: %s", o->path, strerror(e));
        outfile_abort(o);
        return false;
    }
    o->tmp[0] = '\0';
    sync_dir(o->abs_path);
    return true;
}

void
outfile_abort(struct outfile *o)
{
    if (o->is_stdout)
        return;
    if (o->f != NULL)
        fclose(o->f);
    o->f = NULL;
    if (o->tmp[0] != '\0')
        unlink(o->tmp);
    o->tmp[0] = '\0';
}
