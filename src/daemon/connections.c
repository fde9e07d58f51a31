/* The connection manager on the loop: dials, outcomes, and the members kept. */
#include "src/daemon/connections.h"

#include "net/multiaddr.h"
#include "src/base/err.h"
#include "src/base/log.h"

#include <stdlib.h>
#include <string.h>

/* Dials started per timer turn; the rest wait for the next turn. */
#define DIAL_BATCH 32
/* A change to the members is saved this long after it, so that a burst of
 * view events costs one store transaction. */
#define SAVE_DELAY_MS 2000

struct mesh_connections {
  mesh_node *node;      /* borrowed */
  mesh_net *net;        /* the node's */
  mesh_loop *loop;      /* the node's */
  mesh_rng rng;         /* the rules' jitter */
  mesh_connmgr *cm;     /* the rules */
  mesh_timer *dial_timer; /* runs poll when something is due */
  mesh_timer *save_timer; /* saves the members after a change */
  mesh_cm_dial *batch;  /* DIAL_BATCH dials, heap */
  bool dirty;           /* members changed since the last save */
  bool saved_once;      /* saved_hash is set */
  uint64_t saved_hash;  /* of the list last saved: the same list is not written again */
  mesh_connections_save_fn save_fn;
  void *save_arg;
};

/* One spelling per address (a multiaddr, as records carry them), so that
 * "10.0.0.1:52416" from --join and "/ip4/10.0.0.1/tcp/52416" from a record
 * are seen as the one address they are. 0 or -EINVAL. */
static int canonical(const char *in, char *out, size_t cap)
{
  mesh_multiaddr a;
  if (mesh_multiaddr_parse(in, &a, NULL) != 0 || mesh_multiaddr_format(&a, out, cap) != 0)
    return -EINVAL;
  return 0;
}

/* Arms the dial timer for the rules' next due time. */
static void schedule(mesh_connections *c)
{
  mesh_time_ms due = mesh_connmgr_next_due(c->cm);
  if (due == UINT64_MAX) {
    mesh_timer_cancel(c->dial_timer);
    return;
  }
  mesh_time_ms now = mesh_loop_now(c->loop);
  mesh_timer_arm(c->dial_timer, due > now ? due - now : 0);
}

static void mark_dirty(mesh_connections *c)
{
  if (c->dirty)
    return;
  c->dirty = true;
  if (c->save_fn != NULL && !mesh_timer_armed(c->save_timer))
    mesh_timer_arm(c->save_timer, SAVE_DELAY_MS);
}

/* Dials are started here only, never from inside a callback of the
 * transport or the membership core: every input just re-arms the timer. */
static void on_dial_timer(void *arg, mesh_time_ms now)
{
  mesh_connections *c = arg;
  size_t n = mesh_connmgr_poll(c->cm, now, c->batch, DIAL_BATCH);
  for (size_t i = 0; i < n; i++) {
    const mesh_cm_dial *d = &c->batch[i];
    int rc = mesh_net_dial(c->net, d->addr, d->has_peer ? &d->peer : NULL, d->token);
    if (rc != 0) {
      MESH_LOG_RL(MESH_LOG_WARN, "connections", "cannot dial %s: %s", d->addr, mesh_strerror(rc));
      mesh_connmgr_dial_result(c->cm, d->token, rc, NULL, now);
    }
  }
  schedule(c);
}

static void on_dial_done(void *arg, uint64_t token, int rc, const mesh_peer_id *peer)
{
  mesh_connections *c = arg;
  mesh_connmgr_dial_result(c->cm, token, rc, peer, mesh_loop_now(c->loop));
  if (rc == 0)
    mark_dirty(c); /* an address may have been reached for the first time */
  schedule(c);
}

static int cmp_member(const void *x, const void *y)
{
  return mesh_peer_id_cmp(&((const mesh_store_member *)x)->peer,
                          &((const mesh_store_member *)y)->peer);
}

/* FNV-1a over the list: enough to tell whether it changed. */
static uint64_t hash_list(const mesh_store_member *list, size_t n)
{
  uint64_t h = UINT64_C(1469598103934665603);
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = (const uint8_t *)&list[i].peer;
    for (size_t k = 0; k < sizeof list[i].peer; k++)
      h = (h ^ p[k]) * UINT64_C(1099511628211);
    for (const char *a = list[i].addrs; *a != '\0'; a++)
      h = (h ^ (uint8_t)*a) * UINT64_C(1099511628211);
    h = (h ^ 0xff) * UINT64_C(1099511628211);
  }
  return h;
}

