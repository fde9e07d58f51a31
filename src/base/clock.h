/*
 * Time in meshd.
 *
 * mesh_time_ms is milliseconds on a monotonic clock. Protocol cores never read
 * a clock: the event loop reads it once per turn (mesh_clock_now_ms) and passes
 * that "now" down. The simulator passes virtual time instead. Wall-clock time
 * (mesh_clock_wall_ms) is used only for display and for record ages that must
 * survive a restart.
 */
#ifndef MESH_BASE_CLOCK_H
#define MESH_BASE_CLOCK_H

#include <stdint.h>

typedef uint64_t mesh_time_ms;

/* Monotonic milliseconds since an arbitrary start. Never goes backward. */
mesh_time_ms mesh_clock_now_ms(void);

/* Monotonic microseconds, on the same clock: for measuring short delays
 * (the loop's lag), never for protocol time. */
uint64_t mesh_clock_now_us(void);

/* Milliseconds since the Unix epoch (may jump). */
uint64_t mesh_clock_wall_ms(void);

#endif
