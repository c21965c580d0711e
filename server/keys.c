/* keys.c - secret key files: atomic creation with mode 0600, strict loading, constant-time
 * comparison. */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEYS_FILE_MAX (KEYS_HEX_CHARS + 2) /* hex, newline, and one byte to see excess */

static bool
fail(char *errbuf, size_t errlen, const char *path, const char *what)
{
    snprintf(errbuf, errlen, "%s: %s", path, what);
    return false;
}

static bool
fail_errno(char *errbuf, size_t errlen, const char *path, const char *what)
{
    snprintf(errbuf, errlen, "%s: %s: %s", path, what, strerror(errno));
    return false;
}

static bool
write_all(int fd, const unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        buf += n;
        len -= (size_t)n;
    }
    return true;
}

/* The file's bytes for a key: hex plus newline, or raw. Returns the length. */
static size_t
encode(enum keys_format fmt, const unsigned char key[KEYS_BYTES], unsigned char *out)
{
    if (fmt == KEYS_RAW) {
        memcpy(out, key, KEYS_BYTES);
        return KEYS_BYTES;
    }
    sodium_bin2hex((char *)out, KEYS_HEX_CHARS + 1, key, KEYS_BYTES);
    out[KEYS_HEX_CHARS] = '\n';
    return KEYS_HEX_CHARS + 1;
}

static bool
decode(enum keys_format fmt, const unsigned char *buf, size_t len, unsigned char key[KEYS_BYTES])
{
    if (fmt == KEYS_RAW) {
        if (len != KEYS_BYTES)
            return false;
        memcpy(key, buf, KEYS_BYTES);
        return true;
    }
    if (len == KEYS_HEX_CHARS + 1 && buf[KEYS_HEX_CHARS] == '\n')
        len--;
    size_t bin_len;
    return len == KEYS_HEX_CHARS &&
           sodium_hex2bin(key, KEYS_BYTES, (const char *)buf, len, NULL, &bin_len, NULL) == 0 &&
           bin_len == KEYS_BYTES;
}

static const char *const exposure_reasons[] = {
    [KEYS_NOT_REGULAR] = "key file is not a regular file",
    [KEYS_OTHER_OWNER] = "key file is owned by another user",
    [KEYS_EXPOSED] = "key file is accessible by group or others; chmod 600 it",
};

enum keys_exposure
keys_exposure(const struct stat *sb, bool root_may_share)
{
    bool shared = root_may_share && sb->st_uid == 0;
    mode_t denied = shared ? (S_IWGRP | S_IXGRP | S_IRWXO) : (S_IRWXG | S_IRWXO);

    if (!S_ISREG(sb->st_mode))
        return KEYS_NOT_REGULAR;
    if (sb->st_uid != geteuid() && !shared)
        return KEYS_OTHER_OWNER;
    return (sb->st_mode & denied) != 0 ? KEYS_EXPOSED : KEYS_PRIVATE;
}

static bool
load(const char *path, enum keys_format fmt, unsigned char key[KEYS_BYTES], char *errbuf,
     size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return fail_errno(errbuf, errlen, path, "cannot open key file");
    struct stat sb;
    unsigned char buf[KEYS_FILE_MAX];
    ssize_t n = -1;
    const char *bad = NULL;
    enum keys_exposure e;
    if (fstat(fd, &sb) != 0)
        bad = "cannot stat key file";
    else if ((e = keys_exposure(&sb, false)) != KEYS_PRIVATE)
        bad = exposure_reasons[e];
    else if ((n = read(fd, buf, sizeof buf)) < 0)
        bad = "cannot read key file";
    else if (!decode(fmt, buf, (size_t)n, key))
        bad = "key file is malformed; remove it to have a new key made";
    sodium_memzero(buf, sizeof buf);
    close(fd);
    return bad ? fail(errbuf, errlen, path, bad) : true;
}

bool
keys_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc == 0;
}

/* Makes a new key in a temporary file and links it into place; EEXIST means someone else
 * made one first, which the caller then loads. */
static bool
create(const char *dir, const char *path, const char *tmp, enum keys_format fmt,
       unsigned char key[KEYS_BYTES], char *errbuf, size_t errlen)
{
    unsigned char buf[KEYS_FILE_MAX];
    randombytes_buf(key, KEYS_BYTES);
    size_t len = encode(fmt, key, buf);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return fail_errno(errbuf, errlen, tmp, "cannot create key file");
    /* The umask may have been 0 or the file may be a leftover: set the mode explicitly. */
    bool ok = fchmod(fd, 0600) == 0 && write_all(fd, buf, len) && fsync(fd) == 0;
    sodium_memzero(buf, sizeof buf);
    if (close(fd) != 0)
        ok = false;
    if (!ok) {
        unlink(tmp);
        return fail_errno(errbuf, errlen, tmp, "cannot write key file");
    }
    int rc = link(tmp, path);
    int link_errno = errno;
    unlink(tmp);
    if (rc != 0) {
        errno = link_errno;
        return fail_errno(errbuf, errlen, path, "cannot create key file");
    }
    if (!keys_sync_dir(dir))
        return fail_errno(errbuf, errlen, dir, "cannot sync directory");
    return true;
}

bool
keys_load_or_create(const char *dir, const char *name, enum keys_format fmt,
                    unsigned char key[KEYS_BYTES], char *errbuf, size_t errlen)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= sizeof tmp)
        return fail(errbuf, errlen, dir, "path too long");
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        if (create(dir, path, tmp, fmt, key, errbuf, errlen))
            return true;
        if (errno != EEXIST)
            return false;
    }
    return load(path, fmt, key, errbuf, errlen);
}

bool
keys_match(const unsigned char key[KEYS_BYTES], const char *hex, size_t len)
{
    unsigned char given[KEYS_BYTES];
    size_t bin_len = 0;
    bool ok = len == KEYS_HEX_CHARS &&
              sodium_hex2bin(given, sizeof given, hex, len, NULL, &bin_len, NULL) == 0 &&
              bin_len == KEYS_BYTES;
    if (!ok)
        randombytes_buf(given, sizeof given); /* compare anyway: same work for every guess */
    bool same = sodium_memcmp(given, key, KEYS_BYTES) == 0;
    sodium_memzero(given, sizeof given);
    return ok && same;
}
