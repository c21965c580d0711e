/* main.c - couponctl: the operator's dashboard for coupond, and its batch mode. */
#include <locale.h>
#include <stdio.h>

#include "app.h"
#include "batch.h"
#include "cli.h"
#include "client.h"
#include "keyfile.h"
#include "proto.h"
#include "sig.h"
#include "tlsc.h"

#define ERR_MAX 512

int
main(int argc, char **argv)
{
    struct cli_opts o;
    struct client_addr addr;
    char err[ERR_MAX], key[PROTO_KEY_MAX + 1];

    setlocale(LC_ALL, "");
    cli_defaults(&o);
    switch (cli_parse(&o, argc, argv, stdout, err, sizeof err)) {
    case CLI_DONE:
        return CLI_EXIT_OK;
    case CLI_BAD_USAGE:
        fprintf(stderr, "couponctl: %s\nTry 'couponctl --help'.\n", err);
        return CLI_EXIT_USAGE;
    case CLI_RUN:
        break;
    }
    if (!keyfile_read(o.key_file, key, err, sizeof err)) {
        fprintf(stderr, "couponctl: %s; name the admin key file with -k FILE\n", err);
        return CLI_EXIT_AUTH;
    }
    if (!client_resolve(o.address, o.port, &addr, err, sizeof err)) {
        fprintf(stderr, "couponctl: %s\n", err);
        return CLI_EXIT_CONNECT;
    }
    struct tlsc *tls = NULL;
    const struct tlsc_config tc = {.ca = o.tls_ca, .cert = o.tls_cert, .key = o.tls_key};
    if (o.tls && (tls = tlsc_new(&tc, err, sizeof err)) == NULL) {
        fprintf(stderr, "couponctl: %s\n", err);
        return CLI_EXIT_FAILED;
    }
    addr.tls = tls;
    sig_install();
    int code = o.mode == CLI_MODE_DASHBOARD ? app_run(&o, &addr, key) : batch_run(&o, &addr, key);
    tlsc_free(tls);
    return code;
}
