/* The connection manager's rules: one table of who to dial, and when. */
#include "net/connmgr.h"

#include "src/base/err.h"

#include <stdlib.h>
#include <string.h>

#define NEVER UINT64_MAX
/* Mention dials carry this bit in their token, so their results are told
 * apart from an entry's without a lookup. */
#define MENTION_BIT (UINT64_C(1) << 63)
/* Mentioned addresses queued for their one dial; over it they are refused
 * like those over the rate. */
#define MENTION_QUEUE 32
/* Up peers tracked; the transport's connection cap keeps it far lower. */
#define UPS_MAX 65536

typedef struct cm_addr {
  char *text;    /* heap, owned */
  bool reached;  /* a dial of it reached the entry's peer */
  uint8_t fails; /* failed dials while not reached */
} cm_addr;

typedef struct cm_entry {
  mesh_cm_role role;
  bool has_peer; /* members always; a seed once a dial reached someone */
  mesh_peer_id peer;
  bool in_view; /* members: alive or suspect */
  bool up;
  bool is_self; /* a seed that led back to this node: never dialled again */
  cm_addr addrs[MESH_CM_MAX_ADDRS];
  size_t n_addrs;
  size_t next_addr;
  unsigned attempts;    /* failed dials since the last success */
  mesh_time_ms due;     /* next dial */
  uint64_t token;       /* dial under way, or 0 */
  size_t token_addr;    /* the address it is dialling */
  mesh_time_ms useful;  /* last added, connected or reached: eviction order */
} cm_entry;

typedef struct cm_recent {
  uint64_t hash;
  mesh_time_ms at;
} cm_recent;

struct mesh_connmgr {
  mesh_connmgr_config cfg;
  mesh_peer_id self;
  mesh_rng *rng;       /* borrowed */
  cm_entry **entries;  /* cfg.max_entries slots, n used; each heap, owned */
  size_t n;
  size_t in_view;      /* member entries in the view */
  mesh_peer_id *ups;   /* peers up now, heap */
  size_t n_ups, cap_ups;
  uint64_t next_token;
  mesh_cm_dial mq[MENTION_QUEUE]; /* mentions waiting for poll */
  size_t n_mq;
  cm_recent *recent;   /* cfg.mention_memory slots, a ring */
  size_t recent_head, n_recent;
  uint64_t bucket;     /* mention tokens, in thousandths */
  mesh_time_ms bucket_at;
  mesh_connmgr_counters c;
};

const char *mesh_cm_role_name(mesh_cm_role r)
{
  switch (r) {
  case MESH_CM_SEED:
    return "seed";
  case MESH_CM_MEMBER:
    return "member";
  case MESH_CM_REMEMBERED:
    return "remembered";
  }
  return "unknown";
}

void mesh_connmgr_config_default(mesh_connmgr_config *c)
{
  *c = (mesh_connmgr_config){.max_entries = 1024,
                             .max_remembered = 64,
                             .backoff_min_ms = 100,
                             .backoff_max_ms = 30000,
                             .unreached_tries = 3,
                             .mention_rate = 10,
                             .mention_burst = 20,
                             .mention_memory = 256,
                             .mention_memory_ms = 60000};
}

static bool id_eq(const mesh_peer_id *a, const mesh_peer_id *b)
{
  return mesh_peer_id_eq(a, b);
}

/* FNV-1a: the memory of tried mentions needs no more than that. */
static uint64_t hash_text(const char *s)
{
  uint64_t h = UINT64_C(1469598103934665603);
  for (; *s != '\0'; s++) {
    h ^= (uint8_t)*s;
    h *= UINT64_C(1099511628211);
  }
  return h;
}

static bool addr_ok(const char *a)
{
  return a != NULL && a[0] != '\0' && strlen(a) < MESH_CM_ADDR_MAX;
}

