/*
 * Commands: local ones from the API, remote ones carried to and from other
 * nodes, who may command this node, and the answers awaited.
 */
#include "coord/coord_internal.h"

#include "src/base/err.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* ---- commands --------------------------------------------------------- */

static int check_model(const char *model, const char *rev, char *msg, size_t msglen)
{
  const char *why = NULL;
  if (model == NULL ||
      mesh_model_id_validate(model, strnlen(model, MESH_MODEL_ID_MAX), &why) != 0) {
    snprintf(msg, msglen, "invalid model ID: %s", why != NULL ? why : "missing");
    return -EINVAL;
  }
  if (mesh_revision_validate(rev, strnlen(rev, MESH_REVISION_MAX + 1)) != 0) {
    snprintf(msg, msglen, "invalid revision");
    return -EINVAL;
  }
  /* Each revision has its own directory; the pair must fit one name. */
  char dir[MESH_MODEL_DIR_MAX];
  if (mesh_model_dir_name(model, rev, dir, sizeof dir) != 0) {
    snprintf(msg, msglen, "model ID and revision too long for a directory name (%d bytes at most)",
             MESH_MODEL_DIR_MAX - 1);
    return -EINVAL;
  }
  return 0;
}

int mesh_coord_command(mesh_coord *c, const mesh_coord_cmd *cmd, mesh_time_ms now, uint64_t *seq,
                       char *msg, size_t msglen)
{
  char scratch[MESH_COORD_ERROR_MAX];
  if (msg == NULL) {
    msg = scratch;
    msglen = sizeof scratch;
  }
  const char *rev = cmd->revision != NULL ? cmd->revision : "main";
  int rc = check_model(cmd->model_id, rev, msg, msglen);
  if (rc != 0)
    return rc;
  if (cmd->kind < MESH_COORD_CMD_START || cmd->kind > MESH_COORD_CMD_DELETE) {
    snprintf(msg, msglen, "unknown command");
    return -EINVAL;
  }
  if (seq != NULL)
    *seq = 0;
  if (cmd->target == NULL || mesh_peer_id_eq(cmd->target, &c->id->id)) {
    if (cmd->target_epoch != 0 && cmd->target_epoch != c->epoch) {
      snprintf(msg, msglen, "command names epoch %" PRIu64 " of this node, whose epoch is %" PRIu64,
               cmd->target_epoch, c->epoch);
      coord_journal_refused(c, cmd->model_id, msg);
      return -ESTALE;
    }
    rc = coord_apply_local(c, cmd->kind, cmd->model_id, rev, cmd->total_bytes, NULL, now, msg,
                           msglen);
    coord_settle(c, now);
    return rc;
  }
  char text[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(cmd->target, text, sizeof text);
  coord_peer *p = coord_peer_find(c, cmd->target);
  if (p == NULL || !coord_peer_in_view(p)) {
    snprintf(msg, msglen, "node %s is not in the view%s", text,
             p != NULL ? " (it left or was declared dead)" : "");
    coord_journal_refused(c, cmd->model_id, msg);
    return -EHOSTUNREACH;
  }
  if (cmd->target_epoch != 0 && cmd->target_epoch != p->epoch) {
    snprintf(msg, msglen,
             "command names epoch %" PRIu64 " of node %s, whose current epoch is %" PRIu64,
             cmd->target_epoch, text, p->epoch);
    coord_journal_refused(c, cmd->model_id, msg);
    return -ESTALE;
  }
  uint8_t *bytes;
  size_t len;
  uint64_t s = ++c->cmd_seq;
  rc = coord_wire_command(c, cmd, p->epoch, s, &bytes, &len);
  if (rc != 0) {
    snprintf(msg, msglen, "cannot encode the command: %s", mesh_strerror(rc));
    return rc;
  }
  coord_send(c, &p->id, bytes, len);
  coord_pending *slot = &c->pending[c->pending_next];
  c->pending_next = (c->pending_next + 1) % MESH_COORD_PENDING_MAX;
  slot->target = p->id;
  slot->target_epoch = p->epoch;
  slot->seq = s;
  c->st.cmds_sent++;
  if (seq != NULL)
    *seq = s;
  snprintf(msg, msglen, "sent to %s", text);
  return 0;
}

bool coord_pending_take(mesh_coord *c, const mesh_peer_id *from, uint64_t target_epoch,
                        uint64_t seq)
{
  if (seq == 0)
    return false;
  for (size_t i = 0; i < MESH_COORD_PENDING_MAX; i++) {
    coord_pending *p = &c->pending[i];
    if (p->seq == seq && p->target_epoch == target_epoch && mesh_peer_id_eq(&p->target, from)) {
      p->seq = 0;
      return true;
    }
  }
  return false;
}

bool coord_accepts_from(const mesh_coord *c, const mesh_peer_id *peer)
{
  switch (c->set.accept) {
  case MESH_COORD_ACCEPT_ANY_MEMBER:
    return true;
  case MESH_COORD_ACCEPT_NONE:
    return false;
  case MESH_COORD_ACCEPT_LISTED:
    for (size_t i = 0; i < c->set.accept_n; i++)
      if (mesh_peer_id_eq(&c->set.accept_from[i], peer))
        return true;
    return false;
  }
  return false;
}
