/* Test-only switches: read once from the environment, carried in as node and download hooks. */
#include "src/daemon/test_faults.h"

#include "net/fault.h"
#include "net/rdma.h"
#include "src/base/err.h"
#include "src/base/log.h"
#include "src/base/rng.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct mesh_test_faults {
  bool any;                      /* some MESHD_TEST_ variable is set */
  bool send_faults;              /* MESHD_TEST_FAULTS: spec holds it */
  mesh_fault_spec spec;          /* the delay line's spec at start */
  mesh_fault_line *line;         /* the delay line; owned by the net once wrapped */
  uint32_t rdma_bulk_drop;       /* MESHD_TEST_RDMA_BULK_DROP, 0: none */
  uint64_t rdma_bulk_frames;     /* bulk frames RDMA was about to post (the loop's) */
  long store_fail;               /* MESHD_TEST_STORE_FAIL, 0: none */
  uint64_t slow_store_ms;        /* MESHD_TEST_SLOW_STORE_MS */
  uint64_t slow_sync_ms;         /* MESHD_TEST_SLOW_SYNC_MS */
  uint64_t view_events_to_lose;  /* MESHD_TEST_LOSE_VIEW_EVENTS, counted down on the loop */
  uint64_t range_kib;            /* MESHD_TEST_RANGE_KIB */
  bool tamper_lists;             /* MESHD_TEST_TAMPER_FILE_LISTS */
  bool corrupt_uploads;          /* MESHD_TEST_CORRUPT_UPLOADS */
  uint64_t slow_uploads_ms;      /* MESHD_TEST_SLOW_UPLOADS_MS */
  mesh_node_hooks node_hooks;    /* arg: this set */
  mesh_downloads_hooks dl_hooks; /* arg: this set */
};

/* The variable name, or NULL when unset or empty. Notes that a switch is
 * set. */
static const char *switch_text(mesh_test_faults *tf, const char *name)
{
  const char *v = getenv(name);
  if (v == NULL || v[0] == '\0')
    return NULL;
  tf->any = true;
  return v;
}

/* A count from min to max into *out (unchanged when unset). 0 or -EINVAL
 * with err naming the variable and the range it takes. */
static int read_count(mesh_test_faults *tf, const char *name, unsigned long long min,
                      unsigned long long max, unsigned long long *out, char *err, size_t errlen)
{
  const char *v = switch_text(tf, name);
  if (v == NULL)
    return 0;
  char *end = NULL;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (v[0] < '0' || v[0] > '9' || end == v || *end != '\0' || errno != 0 || n < min || n > max) {
    snprintf(err, errlen, "%s=%.40s: not a number from %llu to %llu (a test-only switch)", name, v,
             min, max);
    return -EINVAL;
  }
  *out = n;
  return 0;
}