int mesh_connmgr_new(const mesh_connmgr_config *cfg, const mesh_peer_id *self, mesh_rng *rng,
                     mesh_connmgr **out)
{
  if (cfg->max_entries == 0 || cfg->backoff_min_ms == 0 ||
      cfg->backoff_max_ms < cfg->backoff_min_ms)
    return -EINVAL;
  mesh_connmgr *cm = calloc(1, sizeof *cm);
  if (cm == NULL)
    return -ENOMEM;
  cm->cfg = *cfg;
  if (cm->cfg.mention_memory == 0)
    cm->cfg.mention_memory = 1;
  cm->self = *self;
  cm->rng = rng;
  cm->entries = calloc(cfg->max_entries, sizeof *cm->entries);
  cm->recent = calloc(cm->cfg.mention_memory, sizeof *cm->recent);
  if (cm->entries == NULL || cm->recent == NULL) {
    mesh_connmgr_free(cm);
    return -ENOMEM;
  }
  cm->bucket = (uint64_t)cfg->mention_burst * 1000;
  *out = cm;
  return 0;
}

static void entry_free(cm_entry *e)
{
  for (size_t i = 0; i < e->n_addrs; i++)
    free(e->addrs[i].text);
  free(e);
}

void mesh_connmgr_free(mesh_connmgr *cm)
{
  if (cm == NULL)
    return;
  if (cm->entries != NULL)
    for (size_t i = 0; i < cm->n; i++)
      entry_free(cm->entries[i]);
  free(cm->entries);
  free(cm->ups);
  free(cm->recent);
  free(cm);
}

/* --- the table --- */

static void count_role(mesh_connmgr *cm, const cm_entry *e, int delta)
{
  cm->c.entries[e->role] += (uint64_t)(int64_t)delta;
}

static void set_in_view(mesh_connmgr *cm, cm_entry *e, bool in_view)
{
  if (e->in_view == in_view)
    return;
  e->in_view = in_view;
  if (in_view)
    cm->in_view++;
  else
    cm->in_view--;
}

static void remove_at(mesh_connmgr *cm, size_t i)
{
  /* Entries are unordered: the last one takes the freed slot. */
  cm_entry *e = cm->entries[i];
  set_in_view(cm, e, false);
  count_role(cm, e, -1);
  entry_free(e);
  cm->entries[i] = cm->entries[--cm->n];
  cm->entries[cm->n] = NULL;
}

static void remove_entry(mesh_connmgr *cm, const cm_entry *e)
{
  for (size_t i = 0; i < cm->n; i++)
    if (cm->entries[i] == e) {
      remove_at(cm, i);
      return;
    }
}

static bool is_up(const mesh_connmgr *cm, const mesh_peer_id *peer)
{
  for (size_t i = 0; i < cm->n_ups; i++)
    if (id_eq(&cm->ups[i], peer))
      return true;
  return false;
}

bool mesh_connmgr_is_up(const mesh_connmgr *cm, const mesh_peer_id *peer)
{
  return is_up(cm, peer);
}

/* The entry that stands for peer, seeds left out (a seed is an address
 * first: it keeps its role whoever answers there). */
static cm_entry *find_peer(mesh_connmgr *cm, const mesh_peer_id *peer)
{
  for (size_t i = 0; i < cm->n; i++) {
    cm_entry *e = cm->entries[i];
    if (e->role != MESH_CM_SEED && e->has_peer && id_eq(&e->peer, peer))
      return e;
  }
  return NULL;
}

static bool seed_covers(const mesh_connmgr *cm, const mesh_peer_id *peer)
{
  for (size_t i = 0; i < cm->n; i++) {
    const cm_entry *e = cm->entries[i];
    if (e->role == MESH_CM_SEED && e->has_peer && !e->is_self && id_eq(&e->peer, peer))
      return true;
  }
  return false;
}

/* Room for one more entry: the least recently useful one that is neither
 * a seed nor a member in the view goes. */
static int make_room(mesh_connmgr *cm)
{
  if (cm->n < cm->cfg.max_entries)
    return 0;
  size_t victim = SIZE_MAX;
  for (size_t i = 0; i < cm->n; i++) {
    const cm_entry *e = cm->entries[i];
    if (e->role == MESH_CM_SEED || (e->role == MESH_CM_MEMBER && e->in_view))
      continue;
    if (victim == SIZE_MAX || e->useful < cm->entries[victim]->useful)
      victim = i;
  }
  if (victim == SIZE_MAX) {
    cm->c.refused_full++;
    return -ENOSPC;
  }
  remove_at(cm, victim);
  cm->c.evicted++;
  return 0;
}

