/* The authenticated handshake on a new connection: hello, proof of the swarm key and the identity,
 * the frame cipher, the derived keys (design in net/handshake.h). */
#include "net/handshake.h"

#include "proto/handshake.pb-c.h"
#include "src/identity/signed.h"
#include "src/base/err.h"

#include <errno.h>
#include <sodium.h>
#include <stdatomic.h>
#include <string.h>

static const uint8_t hello_type[] = "meshd/hello/1";
#define HELLO_TYPE_LEN (sizeof hello_type - 1)
#define PSK_MAC_LEN 32

/* Ephemeral key pairs made by this process, for tests and the benchmark:
 * a Hello that fails the swarm-key check must not move it. Relaxed: it is a
 * count, nothing is ordered by it. */
static atomic_uint_fast64_t kx_made;

uint64_t mesh_hs_kx_made(void)
{
  return (uint64_t)atomic_load_explicit(&kx_made, memory_order_relaxed);
}

/* Makes our ephemeral key pair when we are about to name it in a Hello: a
 * dialer as it speaks first, a listener only after the dialer's Hello passed
 * the swarm-key MAC and the signature, so that a stranger's bytes cost no
 * key generation. */
static void make_kx(mesh_hs *hs)
{
  if (hs->has_kx)
    return;
  crypto_kx_keypair(hs->kx_pk, hs->kx_sk);
  hs->has_kx = true;
  atomic_fetch_add_explicit(&kx_made, 1, memory_order_relaxed);
}

int mesh_hs_init(mesh_hs *hs, bool listener, const mesh_identity *id, const mesh_psk *psk,
                 uint64_t epoch, const mesh_peer_id *expect, const uint8_t *ext, size_t ext_len)
{
  memset(hs, 0, sizeof *hs);
  if (ext_len > MESH_HS_EXT_MAX)
    return -EMSGSIZE;
  hs->listener = listener;
  hs->identity = id;
  hs->psk = *psk;
  hs->epoch = epoch;
  mesh_frame_offer_default(&hs->offer);
  if (expect != NULL) {
    hs->has_expect = true;
    hs->expect = *expect;
  }
  return mesh_hs_set_extension(hs, ext, ext_len);
}

int mesh_hs_set_extension(mesh_hs *hs, const uint8_t *ext, size_t ext_len)
{
  if (ext_len > MESH_HS_EXT_MAX)
    return -EMSGSIZE;
  if (ext_len > 0)
    memcpy(hs->ext, ext, ext_len);
  hs->ext_len = ext_len;
  return 0;
}

void mesh_hs_set_offer(mesh_hs *hs, const mesh_frame_offer *offer)
{
  /* An empty offer could agree with nobody: options left zeroed keep the
   * default. */
  if (offer->n > 0)
    hs->offer = *offer;
}

void mesh_hs_clear(mesh_hs *hs)
{
  sodium_memzero(hs, sizeof *hs);
}

static void psk_mac(const mesh_psk *psk, const uint8_t *sig, size_t sig_len, const uint8_t *body,
                    size_t body_len, uint8_t out[PSK_MAC_LEN])
{
  crypto_generichash_state st;
  crypto_generichash_init(&st, psk->key, sizeof psk->key, PSK_MAC_LEN);
  crypto_generichash_update(&st, (const uint8_t *)"meshd-psk-hello-1", 17);
  crypto_generichash_update(&st, sig, sig_len);
  crypto_generichash_update(&st, body, body_len);
  crypto_generichash_final(&st, out, PSK_MAC_LEN);
}

static void derive(const mesh_psk *psk, const char *dir,
                   const uint8_t kx[crypto_kx_SESSIONKEYBYTES], const uint8_t th[32],
                   uint8_t out[MESH_FRAME_KEY_LEN])
{
  crypto_generichash_state st;
  crypto_generichash_init(&st, psk->key, sizeof psk->key, MESH_FRAME_KEY_LEN);
  crypto_generichash_update(&st, (const uint8_t *)"meshd-session-1", 15);
  crypto_generichash_update(&st, (const uint8_t *)dir, 3);
  crypto_generichash_update(&st, kx, crypto_kx_SESSIONKEYBYTES);
  crypto_generichash_update(&st, th, 32);
  crypto_generichash_final(&st, out, MESH_FRAME_KEY_LEN);
}

/* The export secret (net/handshake.h): both directions' kx keys in a fixed
 * order, so both ends compute the same bytes. */
static void derive_export(const mesh_psk *psk, const uint8_t d2l[crypto_kx_SESSIONKEYBYTES],
                          const uint8_t l2d[crypto_kx_SESSIONKEYBYTES], const uint8_t th[32],
                          uint8_t out[32])
{
  crypto_generichash_state st;
  crypto_generichash_init(&st, psk->key, sizeof psk->key, 32);
  crypto_generichash_update(&st, (const uint8_t *)"meshd-export-1", 14);
  crypto_generichash_update(&st, d2l, crypto_kx_SESSIONKEYBYTES);
  crypto_generichash_update(&st, l2d, crypto_kx_SESSIONKEYBYTES);
  crypto_generichash_update(&st, th, 32);
  crypto_generichash_final(&st, out, 32);
}

