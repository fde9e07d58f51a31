/*
 * The download part's start-up and shutdown. mesh_downloads_new and
 * mesh_downloads_free run on the loop thread (new before the loop serves
 * anything); start-up's directory and store work is one pool item,
 * start_work, which runs on a worker and touches only its start_job while
 * the loop thread waits for it with mesh_pool_flush.
 */
#include "src/daemon/downloads_internal.h"

#include "src/base/config.h"
#include "src/base/err.h"
#include "src/base/log.h"
#include "src/base/pool.h"
#include "src/daemon/api.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int mkdir_p(const char *path)
{
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return -ENAMETOOLONG;
  for (char *p = buf + 1; *p != '\0'; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
      return -errno;
    *p = '/';
  }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST)
    return -errno;
  return 0;
}

/*
 * Start-up's disk and store work, as one pool item: the models directory is
 * made and opened, the store opened (migrated), this node's entries and the
 * newest journal records read. The loop thread waits for it with
 * mesh_pool_flush before it serves anything, then takes everything over.
 */
typedef struct start_job {
  mesh_work work;               /* the pool item; first */
  const char *models_dir;       /* borrowed from the caller, read-only */
  const char *db_path;          /* likewise */
  mesh_store_settings set;      /* the journal's bounds */
  size_t journal_cap;           /* journal records to read */
  mesh_diskexec *disk;          /* out: opened */
  mesh_store *store;            /* out: opened */
  mesh_coord_entry *entries;    /* out: allocated, own entries of earlier epochs */
  size_t n;                     /* out */
  uint64_t version;             /* out: the last document version */
  mesh_store_journal_rec *recs; /* out: allocated, newest first */
  size_t n_recs;                /* out */
  int64_t last_id;              /* out: the highest journal id given */
  mesh_store_stats stats;       /* out: the store's counters after opening */
  mesh_store_member *members;   /* out: allocated, the last known members */
  size_t n_members;             /* out */
  size_t bad_members;           /* out: rows that did not decode */
  int members_rc;               /* out: reading them failed (start goes on) */
  int rc;                       /* out: 0 or the first failure */
  char err[512];                /* out: what failed */
  char abs_dir[PATH_MAX];       /* out: models_dir as an absolute path, "" if unresolved */
} start_job;

static void start_work(mesh_work *w)
{
  start_job *j = (start_job *)w;
  int rc;
  if ((rc = mkdir_p(j->models_dir)) != 0 ||
      (rc = mesh_diskexec_open(j->models_dir, &j->disk)) != 0) {
    snprintf(j->err, sizeof j->err, "models directory %s: %s%s%s%s", j->models_dir,
             mesh_strerror(rc),
             rc == -EROFS ? " (under the systemd unit, a models directory outside "
                            "/var/lib/meshd needs ReadWritePaths="
                          : "",
             rc == -EROFS ? j->models_dir : "",
             rc == -EROFS ? " in a drop-in: systemctl edit meshd)" : "");
    j->rc = rc;
    return;
  }
  /* /state names where the files are as an absolute path, also when the
   * models directory was given relative to the working directory. */
  if (realpath(j->models_dir, j->abs_dir) == NULL)
    j->abs_dir[0] = '\0';
  if ((rc = mesh_store_open(j->db_path, &j->set, &j->store, j->err, sizeof j->err)) != 0) {
    j->rc = rc;
    return;
  }
  if ((rc = mesh_store_load(j->store, &j->entries, &j->n, &j->version)) != 0 ||
      (rc = mesh_store_journal_read(j->store, j->journal_cap, &j->recs, &j->n_recs)) != 0 ||
      (rc = mesh_store_journal_last_id(j->store, &j->last_id)) != 0) {
    snprintf(j->err, sizeof j->err, "store %s: %s", j->db_path, mesh_strerror(rc));
    j->rc = rc;
    return;
  }
  j->members_rc = mesh_store_members_load(j->store, &j->members, &j->n_members, &j->bad_members);
  j->stats = *mesh_store_get_stats(j->store);
}

static void start_done(mesh_work *w)
{
  (void)w; /* the caller reads the results after its flush */
}

/* The hooks of a part nobody hooked: every one changes nothing. */
static void no_store_opened(void *arg, mesh_store *store)
{
  (void)arg;
  (void)store;
}

static void no_hf_options(void *arg, mesh_hf_options *o)
{
  (void)arg;
  (void)o;
}

static void no_op(void *arg)
{
  (void)arg;
}

static bool pass_all(void *arg)
{
  (void)arg;
  return true;
}