static cm_entry *add_entry(mesh_connmgr *cm, mesh_cm_role role, mesh_time_ms now, int *rc)
{
  if ((*rc = make_room(cm)) != 0)
    return NULL;
  cm_entry *e = calloc(1, sizeof *e);
  if (e == NULL) {
    *rc = -ENOMEM;
    return NULL;
  }
  e->role = role;
  e->due = now;
  e->useful = now;
  cm->entries[cm->n++] = e;
  count_role(cm, e, +1);
  return e;
}

static int add_addr(cm_entry *e, const char *text, bool reached)
{
  if (e->n_addrs == MESH_CM_MAX_ADDRS)
    return -ENOSPC;
  size_t len = strlen(text) + 1;
  char *copy = malloc(len);
  if (copy == NULL)
    return -ENOMEM;
  memcpy(copy, text, len);
  e->addrs[e->n_addrs++] = (cm_addr){.text = copy, .reached = reached};
  return 0;
}

static void drop_addr(cm_entry *e, size_t i)
{
  free(e->addrs[i].text);
  memmove(&e->addrs[i], &e->addrs[i + 1], (e->n_addrs - i - 1) * sizeof e->addrs[0]);
  e->n_addrs--;
  if (e->next_addr >= e->n_addrs)
    e->next_addr = 0;
}

/* Capped exponential backoff with jitter in [d/2, d]. An entry with
 * several addresses tries each before the delay grows. */
static mesh_time_ms backoff(mesh_connmgr *cm, const cm_entry *e)
{
  unsigned rounds = e->attempts / (unsigned)(e->n_addrs > 0 ? e->n_addrs : 1);
  mesh_time_ms d = cm->cfg.backoff_min_ms;
  for (unsigned i = 0; i < rounds && d < cm->cfg.backoff_max_ms; i++)
    d *= 2;
  if (d > cm->cfg.backoff_max_ms)
    d = cm->cfg.backoff_max_ms;
  return d / 2 + mesh_rng_below(cm->rng, d / 2 + 1);
}

/* Whether e wants a connection made now (time aside). */
static bool wants_dial(const mesh_connmgr *cm, const cm_entry *e)
{
  if (e->token != 0 || e->is_self || e->n_addrs == 0)
    return false;
  if (e->has_peer && e->up)
    return false;
  switch (e->role) {
  case MESH_CM_SEED:
    return true;
  case MESH_CM_MEMBER:
    /* A seed that reaches this member redials it already. */
    return !seed_covers(cm, &e->peer);
  case MESH_CM_REMEMBERED:
    return cm->in_view == 0;
  }
  return false;
}

/* --- inputs --- */

int mesh_connmgr_add_seed(mesh_connmgr *cm, const char *addr, mesh_time_ms now)
{
  if (!addr_ok(addr)) {
    cm->c.refused_bad++;
    return -EINVAL;
  }
  for (size_t i = 0; i < cm->n; i++) {
    const cm_entry *e = cm->entries[i];
    if (e->role == MESH_CM_SEED && strcmp(e->addrs[0].text, addr) == 0)
      return -EEXIST;
  }
  int rc;
  cm_entry *e = add_entry(cm, MESH_CM_SEED, now, &rc);
  if (e == NULL)
    return rc;
  if ((rc = add_addr(e, addr, false)) != 0) {
    remove_at(cm, cm->n - 1);
    return rc;
  }
  return 0;
}

/* Makes e's addresses those of the list: addresses kept keep what was
 * learned of them (reached, failures); new ones start afresh. */
static int set_addrs(mesh_connmgr *cm, cm_entry *e, const char *const *addrs, size_t n)
{
  cm_addr old[MESH_CM_MAX_ADDRS];
  size_t n_old = e->n_addrs;
  memcpy(old, e->addrs, n_old * sizeof old[0]);
  e->n_addrs = 0;
  e->next_addr = 0;
  int rc = 0;
  for (size_t i = 0; i < n && e->n_addrs < MESH_CM_MAX_ADDRS; i++) {
    if (!addr_ok(addrs[i])) {
      cm->c.refused_bad++;
      continue;
    }
    bool dup = false;
    for (size_t k = 0; k < e->n_addrs; k++)
      dup = dup || strcmp(e->addrs[k].text, addrs[i]) == 0;
    if (dup)
      continue;
    size_t k = 0;
    while (k < n_old && (old[k].text == NULL || strcmp(old[k].text, addrs[i]) != 0))
      k++;
    if (k < n_old) {
      e->addrs[e->n_addrs++] = old[k];
      old[k].text = NULL;
    } else if ((rc = add_addr(e, addrs[i], false)) != 0) {
      break;
    }
  }
  for (size_t k = 0; k < n_old; k++)
    free(old[k].text);
  return rc;
}

