/*
 * hfget: downloads one model from a Hugging Face Hub (or the stand-in hfhub)
 * with meshd's downloader, printing one line per report, for tests and
 * benchmarks.
 *
 *   hfget --endpoint URL --repo ORG/NAME [--revision main] --dir DIR
 *         [--token T] [--max-bytes N] [--files-at-once N] [--attempts N]
 *         [--backoff-ms N] [--backoff-cap-ms N] [--progress-ms N]
 *         [--low-speed-bytes N] [--low-speed-time-ms N]
 *         [--cancel-after-bytes N] [--cancel-on-list]
 *         [--no-sync] [--skip-space-check] [--copies N] [--downloads-at-once N]
 *         [--list-only] [--max-list-pages N] [--io-threads N] [--lag]
 * With --copies N, N downloads of the model run into DIR/1 .. DIR/N.
 * HF_ENDPOINT and HF_TOKEN are read when the flags are absent.
 *
 * Output lines (stdout):
 *   listed files=N total=BYTES id=ID free=BYTES present=BYTES
 *   progress done=B total=B files=D/N speed=BPS eta_ms=MS id=ID
 *   completed files=N total=BYTES id=ID
 *   failed err=-ERRNO id=ID message=TEXT
 *   cancelled done=B id=ID
 *   counters requests=N retries=N redirects=N redirects_refused=N bytes=N
 *            verified=N mismatches=N restarts=N list_errors=N write_pauses=N
 *            io_errors=N buffered_peak=N
 * With --lag, a 10 ms timer measures how late the event loop runs it (the
 * time the loop was busy with something else) and the last line is
 *   loop_lag samples=N p50_ms=X p99_ms=X max_ms=X
 * The disk work runs on a work pool of its own (--io-threads N, default the
 * daemon's default), as meshd's runs on the node's.
 * Exit status: 0 completed, 1 failed, 2 usage, 3 cancelled.
 */
#include "coord/hf_client.h"
#include "src/base/log.h"
#include "src/base/pool.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static struct {
  struct event_base *base;
  mesh_hf_client *client;
  uint64_t cancel_after;
  int cancel_on_list;
  int list_only;        /* requests are space checks */
  int running;          /* downloads not finished */
  int failed;           /* downloads failed */
  int cancelled;        /* downloads cancelled */
  struct event *lag_ev; /* --lag: a 10 ms timer measuring the loop's lateness */
  uint64_t lag_due_ns;  /* when it should fire next */
  uint32_t *lag_us;     /* lateness of each firing, microseconds; owned */
  size_t nlag, lag_cap;
} g = {.cancel_after = UINT64_MAX};

#define LAG_PERIOD_NS 10000000ull

static uint64_t mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void lag_arm(void)
{
  struct timeval tv = {0, (suseconds_t)(LAG_PERIOD_NS / 1000)};
  g.lag_due_ns = mono_ns() + LAG_PERIOD_NS;
  evtimer_add(g.lag_ev, &tv);
}

/* How late the loop ran this timer: the time it was busy elsewhere. */
static void on_lag(evutil_socket_t fd, short what, void *arg)
{
  uint64_t now = mono_ns();
  uint64_t late = now > g.lag_due_ns ? (now - g.lag_due_ns) / 1000 : 0;
  if (g.nlag == g.lag_cap) {
    size_t cap = g.lag_cap != 0 ? g.lag_cap * 2 : 4096;
    uint32_t *n = realloc(g.lag_us, cap * sizeof *n);
    if (n == NULL)
      return;
    g.lag_us = n;
    g.lag_cap = cap;
  }
  g.lag_us[g.nlag++] = late > UINT32_MAX ? UINT32_MAX : (uint32_t)late;
  lag_arm();
}

