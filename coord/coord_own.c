/*
 * This node's own entries, the only ones it ever acts on: their life from a
 * command to a result, the journal and store items each change makes, retries
 * with backoff and the rate at which actions are handed out.
 */
#include "coord/coord_internal.h"

#include "src/base/err.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* ---- journal and store items ------------------------------------------ */

static void journal(mesh_coord *c, mesh_coord_journal_kind kind, const char *model, const char *fmt,
                    ...) __attribute__((format(__printf__, 4, 5)));

static void journal(mesh_coord *c, mesh_coord_journal_kind kind, const char *model, const char *fmt,
                    ...)
{
  mesh_coord_out o = {.kind = MESH_COORD_OUT_JOURNAL};
  o.u.journal.kind = kind;
  coord_strlcpy(o.u.journal.model_id, model != NULL ? model : "", sizeof o.u.journal.model_id);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(o.u.journal.text, sizeof o.u.journal.text, fmt, ap);
  va_end(ap);
  if (coord_push(c, &o))
    c->st.journal_records++;
}

void mesh_coord_source_dropped(mesh_coord *c, const char *model_id, const char *revision,
                               const mesh_peer_id *peer, const char *why)
{
  char id[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(peer, id, sizeof id);
  journal(c, MESH_COORD_J_SOURCE, model_id, "%s@%s: source %s dropped: %s", model_id, revision, id,
          why);
}

void coord_journal_refused(mesh_coord *c, const char *model, const char *why)
{
  journal(c, MESH_COORD_J_REFUSED, model, "command refused: %s", why);
}

static void store_put(mesh_coord *c, const coord_own *o)
{
  mesh_coord_out it = {.kind = MESH_COORD_OUT_STORE_PUT};
  it.u.entry = o->e;
  if (coord_push(c, &it))
    c->st.store_writes++;
}

static void store_del(mesh_coord *c, const mesh_coord_entry *e)
{
  mesh_coord_out it = {.kind = MESH_COORD_OUT_STORE_DEL};
  it.u.entry = *e;
  if (coord_push(c, &it))
    c->st.store_writes++;
}

/* ---- own entries ------------------------------------------------------ */

static coord_own *own_find(mesh_coord *c, const char *model, const char *rev)
{
  for (size_t i = 0; i < c->own_n; i++) {
    if (strcmp(c->own[i].e.model_id, model) == 0 && strcmp(c->own[i].e.revision, rev) == 0)
      return &c->own[i];
  }
  return NULL;
}

void mesh_coord_list_from_member(mesh_coord *c, const char *model_id, const char *revision,
                                 const mesh_peer_id *peer)
{
  char id[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(peer, id, sizeof id);
  journal(c, MESH_COORD_J_SOURCE, model_id,
          "%s@%s: the Hub cannot be reached: file list taken from member %s (signed by it)",
          model_id, revision, id);
  coord_own *o = own_find(c, model_id, revision);
  if (o == NULL)
    return;
  o->e.list_by_member = true;
  o->e.list_from = *peer;
  store_put(c, o); /* not in the document: nothing to publish */
}

static void own_set_want(mesh_coord *c, coord_own *o, mesh_coord_action_kind k)
{
  if (!o->want)
    c->wanting++;
  o->want = true;
  o->next_action = k;
}

static void own_clear_want(mesh_coord *c, coord_own *o)
{
  if (o->want)
    c->wanting--;
  o->want = false;
}

static void own_remove(mesh_coord *c, coord_own *o)
{
  own_clear_want(c, o);
  size_t i = (size_t)(o - c->own);
  c->own[i] = c->own[c->own_n - 1];
  c->own_n--;
  c->dirty = true;
  c->dirty_progress_only = false;
}

/* The one place an own entry changes status: journals the transition,
 * persists the entry and marks the document for publishing. */
static void own_transition(mesh_coord *c, coord_own *o, mesh_coord_status to, const char *why)
{
  mesh_coord_status from = o->e.status;
  o->e.status = to;
  if (to != MESH_COORD_FAILED) {
    o->e.retry_at = 0;
    o->e.error[0] = '\0';
  }
  if (from != to || why != NULL)
    journal(c, MESH_COORD_J_STATE, o->e.model_id, "%s@%s: %s -> %s%s%s", o->e.model_id,
            o->e.revision, mesh_coord_status_name(from), mesh_coord_status_name(to),
            why != NULL ? ": " : "", why != NULL ? why : "");
  store_put(c, o);
  c->dirty = true;
  c->dirty_progress_only = false;
}

static coord_own *own_add(mesh_coord *c, const char *model, const char *rev, uint64_t total,
                          const mesh_peer_id *requester)
{
  if (c->own_n == MESH_COORD_MAX_OWN_ENTRIES)
    return NULL;
  coord_own *o = &c->own[c->own_n++];
  memset(o, 0, sizeof *o);
  if (requester != NULL) {
    o->e.by_peer = true;
    o->e.requester = *requester;
  }
  o->e.owner = c->id->id;
  o->e.owner_epoch = c->epoch;
  coord_strlcpy(o->e.model_id, model, sizeof o->e.model_id);
  coord_strlcpy(o->e.revision, rev, sizeof o->e.revision);
  /* Callers checked the pair with mesh_model_dir_name (check_model, restore). */
  mesh_model_dir_name(model, rev, o->e.model_dir, sizeof o->e.model_dir);
  o->e.total_bytes = total;
  return o;
}

/* Capped exponential backoff with "equal jitter": half the delay fixed, half
 * random, so retries of many entries spread out but never come sooner than
 * half the nominal delay. */
static mesh_time_ms backoff(mesh_coord *c, uint32_t attempts)
{
  mesh_time_ms d = c->set.retry_base;
  for (uint32_t i = 1; i < attempts && d < c->set.retry_cap; i++)
    d *= 2;
  if (d > c->set.retry_cap)
    d = c->set.retry_cap;
  return d / 2 + mesh_rng_below(c->rng, d / 2 + 1);
}

static void own_fail(mesh_coord *c, coord_own *o, bool is_delete, bool retry, mesh_time_ms now,
                     const char *fmt, ...) __attribute__((format(__printf__, 6, 7)));

static void own_fail(mesh_coord *c, coord_own *o, bool is_delete, bool retry, mesh_time_ms now,
                     const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(o->e.error, sizeof o->e.error, fmt, ap);
  va_end(ap);
  o->e.attempts++;
  o->e.failed_delete = is_delete;
  o->in_flight = false;
  own_clear_want(c, o);
  if (retry && (is_delete || o->e.attempts < c->set.download_max_attempts))
    o->e.retry_at = now + backoff(c, o->e.attempts);
  else
    o->e.retry_at = 0;
  char why[MESH_COORD_ERROR_MAX + 64];
  if (o->e.retry_at != 0)
    snprintf(why, sizeof why, "%s (attempt %" PRIu32 ", retry in %" PRIu64 " ms)", o->e.error,
             o->e.attempts, o->e.retry_at - now);
  else
    snprintf(why, sizeof why, "%s (attempt %" PRIu32 ", no retry)", o->e.error, o->e.attempts);
  own_transition(c, o, MESH_COORD_FAILED, why);
}

/*
 * Whether requester (NULL: the operator) may make one more own entry. The
 * operator may use every slot; other nodes together never more than
 * MESH_COORD_MAX_OWN_ENTRIES - MESH_COORD_LOCAL_RESERVED, and each at most
 * remote_quota, so that a peer can neither fill the table nor take the
 * share of the others. -ENOSPC (table full) or -EDQUOT (a share is full),
 * with msg saying which.
 */
static int own_room(mesh_coord *c, const mesh_peer_id *requester, char *msg, size_t msglen)
{
  if (c->own_n >= MESH_COORD_MAX_OWN_ENTRIES) {
    snprintf(msg, msglen, "too many entries (%d)", MESH_COORD_MAX_OWN_ENTRIES);
    return -ENOSPC;
  }
  if (requester == NULL)
    return 0;
  size_t by_peers = 0, by_this = 0;
  for (size_t i = 0; i < c->own_n; i++) {
    if (!c->own[i].e.by_peer)
      continue;
    by_peers++;
    by_this += mesh_peer_id_eq(&c->own[i].e.requester, requester) ? 1 : 0;
  }
  if (by_this >= c->set.remote_quota) {
    c->st.cmds_refused_quota++;
    snprintf(msg, msglen,
             "this node holds %zu entries made at your request, its limit per node is %" PRIu32
             " (--command-quota)",
             by_this, c->set.remote_quota);
    return -EDQUOT;
  }
  if (by_peers >= MESH_COORD_MAX_OWN_ENTRIES - MESH_COORD_LOCAL_RESERVED) {
    c->st.cmds_refused_quota++;
    snprintf(msg, msglen,
             "this node holds %zu entries made at other nodes' request, all they may have (%d "
             "entries are kept for its operator)",
             by_peers, MESH_COORD_LOCAL_RESERVED);
    return -EDQUOT;
  }
  return 0;
}

int coord_apply_local(mesh_coord *c, mesh_coord_cmd_kind kind, const char *model, const char *rev,
                      uint64_t total, const mesh_peer_id *requester, mesh_time_ms now, char *msg,
                      size_t msglen)
{
  coord_own *o = own_find(c, model, rev);
  char origin[MESH_PEER_ID_TEXT_MAX + 8] = "local";
  if (requester != NULL) {
    char who[MESH_PEER_ID_TEXT_MAX];
    mesh_peer_id_to_text(requester, who, sizeof who);
    snprintf(origin, sizeof origin, "peer %s", who);
  }
  int rc;
  switch (kind) {
  case MESH_COORD_CMD_START:
    if (o != NULL && o->e.status == MESH_COORD_DELETING) {
      snprintf(msg, msglen, "%s@%s is being deleted", model, rev);
      return -EBUSY;
    }
    if (o != NULL && o->e.status != MESH_COORD_FAILED) {
      snprintf(msg, msglen, "%s@%s is already %s", model, rev, mesh_coord_status_name(o->e.status));
      return 0;
    }
    if (o == NULL) {
      rc = own_room(c, requester, msg, msglen);
      if (rc != 0)
        return rc;
      o = own_add(c, model, rev, total, requester);
      o->e.status = MESH_COORD_PENDING;
    } else {
      o->e.attempts = 0;
      if (total != 0)
        o->e.total_bytes = total;
    }
    journal(c, MESH_COORD_J_COMMAND, model, "start %s@%s from %s", model, rev, origin);
    own_transition(c, o, MESH_COORD_PENDING, NULL);
    own_set_want(c, o, MESH_COORD_ACT_CHECK_SPACE);
    snprintf(msg, msglen, "download of %s@%s pending", model, rev);
    return 0;
  case MESH_COORD_CMD_CANCEL:
    if (o == NULL || o->e.status == MESH_COORD_COMPLETED || o->e.status == MESH_COORD_DELETING) {
      snprintf(msg, msglen, "no download of %s@%s to cancel", model, rev);
      return -ENOENT;
    }
    journal(c, MESH_COORD_J_COMMAND, model, "cancel %s@%s from %s", model, rev, origin);
    if (o->e.status == MESH_COORD_ONGOING && o->in_flight) {
      mesh_coord_out it = {.kind = MESH_COORD_OUT_ACTION};
      it.u.action.kind = MESH_COORD_ACT_CANCEL;
      coord_strlcpy(it.u.action.model_id, o->e.model_id, sizeof it.u.action.model_id);
      coord_strlcpy(it.u.action.revision, o->e.revision, sizeof it.u.action.revision);
      coord_strlcpy(it.u.action.model_dir, o->e.model_dir, sizeof it.u.action.model_dir);
      if (coord_push(c, &it))
        c->st.actions_emitted++;
    }
    journal(c, MESH_COORD_J_REMOVED, model, "%s@%s cancelled", model, rev);
    store_del(c, &o->e);
    own_remove(c, o);
    snprintf(msg, msglen, "download of %s@%s cancelled", model, rev);
    return 0;
  case MESH_COORD_CMD_DELETE:
    if (o != NULL && o->e.status == MESH_COORD_DELETING) {
      snprintf(msg, msglen, "%s@%s is already being deleted", model, rev);
      return 0;
    }
    if (o == NULL) {
      rc = own_room(c, requester, msg, msglen);
      if (rc != 0)
        return rc;
      o = own_add(c, model, rev, 0, requester);
      o->e.status = MESH_COORD_DELETING;
    }
    journal(c, MESH_COORD_J_COMMAND, model, "delete %s@%s from %s", model, rev, origin);
    if (o->e.status == MESH_COORD_ONGOING && o->in_flight) {
      mesh_coord_out it = {.kind = MESH_COORD_OUT_ACTION};
      it.u.action.kind = MESH_COORD_ACT_CANCEL;
      coord_strlcpy(it.u.action.model_id, o->e.model_id, sizeof it.u.action.model_id);
      coord_strlcpy(it.u.action.revision, o->e.revision, sizeof it.u.action.revision);
      coord_strlcpy(it.u.action.model_dir, o->e.model_dir, sizeof it.u.action.model_dir);
      if (coord_push(c, &it))
        c->st.actions_emitted++;
    }
    o->in_flight = false;
    o->e.attempts = 0;
    o->e.failed_delete = false;
    own_transition(c, o, MESH_COORD_DELETING, NULL);
    own_set_want(c, o, MESH_COORD_ACT_DELETE);
    snprintf(msg, msglen, "delete of %s@%s started", model, rev);
    return 0;
  }
  snprintf(msg, msglen, "unknown command");
  return -EINVAL;
}

/* ---- rate-limited actions --------------------------------------------- */

static void refill(mesh_coord *c, mesh_time_ms now)
{
  if (now > c->tokens_at) {
    c->tokens += (double)(now - c->tokens_at) * c->set.actions_per_sec / 1000.0;
    if (c->tokens > c->set.actions_per_sec)
      c->tokens = c->set.actions_per_sec;
  }
  c->tokens_at = now;
}

/* Emits the due actions of own entries that the caps allow. */
void coord_drive(mesh_coord *c, mesh_time_ms now)
{
  if (c->wanting == 0)
    return;
  refill(c, now);
  for (size_t i = 0; i < c->own_n && c->wanting > 0; i++) {
    coord_own *o = &c->own[i];
    if (!o->want)
      continue;
    if (o->acted && o->last_kind == o->next_action &&
        now < o->last_action + c->set.entry_action_interval) {
      c->st.actions_deferred_entry++;
      continue;
    }
    if (c->tokens < 1.0) {
      c->st.actions_deferred_global++;
      continue;
    }
    mesh_coord_out it = {.kind = MESH_COORD_OUT_ACTION};
    it.u.action.kind = o->next_action;
    coord_strlcpy(it.u.action.model_id, o->e.model_id, sizeof it.u.action.model_id);
    coord_strlcpy(it.u.action.revision, o->e.revision, sizeof it.u.action.revision);
    coord_strlcpy(it.u.action.model_dir, o->e.model_dir, sizeof it.u.action.model_dir);
    it.u.action.total_bytes = o->e.total_bytes;
    it.u.action.adopt = o->restored;
    if (!coord_push(c, &it))
      break;
    c->tokens -= 1.0;
    c->st.actions_emitted++;
    /* A run starts with a space check, or with a download that follows no
     * check (a retry, a resume after a restart); a download right after
     * the check continues the run the check began (the executor keeps its
     * job, and the file list it may have taken from a member). A new run
     * lists afresh: a member's list for an earlier one is not its. */
    bool new_run = o->next_action == MESH_COORD_ACT_CHECK_SPACE ||
                   (o->next_action == MESH_COORD_ACT_DOWNLOAD &&
                    !(o->acted && o->last_kind == MESH_COORD_ACT_CHECK_SPACE));
    if (new_run && o->e.list_by_member) {
      o->e.list_by_member = false;
      memset(&o->e.list_from, 0, sizeof o->e.list_from);
      store_put(c, o);
    }
    o->acted = true;
    o->last_action = now;
    o->last_kind = o->next_action;
    o->in_flight = true;
    own_clear_want(c, o);
    if (o->next_action == MESH_COORD_ACT_DOWNLOAD)
      own_transition(c, o, MESH_COORD_ONGOING, NULL);
  }
}

/* Failed entries whose retry time came. */
void coord_retries(mesh_coord *c, mesh_time_ms now)
{
  for (size_t i = 0; i < c->own_n; i++) {
    coord_own *o = &c->own[i];
    if (o->e.status != MESH_COORD_FAILED || o->e.retry_at == 0 || now < o->e.retry_at)
      continue;
    o->e.retry_at = 0;
    if (o->e.failed_delete) {
      own_transition(c, o, MESH_COORD_DELETING, "retry");
      own_set_want(c, o, MESH_COORD_ACT_DELETE);
    } else {
      own_transition(c, o, MESH_COORD_PENDING, "retry");
      own_set_want(c, o, MESH_COORD_ACT_CHECK_SPACE);
    }
  }
}

/* ---- executor results -------------------------------------------------- */

static coord_own *own_for_result(mesh_coord *c, const char *model, const char *rev,
                                 mesh_coord_status want_status)
{
  coord_own *o = own_find(c, model, rev);
  if (o == NULL || o->e.status != want_status || !o->in_flight) {
    c->st.results_ignored++;
    return NULL;
  }
  return o;
}

/* Bytes the own downloads other than skip were accepted for and have not
 * written yet: passed their space check (downloading, or about to) and
 * not ended. */
static uint64_t coord_space_reserved(const mesh_coord *c, const coord_own *skip)
{
  uint64_t sum = 0;
  for (size_t i = 0; i < c->own_n; i++) {
    const coord_own *o = &c->own[i];
    if (o == skip)
      continue;
    bool accepted =
        o->e.status == MESH_COORD_ONGOING ||
        (o->e.status == MESH_COORD_PENDING && o->next_action == MESH_COORD_ACT_DOWNLOAD);
    if (accepted && o->e.total_bytes > o->e.done_bytes)
      sum += o->e.total_bytes - o->e.done_bytes;
  }
  return sum;
}

void mesh_coord_space(mesh_coord *c, const char *model, const char *rev, uint64_t total,
                      uint64_t free_bytes, mesh_time_ms now)
{
  coord_own *o = own_for_result(c, model, rev, MESH_COORD_PENDING);
  if (o == NULL || o->next_action != MESH_COORD_ACT_CHECK_SPACE)
    return;
  o->in_flight = false;
  if (total == 0)
    total = o->e.total_bytes;
  o->e.total_bytes = total;
  uint64_t need = total > o->e.done_bytes ? total - o->e.done_bytes : 0;
  /* Space the other downloads accepted before still need is spoken for:
   * free space is of the moment, and two downloads that each fit alone
   * must not both start and fail late on ENOSPC. The reservation ends with
   * the download (completion, failure, cancel, delete). */
  uint64_t reserved = coord_space_reserved(c, o);
  uint64_t usable = free_bytes > reserved ? free_bytes - reserved : 0;
  if (c->set.max_download_bytes != 0 && total > c->set.max_download_bytes) {
    own_fail(c, o, false, false, now,
             "%s is %" PRIu64 " bytes, more than max-download-bytes %" PRIu64 " (%" PRIu64
             " bytes free)",
             model, total, c->set.max_download_bytes, free_bytes);
  } else if (need > usable) {
    if (reserved > 0)
      own_fail(c, o, false, false, now,
               "%s needs %" PRIu64 " bytes (of %" PRIu64 " in all); %" PRIu64
               " bytes are free, of which %" PRIu64
               " are reserved for downloads under way: %" PRIu64 " usable",
               model, need, total, free_bytes, reserved, usable);
    else
      own_fail(c, o, false, false, now,
               "%s needs %" PRIu64 " bytes (of %" PRIu64 " in all), only %" PRIu64 " bytes free",
               model, need, total, free_bytes);
  } else {
    store_put(c, o);
    own_set_want(c, o, MESH_COORD_ACT_DOWNLOAD);
  }
  coord_settle(c, now);
}

void mesh_coord_space_failed(mesh_coord *c, const char *model, const char *rev, const char *message,
                             mesh_time_ms now)
{
  coord_own *o = own_for_result(c, model, rev, MESH_COORD_PENDING);
  if (o == NULL)
    return;
  own_fail(c, o, false, true, now, "size check failed: %s", message);
  coord_settle(c, now);
}

void mesh_coord_progress(mesh_coord *c, const char *model, const char *rev, uint64_t done,
                         uint64_t total, uint32_t files_done, uint32_t files_total,
                         uint64_t speed_bps, uint64_t eta_ms, mesh_time_ms now)
{
  coord_own *o = own_for_result(c, model, rev, MESH_COORD_ONGOING);
  if (o == NULL)
    return;
  o->e.done_bytes = done;
  if (total != 0)
    o->e.total_bytes = total;
  o->e.files_done = files_done;
  o->e.files_total = files_total;
  o->e.speed_bps = speed_bps;
  o->e.eta_ms = eta_ms;
  if (!c->dirty)
    c->dirty_progress_only = true;
  c->dirty = true;
  coord_settle(c, now);
}

void mesh_coord_completed(mesh_coord *c, const char *model, const char *rev, uint64_t total,
                          mesh_time_ms now)
{
  coord_own *o = own_for_result(c, model, rev, MESH_COORD_ONGOING);
  if (o == NULL)
    return;
  o->in_flight = false;
  if (total != 0)
    o->e.total_bytes = total;
  o->e.done_bytes = o->e.total_bytes;
  o->e.files_done = o->e.files_total;
  o->e.speed_bps = 0;
  o->e.eta_ms = 0;
  o->e.attempts = 0;
  own_transition(c, o, MESH_COORD_COMPLETED, NULL);
  coord_settle(c, now);
}

void mesh_coord_download_failed(mesh_coord *c, const char *model, const char *rev,
                                const char *message, mesh_time_ms now)
{
  coord_own *o = own_for_result(c, model, rev, MESH_COORD_ONGOING);
  if (o == NULL)
    return;
  own_fail(c, o, false, true, now, "download failed: %s", message);
  coord_settle(c, now);
}

void mesh_coord_delete_result(mesh_coord *c, const char *model, const char *rev, int err,
                              mesh_time_ms now)
{
  coord_own *o = own_for_result(c, model, rev, MESH_COORD_DELETING);
  if (o == NULL)
    return;
  o->in_flight = false;
  if (err == 0 || err == -ENOENT) {
    journal(c, MESH_COORD_J_REMOVED, model, "%s@%s deleted", model, rev);
    store_del(c, &o->e);
    own_remove(c, o);
  } else if (err == -EAGAIN) {
    own_set_want(c, o, MESH_COORD_ACT_DELETE);
  } else if (err == -EPERM) {
    /* Not a directory this node made: retrying cannot change that, and
     * nothing was removed. The operator removes it by hand if it is to go. */
    c->st.deletes_refused_unowned++;
    own_fail(c, o, true, false, now,
             "refused to delete %s: meshd did not create it (no .meshd-owned marker); remove it "
             "by hand if it is to go",
             o->e.model_dir);
  } else {
    own_fail(c, o, true, true, now, "delete of %s failed: %s", o->e.model_dir, mesh_strerror(err));
  }
  coord_settle(c, now);
}

void mesh_coord_verified(mesh_coord *c, const char *model, const char *rev, bool present,
                         uint64_t bytes, mesh_time_ms now)
{
  coord_own *o = own_find(c, model, rev);
  if (o == NULL || !o->verifying || !o->in_flight) {
    c->st.results_ignored++;
    return;
  }
  o->in_flight = false;
  o->verifying = false;
  if (present && (o->e.total_bytes == 0 || bytes >= o->e.total_bytes)) {
    o->e.done_bytes = bytes;
    own_transition(c, o, MESH_COORD_COMPLETED, "verified on disk after restart");
  } else {
    own_transition(c, o, MESH_COORD_PENDING,
                   present ? "incomplete on disk after restart" : "missing on disk after restart");
    own_set_want(c, o, MESH_COORD_ACT_CHECK_SPACE);
  }
  coord_settle(c, now);
}

/* ---- restore and renewal -------------------------------------------------- */

int mesh_coord_restore(mesh_coord *c, const mesh_coord_entry *entries, size_t n,
                       uint64_t doc_version, mesh_time_ms now)
{
  c->version = doc_version;
  size_t taken = 0;
  for (size_t i = 0; i < n; i++) {
    const mesh_coord_entry *in = &entries[i];
    if (mesh_model_id_validate(in->model_id, strnlen(in->model_id, MESH_MODEL_ID_MAX), NULL) != 0 ||
        mesh_revision_validate(in->revision, strnlen(in->revision, sizeof in->revision)) != 0)
      continue;
    char dir[MESH_MODEL_DIR_MAX];
    if (mesh_model_dir_name(in->model_id, in->revision, dir, sizeof dir) != 0)
      continue;
    if (own_find(c, in->model_id, in->revision) != NULL)
      continue;
    coord_own *o = own_add(c, in->model_id, in->revision, in->total_bytes,
                           in->by_peer ? &in->requester : NULL);
    if (o == NULL)
      break;
    o->restored = true;
    o->e.done_bytes = in->done_bytes;
    o->e.files_done = in->files_done;
    o->e.files_total = in->files_total;
    o->e.attempts = in->attempts;
    o->e.failed_delete = in->failed_delete;
    o->e.list_by_member = in->list_by_member;
    o->e.list_from = in->list_from;
    coord_strlcpy(o->e.error, in->error, sizeof o->e.error);
    o->e.status = in->status;
    taken++;
    switch (in->status) {
    case MESH_COORD_COMPLETED:
      /* Not published until the disk says it is still there. */
      o->verifying = true;
      own_set_want(c, o, MESH_COORD_ACT_VERIFY);
      break;
    case MESH_COORD_DELETING:
      own_transition(c, o, MESH_COORD_DELETING, "resumed after restart");
      own_set_want(c, o, MESH_COORD_ACT_DELETE);
      break;
    case MESH_COORD_FAILED:
      if (in->failed_delete) {
        own_transition(c, o, MESH_COORD_DELETING, "resumed after restart");
        own_set_want(c, o, MESH_COORD_ACT_DELETE);
      } else if (o->e.attempts >= c->set.download_max_attempts || o->e.attempts == 0) {
        /* Gave up (or a size refusal): stays failed until a new start. */
        o->e.retry_at = 0;
        c->dirty = true;
      } else {
        own_transition(c, o, MESH_COORD_PENDING, "resumed after restart");
        own_set_want(c, o, MESH_COORD_ACT_CHECK_SPACE);
      }
      break;
    case MESH_COORD_PENDING:
    case MESH_COORD_ONGOING:
    default:
      o->e.status = MESH_COORD_PENDING;
      own_transition(c, o, MESH_COORD_PENDING, "resumed after restart");
      own_set_want(c, o, MESH_COORD_ACT_CHECK_SPACE);
      break;
    }
  }
  if (taken > 0)
    journal(c, MESH_COORD_J_RESTORE, NULL, "took over %zu entries into epoch %" PRIu64, taken,
            c->epoch);
  coord_settle(c, now);
  return 0;
}

int mesh_coord_set_epoch(mesh_coord *c, uint64_t epoch, mesh_time_ms now)
{
  if (epoch <= c->epoch)
    return -ESTALE;
  uint64_t old = c->epoch;
  c->epoch = epoch;
  uint64_t base = coord_seq_base(epoch, c->rng);
  if (base > c->cmd_seq)
    c->cmd_seq = base;
  for (size_t i = 0; i < c->own_n; i++) {
    c->own[i].e.owner_epoch = epoch;
    store_put(c, &c->own[i]);
  }
  journal(c, MESH_COORD_J_RESTORE, NULL,
          "renewed in place: %zu entries moved from epoch %" PRIu64 " to %" PRIu64
          ", transfers kept running",
          c->own_n, old, epoch);
  /* Peers that learned the new epoch refuse a document of the old one:
   * drop it, so that no request is answered with it, and publish now (with
   * no document held, publishing does not wait for the coalescing gap). */
  free(c->own_raw);
  c->own_raw = NULL;
  c->own_raw_len = 0;
  c->dirty = true;
  c->dirty_progress_only = false;
  coord_settle(c, now);
  return 0;
}