int mesh_connmgr_remember(mesh_connmgr *cm, const mesh_peer_id *peer, const char *const *addrs,
                          size_t n, mesh_time_ms now)
{
  if (id_eq(peer, &cm->self))
    return -EINVAL;
  if (find_peer(cm, peer) != NULL)
    return -EEXIST;
  if (cm->c.entries[MESH_CM_REMEMBERED] >= cm->cfg.max_remembered) {
    cm->c.refused_full++;
    return -ENOSPC;
  }
  int rc;
  cm_entry *e = add_entry(cm, MESH_CM_REMEMBERED, now, &rc);
  if (e == NULL)
    return rc;
  e->has_peer = true;
  e->peer = *peer;
  e->up = is_up(cm, peer);
  if ((rc = set_addrs(cm, e, addrs, n)) != 0 || e->n_addrs == 0) {
    remove_at(cm, cm->n - 1);
    return rc != 0 ? rc : -EINVAL;
  }
  return 0;
}

int mesh_connmgr_member(mesh_connmgr *cm, const mesh_peer_id *peer, mesh_cm_member_state st,
                        const char *const *addrs, size_t n, mesh_time_ms now)
{
  if (id_eq(peer, &cm->self))
    return 0;
  cm_entry *e = find_peer(cm, peer);
  if (st == MESH_CM_GONE) {
    if (e != NULL)
      remove_entry(cm, e);
    return 0;
  }
  int rc;
  if (e == NULL) {
    if ((e = add_entry(cm, MESH_CM_MEMBER, now, &rc)) == NULL)
      return rc;
    e->has_peer = true;
    e->peer = *peer;
    e->up = is_up(cm, peer);
  } else if (e->role == MESH_CM_REMEMBERED) {
    count_role(cm, e, -1);
    e->role = MESH_CM_MEMBER;
    count_role(cm, e, +1);
  }
  bool was_in_view = e->in_view;
  set_in_view(cm, e, st == MESH_CM_IN_VIEW);
  if ((rc = set_addrs(cm, e, addrs, n)) != 0)
    return rc;
  if (was_in_view != e->in_view) {
    /* Joined, or just departed: a fresh start of the backoff. */
    e->attempts = 0;
    if (e->token == 0 && e->due > now)
      e->due = now + (e->in_view ? 0 : backoff(cm, e));
  }
  return 0;
}

int mesh_connmgr_want(mesh_connmgr *cm, const mesh_peer_id *peer, mesh_time_ms now)
{
  cm_entry *e = find_peer(cm, peer);
  if (e == NULL) {
    for (size_t i = 0; i < cm->n && e == NULL; i++)
      if (cm->entries[i]->has_peer && id_eq(&cm->entries[i]->peer, peer))
        e = cm->entries[i];
    if (e == NULL)
      return -ENOENT;
  }
  if (e->token == 0 && e->attempts == 0 && e->due > now)
    e->due = now;
  return 0;
}

static bool recently_tried(mesh_connmgr *cm, uint64_t h, mesh_time_ms now)
{
  for (size_t i = 0; i < cm->n_recent; i++) {
    const cm_recent *r = &cm->recent[i];
    if (r->hash == h && now < r->at + cm->cfg.mention_memory_ms)
      return true;
  }
  return false;
}

static bool take_token(mesh_connmgr *cm, mesh_time_ms now)
{
  uint64_t cap = (uint64_t)cm->cfg.mention_burst * 1000;
  if (now > cm->bucket_at) {
    uint64_t add = (now - cm->bucket_at) * cm->cfg.mention_rate;
    cm->bucket = cm->bucket + add > cap ? cap : cm->bucket + add;
  }
  cm->bucket_at = now;
  if (cm->bucket < 1000)
    return false;
  cm->bucket -= 1000;
  return true;
}