/* Builds the list of members to keep: members of the view first, then
 * departed ones (they may come back), each with its reached addresses
 * first; at most MESH_STORE_MEMBERS_MAX; then sorted by peer, so that a
 * member merely changing state (alive to dead) leaves the list as it was
 * and costs no write. */
static size_t snapshot(const mesh_connections *c, mesh_store_member *out)
{
  size_t k = 0;
  size_t total = mesh_connmgr_count(c->cm);
  for (int pass = 0; pass < 2; pass++) {
    for (size_t i = 0; i < total && k < MESH_STORE_MEMBERS_MAX; i++) {
      mesh_cm_entry_info e;
      if (mesh_connmgr_entry_at(c->cm, i, &e) != 0 || e.role == MESH_CM_SEED || !e.has_peer ||
          e.n_addrs == 0 || e.in_view != (pass == 0))
        continue;
      mesh_store_member *m = &out[k];
      m->peer = e.peer;
      size_t off = 0;
      for (int reached = 1; reached >= 0; reached--)
        for (size_t a = 0; a < e.n_addrs; a++) {
          if (e.reached[a] != (reached == 1))
            continue;
          size_t l = strlen(e.addrs[a]);
          if (off + l + 2 > sizeof m->addrs)
            continue;
          memcpy(m->addrs + off, e.addrs[a], l);
          off += l;
          m->addrs[off++] = '\n';
        }
      m->addrs[off] = '\0';
      k++;
    }
  }
  qsort(out, k, sizeof *out, cmp_member);
  return k;
}

void mesh_connections_save_now(mesh_connections *c)
{
  if (c->save_fn == NULL)
    return;
  mesh_timer_cancel(c->save_timer);
  mesh_store_member *list = calloc(MESH_STORE_MEMBERS_MAX, sizeof *list);
  if (list == NULL) {
    LOG_WARN("connections", "cannot save the members: %s", mesh_strerror(-ENOMEM));
    mesh_timer_arm(c->save_timer, SAVE_DELAY_MS);
    return;
  }
  size_t n = snapshot(c, list);
  c->dirty = false;
  uint64_t h = hash_list(list, n);
  if (!c->saved_once || h != c->saved_hash)
    c->save_fn(c->save_arg, list, n);
  c->saved_once = true;
  c->saved_hash = h;
  free(list);
}

static void on_save_timer(void *arg, mesh_time_ms now)
{
  (void)now;
  mesh_connections *c = arg;
  if (c->dirty)
    mesh_connections_save_now(c);
}

int mesh_connections_new(mesh_node *node, mesh_connections **out)
{
  mesh_connections *c = calloc(1, sizeof *c);
  if (c == NULL)
    return -ENOMEM;
  c->node = node;
  c->net = mesh_node_net(node);
  c->loop = mesh_node_loop(node);
  mesh_rng_seed_os(&c->rng);
  mesh_connmgr_config cfg;
  mesh_connmgr_config_default(&cfg);
  int rc;
  c->batch = calloc(DIAL_BATCH, sizeof *c->batch);
  if (c->batch == NULL) {
    rc = -ENOMEM;
    goto fail;
  }
  if ((rc = mesh_connmgr_new(&cfg, &mesh_node_identity(node)->id, &c->rng, &c->cm)) != 0 ||
      (rc = mesh_timer_new(c->loop, on_dial_timer, c, &c->dial_timer)) != 0 ||
      (rc = mesh_timer_new(c->loop, on_save_timer, c, &c->save_timer)) != 0)
    goto fail;
  mesh_net_on_dial(c->net, on_dial_done, c);
  *out = c;
  return 0;
fail:
  mesh_connections_free(c);
  return rc;
}

void mesh_connections_free(mesh_connections *c)
{
  if (c == NULL)
    return;
  if (c->net != NULL)
    mesh_net_on_dial(c->net, NULL, NULL);
  if (c->dial_timer != NULL)
    mesh_timer_free(c->dial_timer);
  if (c->save_timer != NULL)
    mesh_timer_free(c->save_timer);
  mesh_connmgr_free(c->cm);
  free(c->batch);
  free(c);
}

