/* keyfile.h - reading coupond's admin key (DIR/admin.key) for AUTH. */
#ifndef COUPONCTL_KEYFILE_H
#define COUPONCTL_KEYFILE_H

#include <stddef.h>

#include "proto.h"

#define KEYFILE_READ_MAX 1024 /* bytes read at most: a key is 64 hex digits and a newline */

/* Reads the key in `path`: one word of at most PROTO_KEY_MAX printable ASCII characters,
 * optionally followed by a newline (CRLF too). Returns true and fills `key`; otherwise
 * returns false, leaves `key` untouched and writes a one-line message naming the file
 * into msg ("cannot read key file ./x/admin.key: No such file or directory"). */
bool keyfile_read(const char *path, char key[PROTO_KEY_MAX + 1], char *msg, size_t msglen);

#endif
