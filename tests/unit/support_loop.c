/* Driving an event loop from a test: short turns and waiting with a deadline. */
#include "support_loop.h"

#include <event2/event.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

void loop_test_turn(mesh_loop *l)
{
  struct timeval tv = {0, 2000};
  event_base_loopexit(mesh_loop_base(l), &tv);
  assert_true(mesh_loop_run_once(l, false) >= 0);
}