static int cmp_u32(const void *a, const void *b)
{
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static void lag_print(void)
{
  if (g.nlag == 0)
    return;
  qsort(g.lag_us, g.nlag, sizeof *g.lag_us, cmp_u32);
  printf("loop_lag samples=%zu p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", g.nlag,
         g.lag_us[g.nlag / 2] / 1000.0, g.lag_us[g.nlag * 99 / 100] / 1000.0,
         g.lag_us[g.nlag - 1] / 1000.0);
}

static void finish_one(void)
{
  if (--g.running == 0) {
    if (g.lag_ev != NULL)
      event_del(g.lag_ev);
    event_base_loopexit(g.base, NULL);
  }
}

static void on_report(const mesh_hf_report *r, void *ctx)
{
  const mesh_hf_progress *p = &r->progress;
  switch (r->kind) {
  case MESH_HF_REPORT_LISTED:
    printf("listed files=%u total=%" PRIu64 " id=%" PRIu64 " free=%" PRIu64 " present=%" PRIu64
           "\n",
           p->files_total, p->total_bytes, r->id, r->free_bytes, r->present_bytes);
    if (g.list_only) {
      finish_one();
      break;
    }
    if (g.cancel_on_list) {
      mesh_hf_cancel(g.client, r->id);
      printf("cancelled done=%" PRIu64 " id=%" PRIu64 "\n", p->done_bytes, r->id);
      g.cancelled++;
      finish_one();
    }
    break;
  case MESH_HF_REPORT_PROGRESS:
    printf("progress done=%" PRIu64 " total=%" PRIu64 " files=%u/%u speed=%" PRIu64
           " eta_ms=%" PRId64 " id=%" PRIu64 "\n",
           p->done_bytes, p->total_bytes, p->files_done, p->files_total, p->speed_bps,
           p->eta_ms == UINT64_MAX ? (int64_t)-1 : (int64_t)p->eta_ms, r->id);
    if (p->done_bytes >= g.cancel_after) {
      mesh_hf_cancel(g.client, r->id);
      printf("cancelled done=%" PRIu64 " id=%" PRIu64 "\n", p->done_bytes, r->id);
      g.cancelled++;
      finish_one();
    }
    break;
  case MESH_HF_REPORT_COMPLETED:
    printf("completed files=%u total=%" PRIu64 " id=%" PRIu64 "\n", p->files_total, p->total_bytes,
           r->id);
    finish_one();
    break;
  case MESH_HF_REPORT_FAILED:
    printf("failed err=%d id=%" PRIu64 " message=%s\n", r->err, r->id, r->message);
    g.failed++;
    finish_one();
    break;
  }
  fflush(stdout);
}

static void usage(FILE *f)
{
  fprintf(f, "usage: hfget --endpoint URL --repo ORG/NAME [--revision REV] --dir DIR\n"
             "             [--token T] [--max-bytes N] [--files-at-once N] [--attempts N]\n"
             "             [--backoff-ms N] [--backoff-cap-ms N] [--progress-ms N]\n"
             "             [--low-speed-bytes N] [--low-speed-time-ms N]\n"
             "             [--cancel-after-bytes N] [--cancel-on-list]\n"
             "             [--no-sync] [--skip-space-check] [--verbose]\n"
             "             [--copies N] [--downloads-at-once N] [--list-only]\n"
             "             [--max-list-pages N] [--io-threads N] [--lag]\n");
}

int main(int argc, char **argv)
{
  mesh_hf_options o = {.endpoint = getenv("HF_ENDPOINT"), .token = getenv("HF_TOKEN"), .seed = 1};
  mesh_hf_request req = {.revision = "main"};
  int copies = 1;
  int lag = 0;
  unsigned io_threads = mesh_pool_default_threads();
  static const struct option opts[] = {{"endpoint", required_argument, NULL, 'e'},
                                       {"repo", required_argument, NULL, 'r'},
                                       {"revision", required_argument, NULL, 'v'},
                                       {"dir", required_argument, NULL, 'd'},
                                       {"token", required_argument, NULL, 't'},
                                       {"max-bytes", required_argument, NULL, 'm'},
                                       {"files-at-once", required_argument, NULL, 'F'},
                                       {"attempts", required_argument, NULL, 'a'},
                                       {"backoff-ms", required_argument, NULL, 'b'},
                                       {"backoff-cap-ms", required_argument, NULL, 'B'},
                                       {"progress-ms", required_argument, NULL, 'p'},
                                       {"low-speed-time-ms", required_argument, NULL, 'l'},
                                       {"low-speed-bytes", required_argument, NULL, 'L'},
                                       {"cancel-after-bytes", required_argument, NULL, 'c'},
                                       {"cancel-on-list", no_argument, NULL, 'C'},
                                       {"no-sync", no_argument, NULL, 'n'},
                                       {"skip-space-check", no_argument, NULL, 's'},
                                       {"verbose", no_argument, NULL, 'V'},
                                       {"copies", required_argument, NULL, 'k'},
                                       {"list-only", no_argument, NULL, 'O'},
                                       {"max-list-pages", required_argument, NULL, 'x'},
                                       {"downloads-at-once", required_argument, NULL, 'D'},
                                       {"io-threads", required_argument, NULL, 'T'},
                                       {"lag", no_argument, NULL, 'G'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'e':
      o.endpoint = optarg;
      break;
    case 'r':
      req.repo = optarg;
      break;
    case 'v':
      req.revision = optarg;
      break;
    case 'd':
      req.model_dir = optarg;
      break;
    case 't':
      o.token = optarg;
      break;
    case 'm':
      req.max_bytes = strtoull(optarg, NULL, 10);
      break;
    case 'F':
      o.files_at_once = (int)strtol(optarg, NULL, 10);
      break;
    case 'a':
      o.max_attempts = (unsigned)strtoul(optarg, NULL, 10);
      break;
    case 'b':
      o.backoff_base_ms = strtoull(optarg, NULL, 10);
      break;
    case 'B':
      o.backoff_cap_ms = strtoull(optarg, NULL, 10);
      break;
    case 'p':
      o.progress_interval_ms = strtoull(optarg, NULL, 10);
      break;
    case 'l':
      o.low_speed_time_ms = strtoull(optarg, NULL, 10);
      break;
    case 'L':
      o.low_speed_bytes = strtoull(optarg, NULL, 10);
      break;
    case 'c':
      g.cancel_after = strtoull(optarg, NULL, 10);
      break;
    case 'C':
      g.cancel_on_list = 1;
      break;
    case 'n':
      o.no_sync = true;
      break;
    case 's':
      o.skip_space_check = true;
      break;
    case 'x':
      o.max_list_pages = (unsigned)strtoul(optarg, NULL, 10);
      break;
    case 'O':
      g.list_only = 1;
      req.list_only = true;
      break;
    case 'k':
      copies = (int)strtol(optarg, NULL, 10);
      break;
    case 'D':
      o.downloads_at_once = (int)strtol(optarg, NULL, 10);
      break;
    case 'T':
      io_threads = (unsigned)strtoul(optarg, NULL, 10);
      break;
    case 'V':
      mesh_log_set_level(MESH_LOG_DEBUG);
      break;
    case 'G':
      lag = 1;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (req.repo == NULL || req.model_dir == NULL || copies < 1 || copies > 64) {
    usage(stderr);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  g.base = event_base_new();
  mesh_pool *pool = NULL;
  int rc = mesh_pool_new(g.base, io_threads, &pool);
  if (rc != 0) {
    fprintf(stderr, "hfget: work pool of %u threads: %s\n", io_threads, strerror(-rc));
    return 2;
  }
  rc = mesh_hf_client_new(g.base, pool, &o, on_report, NULL, &g.client);
  if (rc != 0) {
    fprintf(stderr, "hfget: %s\n", rc == -EINVAL ? "bad endpoint or token" : "out of memory");
    return 2;
  }
  const char *dir = req.model_dir;
  char path[4096];
  if (copies > 1 && mkdir(dir, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "hfget: %s: %s\n", dir, strerror(errno));
    return 2;
  }
  for (int i = 1; i <= copies; i++) {
    if (copies > 1) {
      snprintf(path, sizeof path, "%s/%d", dir, i);
      req.model_dir = path;
    }
    uint64_t id;
    rc = mesh_hf_start(g.client, &req, &id);
    if (rc != 0) {
      fprintf(stderr, "hfget: bad repo or revision\n");
      return 2;
    }
    g.running++;
  }
  if (lag) {
    g.lag_ev = evtimer_new(g.base, on_lag, NULL);
    if (g.lag_ev == NULL) {
      fprintf(stderr, "hfget: out of memory\n");
      return 2;
    }
    lag_arm();
  }
  event_base_dispatch(g.base);
  lag_print();
  if (g.lag_ev != NULL)
    event_free(g.lag_ev);
  free(g.lag_us);
  mesh_hf_counters k;
  mesh_hf_get_counters(g.client, &k);
  printf("counters requests=%" PRIu64 " retries=%" PRIu64 " redirects=%" PRIu64
         " redirects_refused=%" PRIu64 " bytes=%" PRIu64 " verified=%" PRIu64 " mismatches=%" PRIu64
         " in_place_mismatches=%" PRIu64 " restarts=%" PRIu64 " list_errors=%" PRIu64
         " write_pauses=%" PRIu64 " io_errors=%" PRIu64 " buffered_peak=%" PRIu64 "\n",
         k.requests, k.retries, k.redirects, k.redirects_refused, k.bytes_received,
         k.files_verified, k.hash_mismatches, k.in_place_mismatches, k.restarts, k.list_errors,
         k.write_pauses, k.io_errors, k.buffered_peak);
  mesh_hf_client_free(g.client);
  mesh_pool_free(pool);
  event_base_free(g.base);
  if (g.failed > 0)
    return 1;
  return g.cancelled > 0 ? 3 : 0;
}