static void no_list_change(void *arg, uint8_t *blob, size_t len)
{
  (void)arg;
  (void)blob;
  (void)len;
}

static bool no_chunk_change(void *arg, uint8_t *buf, size_t len)
{
  (void)arg;
  (void)buf;
  (void)len;
  return false;
}

static const mesh_downloads_hooks dl_no_hooks = {.store_opened = no_store_opened,
                                                 .hf_options = no_hf_options,
                                                 .before_store_txn = no_op,
                                                 .pass_view_event = pass_all,
                                                 .list_sealed = no_list_change,
                                                 .before_chunk_read = no_op,
                                                 .chunk_out = no_chunk_change};

/*
 * --accept-commands-from into the coordinator's settings: "any-member" or
 * "none" alone, or a list of peer IDs (ids, MESH_COORD_ACCEPT_MAX of them,
 * owned by the caller, must outlive mesh_coord_new, which copies them).
 * -EINVAL with err saying what is wrong.
 */
static int accept_settings(const mesh_config *cfg, mesh_coord_settings *cs, mesh_peer_id *ids,
                           char *err, size_t errlen)
{
  const mesh_strlist *l = &cfg->accept_commands_from;
  cs->accept = MESH_COORD_ACCEPT_ANY_MEMBER;
  if (l->len == 0)
    return 0;
  for (size_t i = 0; i < l->len; i++) {
    bool word = strcmp(l->items[i], "any-member") == 0 || strcmp(l->items[i], "none") == 0;
    if (word && l->len > 1) {
      snprintf(err, errlen,
               "accept-commands-from: \"%s\" stands alone; it cannot be listed with other items",
               l->items[i]);
      return -EINVAL;
    }
    if (word) {
      cs->accept =
          strcmp(l->items[i], "none") == 0 ? MESH_COORD_ACCEPT_NONE : MESH_COORD_ACCEPT_ANY_MEMBER;
      return 0;
    }
  }
  if (l->len > MESH_COORD_ACCEPT_MAX) {
    snprintf(err, errlen, "accept-commands-from: %zu peer IDs, at most %d", l->len,
             MESH_COORD_ACCEPT_MAX);
    return -EINVAL;
  }
  for (size_t i = 0; i < l->len; i++) {
    if (mesh_peer_id_parse(l->items[i], &ids[i]) != 0) {
      snprintf(err, errlen, "accept-commands-from: \"%.80s\" is not a peer ID", l->items[i]);
      return -EINVAL;
    }
  }
  cs->accept = MESH_COORD_ACCEPT_LISTED;
  cs->accept_from = ids;
  cs->accept_n = l->len;
  return 0;
}

