/*
 * A file fetched in ranges (coord/hf_ranged.c): the timer a job arms to look
 * for a source again may fire after the last range is in, while the file's
 * VERIFY item (the job's one op item) is on the pool. It must start nothing
 * then: no second hash of the file, no second item of the job on its strand.
 *
 * The harness is a job as hf_ranged.c leaves it when the whole-file hash is
 * done and hf_job_verify has submitted the VERIFY: every range DONE, every
 * lane idle, the job in VERIFY, its op item submitted on the job's strand of
 * a real pool, where a stand-in work function holds it on the worker until
 * the test lets it go (so it is in flight for as long as the test says). The
 * timer's callback is called by hand: there is no clock to wait for. What is
 * counted: the items the pool was given, the job's items on its strand, and
 * the job's state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "coord/hf_internal.h"
#include "src/base/pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define FILE_SIZE 4000u
#define RANGE_BYTES 1000u

/* The VERIFY stand-in: held on its worker until released. */
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t held_cv = PTHREAD_COND_INITIALIZER;
static bool held_released;
static int held_ran;  /* work functions run (worker; read after the flush) */
static int held_done; /* done functions run (loop) */

static void held_work(mesh_work *w)
{
  (void)w;
  pthread_mutex_lock(&held_mu);
  held_ran++;
  while (!held_released)
    pthread_cond_wait(&held_cv, &held_mu);
  pthread_mutex_unlock(&held_mu);
}

static void held_finish(mesh_work *w)
{
  (void)w;
  held_done++;
}

static void release_held(void)
{
  pthread_mutex_lock(&held_mu);
  held_released = true;
  pthread_cond_broadcast(&held_cv);
  pthread_mutex_unlock(&held_mu);
}

typedef struct fixture {
  mesh_pool *pool;
  mesh_hf_client c;
  hf_dl dl;
  mesh_hf_file f;
  hf_job j;
} fixture;

/* A ranged job whose every range is written and whose lanes are idle: what
 * hash_begin needs to start the whole-file hash. */
static fixture *fixture_new(job_state st)
{
  held_released = false;
  held_ran = held_done = 0;
  fixture *x = calloc(1, sizeof *x);
  assert_non_null(x);
  assert_int_equal(mesh_pool_new(NULL, 1, &x->pool), 0);
  x->c.pool = x->pool;
  x->dl.c = &x->c;
  x->dl.state = DL_FETCHING;
  x->dl.dirfd = -1;
  static char path[] = "model.safetensors";
  x->f.path = path;
  x->f.size = FILE_SIZE;
  x->f.lfs = true;
  hf_job *j = &x->j;
  j->sink = HF_SINK_JOB;
  j->dl = &x->dl;
  j->f = &x->f;
  j->leaf = x->f.path;
  j->ranged = true;
  j->buf_cap = FILE_SIZE;
  j->disk.pfd = -1;
  j->disk.fd = -1;
  assert_int_equal(mesh_hf_hash_init(&j->disk.hash, MESH_HF_HASH_SHA256, FILE_SIZE), 0);
  j->disk.hash_live = true;
  j->state = st;
  assert_int_equal(mesh_strand_new(x->pool, &j->strand), 0);
  assert_int_equal(mesh_hf_ranges_init(&j->rt, FILE_SIZE, RANGE_BYTES), 0);
  for (uint32_t i = 0; i < j->rt.n; i++)
    j->rt.state[i] = MESH_HF_RANGE_DONE;
  for (int k = 0; k < HF_LANES; k++) {
    j->lanes[k].j = j;
    j->lanes[k].state = LANE_IDLE;
  }
  assert_true(mesh_hf_ranges_complete(&j->rt));
  return x;
}

static void fixture_free(fixture *x)
{
  mesh_pool_free(x->pool); /* flushes: every done function has run */
  mesh_strand_free(x->j.strand);
  mesh_hf_ranges_free(&x->j.rt);
  mesh_hf_hash_free(&x->j.disk.hash);
  free(x->j.bufs[0].data);
  free(x);
}

static uint64_t submitted(mesh_pool *p)
{
  mesh_pool_stats st;
  mesh_pool_get_stats(p, &st);
  return st.submitted;
}

/* The timer fires, more than once, while the VERIFY is in flight: the job
 * stays in VERIFY, and its one op item is the only item of the job. */
static void test_timer_during_verify_starts_nothing(void **state)
{
  (void)state;
  fixture *x = fixture_new(JOB_VERIFY);
  hf_job *j = &x->j;
  /* What hf_job_verify does: the op item goes on the strand as VERIFY. */
  j->op.j = j;
  j->op.kind = HF_OP_VERIFY;
  mesh_pool_submit(x->pool, &j->op.w, j->strand, held_work, held_finish);
  assert_int_equal(submitted(x->pool), 1);

  for (int fire = 0; fire < 3; fire++) {
    hf_ranged_on_timer(j);
    assert_int_equal(j->state, JOB_VERIFY);
    assert_false(j->hashing);
    assert_int_equal(submitted(x->pool), 1);
    assert_int_equal(mesh_strand_pending(j->strand), 1);
    assert_int_equal(j->op.kind, HF_OP_VERIFY);
    assert_ptr_equal(j->op.w.done, held_finish);
  }

  release_held();
  mesh_pool_flush(x->pool);
  assert_int_equal(held_ran, 1);
  assert_int_equal(held_done, 1);
  assert_int_equal(submitted(x->pool), 1);
  fixture_free(x);
}

/* The same job waiting for its retry timer (RETRY) with every range in: the
 * timer is what goes on, and it starts the whole-file hash. This shows the
 * counts above would see a hash started. */
static void test_timer_in_retry_starts_the_hash(void **state)
{
  (void)state;
  fixture *x = fixture_new(JOB_RETRY);
  hf_job *j = &x->j;
  /* A sidecar write holds the strand, so that the hash waits behind it
   * while the test looks (and stops the job, below). */
  j->rop.j = j;
  j->rop.kind = HF_OP_RANGES;
  mesh_pool_submit(x->pool, &j->rop.w, j->strand, held_work, held_finish);
  hf_ranged_on_timer(j);
  assert_int_equal(j->state, JOB_PREHASH);
  assert_true(j->hashing);
  assert_int_equal(submitted(x->pool), 2);
  assert_int_equal(mesh_strand_pending(j->strand), 2);
  assert_int_equal(j->op.kind, HF_OP_HASH);
  assert_int_equal(j->op.from, 0);
  assert_int_equal(j->op.to, FILE_SIZE);
  /* The hash reads a file this harness does not have: its done function
   * must find the job stopped rather than report into a client that is
   * not there. */
  j->state = JOB_DONE;
  release_held();
  mesh_pool_flush(x->pool);
  assert_int_equal(held_done, 1);
  assert_int_equal(mesh_strand_pending(j->strand), 0);
  fixture_free(x);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_timer_during_verify_starts_nothing),
      cmocka_unit_test(test_timer_in_retry_starts_the_hash),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
