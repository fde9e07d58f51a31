/*
 * What RDMA puts on the wire, independent of verbs: the queue-pair
 * attributes of the handshake extension, the frame keys, and the sliding
 * replay window of frames that may be lost or reordered (net/rdma.h).
 */
#include "net/rdma.h"

#include "proto/rdma.pb-c.h"
#include "src/base/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define QPN_MAX 0xffffffu /* 24 bits */
#define PSN_MAX 0xffffffu

static bool mtu_valid(uint32_t mtu)
{
  return mtu == 256 || mtu == 512 || mtu == 1024 || mtu == 2048 || mtu == 4096;
}

int mesh_rdma_attr_encode(const mesh_rdma_attr *a, uint8_t *buf, size_t cap, size_t *len)
{
  Mesh__Rdma__RdmaAttr m = MESH__RDMA__RDMA_ATTR__INIT;
  m.version = MESH_RDMA_ATTR_VERSION;
  m.gid.data = (uint8_t *)a->gid;
  m.gid.len = sizeof a->gid;
  m.qpn = a->qpn;
  m.psn = a->psn;
  m.mtu = a->mtu;
  m.buf_size = a->buf_size;
  m.depth = a->depth;
  m.kx_public.data = (uint8_t *)a->kx_public;
  m.kx_public.len = sizeof a->kx_public;
  size_t need = mesh__rdma__rdma_attr__get_packed_size(&m);
  if (need > cap)
    return -ENOSPC;
  *len = mesh__rdma__rdma_attr__pack(&m, buf);
  return 0;
}

int mesh_rdma_attr_decode(const uint8_t *buf, size_t len, mesh_rdma_attr *a)
{
  if (len > MESH_RDMA_ATTR_MAX)
    return -EMSGSIZE;
  if (len == 0)
    return -EBADMSG;
  Mesh__Rdma__RdmaAttr *m = mesh__rdma__rdma_attr__unpack(NULL, len, buf);
  if (m == NULL)
    return -EBADMSG;
  int rc = 0;
  if (m->version != MESH_RDMA_ATTR_VERSION)
    rc = -EPROTONOSUPPORT;
  else if (m->gid.len != MESH_RDMA_GID_LEN || m->kx_public.len != MESH_RDMA_KX_LEN)
    rc = -EBADMSG;
  else if (m->qpn < 2 || m->qpn > QPN_MAX || m->psn > PSN_MAX || !mtu_valid(m->mtu))
    rc = -EBADMSG; /* QPs 0 and 1 are the management ones, never a UC peer */
  else if (m->buf_size < MESH_RDMA_BUF_MIN || m->buf_size > MESH_RDMA_BUF_MAX)
    rc = -EBADMSG;
  else if (m->depth < 1 || m->depth > MESH_RDMA_DEPTH_MAX)
    rc = -EBADMSG;
  if (rc == 0) {
    memcpy(a->gid, m->gid.data, MESH_RDMA_GID_LEN);
    a->qpn = m->qpn;
    a->psn = m->psn;
    a->mtu = m->mtu;
    a->buf_size = m->buf_size;
    a->depth = m->depth;
    memcpy(a->kx_public, m->kx_public.data, MESH_RDMA_KX_LEN);
  }
  mesh__rdma__rdma_attr__free_unpacked(m, NULL);
  return rc;
}

uint32_t mesh_rdma_frame_size(uint32_t ours, uint32_t theirs)
{
  if (ours < MESH_RDMA_FRAME_FLOOR || theirs < MESH_RDMA_FRAME_FLOOR)
    return 0;
  return ours < theirs ? ours : theirs;
}

int mesh_rdma_keepalive_encode(const mesh_rdma_keepalive *k, uint8_t *buf, size_t cap, size_t *len)
{
  Mesh__Rdma__RdmaKeepalive m = MESH__RDMA__RDMA_KEEPALIVE__INIT;
  m.hears = k->hears;
  m.qpn = k->qpn;
  m.psn = k->psn;
  size_t need = mesh__rdma__rdma_keepalive__get_packed_size(&m);
  if (need > cap)
    return -ENOSPC;
  *len = mesh__rdma__rdma_keepalive__pack(&m, buf);
  return 0;
}

