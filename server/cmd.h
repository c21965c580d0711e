/* cmd.h - executing commands: the dispatch table from verbs to handlers. */
#ifndef COUPOND_CMD_H
#define COUPOND_CMD_H

#include <stddef.h>

struct conn;

/* Parses and executes one request line (CR LF removed, not blank) and writes its reply. */
void cmd_execute(struct conn *c, const char *line, size_t len);

/* The last record of the connection's UPLOAD arrived: store it and reply. */
void cmd_upload_complete(struct conn *c);

/* The last line of a refused UPLOAD was dropped: send the refusal. */
void cmd_upload_dropped(struct conn *c);

/* The connection is closing: forget it wherever a command waits on its behalf. */
void cmd_conn_closed(struct conn *c);

#endif