int mesh_connections_seed(mesh_connections *c, const char *addr)
{
  char canon[MESH_CM_ADDR_MAX];
  int rc = canonical(addr, canon, sizeof canon);
  if (rc == 0)
    rc = mesh_connmgr_add_seed(c->cm, canon, mesh_loop_now(c->loop));
  if (rc == -EEXIST)
    return 0;
  if (rc != 0)
    LOG_WARN("connections", "seed %s not kept: %s", addr, mesh_strerror(rc));
  schedule(c);
  return rc;
}

void mesh_connections_member(mesh_connections *c, const mesh_peer_id *peer,
                             mesh_cm_member_state st, const char *addrs, size_t n_addrs)
{
  char canon[MESH_CM_MAX_ADDRS][MESH_CM_ADDR_MAX];
  const char *list[MESH_CM_MAX_ADDRS];
  size_t n = 0;
  const char *a = addrs;
  for (size_t i = 0; a != NULL && i < n_addrs && n < MESH_CM_MAX_ADDRS; i++) {
    /* An address that does not parse could never be dialled: left out. */
    if (canonical(a, canon[n], sizeof canon[n]) == 0) {
      list[n] = canon[n];
      n++;
    }
    a += strlen(a) + 1;
  }
  int rc = mesh_connmgr_member(c->cm, peer, st, list, n, mesh_loop_now(c->loop));
  if (rc != 0)
    MESH_LOG_RL(MESH_LOG_WARN, "connections", "member not kept: %s", mesh_strerror(rc));
  mark_dirty(c);
  schedule(c);
}

void mesh_connections_no_route(mesh_connections *c, const mesh_peer_id *peer,
                               const char *const *addrs, size_t n)
{
  mesh_time_ms now = mesh_loop_now(c->loop);
  /* A peer without an entry (a stranger someone asked us to probe, or a
   * member the full table refused) gets one rate-limited attempt. */
  if (mesh_connmgr_want(c->cm, peer, now) != 0)
    mesh_connmgr_mention(c->cm, peer, addrs, n, now);
  schedule(c);
}

void mesh_connections_peer(mesh_connections *c, const mesh_peer_id *peer, bool up)
{
  mesh_time_ms now = mesh_loop_now(c->loop);
  if (up)
    mesh_connmgr_peer_up(c->cm, peer, now);
  else
    mesh_connmgr_peer_down(c->cm, peer, now);
  schedule(c);
}

void mesh_connections_remember(mesh_connections *c, const mesh_store_member *members, size_t n)
{
  mesh_time_ms now = mesh_loop_now(c->loop);
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    /* The addresses are lines of one string; copy before cutting it. */
    char buf[MESH_STORE_MEMBER_ADDRS_MAX];
    memcpy(buf, members[i].addrs, sizeof buf);
    buf[sizeof buf - 1] = '\0';
    const char *list[MESH_CM_MAX_ADDRS];
    char canon[MESH_CM_MAX_ADDRS][MESH_CM_ADDR_MAX];
    size_t k = 0;
    char *p = buf;
    while (*p != '\0' && k < MESH_CM_MAX_ADDRS) {
      char *nl = strchr(p, '\n');
      if (nl != NULL)
        *nl = '\0';
      if (*p != '\0' && canonical(p, canon[k], sizeof canon[k]) == 0) {
        list[k] = canon[k];
        k++;
      }
      if (nl == NULL)
        break;
      p = nl + 1;
    }
    if (mesh_connmgr_remember(c->cm, &members[i].peer, list, k, now) == 0)
      kept++;
  }
  if (n > 0)
    LOG_INFO("connections", "%zu of %zu members known before this start kept to dial", kept, n);
  /* The store holds this list already: the first save writes only if the
   * members changed since. */
  c->saved_once = true;
  c->saved_hash = hash_list(members, n);
  schedule(c);
}

void mesh_connections_on_save(mesh_connections *c, mesh_connections_save_fn fn, void *arg)
{
  c->save_fn = fn;
  c->save_arg = arg;
  if (fn != NULL && c->dirty)
    mesh_timer_arm(c->save_timer, SAVE_DELAY_MS);
}

const mesh_connmgr *mesh_connections_core(const mesh_connections *c)
{
  return c->cm;
}