int mesh_connmgr_mention(mesh_connmgr *cm, const mesh_peer_id *peer, const char *const *addrs,
                         size_t n, mesh_time_ms now)
{
  if (peer != NULL) {
    if (id_eq(peer, &cm->self))
      return -EINVAL;
    /* A member's addresses come from its own signed record, not from what
     * another peer says of it. */
    if (mesh_connmgr_want(cm, peer, now) == 0)
      return 0;
    if (is_up(cm, peer))
      return 0;
  }
  const char *addr = NULL;
  for (size_t i = 0; i < n && addr == NULL; i++)
    if (addr_ok(addrs[i]))
      addr = addrs[i];
  if (addr == NULL) {
    cm->c.refused_bad++;
    return -EINVAL;
  }
  uint64_t h = hash_text(addr);
  if (recently_tried(cm, h, now)) {
    cm->c.mentions_refused_recent++;
    return -EALREADY;
  }
  if (cm->n_mq == MENTION_QUEUE || !take_token(cm, now)) {
    cm->c.mentions_refused_rate++;
    return -EBUSY;
  }
  cm->recent[cm->recent_head] = (cm_recent){.hash = h, .at = now};
  cm->recent_head = (cm->recent_head + 1) % cm->cfg.mention_memory;
  if (cm->n_recent < cm->cfg.mention_memory)
    cm->n_recent++;
  mesh_cm_dial *d = &cm->mq[cm->n_mq++];
  memset(d, 0, sizeof *d);
  memcpy(d->addr, addr, strlen(addr) + 1);
  d->has_peer = peer != NULL;
  if (peer != NULL)
    d->peer = *peer;
  d->role = MESH_CM_MEMBER;
  d->one_shot = true;
  return 0;
}

void mesh_connmgr_peer_up(mesh_connmgr *cm, const mesh_peer_id *peer, mesh_time_ms now)
{
  if (!is_up(cm, peer)) {
    if (cm->n_ups == cm->cap_ups && cm->cap_ups < UPS_MAX) {
      size_t cap = cm->cap_ups ? cm->cap_ups * 2 : 16;
      mesh_peer_id *p = realloc(cm->ups, cap * sizeof *p);
      if (p != NULL) {
        cm->ups = p;
        cm->cap_ups = cap;
      }
    }
    /* Without room the peer is simply not known to be up: its entry may
     * dial once more, and the transport keeps one connection per peer. */
    if (cm->n_ups < cm->cap_ups)
      cm->ups[cm->n_ups++] = *peer;
  }
  for (size_t i = 0; i < cm->n; i++) {
    cm_entry *e = cm->entries[i];
    if (e->has_peer && id_eq(&e->peer, peer)) {
      e->up = true;
      e->attempts = 0;
      e->useful = now;
    }
  }
}

void mesh_connmgr_peer_down(mesh_connmgr *cm, const mesh_peer_id *peer, mesh_time_ms now)
{
  for (size_t i = 0; i < cm->n_ups; i++)
    if (id_eq(&cm->ups[i], peer)) {
      cm->ups[i] = cm->ups[--cm->n_ups];
      break;
    }
  for (size_t i = 0; i < cm->n; i++) {
    cm_entry *e = cm->entries[i];
    if (e->has_peer && id_eq(&e->peer, peer) && e->up) {
      e->up = false;
      if (e->token == 0)
        e->due = now + backoff(cm, e);
    }
  }
}

void mesh_connmgr_dial_result(mesh_connmgr *cm, uint64_t token, int rc, const mesh_peer_id *peer,
                              mesh_time_ms now)
{
  if (token == 0)
    return;
  if (token & MENTION_BIT) {
    if (rc != 0)
      cm->c.dial_failures++;
    return;
  }
  cm_entry *e = NULL;
  for (size_t i = 0; i < cm->n && e == NULL; i++)
    if (cm->entries[i]->token == token)
      e = cm->entries[i];
  if (e == NULL)
    return;
  e->token = 0;
  size_t ai = e->token_addr < e->n_addrs ? e->token_addr : 0;
  if (rc == 0 && peer != NULL) {
    if (e->role == MESH_CM_SEED) {
      e->has_peer = true;
      e->peer = *peer;
    } else if (!id_eq(&e->peer, peer)) {
      cm->c.wrong_peer++;
      rc = -EBADMSG;
    }
  }
  if (rc == 0) {
    e->attempts = 0;
    e->useful = now;
    if (ai < e->n_addrs)
      e->addrs[ai].reached = true;
    e->up = peer != NULL && is_up(cm, peer);
    /* The peer event says when it goes down; until then a check now and
     * then costs nothing. */
    e->due = now + cm->cfg.backoff_max_ms;
    return;
  }
  cm->c.dial_failures++;
  if (rc == -ELOOP && e->role == MESH_CM_SEED) {
    /* A --join list shared by every node names this one too. */
    e->is_self = true;
    return;
  }
  e->attempts++;
  if (e->role != MESH_CM_SEED && ai < e->n_addrs && !e->addrs[ai].reached &&
      ++e->addrs[ai].fails >= cm->cfg.unreached_tries) {
    drop_addr(e, ai);
    cm->c.addrs_dropped++;
    if (e->n_addrs == 0 && e->role == MESH_CM_REMEMBERED) {
      remove_entry(cm, e);
      return;
    }
  } else if (e->n_addrs > 0) {
    e->next_addr = (ai + 1) % e->n_addrs;
  }
  e->due = now + backoff(cm, e);
}

