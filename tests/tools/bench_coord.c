/*
 * bench_coord: time and memory of the coordinator core collecting stale
 * entries, against the time to take the same entries in (decode, verify,
 * install), measured in the same run. Used by scripts/bench-coordinator.
 *
 * Usage: bench_coord [--peers N] [--per-peer M] [--budget B] [--mode dead|epoch]
 * Prints one "key value" line per figure.
 */
#include "coord/coord.h"
#include "proto/coord.pb-c.h"
#include "src/base/platform.h"
#include "src/identity/signed.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* A document of count entries of owner, as its coordinator would send it. */
static int make_doc(const mesh_identity *id, size_t count, uint8_t **out, size_t *len)
{
  Mesh__Coord__Entry *e = calloc(count, sizeof *e);
  Mesh__Coord__Entry **ep = calloc(count, sizeof *ep);
  char(*names)[48] = calloc(count, 48);
  if (e == NULL || ep == NULL || names == NULL)
    return -1;
  for (size_t i = 0; i < count; i++) {
    mesh__coord__entry__init(&e[i]);
    snprintf(names[i], 48, "mlx-community/model-%zu", i);
    e[i].model_id = names[i];
    e[i].revision = (char *)"main";
    e[i].status = MESH__COORD__STATUS__COMPLETED;
    e[i].total_bytes = 1000000000;
    e[i].done_bytes = 1000000000;
    ep[i] = &e[i];
  }
  Mesh__Coord__Document d;
  mesh__coord__document__init(&d);
  d.owner.data = (uint8_t *)id->id.b;
  d.owner.len = MESH_PEER_ID_LEN;
  d.epoch = 1;
  d.version = 1;
  d.n_entries = count;
  d.entries = ep;
  size_t plen = mesh__coord__document__get_packed_size(&d);
  uint8_t *payload = malloc(plen + 1);
  mesh__coord__document__pack(&d, payload);
  free(names);
  free(ep);
  free(e);
  uint8_t *env;
  size_t env_len;
  int rc = mesh_envelope_seal(id, MESH_DOMAIN_DOWNLOADS, (const uint8_t *)MESH_COORD_DOC_TYPE,
                              strlen(MESH_COORD_DOC_TYPE), payload, plen, &env, &env_len);
  free(payload);
  if (rc != 0)
    return rc;
  Mesh__Coord__CoordMessage m;
  mesh__coord__coord_message__init(&m);
  m.body_case = MESH__COORD__COORD_MESSAGE__BODY_DOCUMENT;
  m.document.data = env;
  m.document.len = env_len;
  *len = mesh__coord__coord_message__get_packed_size(&m);
  *out = malloc(*len);
  mesh__coord__coord_message__pack(&m, *out);
  free(env);
  return 0;
}

