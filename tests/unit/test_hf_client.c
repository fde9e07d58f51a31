/*
 * The Hub client driven on a real event loop against the stand-in Hub
 * (tests/hfhub, started as a child process next to this test's binary), so
 * that the sanitizer build checks the engine itself: reports in order, the
 * callback cancelling and starting downloads re-entrantly, freeing a client
 * with downloads in flight, and bad arguments refused before anything runs.
 * Every wait has a deadline: a test that does not see its report fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "coord/hf_client.h"
#include "src/base/pool.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REPO "meshd-test/tiny-model"
#define DEADLINE_S 30

static char hfhub_path[4096];

typedef struct hub {
  pid_t pid;
  char endpoint[64];
} hub;

static void hub_start_sized(hub *h, const char *weight_size, const char *extra)
{
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  h->pid = fork();
  assert_true(h->pid >= 0);
  if (h->pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    execl(hfhub_path, "hfhub", "--weight-size", weight_size, "--page-size", "3", "--fault",
          extra != NULL ? extra : "[]", (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  char buf[32] = "";
  ssize_t n = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  if (n <= 0)
    fail_msg("hfhub (%s) did not start", hfhub_path);
  long port = strtol(buf, NULL, 10);
  if (port <= 0 || port > 65535)
    fail_msg("hfhub printed no port: %s", buf);
  snprintf(h->endpoint, sizeof h->endpoint, "http://127.0.0.1:%ld", port);
}

static void hub_start(hub *h, const char *extra)
{
  hub_start_sized(h, "300000", extra);
}

static void hub_stop(hub *h)
{
  kill(h->pid, SIGTERM);
  waitpid(h->pid, NULL, 0);
}

/* What the callback saw, and what it should do. */
typedef struct run {
  struct event_base *base;
  mesh_pool *pool; /* the client's disk work */
  mesh_hf_client *c;
  int listed, progress, completed, failed;
  int last_err;
  char last_msg[512];
  uint64_t first_id;
  bool cancel_on_list;        /* cancel the reported download at LISTED */
  bool start_another_on_done; /* start a second download from the callback */
  const char *second_dir;
  uint64_t second_id;
  int finished_wanted; /* stop the loop after this many COMPLETED/FAILED */
  void (*on_progress)(struct run *t, const mesh_hf_report *r); /* test hook, or NULL */
  mesh_hf_report_kind order[16];
  int norder;
} run;

static void on_report(const mesh_hf_report *r, void *ctx)
{
  run *t = ctx;
  if (t->norder < 16 && r->kind != MESH_HF_REPORT_PROGRESS)
    t->order[t->norder++] = r->kind;
  switch (r->kind) {
  case MESH_HF_REPORT_LISTED:
    t->listed++;
    assert_int_equal(r->progress.files_total, 5);
    if (t->cancel_on_list) {
      assert_int_equal(mesh_hf_cancel(t->c, r->id), 0);
      /* Cancelling twice is an error, not a crash. */
      assert_int_equal(mesh_hf_cancel(t->c, r->id), -ENOENT);
      event_base_loopexit(t->base, NULL);
    }
    break;
  case MESH_HF_REPORT_PROGRESS:
    t->progress++;
    assert_true(r->progress.done_bytes <= r->progress.total_bytes);
    if (t->on_progress != NULL)
      t->on_progress(t, r);
    break;
  case MESH_HF_REPORT_COMPLETED:
  case MESH_HF_REPORT_FAILED:
    if (r->kind == MESH_HF_REPORT_COMPLETED) {
      t->completed++;
      assert_int_equal(r->progress.files_done, r->progress.files_total);
      assert_int_equal(r->progress.done_bytes, r->progress.total_bytes);
      assert_true(r->progress.session_bytes <= r->progress.done_bytes);
    } else {
      t->failed++;
      t->last_err = r->err;
      snprintf(t->last_msg, sizeof t->last_msg, "%s", r->message);
    }
    if (t->start_another_on_done && t->second_id == 0) {
      mesh_hf_request req = {.repo = REPO, .model_dir = t->second_dir};
      assert_int_equal(mesh_hf_start(t->c, &req, &t->second_id), 0);
    }
    if (t->completed + t->failed >= t->finished_wanted)
      event_base_loopexit(t->base, NULL);
    break;
  }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
  fail_msg("no report before the deadline");
}

