/*
 * Anti-entropy: the push-pull exchanges of whole views, in full or by digest.
 *
 * A full push-pull carries every record and accusation this node holds; its
 * answer leaves out the ones the asker sent byte for byte. A join, a seed
 * known only by its address, a reconnect to a member held dead and a new
 * epoch use it: there the two views are expected to differ.
 *
 * The periodic push-pull with a member of the view goes by digest, since
 * two settled views are the same and a full state of N records (about 200
 * bytes each) would say nothing new:
 *
 *   ask      digest_key (16 random bytes) and digest: SipHash-2-4 under
 *            that key of each update the asker holds; no updates
 *   answer   reply; the updates whose hash is not in the digest, and want:
 *            the digest's hashes the answerer does not hold
 *   push     reply, only when a wanted update is still held: those updates
 *
 * In a settled view the exchange is two messages of 8 bytes per update and
 * a few of framing, against one full state. The hashes are keyed afresh by
 * each ask, so a member cannot prepare a record of its own whose hash
 * matches another member's record and so keep it from a view: it would
 * have to know the key before the ask is made. A peer that knows nothing
 * of digests answers an ask in full (the ask carries no updates, so it
 * learns nothing from it until its own next push-pull).
 */
#include "net/swim_core.h"

#include <sodium.h>

/* The updates of a received push-pull, sorted by hash, so that an answer
 * can leave out the records its asker holds already. */
typedef struct swim_seen_key {
  uint64_t hash; /* of the update's bytes */
  uint32_t idx;  /* which update of the packet */
} swim_seen_key;

typedef struct swim_seen {
  const swim_packet *p; /* the push-pull answered (borrowed) */
  swim_seen_key *keys;  /* one per update, sorted by hash */
  size_t n;
} swim_seen;

static uint64_t bytes_hash(const uint8_t *b, size_t len)
{
  uint64_t h = UINT64_C(1469598103934665603); /* FNV-1a: a filter, then memcmp decides */
  for (size_t i = 0; i < len; i++)
    h = (h ^ b[i]) * UINT64_C(1099511628211);
  return h;
}

static int cmp_seen(const void *x, const void *y)
{
  uint64_t a = ((const swim_seen_key *)x)->hash, b = ((const swim_seen_key *)y)->hash;
  return a < b ? -1 : a > b;
}

/* Fills seen from p; false (and seen empty) when memory ran out, and the
 * answer then carries everything, as it always could. */
static bool seen_init(swim_seen *seen, const swim_packet *p)
{
  memset(seen, 0, sizeof *seen);
  if (p->n_updates == 0 || p->n_updates > UINT32_MAX)
    return false;
  swim_seen_key *keys = malloc(p->n_updates * sizeof *keys);
  if (keys == NULL)
    return false;
  for (size_t i = 0; i < p->n_updates; i++)
    keys[i] =
        (swim_seen_key){.hash = bytes_hash(p->updates[i], p->update_lens[i]), .idx = (uint32_t)i};
  qsort(keys, p->n_updates, sizeof *keys, cmp_seen);
  *seen = (swim_seen){.p = p, .keys = keys, .n = p->n_updates};
  return true;
}

static void seen_free(swim_seen *seen)
{
  free(seen->keys);
  memset(seen, 0, sizeof *seen);
}

/* Whether the asker sent exactly these bytes. */
static bool seen_has(const swim_seen *seen, const uint8_t *b, size_t len)
{
  if (seen == NULL || seen->n == 0)
    return false;
  uint64_t k = bytes_hash(b, len);
  size_t lo = 0, hi = seen->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (seen->keys[mid].hash < k)
      lo = mid + 1;
    else
      hi = mid;
  }
  for (size_t i = lo; i < seen->n && seen->keys[i].hash == k; i++) {
    uint32_t u = seen->keys[i].idx;
    if (seen->p->update_lens[u] == len && memcmp(seen->p->updates[u], b, len) == 0)
      return true;
  }
  return false;
}