int mesh_downloads_new(mesh_node *node, mesh_membership *mem, const mesh_config *cfg,
                       const mesh_downloads_hooks *hooks, mesh_downloads **out, char *err,
                       size_t errlen)
{
  int rc;
  mesh_downloads *d = calloc(1, sizeof *d);
  if (d == NULL)
    return -ENOMEM;
  d->node = node;
  d->mem = mem;
  d->hooks = hooks != NULL ? hooks : &dl_no_hooks;
  d->loop = mesh_node_loop(node);
  d->net = mesh_node_net(node);
  d->pool = mesh_node_pool(node);
  mesh_rng_seed_os(&d->rng);
  if (strlen(cfg->models_dir) >= sizeof d->models_dir) {
    snprintf(err, errlen, "models directory path too long");
    rc = -ENAMETOOLONG;
    goto fail;
  }
  snprintf(d->models_dir, sizeof d->models_dir, "%s", cfg->models_dir);
  if ((rc = mesh_strand_new(d->pool, &d->store_strand)) != 0 ||
      (rc = mesh_strand_new(d->pool, &d->disk_strand)) != 0) {
    snprintf(err, errlen, "work pool: %s", mesh_strerror(rc));
    goto fail;
  }

  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/mesh.db", cfg->home);
  d->journal_set = (mesh_store_settings){.journal_max_records = (uint32_t)cfg->journal_max_records,
                                         .journal_max_age_ms = cfg->journal_max_age_ms};
  d->journal.cap = d->journal_set.journal_max_records < MESH_API_JOURNAL_MAX
                       ? d->journal_set.journal_max_records
                       : MESH_API_JOURNAL_MAX;
  if (d->journal.cap == 0)
    d->journal.cap = 1;
  d->journal.recs = calloc(d->journal.cap, sizeof *d->journal.recs);
  if (d->journal.recs == NULL) {
    rc = -ENOMEM;
    goto fail;
  }

  /* Directory and store work at start runs on the pool like the rest; the
   * loop is not serving yet, so it simply waits for it here. */
  start_job *sj = calloc(1, sizeof *sj);
  if (sj == NULL) {
    rc = -ENOMEM;
    goto fail;
  }
  sj->models_dir = d->models_dir;
  sj->db_path = path;
  sj->set = d->journal_set;
  sj->journal_cap = d->journal.cap;
  mesh_pool_submit(d->pool, &sj->work, d->store_strand, start_work, start_done);
  mesh_pool_flush(d->pool);
  d->disk = sj->disk;
  d->store = sj->store;
  d->store_stats = sj->stats;
  for (size_t i = sj->n_recs; i > 0; i--)
    d->journal.recs[d->journal.n++] = sj->recs[i - 1];
  d->journal_next_id = sj->last_id + 1;
  mesh_coord_entry *entries = sj->entries;
  size_t n = sj->n;
  uint64_t version = sj->version;
  free(sj->recs);
  if (sj->rc == 0) {
    /* The members known before this start, for a restart without --join.
     * Not having them is no reason to stop: --join and peers still work. */
    if (sj->members_rc != 0)
      LOG_WARN("downloads", "cannot read the members kept in the store: %s",
               mesh_strerror(sj->members_rc));
    if (sj->bad_members > 0)
      LOG_WARN("downloads", "%zu members kept in the store did not decode; skipped",
               sj->bad_members);
    mesh_connections *conns = mesh_membership_connections(mem);
    mesh_connections_remember(conns, sj->members, sj->n_members);
    mesh_connections_on_save(conns, dl_save_members, d);
  }
  free(sj->members);
  size_t abs_len = strnlen(sj->abs_dir, sizeof sj->abs_dir);
  if (sj->rc == 0 && sj->abs_dir[0] == '/' && abs_len < sizeof d->models_dir)
    memcpy(d->models_dir, sj->abs_dir, abs_len + 1); /* fits: checked just above */
  else if (sj->rc == 0)
    LOG_WARN("downloads", "models directory %s: no absolute path; /state shows it as given",
             d->models_dir);
  if (sj->rc == 0 && mesh_coord_models_dir_check(d->models_dir, strlen(d->models_dir)) != 0)
    LOG_WARN("downloads",
             "models directory %s is not published to other nodes (an absolute path of at "
             "most %d bytes is): their /state shows no modelDirectory for this node",
             d->models_dir, MESH_COORD_MODELS_DIR_MAX);
  rc = sj->rc;
  if (rc != 0)
    snprintf(err, errlen, "%s", sj->err);
  free(sj);
  if (rc != 0) {
    free(entries);
    goto fail;
  }
  d->hooks->store_opened(d->hooks->arg, d->store);

  mesh_coord_settings cs;
  mesh_coord_settings_default(&cs);
  if (cfg->gc_grace_ms > 0)
    cs.gc_grace = cfg->gc_grace_ms;
  if (cfg->ended_epoch_ttl_ms > 0)
    cs.tombstone_ttl = cfg->ended_epoch_ttl_ms;
  cs.journal_max_records = (uint32_t)cfg->journal_max_records;
  cs.journal_max_age = cfg->journal_max_age_ms;
  cs.max_download_bytes = cfg->max_download_bytes;
  if (cfg->docs_budget > 0)
    cs.docs_max_bytes = cfg->docs_budget;
  if (cfg->docs_budget_entries > 0)
    cs.docs_max_entries = (uint32_t)cfg->docs_budget_entries;
  cs.models_dir = d->models_dir;
  cs.remote_quota = (uint32_t)cfg->command_quota;
  mesh_peer_id accept_ids[MESH_COORD_ACCEPT_MAX];
  if ((rc = accept_settings(cfg, &cs, accept_ids, err, errlen)) != 0) {
    free(entries);
    goto fail;
  }
  if (cs.accept == MESH_COORD_ACCEPT_NONE)
    LOG_INFO("downloads", "commands of other nodes are refused (accept-commands-from none)");
  else if (cs.accept == MESH_COORD_ACCEPT_LISTED)
    LOG_INFO("downloads", "commands accepted from %zu listed nodes only", cs.accept_n);
  if ((rc = mesh_coord_new(mesh_node_identity(node), mesh_node_epoch(node), &cs, &d->rng,
                           &d->coord)) != 0) {
    snprintf(err, errlen, "coordinator: %s", mesh_strerror(rc));
    free(entries);
    goto fail;
  }

  rc = mesh_coord_restore(d->coord, entries, n, version, mesh_loop_now(d->loop));
  free(entries);
  if (rc != 0) {
    snprintf(err, errlen, "restoring %zu entries: %s", n, mesh_strerror(rc));
    goto fail;
  }
  if (n > 0)
    LOG_INFO("downloads", "restored %zu entries of earlier epochs", n);

  mesh_hf_options ho;
  memset(&ho, 0, sizeof ho);
  ho.endpoint = cfg->hf_endpoint;
  ho.token = cfg->hf_token;
  ho.downloads_at_once = cfg->downloads_at_once;
  ho.files_at_once = cfg->files_at_once;
  ho.skip_space_check = true; /* the coordinator's size guard decides */
  d->hooks->hf_options(d->hooks->arg, &ho);
  if ((rc = mesh_hf_client_new(mesh_loop_base(d->loop), mesh_node_pool(d->node), &ho,
                               dl_on_hf_report, d, &d->hf)) != 0) {
    snprintf(err, errlen, "download client (endpoint %s): %s", cfg->hf_endpoint, mesh_strerror(rc));
    goto fail;
  }
  if ((rc = dl_serve_init(d, cfg->serve_models != 0, cfg->max_uploads)) != 0)
    goto fail;
  d->lists_from_members = cfg->file_lists_from_members;
  if (d->lists_from_members)
    LOG_INFO("downloads", "file lists may come from members when the Hub cannot be reached");
  mesh_hf_set_sources(d->hf, &dl_peer_sources, d);
  mesh_net_on_writable(d->net, dl_on_writable, d);
  if ((rc = mesh_timer_new(d->loop, dl_on_timer, d, &d->timer)) != 0)
    goto fail;
  if ((rc = mesh_membership_subscribe(mem, dl_on_view_event, dl_on_app_state, d)) != 0)
    goto fail;
  mesh_membership_on_peer_up(mem, dl_held_on_peer_up, d);
  mesh_membership_on_view_gap(mem, dl_on_view_gap, d);
  if ((rc = mesh_node_on_message(node, MESH_CH_COORD, dl_on_message, d)) != 0)
    goto fail;
  if ((rc = mesh_node_on_message(node, MESH_CH_BULK, dl_on_bulk, d)) != 0)
    goto fail;
  dl_drain(d); /* what the restore asked for */
  *out = d;
  return 0;

fail:
  mesh_downloads_free(d);
  return rc;
}

