/*
 * api_fake: the control API served over a fake backend, so that meshctl and
 * its tests exercise the real HTTP path without a mesh.
 *
 * The fake node knows six members (itself, two alive peers whose IDs share a
 * prefix, a suspect, a dead and a departed one) and download entries in
 * every status, among them an abandoned one. Commands change that state the
 * way the coordinator's rules say (a command for a node outside the view is
 * refused, a delete of an unknown model is 404, ...) and each one received
 * is appended to the --record file as one line:
 *   start NODE MODEL REVISION | delete NODE MODEL | cancel NODE MODEL | gc | leave
 *
 * Usage: api_fake [--api ADDR] [--token TOKEN] [--record FILE]
 * Prints "READY <address>" on stdout once listening; stops on SIGTERM/SIGINT.
 */
#include "src/daemon/api.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FAKE_MAX_DOWNLOADS 64
#define FAKE_MAX_JOURNAL 256

static const char *const fake_ids[] = {
    "12D3KooWSe1fMASi45ub7Qe4ZE36UT5G6cU4ud8Fhhe4deS4F3cw", /* self */
    "12D3KooWAbc9KTAb8dLcukC7edhDQ7cn5d4gEYkbUrMWeWQLGsCm", /* alive */
    "12D3KooWAbdrG6dLaYyNoVKf58ZTBqNAYT3j5qcdsyuMNmPfYetW", /* alive */
    "12D3KooWSus5v6JXmj54omLidkuVKnRyjP2WPBg8Y4ErK9pGSSxY", /* suspect */
    "12D3KooWDead6BVScJy9uUxcJnTPkyRFA6CAFjF1YveCHK1ATbQg", /* dead */
    "12D3KooWLeftdM9mwZgikp4WzxrxktcSSSS7XhS4D5EVB8Nf471d", /* left */
};
#define FAKE_NMEMBERS 6

typedef struct fake_member {
  mesh_api_member_state state;
  uint64_t epoch;
  uint64_t incarnation;
  uint64_t state_ms;
  const char *transport;
  char addr[96];
} fake_member;

typedef struct fake_download {
  bool used;
  int owner; /* index into fake_ids */
  char model[MESH_API_MODEL_ID_MAX];
  char revision[MESH_API_REVISION_MAX];
  mesh_api_download_status status;
  uint64_t done, total;
  uint32_t files_done, files_total;
  uint64_t speed;
  int64_t eta_ms;
  char error[128];
  bool abandoned;
  uint64_t collect_in_ms;
} fake_download;

typedef struct fake_journal {
  uint64_t seq;
  int64_t unix_ms;
  char kind[16];
  char node[MESH_API_NODE_ID_MAX];
  char model[MESH_API_MODEL_ID_MAX];
  char message[160];
} fake_journal;

typedef struct fake {
  fake_member members[FAKE_NMEMBERS];
  fake_download dl[FAKE_MAX_DOWNLOADS];
  fake_journal journal[FAKE_MAX_JOURNAL]; /* ring */
  size_t njournal;
  uint64_t next_seq;
  FILE *record;
  uint64_t gc_collections;
  bool left;
  char models_dir[64];
} fake;

static void journal_add(fake *f, const char *kind, const char *node, const char *model,
                        const char *msg)
{
  fake_journal *j = &f->journal[f->next_seq % FAKE_MAX_JOURNAL];
  memset(j, 0, sizeof(*j));
  j->seq = f->next_seq++;
  j->unix_ms = 1764000000000 + (int64_t)j->seq * 1000;
  snprintf(j->kind, sizeof(j->kind), "%s", kind);
  snprintf(j->node, sizeof(j->node), "%s", node != NULL ? node : "");
  snprintf(j->model, sizeof(j->model), "%s", model != NULL ? model : "");
  snprintf(j->message, sizeof(j->message), "%s", msg);
  if (f->njournal < FAKE_MAX_JOURNAL)
    f->njournal++;
}