static void loop(run *t)
{
  struct event *dl = evtimer_new(t->base, on_deadline, t);
  struct timeval tv = {DEADLINE_S, 0};
  evtimer_add(dl, &tv);
  event_base_dispatch(t->base);
  event_free(dl);
}

static void make_client_opt(run *t, unsigned threads, mesh_hf_options *o)
{
  t->base = event_base_new();
  assert_int_equal(mesh_pool_new(t->base, threads, &t->pool), 0);
  assert_int_equal(mesh_hf_client_new(t->base, t->pool, o, on_report, t, &t->c), 0);
}

static void make_client(run *t, const char *endpoint, int downloads_at_once)
{
  mesh_hf_options o = {.endpoint = endpoint,
                       .no_sync = true,
                       .seed = 7,
                       .backoff_base_ms = 20,
                       .downloads_at_once = downloads_at_once};
  make_client_opt(t, 2, &o);
}

/* The client first (it flushes the pool), then the pool it borrowed. */
static void free_client(run *t)
{
  mesh_hf_client_free(t->c);
  mesh_pool_free(t->pool);
  event_base_free(t->base);
}

static char *tmpdir(void)
{
  char tmpl[] = "/tmp/hfclient-XXXXXX";
  char *d = mkdtemp(tmpl);
  assert_non_null(d);
  return strdup(d);
}

static void rmtree(const char *d)
{
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
  assert_int_equal(system(cmd), 0);
}

static void test_download_reports_in_order(void **state)
{
  hub h;
  hub_start(&h, "{\"path\":\"model-00001-of-00002.safetensors\",\"kind\":\"status\",\"code\":500}");
  char *dir = tmpdir();
  char model[4200];
  snprintf(model, sizeof model, "%s/m", dir);
  run t = {.finished_wanted = 1};
  make_client(&t, h.endpoint, 0);
  mesh_hf_request req = {.repo = REPO, .model_dir = model, .user = &t};
  assert_int_equal(mesh_hf_start(t.c, &req, &t.first_id), 0);
  assert_int_not_equal(t.first_id, 0);
  /* Nothing is reported from inside mesh_hf_start. */
  assert_int_equal(t.norder, 0);
  loop(&t);
  assert_int_equal(t.completed, 1);
  assert_int_equal(t.norder, 2);
  assert_int_equal(t.order[0], MESH_HF_REPORT_LISTED);
  assert_int_equal(t.order[1], MESH_HF_REPORT_COMPLETED);
  mesh_hf_counters k;
  mesh_hf_get_counters(t.c, &k);
  assert_int_equal(k.retries, 1);
  assert_int_equal(k.files_verified, 5);
  assert_int_equal(k.requests, 2 + 5 + 1); /* 2 list pages, 5 files, 1 retry */
  /* The finished download is gone. */
  assert_int_equal(mesh_hf_cancel(t.c, t.first_id), -ENOENT);
  free_client(&t);
  hub_stop(&h);
  rmtree(dir);
  free(dir);
}

/* Flips the byte at off of path (the size stays). */
static void flip_byte(const char *path, off_t off)
{
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  unsigned char b;
  assert_int_equal(pread(fd, &b, 1, off), 1);
  b ^= 0xff;
  assert_int_equal(pwrite(fd, &b, 1, off), 1);
  close(fd);
}

/* Files already in place are read and compared before they are taken: right
 * ones are kept (nothing fetched), ones of the listed size with other bytes
 * (an LFS weight and a small git blob file) are fetched again and end right. */
