/*
 * Driving an event loop from a test: short turns, and waiting for a
 * condition with a deadline (the test fails at the deadline, naming the
 * condition). Never a sleep-and-hope.
 */
#ifndef MESH_TESTS_SUPPORT_LOOP_H
#define MESH_TESTS_SUPPORT_LOOP_H

#include "src/base/clock.h"
#include "src/daemon/loop.h"

/* Runs l for one short turn (at most ~2 ms). */
void loop_test_turn(mesh_loop *l);

/* Turns l until cond holds; fails the test after ms milliseconds. */
#define LOOP_TEST_WAIT(l, cond, ms)                                                                \
  do {                                                                                             \
    mesh_time_ms until_ = mesh_clock_now_ms() + (ms);                                              \
    while (!(cond) && mesh_clock_now_ms() < until_)                                                \
      loop_test_turn(l);                                                                           \
    if (!(cond))                                                                                   \
      fail_msg("timed out after %d ms waiting for: %s", (int)(ms), #cond);                         \
  } while (0)

#endif