static void record(fake *f, const char *fmt, const char *a, const char *b, const char *c)
{
  if (f->record == NULL)
    return;
  fprintf(f->record, "%s", fmt);
  if (a != NULL)
    fprintf(f->record, " %s", a);
  if (b != NULL)
    fprintf(f->record, " %s", b);
  if (c != NULL)
    fprintf(f->record, " %s", c);
  fputc('\n', f->record);
  fflush(f->record);
}

static fake_download *add_download(fake *f, int owner, const char *model,
                                   mesh_api_download_status st)
{
  for (size_t i = 0; i < FAKE_MAX_DOWNLOADS; i++) {
    if (!f->dl[i].used) {
      fake_download *d = &f->dl[i];
      memset(d, 0, sizeof(*d));
      d->used = true;
      d->owner = owner;
      d->status = st;
      d->eta_ms = -1;
      snprintf(d->model, sizeof(d->model), "%s", model);
      snprintf(d->revision, sizeof(d->revision), "main");
      return d;
    }
  }
  return NULL;
}

static void fake_init(fake *f)
{
  memset(f, 0, sizeof(*f));
  static const mesh_api_member_state states[FAKE_NMEMBERS] = {MESH_API_ALIVE, MESH_API_ALIVE,
                                                              MESH_API_ALIVE, MESH_API_SUSPECT,
                                                              MESH_API_DEAD,  MESH_API_LEFT};
  static const uint64_t ages[FAKE_NMEMBERS] = {7200000, 300000, 3000, 1500, 90000, 45000};
  for (int i = 0; i < FAKE_NMEMBERS; i++) {
    fake_member *m = &f->members[i];
    m->state = states[i];
    m->epoch = 3 + (uint64_t)i;
    m->incarnation = (uint64_t)i % 3;
    m->state_ms = ages[i];
    m->transport = i == 0 ? NULL : (i == 1 ? "rdma" : (i <= 3 ? "tcp" : NULL));
    snprintf(m->addr, sizeof(m->addr), "/ip4/10.0.0.%d/tcp/52416", i + 1);
  }
  snprintf(f->models_dir, sizeof(f->models_dir), "/var/lib/meshd/models");
  fake_download *d =
      add_download(f, 0, "mlx-community/Llama-3.2-1B-Instruct-4bit", MESH_API_DL_COMPLETED);
  d->done = d->total = 695000000;
  d->files_done = d->files_total = 6;
  d = add_download(f, 0, "mlx-community/Qwen3-30B-A3B-4bit", MESH_API_DL_ONGOING);
  d->total = 17200000000ull;
  d->done = 6880000000ull;
  d->files_done = 3;
  d->files_total = 9;
  d->speed = 52000000;
  d->eta_ms = 198000;
  d = add_download(f, 1, "org/pending-model", MESH_API_DL_PENDING);
  d = add_download(f, 1, "org/failed-model", MESH_API_DL_FAILED);
  d->total = 1000;
  snprintf(d->error, sizeof(d->error), "Directory not empty: org--failed-model");
  d = add_download(f, 2, "org/deleting-model", MESH_API_DL_DELETING);
  d->done = d->total = 2048;
  d = add_download(f, 4, "org/abandoned-model", MESH_API_DL_ONGOING);
  d->total = 4000000000ull;
  d->done = 1000000000ull;
  d->abandoned = true;
  d->collect_in_ms = 120000;
  journal_add(f, "join", fake_ids[1], NULL, "peer joined the view");
  journal_add(f, "dead", fake_ids[4], NULL, "peer declared dead; its entries are abandoned");
  journal_add(f, "complete", fake_ids[0], "mlx-community/Llama-3.2-1B-Instruct-4bit",
              "download verified and complete");
}

static int find_member(const char *id)
{
  for (int i = 0; i < FAKE_NMEMBERS; i++) {
    if (strcmp(fake_ids[i], id) == 0)
      return i;
  }
  return -1;
}

