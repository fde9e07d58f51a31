/* What the caller reads of the membership core: members, the view's size
 * and numbering, this node's epoch and health, counters and names. */
#include "net/swim_core.h"

static void info(const swim_member *m, mesh_swim_member_info *o)
{
  *o = (mesh_swim_member_info){.id = m->id,
                               .epoch = m->epoch,
                               .incarnation = m->inc,
                               .state = m->state,
                               .since = m->since,
                               .addrs = m->addrs != NULL ? m->addrs : "",
                               .n_addrs = m->n_addrs,
                               .agent = m->agent != NULL ? m->agent : "",
                               .host = m->host != NULL ? m->host : "",
                               .answered = m->answered};
}

size_t mesh_swim_member_count(const mesh_swim *s)
{
  return s->n;
}

int mesh_swim_member_at(const mesh_swim *s, size_t i, mesh_swim_member_info *out)
{
  if (i >= s->n)
    return -ENOENT;
  info(s->m[i], out);
  return 0;
}

int mesh_swim_member_find(const mesh_swim *s, const mesh_peer_id *peer, mesh_swim_member_info *out)
{
  const swim_member *m = swim_find(s, peer);
  if (m == NULL)
    return -ENOENT;
  info(m, out);
  return 0;
}

size_t mesh_swim_view_size(const mesh_swim *s)
{
  return s->n_view;
}

uint64_t mesh_swim_view_seq(const mesh_swim *s)
{
  return s->view_seq;
}

uint64_t mesh_swim_epoch(const mesh_swim *s)
{
  return s->epoch;
}

uint64_t mesh_swim_incarnation(const mesh_swim *s)
{
  return s->inc;
}

int mesh_swim_health(const mesh_swim *s)
{
  return s->aw.score;
}

bool mesh_swim_joined(const mesh_swim *s)
{
  return s->joined;
}

size_t mesh_swim_broadcasts_pending(const mesh_swim *s)
{
  return s->bq.n;
}

const mesh_swim_counters *mesh_swim_counters_get(const mesh_swim *s)
{
  return &s->c;
}

const mesh_swim_config *mesh_swim_config_get(const mesh_swim *s)
{
  return &s->cfg;
}

const char *mesh_swim_state_name(mesh_swim_state st)
{
  switch (st) {
  case MESH_SWIM_ALIVE:
    return "alive";
  case MESH_SWIM_SUSPECT:
    return "suspect";
  case MESH_SWIM_DEAD:
    return "dead";
  case MESH_SWIM_LEFT:
    return "left";
  }
  return "unknown";
}

const char *mesh_swim_drop_name(mesh_swim_drop d)
{
  static const char *const names[MESH_SWIM_DROP__COUNT] = {
      [MESH_SWIM_DROP_MALFORMED] = "malformed",
      [MESH_SWIM_DROP_TOO_BIG] = "too-big",
      [MESH_SWIM_DROP_BAD_SIGNATURE] = "bad-signature",
      [MESH_SWIM_DROP_WRONG_SUBJECT] = "wrong-subject",
      [MESH_SWIM_DROP_ZOMBIE] = "zombie",
      [MESH_SWIM_DROP_STALE_EPOCH] = "stale-epoch",
      [MESH_SWIM_DROP_UNKNOWN] = "unknown-peer",
      [MESH_SWIM_DROP_SELF] = "self",
      [MESH_SWIM_DROP_NOT_FOR_US] = "not-for-us",
      [MESH_SWIM_DROP_INTRO_LIMIT] = "intro-limit",
      [MESH_SWIM_DROP_VIEW_FULL] = "view-full",
      [MESH_SWIM_DROP_NOT_MEMBER] = "accuser-not-member",
      [MESH_SWIM_DROP_DEPARTED] = "accuser-departed",
      [MESH_SWIM_DROP_SIG_BUDGET] = "sig-budget",
      [MESH_SWIM_DROP_PUSH_PULL_RATE] = "push-pull-rate",
  };
  return (unsigned)d < MESH_SWIM_DROP__COUNT ? names[d] : "unknown";
}