static void test_in_place_checked_by_hash(void **state)
{
  hub h;
  hub_start(&h, NULL);
  char *dir = tmpdir();
  char model[4200];
  snprintf(model, sizeof model, "%s/m", dir);
  run t = {.finished_wanted = 1};
  make_client(&t, h.endpoint, 0);
  mesh_hf_request req = {.repo = REPO, .model_dir = model, .user = &t};
  assert_int_equal(mesh_hf_start(t.c, &req, &t.first_id), 0);
  loop(&t);
  assert_int_equal(t.completed, 1);
  mesh_hf_counters k0;
  mesh_hf_get_counters(t.c, &k0);
  assert_int_equal(k0.in_place_mismatches, 0);
  /* Again, untouched: every file is taken by its hash, no byte fetched. */
  assert_int_equal(mesh_hf_start(t.c, &req, &t.first_id), 0);
  t.finished_wanted = 2;
  loop(&t);
  assert_int_equal(t.completed, 2);
  mesh_hf_counters k1;
  mesh_hf_get_counters(t.c, &k1);
  assert_int_equal(k1.bytes_received, k0.bytes_received);
  assert_int_equal(k1.files_verified, k0.files_verified + 5);
  assert_int_equal(k1.in_place_mismatches, 0);
  /* One weight and config.json changed in place, sizes kept. */
  char path[4400];
  snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", model);
  flip_byte(path, 123457);
  snprintf(path, sizeof path, "%s/config.json", model);
  flip_byte(path, 3);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  off_t cfg_size = st.st_size;
  assert_int_equal(mesh_hf_start(t.c, &req, &t.first_id), 0);
  t.finished_wanted = 3;
  loop(&t);
  assert_int_equal(t.completed, 3);
  assert_int_equal(t.failed, 0);
  mesh_hf_counters k2;
  mesh_hf_get_counters(t.c, &k2);
  assert_int_equal(k2.in_place_mismatches, 2);
  assert_int_equal(k2.hash_mismatches, 0);
  assert_int_equal(k2.bytes_received - k1.bytes_received, 300000 + (uint64_t)cfg_size);
  /* A fourth run finds everything right again. */
  assert_int_equal(mesh_hf_start(t.c, &req, &t.first_id), 0);
  t.finished_wanted = 4;
  loop(&t);
  assert_int_equal(t.completed, 4);
  mesh_hf_counters k3;
  mesh_hf_get_counters(t.c, &k3);
  assert_int_equal(k3.in_place_mismatches, 2);
  assert_int_equal(k3.bytes_received, k2.bytes_received);
  free_client(&t);
  hub_stop(&h);
  rmtree(dir);
  free(dir);
}

static void test_cancel_from_listed_callback(void **state)
{
  hub h;
  hub_start(&h, NULL);
  char *dir = tmpdir();
  char model[4200];
  snprintf(model, sizeof model, "%s/m", dir);
  run t = {.cancel_on_list = true};
  make_client(&t, h.endpoint, 0);
  mesh_hf_request req = {.repo = REPO, .model_dir = model};
  assert_int_equal(mesh_hf_start(t.c, &req, &t.first_id), 0);
  loop(&t);
  assert_int_equal(t.listed, 1);
  /* Let the loop turn: no further report may come for a cancelled download. */
  struct timeval tv = {0, 200000};
  event_base_loopexit(t.base, &tv);
  event_base_dispatch(t.base);
  assert_int_equal(t.completed + t.failed, 0);
  mesh_hf_counters k;
  mesh_hf_get_counters(t.c, &k);
  assert_int_equal(k.requests, 2); /* the list pages only */
  free_client(&t);
  hub_stop(&h);
  rmtree(dir);
  free(dir);
}

static void test_start_from_callback_and_queue(void **state)
{
  hub h;
  hub_start(&h, NULL);
  char *dir = tmpdir();
  char m1[4200], m2[4200], m3[4200];
  snprintf(m1, sizeof m1, "%s/a", dir);
  snprintf(m2, sizeof m2, "%s/b", dir);
  snprintf(m3, sizeof m3, "%s/c", dir);
  run t = {.finished_wanted = 3, .start_another_on_done = true, .second_dir = m3};
  make_client(&t, h.endpoint, 1);
  mesh_hf_request r1 = {.repo = REPO, .model_dir = m1};
  mesh_hf_request r2 = {.repo = REPO, .model_dir = m2};
  uint64_t id2;
  assert_int_equal(mesh_hf_start(t.c, &r1, &t.first_id), 0);
  assert_int_equal(mesh_hf_start(t.c, &r2, &id2), 0);
  loop(&t);
  assert_int_equal(t.completed, 3);
  /* One download at a time: each LISTED is followed by its COMPLETED. */
  for (int i = 0; i < 6; i += 2) {
    assert_int_equal(t.order[i], MESH_HF_REPORT_LISTED);
    assert_int_equal(t.order[i + 1], MESH_HF_REPORT_COMPLETED);
  }
  free_client(&t);
  hub_stop(&h);
  rmtree(dir);
  free(dir);
}