/* Our full state for a push-pull: every member's record and accusation.
 * An answer (seen not NULL) leaves out the records its asker sent us
 * byte for byte: it holds them already, and in a settled mesh that is
 * nearly all of them, so an exchange costs one full state, not two. */
static void send_full(mesh_swim *s, const mesh_peer_id *to, const char *addr, bool join, bool reply,
                      const swim_seen *seen, mesh_swim_outbox *out)
{
  size_t max = 1 + 2 * s->n;
  const uint8_t **ups = malloc(max * sizeof *ups);
  size_t *lens = malloc(max * sizeof *lens);
  if (ups == NULL || lens == NULL) {
    free(ups);
    free(lens);
    out->alloc_failed = -ENOMEM;
    return;
  }
  size_t n = 0;
  if (!seen_has(seen, s->self_upd, s->self_upd_len)) {
    ups[n] = s->self_upd;
    lens[n++] = s->self_upd_len;
  }
  for (size_t i = 0; i < s->n; i++) {
    const swim_member *m = s->m[i];
    if (m->rec != NULL && !seen_has(seen, m->rec, m->rec_len)) {
      ups[n] = m->rec;
      lens[n++] = m->rec_len;
    }
    if (m->acc != NULL && !seen_has(seen, m->acc, m->acc_len)) {
      ups[n] = m->acc;
      lens[n++] = m->acc_len;
    }
  }
  swim_packet_out p = {.kind = MESH_SWIM_MSG_PUSH_PULL,
                       .join = join,
                       .reply = reply,
                       .epoch = s->epoch,
                       .updates = ups,
                       .update_lens = lens,
                       .n_updates = n,
                       .app = s->app,
                       .app_len = s->app_len};
  if (addr != NULL && swim_find(s, to) == NULL) {
    /* A seed we know only by the address we dialed. */
    uint8_t *buf;
    size_t len;
    size_t abytes = strlen(addr) + 1;
    if (swim_packet_encode(&p, abytes, &buf, &len) == 0) {
      s->c.msgs_sent[p.kind]++;
      s->c.bytes_sent[p.kind] += len;
      swim_outbox_send(out, to, MESH_SWIM_STREAM, p.kind, buf, len, addr, abytes, 1);
    } else {
      out->alloc_failed = -ENOMEM;
    }
  } else {
    swim_send_packet(s, to, MESH_SWIM_STREAM, &p, NULL, 0, out);
  }
  free(ups);
  free(lens);
}

/* ---- by digest ---- */

/* Every update this node holds: its own record, each member's record and
 * accusation (pointers borrowed from the state). */
typedef struct swim_held {
  const uint8_t **ups;
  size_t *lens;
  uint64_t *hashes; /* under the exchange's key, same order */
  size_t n;
} swim_held;

static uint64_t keyed_hash(const uint8_t key[MESH_SWIM_DIGEST_KEY], const uint8_t *b, size_t len)
{
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, b, len, key);
  uint64_t v = 0;
  for (int i = crypto_shorthash_BYTES - 1; i >= 0; i--)
    v = v << 8 | h[i];
  return v;
}

static int held_collect(const mesh_swim *s, const uint8_t key[MESH_SWIM_DIGEST_KEY], swim_held *h)
{
  size_t max = 1 + 2 * s->n;
  h->ups = malloc(max * sizeof *h->ups);
  h->lens = malloc(max * sizeof *h->lens);
  h->hashes = malloc(max * sizeof *h->hashes);
  h->n = 0;
  if (h->ups == NULL || h->lens == NULL || h->hashes == NULL)
    return -ENOMEM;
  h->ups[h->n] = s->self_upd;
  h->lens[h->n++] = s->self_upd_len;
  for (size_t i = 0; i < s->n; i++) {
    const swim_member *m = s->m[i];
    if (m->rec != NULL) {
      h->ups[h->n] = m->rec;
      h->lens[h->n++] = m->rec_len;
    }
    if (m->acc != NULL) {
      h->ups[h->n] = m->acc;
      h->lens[h->n++] = m->acc_len;
    }
  }
  for (size_t i = 0; i < h->n; i++)
    h->hashes[i] = keyed_hash(key, h->ups[i], h->lens[i]);
  return 0;
}

