/*
 * The work pool (pool.h): workers take items from one run queue; a strand
 * keeps at most one of its items in the run queue or running, the rest wait
 * in the strand's own list. Completed items go to a list the loop drains.
 *
 * Locking: one mutex guards the run queue, every strand's list, the
 * completion list and the counters. Work functions run without it.
 */
#include "src/base/pool.h"
#include "src/base/platform.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct mesh_strand {
  mesh_pool *pool;
  mesh_work *head, *tail; /* waiting behind the one in flight */
  bool in_flight;         /* one item queued or running */
  size_t pending;         /* submitted, done not yet run (loop thread's) */
};

struct mesh_pool {
  pthread_mutex_t mu;
  pthread_cond_t work_cv; /* workers wait here for items */
  pthread_cond_t done_cv; /* flush waits here for completions */
  mesh_work *run_head, *run_tail;
  mesh_work *done_head, *done_tail;
  bool notified; /* a byte is in the pipe for the current done list */
  bool stop;
  int pipe_rd, pipe_wr;
  struct event *ev; /* read end on the loop, or NULL */
  pthread_t threads[MESH_POOL_MAX_THREADS];
  unsigned nthreads;
  size_t pending; /* submitted, done not yet run (loop thread's) */
  mesh_pool_stats st;
};

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

unsigned mesh_pool_default_threads(void)
{
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 2)
    n = 2;
  if (n > 8)
    n = 8;
  return (unsigned)n;
}

/* Under mu. */
static void run_push(mesh_pool *p, mesh_work *w)
{
  w->next = NULL;
  if (p->run_tail != NULL)
    p->run_tail->next = w;
  else
    p->run_head = w;
  p->run_tail = w;
  pthread_cond_signal(&p->work_cv);
}

/* Under mu. Returns true when the loop must be woken. */
static bool done_push(mesh_pool *p, mesh_work *w)
{
  w->next = NULL;
  if (p->done_tail != NULL)
    p->done_tail->next = w;
  else
    p->done_head = w;
  p->done_tail = w;
  pthread_cond_broadcast(&p->done_cv);
  if (p->notified)
    return false;
  p->notified = true;
  return true;
}

static void *worker_main(void *arg)
{
  mesh_pool *p = arg;
  mesh_thread_lower_priority();
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->run_head == NULL && !p->stop)
      pthread_cond_wait(&p->work_cv, &p->mu);
    if (p->run_head == NULL)
      break; /* stop, and nothing left */
    mesh_work *w = p->run_head;
    p->run_head = w->next;
    if (p->run_head == NULL)
      p->run_tail = NULL;
    p->st.queued--;
    p->st.running++;
    uint64_t start = now_ns();
    p->st.wait_ns += start - w->queued_ns;
    pthread_mutex_unlock(&p->mu);

    w->work(w);

    uint64_t took = now_ns() - start;
    pthread_mutex_lock(&p->mu);
    p->st.running--;
    p->st.busy_ns += took;
    if (took > p->st.longest_ns)
      p->st.longest_ns = took;
    mesh_strand *s = w->strand;
    if (s != NULL) {
      if (s->head != NULL) {
        mesh_work *nx = s->head;
        s->head = nx->next;
        if (s->head == NULL)
          s->tail = NULL;
        run_push(p, nx);
      } else {
        s->in_flight = false;
      }
    }
    if (done_push(p, w)) {
      char b = 1;
      /* The pipe is non-blocking; a full pipe already wakes the loop. */
      ssize_t r = write(p->pipe_wr, &b, 1);
      (void)r;
    }
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
  mesh_pool_drain(arg);
}

static int set_nonblock(int fd)
{
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
    return -errno;
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
    return -errno;
  return 0;
}

