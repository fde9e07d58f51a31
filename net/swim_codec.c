/*
 * Membership messages to and from protobuf (proto/swim.proto), with every
 * field bounded before use, the signing of member bodies and accusations, and
 * a cache of verified signatures.
 *
 *   Packet bounds (anything else is -EBADMSG, counted by the caller)
 *   FIELD          BOUND
 *   kind           PING .. PUSH_PULL
 *   target         empty or a valid 38-byte peer ID
 *   target_addrs   <= 8, each <= 256 bytes
 *   updates        each <= 4096 + 200 bytes; total bounded by the packet size
 *   app_state      <= 4096 bytes
 *   digest_key     empty or 16 bytes; digest and want only with a key, only
 *                  in a PUSH_PULL, each <= MESH_SWIM_MAX_DIGEST hashes
 *
 *   Update bounds: subject a valid peer ID, sig exactly 64 bytes, body <= 4096.
 *   MemberBody: as MESH_SWIM_MAX_* in net/swim.h. AccuseBody: two peer IDs.
 *
 * The verified-signature cache remembers BLAKE2b-128(signer, domain, type,
 * body, sig) of signatures that verified, so that a record seen again (from
 * gossip, from push-pull, from another instance sharing the cache) costs a
 * hash instead of an Ed25519 verification.
 */
#include "net/swim_internal.h"

#include "proto/swim.pb-c.h"
#include "src/identity/signed.h"
#include "src/base/err.h"

#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define UPDATE_MAX (MESH_SWIM_MAX_BODY + 200)

struct mesh_swim_sigcache {
  uint8_t (*keys)[16]; /* all-zero = empty */
  size_t cap;          /* power of two */
};

int mesh_swim_sigcache_new(size_t entries, mesh_swim_sigcache **out)
{
  size_t cap = 64;
  while (cap < entries)
    cap <<= 1;
  mesh_swim_sigcache *c = calloc(1, sizeof *c);
  if (c == NULL)
    return -ENOMEM;
  c->keys = calloc(cap, sizeof *c->keys);
  if (c->keys == NULL) {
    free(c);
    return -ENOMEM;
  }
  c->cap = cap;
  *out = c;
  return 0;
}

void mesh_swim_sigcache_free(mesh_swim_sigcache *c)
{
  if (c == NULL)
    return;
  free(c->keys);
  free(c);
}

int swim_verify(mesh_swim_sigcache *cache, const mesh_peer_id *signer, const char *domain,
                const char *type, const uint8_t *body, size_t len, const uint8_t *sig,
                mesh_swim_counters *c)
{
  uint8_t key[16];
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, sizeof key);
  crypto_generichash_update(&st, signer->b, MESH_PEER_ID_LEN);
  crypto_generichash_update(&st, (const uint8_t *)domain, strlen(domain) + 1);
  crypto_generichash_update(&st, (const uint8_t *)type, strlen(type) + 1);
  crypto_generichash_update(&st, body, len);
  crypto_generichash_update(&st, sig, MESH_SIG_LEN);
  crypto_generichash_final(&st, key, sizeof key);
  size_t slot = 0;
  if (cache != NULL) {
    uint64_t h;
    memcpy(&h, key, sizeof h);
    slot = (size_t)h & (cache->cap - 1);
    if (memcmp(cache->keys[slot], key, sizeof key) == 0) {
      c->sig_cache_hits++;
      return 0;
    }
  }
  uint8_t pk[MESH_PUBKEY_LEN];
  mesh_peer_id_pubkey(signer, pk);
  c->sig_verified++;
  int rc = mesh_verify(pk, domain, (const uint8_t *)type, strlen(type), body, len, sig);
  if (rc != 0)
    return -MESH_EAUTH;
  if (cache != NULL)
    memcpy(cache->keys[slot], key, sizeof key);
  return 0;
}

static int peer_id_field(const ProtobufCBinaryData *f, mesh_peer_id *out)
{
  return mesh_peer_id_from_bytes(f->data, f->len, out) == 0 ? 0 : -EBADMSG;
}