int main(int argc, char **argv)
{
  size_t peers = 100, per = 1000;
  uint32_t budget = 4096;
  int epoch_mode = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--peers") == 0)
      peers = strtoul(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--per-peer") == 0)
      per = strtoul(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--budget") == 0)
      budget = (uint32_t)strtoul(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--mode") == 0)
      epoch_mode = strcmp(argv[i + 1], "epoch") == 0;
    else {
      fprintf(stderr, "usage: %s [--peers N] [--per-peer M] [--budget B] [--mode dead|epoch]\n",
              argv[0]);
      return 2;
    }
  }
  if (peers == 0 || per == 0 || per > MESH_COORD_MAX_DOC_ENTRIES) {
    fprintf(stderr, "bench_coord: --per-peer must be 1..%d\n", MESH_COORD_MAX_DOC_ENTRIES);
    return 2;
  }
  mesh_identity me;
  mesh_identity *ids = calloc(peers, sizeof *ids);
  uint8_t **docs = calloc(peers, sizeof *docs);
  size_t *lens = calloc(peers, sizeof *lens);
  if (ids == NULL || docs == NULL || lens == NULL || mesh_identity_generate(&me) != 0)
    return 1;
  for (size_t i = 0; i < peers; i++) {
    if (mesh_identity_generate(&ids[i]) != 0 || make_doc(&ids[i], per, &docs[i], &lens[i]) != 0)
      return 1;
  }
  mesh_rng rng;
  mesh_rng_seed(&rng, 1);
  mesh_coord_settings set;
  mesh_coord_settings_default(&set);
  set.gc_budget = budget;
  set.gc_grace = 1000;
  /* This measures collection, not admission: every document is let in. */
  set.docs_max_bytes = UINT64_MAX / 4;
  set.docs_max_entries = UINT32_MAX / 4;
  set.doc_max_bytes = UINT64_MAX / 4;
  set.doc_max_entries = MESH_COORD_MAX_DOC_ENTRIES;
  mesh_coord *c;
  if (mesh_coord_new(&me, 1, &set, &rng, &c) != 0)
    return 1;
  mesh_time_ms t = 1;
  for (size_t i = 0; i < peers; i++) {
    mesh_view_event ev = {
        .type = MESH_VIEW_JOINED, .peer = ids[i].id, .epoch = 1, .old_epoch = 1, .at = t};
    mesh_coord_view_event(c, &ev, t);
  }
  mesh_coord_out o;
  while (mesh_coord_pop(c, &o))
    mesh_coord_out_release(&o);

  /* Per-tick times, allocated before the heap is measured. */
  size_t max_ticks = peers * per + 16;
  double *tick_s = calloc(max_ticks, sizeof *tick_s);
  if (tick_s == NULL)
    return 1;
  size_t heap0 = mesh_heap_in_use();
  double t0 = now_s();
  for (size_t i = 0; i < peers; i++) {
    if (mesh_coord_receive(c, &ids[i].id, docs[i], lens[i], t) != 0) {
      fprintf(stderr, "bench_coord: document %zu refused\n", i);
      return 1;
    }
  }
  double insert_s = now_s() - t0;
  size_t heap_held = mesh_heap_in_use();
  size_t held = mesh_coord_held_entries(c);

  /* Departure: all owners at once. */
  t += 10;
  double t1 = now_s();
  for (size_t i = 0; i < peers; i++) {
    mesh_view_event ev = {.type = epoch_mode ? MESH_VIEW_EPOCH_CHANGED : MESH_VIEW_DEAD,
                          .peer = ids[i].id,
                          .epoch = epoch_mode ? 2 : 1,
                          .old_epoch = 1,
                          .at = t};
    mesh_coord_view_event(c, &ev, t);
  }
  double events_s = now_s() - t1;
  if (!epoch_mode)
    t += set.gc_grace;
  size_t ticks = 0;
  double worst_tick = 0, t2 = now_s();
  size_t worst_at = 0;
  while (mesh_coord_held_entries(c) > 0 && ticks < max_ticks) {
    double a = now_s();
    mesh_coord_tick(c, t);
    double d = now_s() - a;
    if (d > worst_tick) {
      worst_tick = d;
      worst_at = ticks;
    }
    tick_s[ticks++] = d;
    t += 1;
  }
  double collect_s = now_s() - t2;
  size_t heap_after = mesh_heap_in_use();
  const mesh_coord_stats *st = mesh_coord_get_stats(c);
  size_t outbox = mesh_coord_outbox_len(c);

  printf("mode %s\n", epoch_mode ? "epoch-superseded" : "owner-dead");
  printf("entries %zu\n", held);
  printf("peers %zu\n", peers);
  printf("insert_ms %.3f\n", insert_s * 1e3);
  printf("departure_events_ms %.3f\n", events_s * 1e3);
  printf("collect_ms %.3f\n", collect_s * 1e3);
  printf("collect_vs_insert %.4f\n", insert_s > 0 ? collect_s / insert_s : 0.0);
  printf("collect_ticks %zu\n", ticks);
  printf("gc_budget %u\n", budget);
  printf("max_work_per_tick %" PRIu64 "\n", st->gc_max_work);
  printf("worst_tick_us %.1f\n", worst_tick * 1e6);
  printf("worst_tick_index %zu\n", worst_at);
  qsort(tick_s, ticks, sizeof *tick_s, cmp_double);
  printf("median_tick_us %.1f\n", ticks ? tick_s[ticks / 2] * 1e6 : 0.0);
  free(tick_s);
  printf("heap_held_bytes %zu\n", heap_held - heap0);
  printf("heap_per_entry_bytes %.1f\n", held ? (double)(heap_held - heap0) / (double)held : 0.0);
  printf("heap_left_after_bytes %lld\n", (long long)heap_after - (long long)heap0);
  printf("entries_collected %" PRIu64 "\n", st->entries_collected);
  printf("outbox_items_during_collection %zu\n", outbox);
  mesh_coord_free(c);
  for (size_t i = 0; i < peers; i++)
    free(docs[i]);
  free(docs);
  free(lens);
  free(ids);
  return held == st->entries_collected ? 0 : 1;
}