/* The rules of a command's target: known, and in the view. */
static int check_target(fake *f, const char *node, char *err, size_t errlen)
{
  int i = find_member(node);
  if (i < 0) {
    snprintf(err, errlen, "unknown node %s", node);
    return -ENOENT;
  }
  if (f->members[i].state == MESH_API_DEAD || f->members[i].state == MESH_API_LEFT) {
    snprintf(err, errlen, "node %s is not in the view (%s)", node,
             f->members[i].state == MESH_API_DEAD ? "dead" : "left");
    return -EHOSTUNREACH;
  }
  return i;
}

static fake_download *find_download(fake *f, int owner, const char *model)
{
  for (size_t i = 0; i < FAKE_MAX_DOWNLOADS; i++) {
    if (f->dl[i].used && f->dl[i].owner == owner && strcmp(f->dl[i].model, model) == 0)
      return &f->dl[i];
  }
  return NULL;
}

static int fake_get_self(void *ctx, mesh_api_self *out)
{
  fake *f = ctx;
  static const char *addrs[1];
  addrs[0] = f->members[0].addr;
  out->peer_id = fake_ids[0];
  out->epoch = f->members[0].epoch;
  out->addrs = addrs;
  out->naddrs = 1;
  out->agent = "meshd/0.1.0 (api_fake)";
  return 0;
}

static int fake_list_members(void *ctx, mesh_api_member_fn fn, void *arg)
{
  fake *f = ctx;
  for (int i = 0; i < FAKE_NMEMBERS; i++) {
    const fake_member *fm = &f->members[i];
    const char *addrs[1] = {fm->addr};
    mesh_api_member m = {.peer_id = fake_ids[i],
                         .addrs = addrs,
                         .naddrs = 1,
                         .epoch = fm->epoch,
                         .incarnation = fm->incarnation,
                         .state = fm->state,
                         .state_ms = fm->state_ms,
                         .transport = fm->transport,
                         .is_self = i == 0};
    int rc = fn(arg, &m);
    if (rc != 0)
      return rc < 0 ? rc : 0;
  }
  return 0;
}

static int fake_list_downloads(void *ctx, mesh_api_download_fn fn, void *arg)
{
  fake *f = ctx;
  for (size_t i = 0; i < FAKE_MAX_DOWNLOADS; i++) {
    const fake_download *fd = &f->dl[i];
    if (!fd->used)
      continue;
    char dir[MESH_API_MODEL_ID_MAX + 80];
    snprintf(dir, sizeof(dir), "%s/%s", f->models_dir, fd->model);
    char *slash = strchr(dir + strlen(f->models_dir) + 1, '/');
    if (slash != NULL) {
      memmove(slash + 2, slash + 1, strlen(slash + 1) + 1);
      slash[0] = '-';
      slash[1] = '-';
    }
    mesh_api_download d = {.owner_id = fake_ids[fd->owner],
                           .owner_epoch = f->members[fd->owner].epoch,
                           .model_id = fd->model,
                           .revision = fd->revision,
                           .status = fd->status,
                           .bytes_done = fd->done,
                           .bytes_total = fd->total,
                           .files_done = fd->files_done,
                           .files_total = fd->files_total,
                           .speed_bps = fd->speed,
                           .eta_ms = fd->eta_ms,
                           .model_dir = dir,
                           .error = fd->error[0] != '\0' ? fd->error : NULL,
                           .abandoned = fd->abandoned,
                           .collect_in_ms = fd->collect_in_ms};
    int rc = fn(arg, &d);
    if (rc != 0)
      return rc < 0 ? rc : 0;
  }
  return 0;
}

static int fake_journal_list(void *ctx, size_t limit, mesh_api_journal_fn fn, void *arg)
{
  fake *f = ctx;
  for (size_t k = 0; k < f->njournal && k < limit; k++) {
    const fake_journal *j = &f->journal[(f->next_seq - 1 - k) % FAKE_MAX_JOURNAL];
    mesh_api_journal_entry e = {.seq = j->seq,
                                .unix_ms = j->unix_ms,
                                .kind = j->kind,
                                .node_id = j->node[0] != '\0' ? j->node : NULL,
                                .model_id = j->model[0] != '\0' ? j->model : NULL,
                                .message = j->message};
    int rc = fn(arg, &e);
    if (rc != 0)
      return rc < 0 ? rc : 0;
  }
  return 0;
}