static void sleep_ms(uint64_t ms)
{
  struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- node hooks ---------------------------------------------------------- */

/* MESHD_TEST_RDMA_BULK_DROP: every n-th bulk frame of this node is lost. */
static bool rdma_lose_bulk(void *arg)
{
  mesh_test_faults *tf = arg;
  tf->rdma_bulk_frames++;
  return tf->rdma_bulk_frames % tf->rdma_bulk_drop == 0;
}

static void node_rdma_config(void *arg, struct mesh_rdma_config *c)
{
  mesh_test_faults *tf = arg;
  if (tf->rdma_bulk_drop == 0)
    return;
  c->bulk_lose = rdma_lose_bulk;
  c->bulk_lose_arg = tf;
  LOG_WARN("rdma", "test fault: every %lu-th bulk frame over RDMA is dropped",
           (unsigned long)tf->rdma_bulk_drop);
}

/* The delay line of MESHD_TEST_FAULTS (net/fault.h) around every transport,
 * those registered later too. */
static int node_net_ready(void *arg, mesh_net *net, mesh_loop *loop, size_t frame_max, char *err,
                          size_t errlen)
{
  mesh_test_faults *tf = arg;
  if (!tf->send_faults)
    return 0;
  mesh_rng rng;
  mesh_rng_seed_os(&rng);
  int rc = mesh_fault_line_new(net, mesh_loop_base(loop), &tf->spec, mesh_rng_next(&rng), frame_max,
                               &tf->line);
  if (rc != 0) {
    snprintf(err, errlen, "%s: %s", MESH_FAULT_ENV, mesh_strerror(rc));
    return rc;
  }
  rc = mesh_net_wrap(net, mesh_fault_line_wrap, mesh_fault_line_release, tf->line);
  if (rc != 0) {
    mesh_fault_line_free(tf->line);
    tf->line = NULL;
    snprintf(err, errlen, "%s: %s", MESH_FAULT_ENV, mesh_strerror(rc));
    return rc;
  }
  char desc[256];
  mesh_fault_spec_describe(&tf->spec, desc, sizeof desc);
  LOG_WARN("node",
           "TEST FAULT INJECTION IS ON (%s is set): outgoing messages are delayed (%s). "
           "This is for tests only; never run a production node with it.",
           MESH_FAULT_ENV, desc);
  return 0;
}

/* SIGHUP: the home's test-faults file ("off", or a spec) replaces the delay
 * line's spec, so that a scenario can change the faults of a running node. */
static void node_reload(void *arg, const char *home)
{
  mesh_test_faults *tf = arg;
  char path[PATH_MAX];
  int w = snprintf(path, sizeof path, "%s/%s", home, MESH_FAULT_FILE);
  if (w < 0 || (size_t)w >= sizeof path)
    return;
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return;
  char text[MESH_FAULT_SPEC_MAX + 2];
  size_t len = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[len] = '\0';
  if (tf->line == NULL) {
    LOG_WARN("node", "%s ignored: fault injection is only armed by %s at start", path,
             MESH_FAULT_ENV);
    return;
  }
  mesh_fault_spec spec;
  char why[160];
  int rc = mesh_fault_spec_parse(text, &spec, why, sizeof why);
  if (rc == 0)
    rc = mesh_fault_line_set_spec(tf->line, &spec);
  if (rc != 0) {
    LOG_ERROR("node", "%s: %s; test faults unchanged", path,
              rc == -EINVAL ? why : mesh_strerror(rc));
    return;
  }
  char desc[256];
  mesh_fault_spec_describe(&spec, desc, sizeof desc);
  LOG_WARN("node", "TEST FAULT INJECTION now: %s (from %s)", desc, path);
}

/* ---- download hooks ------------------------------------------------------ */

static void dl_store_opened(void *arg, mesh_store *store)
{
  mesh_test_faults *tf = arg;
  if (tf->store_fail > 0)
    mesh_store_fail_after(store, (int)tf->store_fail, -EIO);
}

static void slow_sync(void *arg)
{
  mesh_test_faults *tf = arg;
  sleep_ms(tf->slow_sync_ms);
}

static void dl_hf_options(void *arg, mesh_hf_options *o)
{
  mesh_test_faults *tf = arg;
  if (tf->slow_sync_ms > 0) {
    o->before_sync = slow_sync;
    o->before_sync_arg = tf;
  }
  if (tf->range_kib > 0) {
    o->range_bytes = tf->range_kib << 10;
    o->range_threshold = 2 * o->range_bytes;
  }
}

static void dl_before_store_txn(void *arg)
{
  mesh_test_faults *tf = arg;
  if (tf->slow_store_ms > 0)
    sleep_ms(tf->slow_store_ms);
}

static bool dl_pass_view_event(void *arg)
{
  mesh_test_faults *tf = arg;
  if (tf->view_events_to_lose == 0)
    return true;
  tf->view_events_to_lose--;
  return false;
}

static void dl_list_sealed(void *arg, uint8_t *blob, size_t len)
{
  mesh_test_faults *tf = arg;
  if (tf->tamper_lists && len >= 2)
    blob[len - 2] ^= 0x01; /* inside the manifest's last line */
}

static void dl_before_chunk_read(void *arg)
{
  mesh_test_faults *tf = arg;
  if (tf->slow_uploads_ms > 0)
    sleep_ms(tf->slow_uploads_ms);
}

static bool dl_chunk_out(void *arg, uint8_t *buf, size_t len)
{
  mesh_test_faults *tf = arg;
  if (!tf->corrupt_uploads || len == 0)
    return false;
  buf[len / 2] ^= 0xff;
  return true;
}

/* ---- reading ------------------------------------------------------------- */

/* The numeric switches into tf. 0 or -EINVAL with err. */
static int read_counts(mesh_test_faults *tf, char *err, size_t errlen)
{
  unsigned long long drop = 0, store_fail = 0, slow_store = 0, slow_sync = 0, lose = 0, range = 0,
                     tamper = 0, corrupt = 0, slow_up = 0;
  int rc;
  if ((rc = read_count(tf, "MESHD_TEST_RDMA_BULK_DROP", 0, UINT32_MAX, &drop, err, errlen)) != 0 ||
      (rc = read_count(tf, "MESHD_TEST_STORE_FAIL", 1, INT32_MAX, &store_fail, err, errlen)) != 0 ||
      (rc = read_count(tf, "MESHD_TEST_SLOW_STORE_MS", 1, 600000, &slow_store, err, errlen)) != 0 ||
      (rc = read_count(tf, "MESHD_TEST_SLOW_SYNC_MS", 1, 600000, &slow_sync, err, errlen)) != 0 ||
      (rc = read_count(tf, "MESHD_TEST_LOSE_VIEW_EVENTS", 1, INT32_MAX, &lose, err, errlen)) != 0 ||
      (rc = read_count(tf, "MESHD_TEST_RANGE_KIB", 1, 1UL << 20, &range, err, errlen)) != 0 ||
      (rc = read_count(tf, "MESHD_TEST_TAMPER_FILE_LISTS", 1, 1, &tamper, err, errlen)) != 0 ||
      (rc = read_count(tf, "MESHD_TEST_CORRUPT_UPLOADS", 1, 1, &corrupt, err, errlen)) != 0 ||
      (rc = read_count(tf, "MESHD_TEST_SLOW_UPLOADS_MS", 1, 600000, &slow_up, err, errlen)) != 0)
    return rc;
  tf->rdma_bulk_drop = (uint32_t)drop;
  tf->store_fail = (long)store_fail;
  tf->slow_store_ms = slow_store;
  tf->slow_sync_ms = slow_sync;
  tf->view_events_to_lose = lose;
  tf->range_kib = range;
  tf->tamper_lists = tamper == 1;
  tf->corrupt_uploads = corrupt == 1;
  tf->slow_uploads_ms = slow_up;
  return 0;
}

/* One warning per switch that is on, so that a node started with one says
 * so in its log. */
static void warn_on(const mesh_test_faults *tf)
{
  if (tf->store_fail > 0)
    LOG_WARN("downloads", "test fault injection: store step %ld from now fails", tf->store_fail);
  if (tf->slow_store_ms > 0)
    LOG_WARN("downloads", "test fault injection: every store transaction first waits %llu ms",
             (unsigned long long)tf->slow_store_ms);
  if (tf->slow_sync_ms > 0)
    LOG_WARN("downloads", "test fault injection: every file sync first waits %llu ms",
             (unsigned long long)tf->slow_sync_ms);
  if (tf->range_kib > 0)
    LOG_WARN("downloads", "test setting: files of %llu KiB and more are fetched in %llu KiB ranges",
             (unsigned long long)(2 * tf->range_kib), (unsigned long long)tf->range_kib);
  if (tf->tamper_lists)
    LOG_WARN("downloads", "test fault injection: every file list served is changed after signing");
  if (tf->corrupt_uploads)
    LOG_WARN("downloads", "test fault injection: every model file chunk served is corrupted");
  if (tf->slow_uploads_ms > 0)
    LOG_WARN("downloads", "test fault injection: every model file chunk served first waits %llu ms",
             (unsigned long long)tf->slow_uploads_ms);
  if (tf->view_events_to_lose > 0)
    LOG_WARN("downloads",
             "test fault injection: the first %llu view events are withheld from the coordinator",
             (unsigned long long)tf->view_events_to_lose);
}

int mesh_test_faults_read(mesh_test_faults **out, char *err, size_t errlen)
{
  *out = NULL;
  mesh_test_faults *tf = calloc(1, sizeof *tf);
  if (tf == NULL)
    return -ENOMEM;
  int rc = 0;
  const char *spec = switch_text(tf, MESH_FAULT_ENV);
  if (spec != NULL) {
    char why[160];
    if ((rc = mesh_fault_spec_parse(spec, &tf->spec, why, sizeof why)) != 0) {
      snprintf(err, errlen, "%s: %s", MESH_FAULT_ENV, why);
      goto fail;
    }
    tf->send_faults = true;
  }
  if ((rc = read_counts(tf, err, errlen)) != 0)
    goto fail;
  if (!tf->any) {
    free(tf);
    return 0;
  }
  warn_on(tf);
  tf->node_hooks = (mesh_node_hooks){.arg = tf,
                                     .rdma_config = node_rdma_config,
                                     .net_ready = node_net_ready,
                                     .reload = node_reload};
  tf->dl_hooks = (mesh_downloads_hooks){.arg = tf,
                                        .store_opened = dl_store_opened,
                                        .hf_options = dl_hf_options,
                                        .before_store_txn = dl_before_store_txn,
                                        .pass_view_event = dl_pass_view_event,
                                        .list_sealed = dl_list_sealed,
                                        .before_chunk_read = dl_before_chunk_read,
                                        .chunk_out = dl_chunk_out};
  *out = tf;
  return 0;

fail:
  free(tf);
  return rc;
}

void mesh_test_faults_free(mesh_test_faults *tf)
{
  free(tf); /* the delay line is the net's */
}

const mesh_node_hooks *mesh_test_faults_node_hooks(mesh_test_faults *tf)
{
  return tf != NULL ? &tf->node_hooks : NULL;
}

const mesh_downloads_hooks *mesh_test_faults_downloads_hooks(mesh_test_faults *tf)
{
  return tf != NULL ? &tf->dl_hooks : NULL;
}

bool mesh_test_faults_active(const mesh_test_faults *tf)
{
  return tf != NULL && tf->any;
}

const struct mesh_fault_line *mesh_test_faults_line(const mesh_test_faults *tf)
{
  return tf != NULL ? tf->line : NULL;
}