static bool str_ok(const char *s, size_t max)
{
  return s != NULL && strnlen(s, max + 1) <= max;
}

/* Packs m into a new buffer (*buf, owned by the caller); -EINVAL when it
 * would be longer than max. */
static int pack_new(const ProtobufCMessage *m, size_t max, uint8_t **buf, size_t *len)
{
  size_t n = protobuf_c_message_get_packed_size(m);
  if (n > max)
    return -EINVAL;
  uint8_t *b = malloc(n > 0 ? n : 1);
  if (b == NULL)
    return -ENOMEM;
  protobuf_c_message_pack(m, b);
  *buf = b;
  *len = n;
  return 0;
}

/* ---- Packet ---- */

size_t swim_update_overhead(size_t len)
{
  return 1 + (len < 128 ? 1 : (len < 16384 ? 2 : 3)) + len;
}

static void fill_packet(const swim_packet_out *p, Mesh__Swim__Packet *m, ProtobufCBinaryData *ups,
                        char **addrs)
{
  m->kind = (Mesh__Swim__Kind)p->kind;
  m->seq = p->seq;
  if (p->target != NULL) {
    m->target.data = (uint8_t *)p->target->b;
    m->target.len = MESH_PEER_ID_LEN;
  }
  const char *a = p->target_addrs;
  for (size_t i = 0; i < p->n_target_addrs; i++) {
    addrs[i] = (char *)a;
    a += strlen(a) + 1;
  }
  m->n_target_addrs = p->n_target_addrs;
  m->target_addrs = addrs;
  m->nack = p->nack;
  m->join = p->join;
  m->reply = p->reply;
  m->epoch = p->epoch;
  for (size_t i = 0; i < p->n_updates; i++) {
    ups[i].data = (uint8_t *)p->updates[i];
    ups[i].len = p->update_lens[i];
  }
  m->n_updates = p->n_updates;
  m->updates = ups;
  if (p->app_len > 0) {
    m->app_state.data = (uint8_t *)p->app;
    m->app_state.len = p->app_len;
  }
  if (p->digest_key != NULL) {
    m->digest_key.data = (uint8_t *)p->digest_key;
    m->digest_key.len = MESH_SWIM_DIGEST_KEY;
    m->digest = (uint64_t *)p->digest;
    m->n_digest = p->n_digest;
    m->want = (uint64_t *)p->want;
    m->n_want = p->n_want;
  }
}

size_t swim_packet_base_size(const swim_packet_out *p)
{
  Mesh__Swim__Packet m = MESH__SWIM__PACKET__INIT;
  char *addrs[MESH_SWIM_MAX_ADDRS];
  swim_packet_out q = *p;
  q.n_updates = 0;
  fill_packet(&q, &m, NULL, addrs);
  return mesh__swim__packet__get_packed_size(&m);
}

int swim_packet_encode(const swim_packet_out *p, size_t extra, uint8_t **buf, size_t *len)
{
  if (p->n_target_addrs > MESH_SWIM_MAX_ADDRS)
    return -EINVAL;
  Mesh__Swim__Packet m = MESH__SWIM__PACKET__INIT;
  char *addrs[MESH_SWIM_MAX_ADDRS];
  ProtobufCBinaryData *ups = NULL;
  if (p->n_updates > 0) {
    ups = malloc(p->n_updates * sizeof *ups);
    if (ups == NULL)
      return -ENOMEM;
  }
  fill_packet(p, &m, ups, addrs);
  size_t n = mesh__swim__packet__get_packed_size(&m);
  uint8_t *b = malloc(n + extra + 1);
  if (b == NULL) {
    free(ups);
    return -ENOMEM;
  }
  mesh__swim__packet__pack(&m, b);
  free(ups);
  *buf = b;
  *len = n;
  return 0;
}

/* A protobuf varint at *p (before end); false when malformed. */
static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
  uint64_t x = 0;
  for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    x |= (uint64_t)(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *v = x;
      return true;
    }
  }
  return false;
}