static void fake_metrics(void *ctx, mesh_api_metrics *m)
{
  fake *f = ctx;
  static const char *const names[] = {"alive", "suspect", "dead", "left"};
  uint64_t by_state[4] = {0};
  for (int i = 0; i < FAKE_NMEMBERS; i++)
    by_state[f->members[i].state]++;
  for (int s = 0; s < 4; s++) {
    const char *l[] = {"state", names[s], NULL};
    mesh_api_metric(m, "meshd_members", MESH_API_GAUGE, "Members known, by state.", l,
                    (double)by_state[s]);
  }
  mesh_api_metric(m, "meshd_swim_probes_total", MESH_API_COUNTER, "Probes sent.", NULL, 1234);
  mesh_api_metric(m, "meshd_swim_suspicions_total", MESH_API_COUNTER, "Suspicions raised.", NULL,
                  7);
  mesh_api_metric(m, "meshd_swim_refutations_total", MESH_API_COUNTER,
                  "Suspicions of this node it refuted.", NULL, 2);
  static const char *const transports[] = {"tcp", "rdma"};
  static const char *const dirs[] = {"out", "in"};
  for (int t = 0; t < 2; t++) {
    for (int d = 0; d < 2; d++) {
      const char *l[] = {"transport", transports[t], "dir", dirs[d], NULL};
      mesh_api_metric(m, "meshd_transport_bytes_total", MESH_API_COUNTER,
                      "Bytes carried, by transport and direction.", l,
                      (double)(56789 * (t + 1) + d));
      mesh_api_metric(m, "meshd_transport_frames_total", MESH_API_COUNTER,
                      "Frames carried, by transport and direction.", l,
                      (double)(321 * (t + 1) + d));
    }
  }
  static const char *const reasons[] = {"bad_tag", "replay", "too_big"};
  for (int r = 0; r < 3; r++) {
    const char *l[] = {"transport", "tcp", "reason", reasons[r], NULL};
    mesh_api_metric(m, "meshd_drops_total", MESH_API_COUNTER, "Frames dropped, by reason.", l,
                    (double)r);
  }
  mesh_api_metric(m, "meshd_download_bytes_total", MESH_API_COUNTER, "Model bytes downloaded.",
                  NULL, 7880000000.0);
  mesh_api_metric(m, "meshd_gc_collected_total", MESH_API_COUNTER,
                  "Entries collected by garbage collection.", NULL, (double)f->gc_collections);
  mesh_api_metric(m, "meshd_journal_records", MESH_API_GAUGE, "Records in the journal.", NULL,
                  (double)f->njournal);
}

static int fake_start(void *ctx, const mesh_api_call *call, const char *node, const char *model,
                      const char *revision, char *err, size_t errlen)
{
  fake *f = ctx;
  int i = check_target(f, node, err, errlen);
  if (i < 0)
    return i;
  if (find_download(f, i, model) != NULL) {
    snprintf(err, errlen, "%s is already on node %s", model, node);
    return -EEXIST;
  }
  fake_download *d = add_download(f, i, model, MESH_API_DL_PENDING);
  if (d == NULL) {
    snprintf(err, errlen, "too many downloads");
    return -EAGAIN;
  }
  snprintf(d->revision, sizeof(d->revision), "%s", revision);
  journal_add(f, "start", node, model, "download requested");
  record(f, "start", node, model, revision);
  return 0;
}

static int fake_delete(void *ctx, const mesh_api_call *call, const char *node, const char *model,
                       const char *revision, char *err, size_t errlen)
{
  fake *f = ctx;
  (void)revision; /* the fake keeps one revision per model */
  int i = check_target(f, node, err, errlen);
  if (i < 0)
    return i;
  fake_download *d = find_download(f, i, model);
  if (d == NULL) {
    snprintf(err, errlen, "no model %s on node %s", model, node);
    return -ENOENT;
  }
  d->status = MESH_API_DL_DELETING;
  journal_add(f, "delete", node, model, "delete requested");
  record(f, "delete", node, model, NULL);
  return 0;
}

