/*
 * Tests of src/base/pool: items of a strand run in order and never two at
 * once, items of different strands run side by side, done functions run on
 * the calling thread (through the libevent pipe or mesh_pool_drain), done may
 * submit more and flush waits for that too, and the counters add up.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "src/base/pool.h"

typedef struct item {
  mesh_work w; /* first: the work item is the item */
  int index;
  int *log;          /* strand tests: where work writes its index */
  _Atomic int *slot; /* next free place in log */
  _Atomic int *inside;
  _Atomic int *max_inside;
  pthread_t done_thread;
  bool done;
  mesh_pool *resubmit; /* done submits the item once more when set */
  int rounds;
} item;

static void sleep_us(long us)
{
  struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

static void work_log(mesh_work *w)
{
  item *it = (item *)w;
  int now = atomic_fetch_add(it->inside, 1) + 1;
  int prev = atomic_load(it->max_inside);
  while (now > prev && !atomic_compare_exchange_weak(it->max_inside, &prev, now)) {
  }
  sleep_us(200);
  it->log[atomic_fetch_add(it->slot, 1)] = it->index;
  atomic_fetch_sub(it->inside, 1);
}

static void done_mark(mesh_work *w)
{
  item *it = (item *)w;
  it->done = true;
  it->done_thread = pthread_self();
}

static void test_strand_keeps_order(void **state)
{
  mesh_pool *p = NULL;
  assert_int_equal(mesh_pool_new(NULL, 4, &p), 0);
  mesh_strand *s = NULL;
  assert_int_equal(mesh_strand_new(p, &s), 0);
  enum { N = 64 };
  item its[N];
  int log[N];
  _Atomic int slot = 0, inside = 0, max_inside = 0;
  memset(its, 0, sizeof its);
  for (int i = 0; i < N; i++) {
    its[i] = (item){.index = i, .log = log, .slot = &slot, .inside = &inside,
                    .max_inside = &max_inside};
    mesh_pool_submit(p, &its[i].w, s, work_log, done_mark);
  }
  assert_int_equal(mesh_strand_pending(s), N);
  mesh_pool_flush(p);
  assert_int_equal(mesh_strand_pending(s), 0);
  assert_int_equal(mesh_pool_pending(p), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(log[i], i);
    assert_true(its[i].done);
    assert_true(pthread_equal(its[i].done_thread, pthread_self()));
  }
  assert_int_equal(atomic_load(&max_inside), 1);
  mesh_strand_free(s);
  mesh_pool_stats st;
  mesh_pool_get_stats(p, &st);
  assert_int_equal(st.submitted, N);
  assert_int_equal(st.completed, N);
  assert_int_equal(st.queued, 0);
  assert_int_equal(st.running, 0);
  assert_int_equal(st.threads, 4);
  assert_true(st.busy_ns >= (uint64_t)N * 200000);
  mesh_pool_free(p);
}

static void test_items_run_side_by_side(void **state)
{
  mesh_pool *p = NULL;
  assert_int_equal(mesh_pool_new(NULL, 4, &p), 0);
  enum { N = 32 };
  item its[N];
  int log[N];
  _Atomic int slot = 0, inside = 0, max_inside = 0;
  for (int i = 0; i < N; i++) {
    its[i] = (item){.index = i, .log = log, .slot = &slot, .inside = &inside,
                    .max_inside = &max_inside};
    mesh_pool_submit(p, &its[i].w, NULL, work_log, done_mark);
  }
  mesh_pool_flush(p);
  /* 32 items of 200 us on 4 workers: more than one ran at a time. */
  assert_true(atomic_load(&max_inside) > 1);
  assert_true(atomic_load(&max_inside) <= 4);
  assert_int_equal(atomic_load(&slot), N);
  mesh_pool_free(p);
}

static void work_nothing(mesh_work *w)
{
}

static void done_again(mesh_work *w)
{
  item *it = (item *)w;
  it->rounds++;
  if (it->rounds < 10)
    mesh_pool_submit(it->resubmit, w, NULL, work_nothing, done_again);
  else
    it->done = true;
}

static void test_flush_waits_for_resubmits(void **state)
{
  mesh_pool *p = NULL;
  assert_int_equal(mesh_pool_new(NULL, 2, &p), 0);
  item it = {.resubmit = p};
  mesh_pool_submit(p, &it.w, NULL, work_nothing, done_again);
  mesh_pool_flush(p);
  assert_int_equal(it.rounds, 10);
  assert_true(it.done);
  assert_false(it.w.busy);
  mesh_pool_free(p);
}

static int loop_done;

static void done_stop_loop(mesh_work *w)
{
  done_mark(w);
  loop_done++;
}

static void test_completions_through_the_loop(void **state)
{
  struct event_base *base = event_base_new();
  assert_non_null(base);
  mesh_pool *p = NULL;
  assert_int_equal(mesh_pool_new(base, 2, &p), 0);
  enum { N = 8 };
  item its[N];
  int log[N];
  _Atomic int slot = 0, inside = 0, max_inside = 0;
  loop_done = 0;
  for (int i = 0; i < N; i++) {
    its[i] = (item){.index = i, .log = log, .slot = &slot, .inside = &inside,
                    .max_inside = &max_inside};
    mesh_pool_submit(p, &its[i].w, NULL, work_log, done_stop_loop);
  }
  /* Each turn blocks until the pipe is readable; bounded by N turns and
   * by a 5 s timer that would leave loop_done short. */
  struct timeval limit = {.tv_sec = 5};
  event_base_loopexit(base, &limit);
  while (loop_done < N && event_base_loop(base, EVLOOP_ONCE) == 0) {
  }
  assert_int_equal(loop_done, N);
  for (int i = 0; i < N; i++)
    assert_true(pthread_equal(its[i].done_thread, pthread_self()));
  mesh_pool_free(p);
  event_base_free(base);
}

static void test_bad_thread_count(void **state)
{
  mesh_pool *p = NULL;
  assert_int_equal(mesh_pool_new(NULL, 0, &p), -EINVAL);
  assert_int_equal(mesh_pool_new(NULL, MESH_POOL_MAX_THREADS + 1, &p), -EINVAL);
  unsigned d = mesh_pool_default_threads();
  assert_true(d >= 2 && d <= 8);
  mesh_pool_free(NULL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strand_keeps_order),
      cmocka_unit_test(test_items_run_side_by_side),
      cmocka_unit_test(test_flush_waits_for_resubmits),
      cmocka_unit_test(test_completions_through_the_loop),
      cmocka_unit_test(test_bad_thread_count),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