/* Derives both directions' keys from the two Hellos. */
static int finish_keys(mesh_hs *hs, const uint8_t *hello_l, size_t hello_l_len)
{
  uint8_t rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES], th[32];
  int rc = hs->listener ? crypto_kx_server_session_keys(rx, tx, hs->kx_pk, hs->kx_sk, hs->peer_kx)
                        : crypto_kx_client_session_keys(rx, tx, hs->kx_pk, hs->kx_sk, hs->peer_kx);
  if (rc != 0)
    return -MESH_EAUTH; /* a degenerate (low-order) peer key */
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, sizeof th);
  crypto_generichash_update(&st, hs->hello_d, hs->hello_d_len);
  crypto_generichash_update(&st, hello_l, hello_l_len);
  crypto_generichash_final(&st, th, sizeof th);
  derive(&hs->psk, hs->listener ? "l2d" : "d2l", tx, th, hs->tx.key);
  derive(&hs->psk, hs->listener ? "d2l" : "l2d", rx, th, hs->rx.key);
  derive_export(&hs->psk, hs->listener ? rx : tx, hs->listener ? tx : rx, th, hs->export_secret);
  hs->tx.counter = 0;
  hs->rx.counter = 0;
  hs->tx.cipher = (uint8_t)hs->cipher;
  hs->rx.cipher = (uint8_t)hs->cipher;
  sodium_memzero(rx, sizeof rx);
  sodium_memzero(tx, sizeof tx);
  sodium_memzero(hs->kx_sk, sizeof hs->kx_sk);
  hs->done = true;
  return 0;
}

int mesh_hs_write_hello(mesh_hs *hs, uint8_t *out, size_t cap, size_t *len)
{
  if (hs->listener && hs->hello_d_len == 0)
    return -EINVAL; /* a listener answers the dialer's Hello */
  make_kx(hs);
  Mesh__Handshake__HelloBody body = MESH__HANDSHAKE__HELLO_BODY__INIT;
  body.version = MESH_HS_VERSION;
  body.listener = hs->listener;
  body.public_key.data = (uint8_t *)hs->identity->pk;
  body.public_key.len = MESH_PUBKEY_LEN;
  body.epoch = hs->epoch;
  body.kx_public.data = hs->kx_pk;
  body.kx_public.len = MESH_HS_KX_LEN;
  if (hs->listener) {
    body.peer_kx_public.data = hs->peer_kx;
    body.peer_kx_public.len = MESH_HS_KX_LEN;
  }
  body.extension.data = hs->ext;
  body.extension.len = hs->ext_len;
  uint8_t offer[MESH_FRAME_CIPHER_COUNT];
  size_t offer_len;
  if (mesh_frame_offer_encode(&hs->offer, offer, sizeof offer, &offer_len) != 0)
    return -EINVAL;
  body.frame_ciphers.data = offer;
  body.frame_ciphers.len = offer_len;
  uint8_t body_buf[MESH_HS_MSG_MAX];
  size_t body_len = mesh__handshake__hello_body__get_packed_size(&body);
  if (body_len > sizeof body_buf)
    return -EMSGSIZE;
  mesh__handshake__hello_body__pack(&body, body_buf);

  uint8_t sig[MESH_SIG_LEN], mac[PSK_MAC_LEN];
  int rc = mesh_sign(hs->identity, MESH_DOMAIN_HANDSHAKE, hello_type, HELLO_TYPE_LEN, body_buf,
                     body_len, sig);
  if (rc != 0)
    return rc;
  psk_mac(&hs->psk, sig, sizeof sig, body_buf, body_len, mac);

  Mesh__Handshake__Hello hello = MESH__HANDSHAKE__HELLO__INIT;
  hello.body.data = body_buf;
  hello.body.len = body_len;
  hello.signature.data = sig;
  hello.signature.len = sizeof sig;
  hello.psk_mac.data = mac;
  hello.psk_mac.len = sizeof mac;
  size_t n = mesh__handshake__hello__get_packed_size(&hello);
  if (n > MESH_HS_MSG_MAX)
    return -EMSGSIZE;
  if (cap < MESH_HS_LEN_SIZE + n)
    return -ENOSPC;
  out[0] = (uint8_t)(n >> 8);
  out[1] = (uint8_t)n;
  mesh__handshake__hello__pack(&hello, out + MESH_HS_LEN_SIZE);
  *len = MESH_HS_LEN_SIZE + n;
  if (!hs->listener) {
    memcpy(hs->hello_d, out + MESH_HS_LEN_SIZE, n);
    hs->hello_d_len = n;
    return 0;
  }
  /* Without a common cipher the answer only tells the dialer so: no keys. */
  return hs->agreed ? finish_keys(hs, out + MESH_HS_LEN_SIZE, n) : 0;
}

