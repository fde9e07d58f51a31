/*
 * The work pool: a small fixed set of worker threads that do everything that
 * can take long, so that the event loop thread never waits (the model of
 * libuv's uv_queue_work).
 *
 * Threading model (docs/threading.md has the whole picture):
 *   - The loop thread owns the pool. It submits work items and receives their
 *     completions; nothing else calls into the pool.
 *   - A work item (mesh_work, embedded in the caller's own struct) passes to
 *     the pool at mesh_pool_submit. Its work function then runs on one worker
 *     thread and may touch only what the item carries (the caller hands those
 *     objects over with the item and does not touch them until done). When
 *     the work function returns, the item passes back: its done function runs
 *     on the loop thread, in the turn that drains the completion pipe. The
 *     item is the caller's again from the first line of done.
 *   - A strand orders items: the items of one strand run one at a time, in
 *     the order submitted, on whichever worker is free (the writes and the
 *     hash of one file, the transactions of one database). Items without a
 *     strand run in any order, at once when a worker is free.
 *   - Work functions never call back into the loop, libevent, libcurl or the
 *     pool; they report through the item.
 *
 * Bounds: the pool holds what it is given and never allocates per item; the
 * callers bound how much they submit (a download's write buffers, one delete
 * slice at a time), which is where backpressure lives.
 *
 * Shutdown: mesh_pool_flush blocks the caller until nothing is queued or
 * running and every done function has run (done functions may submit more;
 * flush waits for those too). Owners flush before they free what their
 * items point at; mesh_pool_free flushes, then joins the workers.
 *
 * Workers run below the loop's priority (mesh_thread_lower_priority): when
 * hashing and disk work fill every CPU, the loop still runs first.
 *
 * Completions are signalled through a pipe whose read end the loop watches
 * (a libevent event on the base given at mesh_pool_new). A worker writes one
 * byte only when the completion list goes from empty to non-empty.
 */
#ifndef MESH_BASE_POOL_H
#define MESH_BASE_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

/* Upper bound of --io-threads. */
#define MESH_POOL_MAX_THREADS 64

typedef struct mesh_pool mesh_pool;
typedef struct mesh_strand mesh_strand;
typedef struct mesh_work mesh_work;

/* Runs on a worker thread. */
typedef void (*mesh_work_fn)(mesh_work *w);
/* Runs on the loop thread after work returned. */
typedef void (*mesh_done_fn)(mesh_work *w);

struct mesh_work {
  mesh_work_fn work;   /* set by mesh_pool_submit */
  mesh_done_fn done;   /* set by mesh_pool_submit */
  mesh_strand *strand; /* NULL: no ordering */
  mesh_work *next;     /* the pool's list link while queued or completed */
  uint64_t queued_ns;  /* when submitted, for the wait figure */
  bool busy;           /* between submit and the start of done */
};

typedef struct mesh_pool_stats {
  uint64_t submitted;    /* items handed to the pool */
  uint64_t completed;    /* done functions run */
  uint64_t queued;       /* items waiting for a worker now */
  uint64_t running;      /* items in a work function now */
  uint64_t busy_ns;      /* time spent in work functions, all workers */
  uint64_t wait_ns;      /* time items waited between submit and start, summed */
  uint64_t longest_ns;   /* longest single work function */
  unsigned threads;      /* workers */
} mesh_pool_stats;

/* A sensible default for --io-threads on this machine: the number of CPUs,
 * at least 2 and at most 8 (the work is IO and hashing; more threads than
 * CPUs only helps while fsync waits). */
unsigned mesh_pool_default_threads(void);

/*
 * Starts threads workers (1..MESH_POOL_MAX_THREADS) and watches the
 * completion pipe on base. base may be NULL: the caller then drains with
 * mesh_pool_drain (tests that have no loop). Returns 0, -EINVAL, -ENOMEM or
 * the errno of pipe/pthread_create.
 */
int mesh_pool_new(struct event_base *base, unsigned threads, mesh_pool **out);
/* Flushes, stops the workers and frees the pool. NULL is a no-op. */
void mesh_pool_free(mesh_pool *p);

/* A strand of p (see above). Free only when nothing of it is queued or
 * running (after its last done). */
int mesh_strand_new(mesh_pool *p, mesh_strand **out);
void mesh_strand_free(mesh_strand *s);
/* Items of s submitted and whose done has not run yet. */
size_t mesh_strand_pending(const mesh_strand *s);

/*
 * Hands w to the pool (loop thread only). w must not be busy. s may be NULL.
 * work runs on a worker, then done on the loop thread. Never fails: the item
 * is the caller's memory.
 */
void mesh_pool_submit(mesh_pool *p, mesh_work *w, mesh_strand *s, mesh_work_fn work,
                      mesh_done_fn done);

/* Runs the done functions of every completed item now (loop thread only).
 * Returns how many ran. */
size_t mesh_pool_drain(mesh_pool *p);

/* Blocks until nothing is queued, running or waiting for its done, running
 * the done functions as items complete (loop thread only). */
void mesh_pool_flush(mesh_pool *p);

/* Items submitted and whose done has not run yet. */
size_t mesh_pool_pending(const mesh_pool *p);

void mesh_pool_get_stats(mesh_pool *p, mesh_pool_stats *out);

#endif