static int fake_cancel(void *ctx, const mesh_api_call *call, const char *node, const char *model,
                       const char *revision, char *err, size_t errlen)
{
  fake *f = ctx;
  (void)revision; /* the fake keeps one revision per model */
  int i = check_target(f, node, err, errlen);
  if (i < 0)
    return i;
  fake_download *d = find_download(f, i, model);
  if (d == NULL) {
    snprintf(err, errlen, "no download of %s on node %s", model, node);
    return -ENOENT;
  }
  if (d->status != MESH_API_DL_PENDING && d->status != MESH_API_DL_ONGOING) {
    snprintf(err, errlen, "%s on node %s is not downloading", model, node);
    return -EALREADY;
  }
  d->used = false;
  journal_add(f, "cancel", node, model, "download cancelled");
  record(f, "cancel", node, model, NULL);
  return 0;
}

static int fake_gc(void *ctx, uint64_t *collected, char *err, size_t errlen)
{
  fake *f = ctx;
  uint64_t n = 0;
  for (size_t i = 0; i < FAKE_MAX_DOWNLOADS; i++) {
    if (f->dl[i].used && f->dl[i].abandoned) {
      f->dl[i].used = false;
      n++;
    }
  }
  f->gc_collections += n;
  *collected = n;
  journal_add(f, "gc", NULL, NULL, "collection pass");
  record(f, "gc", NULL, NULL, NULL);
  return 0;
}

static int fake_leave(void *ctx, char *err, size_t errlen)
{
  fake *f = ctx;
  if (f->left) {
    snprintf(err, errlen, "already leaving");
    return -EALREADY;
  }
  f->left = true;
  journal_add(f, "leave", fake_ids[0], NULL, "leaving the mesh");
  record(f, "leave", NULL, NULL, NULL);
  return 0;
}

static const mesh_api_backend_ops fake_ops = {
    .get_self = fake_get_self,
    .list_members = fake_list_members,
    .list_downloads = fake_list_downloads,
    .journal = fake_journal_list,
    .metrics = fake_metrics,
    .start = fake_start,
    .delete_model = fake_delete,
    .cancel = fake_cancel,
    .gc = fake_gc,
    .leave = fake_leave,
};

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
  event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
  mesh_api_options opt = {.addr = "127.0.0.1:0"};
  const char *record_path = NULL;
  for (int i = 1; i < argc; i++) {
    if (i + 1 < argc && strcmp(argv[i], "--api") == 0) {
      opt.addr = argv[++i];
    } else if (i + 1 < argc && strcmp(argv[i], "--token") == 0) {
      opt.token = argv[++i];
    } else if (i + 1 < argc && strcmp(argv[i], "--record") == 0) {
      record_path = argv[++i];
    } else {
      fprintf(stderr, "usage: api_fake [--api ADDR] [--token TOKEN] [--record FILE]\n");
      return 2;
    }
  }
  static fake f;
  fake_init(&f);
  if (record_path != NULL) {
    f.record = fopen(record_path, "a");
    if (f.record == NULL) {
      perror(record_path);
      return 1;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  struct event_base *base = event_base_new();
  mesh_api *api = NULL;
  char err[256];
  if (base == NULL || mesh_api_new(base, &opt, &fake_ops, &f, &api, err, sizeof(err)) < 0) {
    fprintf(stderr, "api_fake: %s\n", base == NULL ? "no event base" : err);
    return 1;
  }
  struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
  struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
  event_add(sigterm, NULL);
  event_add(sigint, NULL);
  char addr[160];
  mesh_api_address(api, addr, sizeof(addr));
  printf("READY %s\n", addr);
  fflush(stdout);
  event_base_dispatch(base);
  mesh_api_free(api);
  event_free(sigterm);
  event_free(sigint);
  event_base_free(base);
  if (f.record != NULL)
    fclose(f.record);
  return 0;
}