bool swim_packet_is_push_pull(const uint8_t *buf, size_t len)
{
  const uint8_t *p = buf, *end = buf + len;
  uint64_t kind = 0; /* the last one wins, as in a decode */
  while (p < end) {
    uint64_t tag, v;
    if (!read_varint(&p, end, &tag))
      return false;
    switch (tag & 7) {
    case 0: /* varint */
      if (!read_varint(&p, end, &v))
        return false;
      if ((tag >> 3) == 1)
        kind = v;
      break;
    case 1: /* 64-bit */
      if ((size_t)(end - p) < 8)
        return false;
      p += 8;
      break;
    case 2: /* length-delimited */
      if (!read_varint(&p, end, &v) || v > (uint64_t)(end - p))
        return false;
      p += v;
      break;
    case 5: /* 32-bit */
      if ((size_t)(end - p) < 4)
        return false;
      p += 4;
      break;
    default:
      return false;
    }
  }
  return kind == MESH__SWIM__KIND__PUSH_PULL;
}

int swim_packet_decode(const uint8_t *buf, size_t len, swim_packet *out)
{
  memset(out, 0, sizeof *out);
  if (len > MESH_SWIM_MAX_STREAM)
    return -EMSGSIZE;
  Mesh__Swim__Packet *m = mesh__swim__packet__unpack(NULL, len, buf);
  if (m == NULL)
    return -EBADMSG;
  int rc = -EBADMSG;
  if (m->kind < MESH__SWIM__KIND__PING || m->kind > MESH__SWIM__KIND__PUSH_PULL)
    goto bad;
  out->kind = (int)m->kind;
  out->seq = m->seq;
  if (m->target.len > 0) {
    if (peer_id_field(&m->target, &out->target) != 0)
      goto bad;
    out->has_target = true;
  }
  if (m->n_target_addrs > MESH_SWIM_MAX_ADDRS)
    goto bad;
  for (size_t i = 0; i < m->n_target_addrs; i++) {
    if (!str_ok(m->target_addrs[i], MESH_SWIM_MAX_ADDR_LEN))
      goto bad;
    out->target_addrs[i] = m->target_addrs[i];
  }
  out->n_target_addrs = m->n_target_addrs;
  out->nack = m->nack;
  out->join = m->join;
  out->reply = m->reply;
  out->epoch = m->epoch;
  if (m->app_state.len > MESH_SWIM_MAX_APP_STATE)
    goto bad;
  out->app = m->app_state.data;
  out->app_len = m->app_state.len;
  if (m->digest_key.len > 0 || m->n_digest > 0 || m->n_want > 0) {
    if (m->kind != MESH__SWIM__KIND__PUSH_PULL || m->digest_key.len != MESH_SWIM_DIGEST_KEY ||
        m->n_digest > MESH_SWIM_MAX_DIGEST || m->n_want > MESH_SWIM_MAX_DIGEST)
      goto bad;
    out->digest_key = m->digest_key.data;
    out->digest = m->digest;
    out->n_digest = m->n_digest;
    out->want = m->want;
    out->n_want = m->n_want;
  }
  if (m->n_updates > 0) {
    /* Two arrays in one allocation: pointers then lengths. The count is
     * bounded by the input length (each update takes at least two bytes). */
    void *mem = malloc(m->n_updates * (sizeof(uint8_t *) + sizeof(size_t)));
    if (mem == NULL) {
      rc = -ENOMEM;
      goto bad;
    }
    const uint8_t **ptrs = mem;
    size_t *lens = (size_t *)(ptrs + m->n_updates);
    for (size_t i = 0; i < m->n_updates; i++) {
      if (m->updates[i].len > UPDATE_MAX) {
        free(mem);
        goto bad;
      }
      ptrs[i] = m->updates[i].data;
      lens[i] = m->updates[i].len;
    }
    out->updates = ptrs;
    out->update_lens = lens;
    out->n_updates = m->n_updates;
  }
  out->pb = m;
  return 0;
bad:
  mesh__swim__packet__free_unpacked(m, NULL);
  memset(out, 0, sizeof *out);
  return rc;
}