int mesh_pool_new(struct event_base *base, unsigned threads, mesh_pool **out)
{
  if (threads == 0 || threads > MESH_POOL_MAX_THREADS)
    return -EINVAL;
  mesh_pool *p = calloc(1, sizeof *p);
  if (p == NULL)
    return -ENOMEM;
  int fds[2];
  if (pipe(fds) != 0) {
    int e = -errno;
    free(p);
    return e;
  }
  p->pipe_rd = fds[0];
  p->pipe_wr = fds[1];
  int rc = set_nonblock(fds[0]);
  if (rc == 0)
    rc = set_nonblock(fds[1]);
  if (rc != 0)
    goto fail_pipe;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work_cv, NULL);
  pthread_cond_init(&p->done_cv, NULL);
  if (base != NULL) {
    p->ev = event_new(base, p->pipe_rd, EV_READ | EV_PERSIST, on_pipe, p);
    if (p->ev == NULL || event_add(p->ev, NULL) != 0) {
      rc = -ENOMEM;
      goto fail_sync;
    }
  }
  for (unsigned i = 0; i < threads; i++) {
    rc = -pthread_create(&p->threads[i], NULL, worker_main, p);
    if (rc != 0)
      break;
    p->nthreads++;
  }
  p->st.threads = p->nthreads;
  if (rc != 0) {
    mesh_pool_free(p);
    return rc;
  }
  *out = p;
  return 0;

fail_sync:
  if (p->ev != NULL)
    event_free(p->ev);
  pthread_cond_destroy(&p->done_cv);
  pthread_cond_destroy(&p->work_cv);
  pthread_mutex_destroy(&p->mu);
fail_pipe:
  close(fds[0]);
  close(fds[1]);
  free(p);
  return rc;
}

void mesh_pool_free(mesh_pool *p)
{
  if (p == NULL)
    return;
  mesh_pool_flush(p);
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_broadcast(&p->work_cv);
  pthread_mutex_unlock(&p->mu);
  for (unsigned i = 0; i < p->nthreads; i++)
    pthread_join(p->threads[i], NULL);
  if (p->ev != NULL)
    event_free(p->ev);
  close(p->pipe_rd);
  close(p->pipe_wr);
  pthread_cond_destroy(&p->done_cv);
  pthread_cond_destroy(&p->work_cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

int mesh_strand_new(mesh_pool *p, mesh_strand **out)
{
  mesh_strand *s = calloc(1, sizeof *s);
  if (s == NULL)
    return -ENOMEM;
  s->pool = p;
  *out = s;
  return 0;
}

void mesh_strand_free(mesh_strand *s)
{
  free(s);
}

size_t mesh_strand_pending(const mesh_strand *s)
{
  return s->pending;
}

void mesh_pool_submit(mesh_pool *p, mesh_work *w, mesh_strand *s, mesh_work_fn work,
                      mesh_done_fn done)
{
  w->work = work;
  w->done = done;
  w->strand = s;
  w->busy = true;
  w->next = NULL;
  w->queued_ns = now_ns();
  p->pending++;
  if (s != NULL)
    s->pending++;
  pthread_mutex_lock(&p->mu);
  p->st.submitted++;
  p->st.queued++; /* until a worker takes it, behind its strand or not */
  if (s != NULL && s->in_flight) {
    if (s->tail != NULL)
      s->tail->next = w;
    else
      s->head = w;
    s->tail = w;
  } else {
    if (s != NULL)
      s->in_flight = true;
    run_push(p, w);
  }
  pthread_mutex_unlock(&p->mu);
}

size_t mesh_pool_drain(mesh_pool *p)
{
  pthread_mutex_lock(&p->mu);
  mesh_work *list = p->done_head;
  p->done_head = p->done_tail = NULL;
  if (p->notified) {
    char buf[64];
    while (read(p->pipe_rd, buf, sizeof buf) > 0) {
    }
    p->notified = false;
  }
  pthread_mutex_unlock(&p->mu);
  size_t n = 0;
  while (list != NULL) {
    mesh_work *w = list;
    list = w->next;
    w->next = NULL;
    w->busy = false;
    p->pending--;
    if (w->strand != NULL)
      w->strand->pending--;
    p->st.completed++;
    n++;
    w->done(w); /* may free w, may submit more */
  }
  return n;
}

void mesh_pool_flush(mesh_pool *p)
{
  while (p->pending > 0) {
    pthread_mutex_lock(&p->mu);
    while (p->done_head == NULL)
      pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    mesh_pool_drain(p);
  }
}

size_t mesh_pool_pending(const mesh_pool *p)
{
  return p->pending;
}

void mesh_pool_get_stats(mesh_pool *p, mesh_pool_stats *out)
{
  pthread_mutex_lock(&p->mu);
  *out = p->st;
  pthread_mutex_unlock(&p->mu);
}