/*
 * Shutdown: inputs stop first (messages, peer events, the timer, the
 * download client), then every batch still waiting is handed to the strand
 * and the pool is flushed: the last transactions commit, delete slices and
 * inspections in flight end without reporting (the store keeps those
 * entries as they were and the next start carries them on). Only then is the
 * store closed, on this thread: nothing of the pool uses it any more.
 */
void mesh_downloads_free(mesh_downloads *d)
{
  if (d == NULL)
    return;
  d->stopping = true;
  if (d->node != NULL) {
    mesh_node_on_message(d->node, MESH_CH_COORD, NULL, NULL);
    mesh_node_on_message(d->node, MESH_CH_BULK, NULL, NULL);
  }
  if (d->net != NULL)
    mesh_net_on_writable(d->net, NULL, NULL);
  if (d->mem != NULL) {
    mesh_membership_on_peer_up(d->mem, NULL, NULL);
    mesh_membership_on_view_gap(d->mem, NULL, NULL);
    mesh_connections_on_save(mesh_membership_connections(d->mem), NULL, NULL);
  }
  if (d->timer != NULL)
    mesh_timer_free(d->timer);
  for (size_t i = 0; i < HELD_PEERS; i++)
    dl_held_clear(d, &d->held[i]);
  /* Transfers from peers end without calls into the client, which then
   * stops its jobs (and tells the sources nothing more). */
  dl_peers_close(d);
  if (d->hf != NULL)
    mesh_hf_set_sources(d->hf, NULL, NULL);
  mesh_hf_client_free(d->hf);
  if (d->peer_timer != NULL)
    mesh_timer_free(d->peer_timer);
  if (d->store_strand != NULL)
    dl_store_flush(d);
  if (d->pool != NULL)
    mesh_pool_flush(d->pool);
  /* Inspections that never got their turn. */
  while (d->jobs != NULL)
    dl_disk_forget(d, d->jobs);
  dl_serve_close(d); /* after the flush: no upload item runs */
  mesh_coord_free(d->coord);
  mesh_store_close(d->store);
  mesh_diskexec_close(d->disk);
  mesh_strand_free(d->store_strand);
  mesh_strand_free(d->disk_strand);
  while (d->spare != NULL) {
    store_batch *b = d->spare;
    d->spare = b->next;
    free(b);
  }
  free(d->journal.recs);
  free(d);
}