void swim_packet_release(swim_packet *p)
{
  if (p->pb != NULL)
    mesh__swim__packet__free_unpacked(p->pb, NULL);
  free((void *)p->updates);
  memset(p, 0, sizeof *p);
}

/* ---- Update ---- */

int swim_update_encode(const mesh_peer_id *subject, bool accuse, const uint8_t *body,
                       size_t body_len, const uint8_t sig[MESH_SIG_LEN], uint8_t **buf, size_t *len)
{
  Mesh__Swim__Update m = MESH__SWIM__UPDATE__INIT;
  m.subject.data = (uint8_t *)subject->b;
  m.subject.len = MESH_PEER_ID_LEN;
  m.body.data = (uint8_t *)body;
  m.body.len = body_len;
  m.sig.data = (uint8_t *)sig;
  m.sig.len = MESH_SIG_LEN;
  m.accuse = accuse;
  return pack_new(&m.base, SIZE_MAX, buf, len);
}

int swim_update_decode(const uint8_t *buf, size_t len, swim_update *out)
{
  memset(out, 0, sizeof *out);
  if (len > UPDATE_MAX)
    return -EMSGSIZE;
  Mesh__Swim__Update *m = mesh__swim__update__unpack(NULL, len, buf);
  if (m == NULL)
    return -EBADMSG;
  if (peer_id_field(&m->subject, &out->subject) != 0 || m->sig.len != MESH_SIG_LEN ||
      m->body.len == 0 || m->body.len > MESH_SWIM_MAX_BODY) {
    mesh__swim__update__free_unpacked(m, NULL);
    memset(out, 0, sizeof *out);
    return -EBADMSG;
  }
  out->accuse = m->accuse;
  out->body = m->body.data;
  out->body_len = m->body.len;
  out->sig = m->sig.data;
  out->pb = m;
  return 0;
}

void swim_update_release(swim_update *u)
{
  if (u->pb != NULL)
    mesh__swim__update__free_unpacked(u->pb, NULL);
  memset(u, 0, sizeof *u);
}

/* ---- MemberBody ---- */

int swim_member_body_encode(const mesh_peer_id *id, uint64_t epoch, uint64_t inc, bool left,
                            const char *const *addrs, size_t n_addrs, const mesh_swim_transport *tr,
                            size_t n_tr, const char *agent, const char *host, uint8_t **buf,
                            size_t *len)
{
  if (n_addrs > MESH_SWIM_MAX_ADDRS || n_tr > MESH_SWIM_MAX_TRANSPORTS)
    return -EINVAL;
  if ((agent != NULL && !str_ok(agent, MESH_SWIM_MAX_AGENT)) ||
      (host != NULL && !str_ok(host, MESH_SWIM_MAX_HOST)))
    return -EINVAL;
  Mesh__Swim__MemberBody m = MESH__SWIM__MEMBER_BODY__INIT;
  Mesh__Swim__Transport trm[MESH_SWIM_MAX_TRANSPORTS];
  Mesh__Swim__Transport *trp[MESH_SWIM_MAX_TRANSPORTS];
  m.peer_id.data = (uint8_t *)id->b;
  m.peer_id.len = MESH_PEER_ID_LEN;
  m.epoch = epoch;
  m.incarnation = inc;
  m.left = left;
  for (size_t i = 0; i < n_addrs; i++)
    if (!str_ok(addrs[i], MESH_SWIM_MAX_ADDR_LEN))
      return -EINVAL;
  m.n_addrs = n_addrs;
  m.addrs = (char **)addrs;
  for (size_t i = 0; i < n_tr; i++) {
    if (!str_ok(tr[i].name, MESH_SWIM_MAX_TRANSPORT_NAME) ||
        tr[i].attrs_len > MESH_SWIM_MAX_TRANSPORT_ATTRS)
      return -EINVAL;
    mesh__swim__transport__init(&trm[i]);
    trm[i].name = (char *)tr[i].name;
    trm[i].attrs.data = (uint8_t *)tr[i].attrs;
    trm[i].attrs.len = tr[i].attrs_len;
    trp[i] = &trm[i];
  }
  m.n_transports = n_tr;
  m.transports = trp;
  if (agent != NULL)
    m.agent = (char *)agent;
  if (host != NULL)
    m.host = (char *)host;
  return pack_new(&m.base, MESH_SWIM_MAX_BODY, buf, len);
}

