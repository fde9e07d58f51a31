/* The monotonic and wall clocks meshd reads, in milliseconds (src/base/clock.h). */
#include "src/base/clock.h"

#include <time.h>

mesh_time_ms mesh_clock_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (mesh_time_ms)ts.tv_sec * 1000u + (mesh_time_ms)(ts.tv_nsec / 1000000);
}

uint64_t mesh_clock_now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)(ts.tv_nsec / 1000);
}

uint64_t mesh_clock_wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)(ts.tv_nsec / 1000000);
}