static void test_free_with_downloads_in_flight(void **state)
{
  hub h;
  hub_start(&h, "{\"path\":\"*\",\"kind\":\"slow\",\"rate\":50000,\"count\":-1}");
  char *dir = tmpdir();
  char model[4200];
  snprintf(model, sizeof model, "%s/m", dir);
  run t = {0};
  make_client(&t, h.endpoint, 0);
  mesh_hf_request req = {.repo = REPO, .model_dir = model};
  assert_int_equal(mesh_hf_start(t.c, &req, &t.first_id), 0);
  struct timeval tv = {0, 500000};
  event_base_loopexit(t.base, &tv);
  event_base_dispatch(t.base);
  /* Freed mid-transfer: no report, no leak (the sanitizer build checks). */
  free_client(&t);
  assert_int_equal(t.completed + t.failed, 0);
  hub_stop(&h);
  rmtree(dir);
  free(dir);
}

static void test_failure_reports_message(void **state)
{
  hub h;
  hub_start(&h, NULL);
  char *dir = tmpdir();
  char model[4200];
  snprintf(model, sizeof model, "%s/m", dir);
  run t = {.finished_wanted = 1};
  make_client(&t, h.endpoint, 0);
  mesh_hf_request req = {.repo = REPO, .revision = "nope", .model_dir = model};
  assert_int_equal(mesh_hf_start(t.c, &req, &t.first_id), 0);
  loop(&t);
  assert_int_equal(t.failed, 1);
  assert_int_equal(t.last_err, -ENOENT);
  assert_non_null(strstr(t.last_msg, "no such revision 'nope'"));
  free_client(&t);
  hub_stop(&h);
  rmtree(dir);
  free(dir);
}

static void test_bad_arguments(void **state)
{
  struct event_base *base = event_base_new();
  mesh_pool *pool = NULL;
  assert_int_equal(mesh_pool_new(base, 1, &pool), 0);
  mesh_hf_client *c = NULL;
  mesh_hf_options bad = {.endpoint = "ftp://example.org"};
  assert_int_equal(mesh_hf_client_new(base, pool, &bad, on_report, NULL, &c), -EINVAL);
  mesh_hf_options badtok = {.token = "a\r\nX-Injected: 1"};
  assert_int_equal(mesh_hf_client_new(base, pool, &badtok, on_report, NULL, &c), -EINVAL);
  assert_int_equal(mesh_hf_client_new(base, NULL, NULL, on_report, NULL, &c), -EINVAL);
  assert_int_equal(mesh_hf_client_new(base, pool, NULL, on_report, NULL, &c), 0);
  uint64_t id = 0;
  mesh_hf_request r1 = {.repo = "../etc", .model_dir = "/tmp/x"};
  assert_int_equal(mesh_hf_start(c, &r1, &id), -EINVAL);
  mesh_hf_request r2 = {.repo = "org/m", .revision = "a b", .model_dir = "/tmp/x"};
  assert_int_equal(mesh_hf_start(c, &r2, &id), -EINVAL);
  mesh_hf_request r3 = {.repo = "org/m"};
  assert_int_equal(mesh_hf_start(c, &r3, &id), -EINVAL);
  assert_int_equal(mesh_hf_cancel(c, 12345), -ENOENT);
  mesh_hf_client_free(c);
  mesh_pool_free(pool);
  event_base_free(base);
}

/* ---- disk work on the pool ---------------------------------------------- */

#define BIG_WEIGHT (8u << 20)
#define BIG_WEIGHT_STR "8388608"
/* 16 MB/s: a weight takes half a second, long enough to act in the middle. */
#define SLOW_WEIGHTS "{\"path\":\"*\",\"kind\":\"slow\",\"rate\":16000000,\"count\":-1}"

/* A work item that holds the pool's only worker until released. */
typedef struct blocker {
  mesh_work w;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool released; /* under mu */
} blocker;

static void block_work(mesh_work *w)
{
  blocker *b = (blocker *)((char *)w - offsetof(blocker, w));
  pthread_mutex_lock(&b->mu);
  while (!b->released)
    pthread_cond_wait(&b->cv, &b->mu);
  pthread_mutex_unlock(&b->mu);
}

static void block_done(mesh_work *w)
{
}

static void block_release(blocker *b)
{
  pthread_mutex_lock(&b->mu);
  b->released = true;
  pthread_cond_signal(&b->cv);
  pthread_mutex_unlock(&b->mu);
}