int swim_member_body_decode(const uint8_t *buf, size_t len, swim_member_body *out)
{
  memset(out, 0, sizeof *out);
  if (len > MESH_SWIM_MAX_BODY)
    return -EMSGSIZE;
  Mesh__Swim__MemberBody *m = mesh__swim__member_body__unpack(NULL, len, buf);
  if (m == NULL)
    return -EBADMSG;
  if (peer_id_field(&m->peer_id, &out->id) != 0 || m->n_addrs > MESH_SWIM_MAX_ADDRS ||
      m->n_transports > MESH_SWIM_MAX_TRANSPORTS || !str_ok(m->agent, MESH_SWIM_MAX_AGENT) ||
      !str_ok(m->host, MESH_SWIM_MAX_HOST))
    goto bad;
  for (size_t i = 0; i < m->n_addrs; i++) {
    if (!str_ok(m->addrs[i], MESH_SWIM_MAX_ADDR_LEN))
      goto bad;
    out->addrs[i] = m->addrs[i];
  }
  for (size_t i = 0; i < m->n_transports; i++) {
    if (!str_ok(m->transports[i]->name, MESH_SWIM_MAX_TRANSPORT_NAME) ||
        m->transports[i]->attrs.len > MESH_SWIM_MAX_TRANSPORT_ATTRS)
      goto bad;
  }
  out->n_addrs = m->n_addrs;
  out->epoch = m->epoch;
  out->incarnation = m->incarnation;
  out->left = m->left;
  out->agent = m->agent;
  out->host = m->host;
  out->pb = m;
  return 0;
bad:
  mesh__swim__member_body__free_unpacked(m, NULL);
  memset(out, 0, sizeof *out);
  return -EBADMSG;
}

void swim_member_body_release(swim_member_body *b)
{
  if (b->pb != NULL)
    mesh__swim__member_body__free_unpacked(b->pb, NULL);
  memset(b, 0, sizeof *b);
}

/* ---- AccuseBody ---- */

int swim_accuse_body_encode(const swim_accuse_body *a, uint8_t **buf, size_t *len)
{
  Mesh__Swim__AccuseBody m = MESH__SWIM__ACCUSE_BODY__INIT;
  m.target.data = (uint8_t *)a->target.b;
  m.target.len = MESH_PEER_ID_LEN;
  m.accuser.data = (uint8_t *)a->accuser.b;
  m.accuser.len = MESH_PEER_ID_LEN;
  m.epoch = a->epoch;
  m.incarnation = a->incarnation;
  m.dead = a->dead;
  return pack_new(&m.base, SIZE_MAX, buf, len);
}

int swim_accuse_body_decode(const uint8_t *buf, size_t len, swim_accuse_body *out)
{
  memset(out, 0, sizeof *out);
  if (len > MESH_SWIM_MAX_BODY)
    return -EMSGSIZE;
  Mesh__Swim__AccuseBody *m = mesh__swim__accuse_body__unpack(NULL, len, buf);
  if (m == NULL)
    return -EBADMSG;
  int rc = 0;
  if (peer_id_field(&m->target, &out->target) != 0 ||
      peer_id_field(&m->accuser, &out->accuser) != 0)
    rc = -EBADMSG;
  out->epoch = m->epoch;
  out->incarnation = m->incarnation;
  out->dead = m->dead;
  mesh__swim__accuse_body__free_unpacked(m, NULL);
  if (rc != 0)
    memset(out, 0, sizeof *out);
  return rc;
}
