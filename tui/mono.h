/* mono.h - the monotonic clock in milliseconds: every timer, rate and ETA of couponctl. */
#ifndef COUPONCTL_MONO_H
#define COUPONCTL_MONO_H

#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC: only differences mean anything. */
int64_t mono_now_ms(void);

#endif