/* Checks the decoded body's fields; the signature is checked by the caller. */
static int check_body(mesh_hs *hs, const Mesh__Handshake__HelloBody *b)
{
  if (b->version != MESH_HS_VERSION)
    return -EPROTONOSUPPORT;
  /* A dialer must hear from a listener and the other way round, so a Hello
   * cannot be reflected back at its sender. */
  if (b->listener == hs->listener)
    return -EBADMSG;
  if (b->public_key.len != MESH_PUBKEY_LEN || b->kx_public.len != MESH_HS_KX_LEN ||
      b->extension.len > MESH_HS_EXT_MAX)
    return -EBADMSG;
  if (b->listener) {
    if (b->peer_kx_public.len != MESH_HS_KX_LEN)
      return -EBADMSG;
    /* The reply must name our ephemeral key: it was made for this dial. */
    if (sodium_memcmp(b->peer_kx_public.data, hs->kx_pk, MESH_HS_KX_LEN) != 0)
      return -MESH_EAUTH;
  } else if (b->peer_kx_public.len != 0) {
    return -EBADMSG;
  }
  return 0;
}

int mesh_hs_read_hello(mesh_hs *hs, const uint8_t *msg, size_t len)
{
  if (hs->done || (!hs->listener && hs->hello_d_len == 0))
    return -EINVAL;
  if (len == 0)
    return -EBADMSG;
  if (len > MESH_HS_MSG_MAX)
    return -EMSGSIZE;
  Mesh__Handshake__Hello *hello = mesh__handshake__hello__unpack(NULL, len, msg);
  if (hello == NULL)
    return -EBADMSG;
  Mesh__Handshake__HelloBody *body = NULL;
  int rc = 0;
  if (hello->signature.len != MESH_SIG_LEN || hello->psk_mac.len != PSK_MAC_LEN ||
      hello->body.len == 0) {
    rc = -EBADMSG;
    goto out;
  }
  uint8_t mac[PSK_MAC_LEN];
  psk_mac(&hs->psk, hello->signature.data, hello->signature.len, hello->body.data, hello->body.len,
          mac);
  if (sodium_memcmp(mac, hello->psk_mac.data, PSK_MAC_LEN) != 0) {
    rc = -EACCES;
    goto out;
  }
  body = mesh__handshake__hello_body__unpack(NULL, hello->body.len, hello->body.data);
  if (body == NULL) {
    rc = -EBADMSG;
    goto out;
  }
  if ((rc = check_body(hs, body)) != 0)
    goto out;
  if (mesh_verify(body->public_key.data, MESH_DOMAIN_HANDSHAKE, hello_type, HELLO_TYPE_LEN,
                  hello->body.data, hello->body.len, hello->signature.data) != 0) {
    rc = -MESH_EAUTH;
    goto out;
  }
  mesh_peer_id_from_pubkey(body->public_key.data, &hs->peer);
  if (hs->has_expect && !mesh_peer_id_eq(&hs->peer, &hs->expect)) {
    rc = -EPERM;
    goto out;
  }
  if (mesh_peer_id_eq(&hs->peer, &hs->identity->id)) {
    rc = -ELOOP;
    goto out;
  }
  hs->peer_epoch = body->epoch;
  memcpy(hs->peer_kx, body->kx_public.data, MESH_HS_KX_LEN);
  if (body->extension.len > 0)
    memcpy(hs->peer_ext, body->extension.data, body->extension.len);
  hs->peer_ext_len = body->extension.len;
  if ((rc = mesh_frame_offer_decode(body->frame_ciphers.data, body->frame_ciphers.len,
                                    &hs->peer_offer)) != 0) {
    rc = -EBADMSG;
    goto out;
  }
  int agree = mesh_frame_agree(&hs->offer, &hs->peer_offer, &hs->cipher);
  hs->agreed = agree == 0;
  if (hs->listener) {
    memcpy(hs->hello_d, msg, len);
    hs->hello_d_len = len;
  } else if (hs->agreed) {
    rc = finish_keys(hs, msg, len);
  }
  if (rc == 0 && !hs->agreed)
    rc = agree;
out:
  if (body != NULL)
    mesh__handshake__hello_body__free_unpacked(body, NULL);
  mesh__handshake__hello__free_unpacked(hello, NULL);
  return rc;
}

int mesh_hs_peek(const uint8_t *buf, size_t avail, size_t *msg_len)
{
  *msg_len = 0;
  if (avail < MESH_HS_LEN_SIZE)
    return 0;
  size_t n = ((size_t)buf[0] << 8) | buf[1];
  if (n == 0)
    return -EBADMSG;
  if (n > MESH_HS_MSG_MAX)
    return -EMSGSIZE;
  *msg_len = n;
  return 0;
}