static void held_free(swim_held *h)
{
  free(h->ups);
  free(h->lens);
  free(h->hashes);
  memset(h, 0, sizeof *h);
}

static int cmp_u64(const void *x, const void *y)
{
  uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
  return a < b ? -1 : a > b;
}

static bool sorted_has(const uint64_t *v, size_t n, uint64_t k)
{
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v[mid] < k)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < n && v[lo] == k;
}

/* A sorted copy of n hashes (NULL when n is 0 or memory ran out). */
static uint64_t *sorted_copy(const uint64_t *v, size_t n)
{
  if (n == 0)
    return NULL;
  uint64_t *c = malloc(n * sizeof *c);
  if (c == NULL)
    return NULL;
  memcpy(c, v, n * sizeof *c);
  qsort(c, n, sizeof *c, cmp_u64);
  return c;
}

static void send_digest(mesh_swim *s, const mesh_peer_id *to, mesh_swim_outbox *out)
{
  uint8_t key[MESH_SWIM_DIGEST_KEY];
  for (size_t i = 0; i < sizeof key; i += 8) {
    uint64_t r = mesh_rng_next(s->rng);
    memcpy(key + i, &r, 8);
  }
  swim_held h;
  if (held_collect(s, key, &h) != 0) {
    held_free(&h);
    out->alloc_failed = -ENOMEM;
    return;
  }
  swim_packet_out p = {.kind = MESH_SWIM_MSG_PUSH_PULL,
                       .epoch = s->epoch,
                       .app = s->app,
                       .app_len = s->app_len,
                       .digest_key = key,
                       .digest = h.hashes,
                       .n_digest = h.n};
  s->c.push_pull_digests++;
  swim_send_packet(s, to, MESH_SWIM_STREAM, &p, NULL, 0, out);
  held_free(&h);
}

/* The answer to an ask by digest: what the asker lacks, and what we lack. */
static void answer_digest(mesh_swim *s, const mesh_peer_id *from, const swim_packet *ask,
                          mesh_swim_outbox *out)
{
  swim_held h;
  uint64_t *theirs = sorted_copy(ask->digest, ask->n_digest);
  uint64_t *ours = NULL;
  uint64_t *want = ask->n_digest > 0 ? malloc(ask->n_digest * sizeof *want) : NULL;
  if (held_collect(s, ask->digest_key, &h) != 0 ||
      (ask->n_digest > 0 && (theirs == NULL || want == NULL)) ||
      (ours = sorted_copy(h.hashes, h.n)) == NULL) {
    out->alloc_failed = -ENOMEM;
    goto done;
  }
  size_t n = 0;
  for (size_t i = 0; i < h.n; i++)
    if (!sorted_has(theirs, ask->n_digest, h.hashes[i])) {
      h.ups[n] = h.ups[i];
      h.lens[n++] = h.lens[i];
    }
  size_t n_want = 0;
  for (size_t i = 0; i < ask->n_digest; i++)
    if (!sorted_has(ours, h.n, theirs[i]) && (n_want == 0 || want[n_want - 1] != theirs[i]))
      want[n_want++] = theirs[i];
  swim_packet_out p = {.kind = MESH_SWIM_MSG_PUSH_PULL,
                       .reply = true,
                       .epoch = s->epoch,
                       .updates = h.ups,
                       .update_lens = h.lens,
                       .n_updates = n,
                       .app = s->app,
                       .app_len = s->app_len,
                       .digest_key = n_want > 0 ? ask->digest_key : NULL,
                       .want = want,
                       .n_want = n_want};
  swim_send_packet(s, from, MESH_SWIM_STREAM, &p, NULL, 0, out);
done:
  held_free(&h);
  free(theirs);
  free(ours);
  free(want);
}

