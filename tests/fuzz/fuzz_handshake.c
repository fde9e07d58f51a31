/*
 * The handshake parser: a peer's Hello as a listener and as a dialer sees
 * it, and the length prefix.
 *
 * Input: the first byte picks a mode.
 *   0 mod 3: the rest is a prefixed Hello sent to a listener.
 *   1 mod 3: the rest is a Hello answering a dialer's Hello.
 *   2 mod 3: the rest is a HelloBody, signed with a fixed key and MACed
 *            with the swarm key, so that the body checks run (the MAC and
 *            signature pass whenever the body names the fixed key).
 */
#include "net/handshake.h"

#include "proto/handshake.pb-c.h"
#include "src/identity/signed.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static mesh_identity me, them;
static mesh_psk psk;
static int ready;

static void setup(void)
{
  if (ready)
    return;
  if (sodium_init() < 0)
    abort();
  /* Fixed keys so that runs reproduce. */
  uint8_t seed[32];
  memset(seed, 1, sizeof seed);
  crypto_sign_seed_keypair(me.pk, me.sk, seed);
  mesh_peer_id_from_pubkey(me.pk, &me.id);
  memset(seed, 2, sizeof seed);
  crypto_sign_seed_keypair(them.pk, them.sk, seed);
  mesh_peer_id_from_pubkey(them.pk, &them.id);
  memset(psk.key, 3, sizeof psk.key);
  ready = 1;
}

static void signed_body(const uint8_t *body, size_t len)
{
  if (len > MESH_HS_MSG_MAX)
    return;
  uint8_t sig[MESH_SIG_LEN], mac[32];
  static const uint8_t type[] = "meshd/hello/1";
  if (mesh_sign(&them, MESH_DOMAIN_HANDSHAKE, type, sizeof type - 1, body, len, sig) != 0)
    abort();
  crypto_generichash_state st;
  crypto_generichash_init(&st, psk.key, sizeof psk.key, sizeof mac);
  crypto_generichash_update(&st, (const uint8_t *)"meshd-psk-hello-1", 17);
  crypto_generichash_update(&st, sig, sizeof sig);
  crypto_generichash_update(&st, body, len);
  crypto_generichash_final(&st, mac, sizeof mac);
  Mesh__Handshake__Hello h = MESH__HANDSHAKE__HELLO__INIT;
  h.body.data = (uint8_t *)body;
  h.body.len = len;
  h.signature.data = sig;
  h.signature.len = sizeof sig;
  h.psk_mac.data = mac;
  h.psk_mac.len = sizeof mac;
  static uint8_t out[MESH_HS_MSG_MAX + 256];
  size_t n = mesh__handshake__hello__get_packed_size(&h);
  if (n > sizeof out)
    return;
  mesh__handshake__hello__pack(&h, out);
  mesh_hs hs;
  mesh_hs_init(&hs, true, &me, &psk, 1, NULL, NULL, 0);
  if (mesh_hs_read_hello(&hs, out, n) == 0) {
    /* Accepted: the listener can answer, and the keys come out. */
    uint8_t reply[MESH_HS_LEN_SIZE + MESH_HS_MSG_MAX];
    size_t rlen;
    if (mesh_hs_write_hello(&hs, reply, sizeof reply, &rlen) != 0 || !hs.done)
      abort();
  }
  mesh_hs_clear(&hs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  setup();
  if (size < 1)
    return 0;
  uint8_t mode = data[0] % 3;
  data++;
  size--;
  if (mode == 2) {
    signed_body(data, size);
    return 0;
  }
  mesh_hs hs;
  if (mode == 0) {
    mesh_hs_init(&hs, true, &me, &psk, 1, NULL, NULL, 0);
  } else {
    mesh_hs_init(&hs, false, &me, &psk, 1, &them.id, NULL, 0);
    uint8_t mine[MESH_HS_LEN_SIZE + MESH_HS_MSG_MAX];
    size_t n;
    if (mesh_hs_write_hello(&hs, mine, sizeof mine, &n) != 0)
      abort();
  }
  size_t msg_len;
  if (mesh_hs_peek(data, size, &msg_len) == 0 && msg_len > 0 && msg_len <= size - MESH_HS_LEN_SIZE)
    mesh_hs_read_hello(&hs, data + MESH_HS_LEN_SIZE, msg_len);
  /* Also the whole input as one message, whatever its prefix says. */
  mesh_hs_read_hello(&hs, data, size);
  mesh_hs_clear(&hs);
  return 0;
}
