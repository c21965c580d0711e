/* keyfile.c - reading coupond's admin key. */
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static bool
is_key_char(char ch)
{
    return ch > ' ' && ch < 0x7f;
}

/* Strips one trailing LF or CRLF; the key itself never contains either. */
static size_t
strip_newline(const char *s, size_t len)
{
    if (len > 0 && s[len - 1] == '\n')
        len--;
    if (len > 0 && s[len - 1] == '\r')
        len--;
    return len;
}

static bool
fail(char *msg, size_t msglen, const char *path, const char *why)
{
    snprintf(msg, msglen, "cannot use key file %s: %s", path, why);
    return false;
}

bool
keyfile_read(const char *path, char key[PROTO_KEY_MAX + 1], char *msg, size_t msglen)
{
    char buf[KEYFILE_READ_MAX];
    size_t len = 0;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(msg, msglen, path, strerror(errno));
    while (len < sizeof buf) {
        ssize_t n = read(fd, buf + len, sizeof buf - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return fail(msg, msglen, path, strerror(e));
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    len = strip_newline(buf, len);
    if (len == 0)
        return fail(msg, msglen, path, "the file is empty");
    if (len > PROTO_KEY_MAX)
        return fail(msg, msglen, path, "too long to be an admin key");
    for (size_t i = 0; i < len; i++)
        if (!is_key_char(buf[i]))
            return fail(msg, msglen, path, "not an admin key (one word of printable ASCII)");
    memcpy(key, buf, len);
    key[len] = '\0';
    return true;
}