/* The last message of an exchange by digest: the updates the answerer
 * wanted that we still hold (one replaced since the ask is not sent). */
static void push_wanted(mesh_swim *s, const mesh_peer_id *from, const swim_packet *answer,
                        mesh_swim_outbox *out)
{
  swim_held h;
  uint64_t *want = sorted_copy(answer->want, answer->n_want);
  if (want == NULL || held_collect(s, answer->digest_key, &h) != 0) {
    if (want != NULL)
      held_free(&h);
    free(want);
    out->alloc_failed = -ENOMEM;
    return;
  }
  size_t n = 0;
  for (size_t i = 0; i < h.n; i++)
    if (sorted_has(want, answer->n_want, h.hashes[i])) {
      h.ups[n] = h.ups[i];
      h.lens[n++] = h.lens[i];
    }
  if (n > 0) {
    swim_packet_out p = {.kind = MESH_SWIM_MSG_PUSH_PULL,
                         .reply = true,
                         .epoch = s->epoch,
                         .updates = h.ups,
                         .update_lens = h.lens,
                         .n_updates = n};
    s->c.push_pull_pushes++;
    swim_send_packet(s, from, MESH_SWIM_STREAM, &p, NULL, 0, out);
  }
  held_free(&h);
  free(want);
}

/* The answer to our last ask had nothing for us and wanted nothing: the
 * two views are the same. The early rounds after joining are for a view
 * still filling up; this one has, so the next exchange comes a whole
 * period from now. */
static void settled(mesh_swim *s, mesh_time_ms now)
{
  if (s->early_push_pull == NEVER)
    return;
  s->early_push_pull = NEVER;
  mesh_time_ms period = swim_push_pull_scale(s->cfg.push_pull_interval_ms, s->n_view + 1);
  if (s->next_push_pull < now + period)
    s->next_push_pull = now + period;
  s->c.push_pull_settled++;
}

/* ---- entry points for the core ---- */

void swim_push_pull_send(mesh_swim *s, const mesh_peer_id *to, const char *addr,
                         swim_push_pull_mode mode, mesh_swim_outbox *out)
{
  /* Only the periodic round's answer may end the early rounds: the full
   * exchanges of a join, a reconnect or a new epoch have reasons of their
   * own to differ. */
  if (mode == SWIM_PP_DIGEST) {
    s->pp_waiting = true;
    s->pp_asked = *to;
  }
  /* A digest longer than a receiver takes goes in full (a view of more
   * than 32767 members). */
  if (mode == SWIM_PP_DIGEST && addr == NULL && 1 + 2 * s->n <= MESH_SWIM_MAX_DIGEST)
    send_digest(s, to, out);
  else
    send_full(s, to, addr, mode == SWIM_PP_JOIN, false, NULL, out);
}

void swim_push_pull_received(mesh_swim *s, const mesh_peer_id *from, const swim_packet *p,
                             mesh_time_ms now, mesh_swim_outbox *out)
{
  if (p->reply) {
    if (p->n_want > 0 && p->digest_key != NULL)
      push_wanted(s, from, p, out);
    else if (p->n_updates == 0 && s->pp_waiting && swim_id_eq(from, &s->pp_asked))
      settled(s, now);
    if (swim_id_eq(from, &s->pp_asked))
      s->pp_waiting = false;
    return;
  }
  if (p->digest_key != NULL) {
    answer_digest(s, from, p, out);
    return;
  }
  swim_seen seen;
  bool have = seen_init(&seen, p);
  send_full(s, from, NULL, false, true, have ? &seen : NULL, out);
  seen_free(&seen);
}