typedef struct pressure {
  blocker b;
  bool submitted;        /* the blocker holds the worker (or is queued for it) */
  bool released;         /* and has been let go */
  uint64_t paused_at_ms; /* monotonic ms of the first pause seen, 0 before */
  uint64_t buffered_at_pause;
  uint64_t buffered_later; /* buffered bytes 100 ms into the pause */
  struct event *poll;
} pressure;

static pressure g_pressure;

static uint64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Blocks the worker once a weight is on its way (more than the small files). */
static void pressure_on_progress(run *t, const mesh_hf_report *r)
{
  pressure *p = &g_pressure;
  if (p->submitted || r->progress.done_bytes < (1u << 20))
    return;
  p->submitted = true;
  mesh_pool_submit(t->pool, &p->b.w, NULL, block_work, block_done);
}

/* Watches for the pause (no progress reports come while paused); keeps the
 * worker blocked for 100 ms of pause, then lets it go. */
static void pressure_poll(evutil_socket_t fd, short what, void *arg)
{
  run *t = arg;
  pressure *p = &g_pressure;
  mesh_hf_counters k;
  mesh_hf_get_counters(t->c, &k);
  if (!p->submitted || p->released || k.write_pauses == 0)
    return;
  if (p->paused_at_ms == 0) {
    p->paused_at_ms = mono_ms();
    p->buffered_at_pause = k.buffered_bytes;
    return;
  }
  if (mono_ms() - p->paused_at_ms < 100)
    return;
  p->buffered_later = k.buffered_bytes;
  p->released = true;
  block_release(&p->b);
}

static void test_backpressure_pauses_and_resumes(void **state)
{
  hub h;
  hub_start_sized(&h, BIG_WEIGHT_STR, SLOW_WEIGHTS);
  char *dir = tmpdir();
  char model[4200];
  snprintf(model, sizeof model, "%s/m", dir);
  run t = {.finished_wanted = 1, .on_progress = pressure_on_progress};
  memset(&g_pressure, 0, sizeof g_pressure);
  pthread_mutex_init(&g_pressure.b.mu, NULL);
  pthread_cond_init(&g_pressure.b.cv, NULL);
  mesh_hf_options o = {.endpoint = h.endpoint,
                       .no_sync = true,
                       .seed = 7,
                       .files_at_once = 1,
                       .progress_interval_ms = 10};
  make_client_opt(&t, 1, &o);
  g_pressure.poll = event_new(t.base, -1, EV_PERSIST, pressure_poll, &t);
  struct timeval tv = {0, 5000};
  evtimer_add(g_pressure.poll, &tv);
  mesh_hf_request req = {.repo = REPO, .model_dir = model};
  assert_int_equal(mesh_hf_start(t.c, &req, &t.first_id), 0);
  loop(&t);
  event_free(g_pressure.poll);
  assert_int_equal(t.completed, 1);
  assert_true(g_pressure.released);
  mesh_hf_counters k;
  mesh_hf_get_counters(t.c, &k);
  const uint64_t bound = MESH_HF_WRITE_BUFFERS * MESH_HF_WRITE_BUFFER_BYTES; /* one file */
  print_message("write_pauses=%llu buffered at pause=%llu, 100 ms later=%llu, peak=%llu, "
                "bound=%llu\n",
                (unsigned long long)k.write_pauses,
                (unsigned long long)g_pressure.buffered_at_pause,
                (unsigned long long)g_pressure.buffered_later, (unsigned long long)k.buffered_peak,
                (unsigned long long)bound);
  assert_true(k.write_pauses > 0);
  /* Paused: the buffers are full and stay so, and never over the bound. */
  assert_true(g_pressure.buffered_at_pause <= bound);
  assert_true(g_pressure.buffered_later <= bound);
  assert_true(g_pressure.buffered_at_pause > 0);
  assert_true(k.buffered_peak <= bound);
  assert_int_equal(k.buffered_bytes, 0);
  assert_int_equal(k.files_verified, 5);
  assert_int_equal(k.io_errors, 0);
  assert_int_equal(k.bytes_received, 2ull * BIG_WEIGHT + 159);
  free_client(&t);
  pthread_cond_destroy(&g_pressure.b.cv);
  pthread_mutex_destroy(&g_pressure.b.mu);
  hub_stop(&h);
  rmtree(dir);
  free(dir);
}