int mesh_rdma_keepalive_decode(const uint8_t *buf, size_t len, mesh_rdma_keepalive *k)
{
  if (len > MESH_RDMA_KEEPALIVE_MAX)
    return -EMSGSIZE;
  Mesh__Rdma__RdmaKeepalive *m = mesh__rdma__rdma_keepalive__unpack(NULL, len, buf);
  if (m == NULL)
    return -EBADMSG;
  int rc = 0;
  if (m->qpn < 2 || m->qpn > QPN_MAX || m->psn > PSN_MAX)
    rc = -EBADMSG;
  else
    *k = (mesh_rdma_keepalive){.hears = m->hears, .qpn = m->qpn, .psn = m->psn};
  mesh__rdma__rdma_keepalive__free_unpacked(m, NULL);
  return rc;
}

void mesh_rdma_kx_keypair(uint8_t pk[MESH_RDMA_KX_LEN], uint8_t sk[MESH_RDMA_KX_LEN])
{
  crypto_kx_keypair(pk, sk);
}

static void derive(uint8_t out[MESH_FRAME_KEY_LEN], const mesh_psk *psk, const char *dir,
                   const uint8_t kx[crypto_kx_SESSIONKEYBYTES], const uint8_t *attr_d,
                   size_t attr_d_len, const uint8_t *attr_l, size_t attr_l_len)
{
  crypto_generichash_state st;
  crypto_generichash_init(&st, psk->key, sizeof psk->key, MESH_FRAME_KEY_LEN);
  crypto_generichash_update(&st, (const uint8_t *)"meshd-rdma-1", 12);
  crypto_generichash_update(&st, (const uint8_t *)dir, 3);
  crypto_generichash_update(&st, kx, crypto_kx_SESSIONKEYBYTES);
  crypto_generichash_update(&st, attr_d, attr_d_len);
  crypto_generichash_update(&st, attr_l, attr_l_len);
  crypto_generichash_final(&st, out, MESH_FRAME_KEY_LEN);
  sodium_memzero(&st, sizeof st);
}

int mesh_rdma_link_init(mesh_rdma_link *l, bool dialer, const mesh_psk *psk,
                        const uint8_t our_sk[MESH_RDMA_KX_LEN],
                        const uint8_t our_pk[MESH_RDMA_KX_LEN],
                        const uint8_t their_pk[MESH_RDMA_KX_LEN], const uint8_t *ours,
                        size_t ours_len, const uint8_t *theirs, size_t theirs_len)
{
  uint8_t rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES];
  int rc;
  if (dialer)
    rc = crypto_kx_client_session_keys(rx, tx, our_pk, our_sk, their_pk);
  else
    rc = crypto_kx_server_session_keys(rx, tx, our_pk, our_sk, their_pk);
  if (rc != 0)
    return -MESH_EAUTH;
  const uint8_t *ad = dialer ? ours : theirs, *al = dialer ? theirs : ours;
  size_t adl = dialer ? ours_len : theirs_len, all = dialer ? theirs_len : ours_len;
  memset(l, 0, sizeof *l);
  derive(l->tx.key, psk, dialer ? "d2l" : "l2d", tx, ad, adl, al, all);
  derive(l->rx.key, psk, dialer ? "l2d" : "d2l", rx, ad, adl, al, all);
  sodium_memzero(rx, sizeof rx);
  sodium_memzero(tx, sizeof tx);
  return 0;
}

void mesh_rdma_link_clear(mesh_rdma_link *l)
{
  sodium_memzero(l, sizeof *l);
}

int mesh_rdma_link_seal(mesh_rdma_link *l, const mesh_frame *f, uint8_t *out, size_t cap,
                        size_t *out_len)
{
  return mesh_frame_seal(&l->tx, f, out, cap, out_len);
}