/* Whether a dial of addr is under way for another entry: a second one
 * would only race it (both ends then keep one connection, and what was
 * sent on the other may be lost). */
static bool addr_in_flight(const mesh_connmgr *cm, const char *addr)
{
  for (size_t i = 0; i < cm->n; i++) {
    const cm_entry *e = cm->entries[i];
    if (e->token != 0 && e->token_addr < e->n_addrs && strcmp(e->addrs[e->token_addr].text, addr) == 0)
      return true;
  }
  return false;
}

size_t mesh_connmgr_poll(mesh_connmgr *cm, mesh_time_ms now, mesh_cm_dial *out, size_t cap)
{
  size_t k = 0;
  size_t m = 0;
  for (; m < cm->n_mq && k < cap; m++) {
    out[k] = cm->mq[m];
    out[k].token = ++cm->next_token | MENTION_BIT;
    cm->c.mention_dials++;
    k++;
  }
  memmove(cm->mq, cm->mq + m, (cm->n_mq - m) * sizeof cm->mq[0]);
  cm->n_mq -= m;
  for (size_t i = 0; i < cm->n && k < cap; i++) {
    cm_entry *e = cm->entries[i];
    if (e->due > now || !wants_dial(cm, e))
      continue;
    size_t ai = e->next_addr < e->n_addrs ? e->next_addr : 0;
    if (addr_in_flight(cm, e->addrs[ai].text))
      continue; /* due still: the next poll after that dial's result */
    mesh_cm_dial *d = &out[k++];
    memset(d, 0, sizeof *d);
    memcpy(d->addr, e->addrs[ai].text, strlen(e->addrs[ai].text) + 1);
    d->has_peer = e->role != MESH_CM_SEED && e->has_peer;
    if (d->has_peer)
      d->peer = e->peer;
    d->role = e->role;
    e->token = (++cm->next_token) & ~MENTION_BIT;
    e->token_addr = ai;
    d->token = e->token;
    cm->c.dials[e->role]++;
  }
  return k;
}

mesh_time_ms mesh_connmgr_next_due(const mesh_connmgr *cm)
{
  if (cm->n_mq > 0)
    return 0;
  mesh_time_ms next = NEVER;
  for (size_t i = 0; i < cm->n; i++) {
    const cm_entry *e = cm->entries[i];
    if (e->due < next && wants_dial(cm, e))
      next = e->due;
  }
  return next;
}

size_t mesh_connmgr_count(const mesh_connmgr *cm)
{
  return cm->n;
}

int mesh_connmgr_entry_at(const mesh_connmgr *cm, size_t i, mesh_cm_entry_info *out)
{
  if (i >= cm->n)
    return -ENOENT;
  const cm_entry *e = cm->entries[i];
  memset(out, 0, sizeof *out);
  out->role = e->role;
  out->has_peer = e->has_peer;
  out->peer = e->peer;
  out->in_view = e->in_view;
  out->up = e->up;
  out->attempts = e->attempts;
  out->due = wants_dial(cm, e) ? e->due : NEVER;
  out->n_addrs = e->n_addrs;
  for (size_t k = 0; k < e->n_addrs; k++) {
    out->addrs[k] = e->addrs[k].text;
    out->reached[k] = e->addrs[k].reached;
  }
  return 0;
}

const mesh_connmgr_counters *mesh_connmgr_counters_get(const mesh_connmgr *cm)
{
  return &cm->c;
}