static void test_write_failure_fails_with_errno(void **state)
{
  hub h;
  hub_start_sized(&h, "3000000", NULL);
  char *dir = tmpdir();
  char model[4200];
  snprintf(model, sizeof model, "%s/m", dir);
  run t = {.finished_wanted = 1};
  make_client(&t, h.endpoint, 0);
  /* Files of this process may not grow past 1 MiB: pwrite fails with EFBIG
   * (SIGXFSZ ignored), as it would with ENOSPC on a full disk. */
  struct rlimit old, small;
  assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
  small = old;
  small.rlim_cur = 1 << 20;
  void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
  mesh_hf_request req = {.repo = REPO, .model_dir = model};
  assert_int_equal(mesh_hf_start(t.c, &req, &t.first_id), 0);
  loop(&t);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, was);
  assert_int_equal(t.failed, 1);
  assert_int_equal(t.completed, 0);
  assert_int_equal(t.last_err, -EFBIG);
  print_message("message: %s\n", t.last_msg);
  assert_non_null(strstr(t.last_msg, ".safetensors.partial"));
  assert_non_null(strstr(t.last_msg, strerror(EFBIG)));
  mesh_hf_counters k;
  mesh_hf_get_counters(t.c, &k);
  assert_int_equal(k.io_errors, 1);
  assert_int_equal(k.failed, 1);
  free_client(&t);
  hub_stop(&h);
  rmtree(dir);
  free(dir);
}

typedef struct remover {
  const char *model;
  int removed; /* partial files unlinked */
} remover;

static remover g_remover;

/* Once a weight is on its way, removes every partial file of the model. */
static void remove_on_progress(run *t, const mesh_hf_report *r)
{
  if (g_remover.removed > 0 || r->progress.done_bytes < (1u << 20))
    return;
  DIR *d = opendir(g_remover.model);
  assert_non_null(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (n > 8 && strcmp(e->d_name + n - 8, ".partial") == 0 &&
        unlinkat(dirfd(d), e->d_name, 0) == 0)
      g_remover.removed++;
  }
  closedir(d);
}

static void test_partial_removed_mid_download(void **state)
{
  hub h;
  hub_start_sized(&h, BIG_WEIGHT_STR, SLOW_WEIGHTS);
  char *dir = tmpdir();
  char model[4200];
  snprintf(model, sizeof model, "%s/m", dir);
  g_remover = (remover){.model = model};
  run t = {.finished_wanted = 1, .on_progress = remove_on_progress};
  mesh_hf_options o = {.endpoint = h.endpoint,
                       .no_sync = true,
                       .seed = 7,
                       .files_at_once = 1,
                       .progress_interval_ms = 10};
  make_client_opt(&t, 2, &o);
  mesh_hf_request req = {.repo = REPO, .model_dir = model};
  assert_int_equal(mesh_hf_start(t.c, &req, &t.first_id), 0);
  loop(&t);
  assert_int_equal(g_remover.removed, 1);
  assert_int_equal(t.failed, 1);
  assert_int_equal(t.last_err, -ENOENT);
  print_message("message: %s\n", t.last_msg);
  assert_non_null(strstr(t.last_msg, "removed while downloading"));
  mesh_hf_counters k;
  mesh_hf_get_counters(t.c, &k);
  assert_int_equal(k.io_errors, 1);
  /* No weight was put in place. */
  char path[4400];
  snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", model);
  assert_int_not_equal(access(path, F_OK), 0);
  snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", model);
  assert_int_not_equal(access(path, F_OK), 0);
  free_client(&t);
  hub_stop(&h);
  rmtree(dir);
  free(dir);
}

int main(int argc, char **argv)
{
  char self[4096];
  snprintf(self, sizeof self, "%s", argv[0]);
  snprintf(hfhub_path, sizeof hfhub_path, "%s/hfhub", dirname(self));
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_download_reports_in_order),
      cmocka_unit_test(test_in_place_checked_by_hash),
      cmocka_unit_test(test_cancel_from_listed_callback),
      cmocka_unit_test(test_start_from_callback_and_queue),
      cmocka_unit_test(test_free_with_downloads_in_flight),
      cmocka_unit_test(test_failure_reports_message),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_backpressure_pauses_and_resumes),
      cmocka_unit_test(test_write_failure_fails_with_errno),
      cmocka_unit_test(test_partial_removed_mid_download),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
