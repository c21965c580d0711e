/* sig.c - the stop signals as a flag. The flag is the one piece of global state couponctl
 * has: a signal handler can reach nothing else. */
#include "sig.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t stop_flag;

static void
on_stop(int signo)
{
    (void)signo;
    stop_flag = 1;
}

void
sig_install(void)
{
    static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    /* One-shot: a second Ctrl-C kills a couponctl that is slow to stop. */
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0]; i++)
        sigaction(stop_signals[i], &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    sigaction(SIGPIPE, &sa, NULL);
}

bool
sig_stop_requested(void)
{
    return stop_flag != 0;
}