static uint32_t get_be32(const uint8_t *p)
{
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

/*
 * The window: rx_top is one past the highest counter accepted; bit i of
 * rx_seen stands for counter rx_top - 1 - i. A counter at or above rx_top is
 * new; one inside the window is new unless its bit is set; one below it is
 * refused as a replay, since it can no longer be told apart from one.
 * mesh_frame_open checks the tag against exactly the counter in the header
 * (it is the nonce), so the window is only moved once the tag verified.
 */
mesh_rdma_verdict mesh_rdma_link_open(mesh_rdma_link *l, uint8_t *buf, size_t len, mesh_frame *out)
{
  /* The length checks mesh_frame_open makes before the tag, made here so
   * that its -EBADMSG below can only mean fields that authenticated. */
  if (len < MESH_FRAME_LEN_SIZE + MESH_FRAME_MIN_BODY || get_be32(buf) != len - MESH_FRAME_LEN_SIZE)
    return MESH_RDMA_MALFORMED;
  uint64_t ctr = get_be64(buf + MESH_FRAME_LEN_SIZE);
  if (ctr == UINT64_MAX)
    return MESH_RDMA_MALFORMED;
  if (ctr < l->rx_top) {
    uint64_t back = l->rx_top - 1 - ctr;
    if (back >= MESH_RDMA_WINDOW || (l->rx_seen & (1ull << back)) != 0)
      return MESH_RDMA_REPLAY;
  }
  l->rx.counter = ctr;
  int rc = mesh_frame_open(&l->rx, buf, len, out);
  if (rc == -MESH_EAUTH)
    return MESH_RDMA_AUTH;
  if (rc != 0 && rc != -EBADMSG)
    return MESH_RDMA_MALFORMED;
  /* A frame that authenticated but carries bad fields still used its
   * counter: mark it, so that it cannot be replayed either. */
  if (ctr >= l->rx_top) {
    uint64_t shift = ctr + 1 - l->rx_top;
    l->rx_seen = shift >= 64 ? 0 : l->rx_seen << shift;
    l->rx_seen |= 1;
    l->rx_top = ctr + 1;
  } else {
    l->rx_seen |= 1ull << (l->rx_top - 1 - ctr);
  }
  return rc == 0 ? MESH_RDMA_OK : MESH_RDMA_MALFORMED;
}

const char *mesh_rdma_path_name(mesh_rdma_path p)
{
  switch (p) {
  case MESH_RDMA_PATH_NONE:
    return "tcp";
  case MESH_RDMA_PATH_PROBING:
    return "rdma-probing";
  case MESH_RDMA_PATH_UP:
    return "rdma";
  case MESH_RDMA_PATH_FALLBACK:
    return "tcp-fallback";
  }
  return "unknown";
}

int mesh_rdma_dev_options_check(const mesh_rdma_dev_options *o, char *why, size_t whylen)
{
  struct in_addr addr;
  if (o->buf_size < MESH_RDMA_BUF_MIN || o->buf_size > MESH_RDMA_BUF_MAX || o->depth < 1 ||
      o->depth > MESH_RDMA_APPLE_RECV_DEPTH || o->send_depth < 1 ||
      o->send_depth > MESH_RDMA_APPLE_SEND_DEPTH || o->max_qps < 1 ||
      o->max_qps > MESH_RDMA_APPLE_MAX_QPS) {
    if (why != NULL && whylen > 0)
      snprintf(why, whylen,
               "RDMA options out of range (buffer %u to %u bytes, at most %u receives and %u "
               "sends per queue pair, %u queue pairs)",
               MESH_RDMA_BUF_MIN, MESH_RDMA_BUF_MAX, MESH_RDMA_APPLE_RECV_DEPTH,
               MESH_RDMA_APPLE_SEND_DEPTH, MESH_RDMA_APPLE_MAX_QPS);
    return -EINVAL;
  }
  if (o->addr != NULL && inet_pton(AF_INET, o->addr, &addr) != 1) {
    if (why != NULL && whylen > 0)
      snprintf(why, whylen, "RDMA address %s is not an IPv4 address", o->addr);
    return -EINVAL;
  }
  return 0;
}
