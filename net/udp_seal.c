/* Keys, header and AEAD of the UDP datagram path's packets (format in net/udp_wire.h). */
#include "net/udp_wire.h"

#include "src/base/err.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

/* BLAKE2b-256 keyed with the export secret over label || dir. */
static void kdf(const uint8_t secret[MESH_UDP_SECRET_LEN], const char *label, const char *dir,
                uint8_t out[32])
{
  crypto_generichash_state st;
  crypto_generichash_init(&st, secret, MESH_UDP_SECRET_LEN, 32);
  crypto_generichash_update(&st, (const uint8_t *)label, strlen(label));
  crypto_generichash_update(&st, (const uint8_t *)dir, 3);
  crypto_generichash_final(&st, out, 32);
}

static uint32_t index_of(const uint8_t secret[MESH_UDP_SECRET_LEN], const char *dir)
{
  uint8_t h[32];
  kdf(secret, "meshd-udp-index-1", dir, h);
  uint32_t v = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
  sodium_memzero(h, sizeof h);
  return v;
}

void mesh_udp_keys_derive(const uint8_t secret[MESH_UDP_SECRET_LEN], bool dialer,
                          mesh_udp_keys *out)
{
  const char *tx = dialer ? "d2l" : "l2d";
  const char *rx = dialer ? "l2d" : "d2l";
  kdf(secret, "meshd-udp-key-1", tx, out->tx);
  kdf(secret, "meshd-udp-key-1", rx, out->rx);
  out->tx_index = index_of(secret, tx);
  out->rx_index = index_of(secret, rx);
}

static void put_le32(uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

int mesh_udp_peek(const uint8_t *pkt, size_t len, mesh_udp_header *h)
{
  if (len < MESH_UDP_OVERHEAD || pkt[2] != 0 || pkt[3] != 0)
    return -EBADMSG;
  uint8_t type = pkt[0];
  if (type < MESH_UDP_DATA || type > MESH_UDP_PONG)
    return -EBADMSG;
  if ((type == MESH_UDP_DATA) != (pkt[1] != 0))
    return -EBADMSG;
  h->type = type;
  h->channel = pkt[1];
  h->index = (uint32_t)get_le(pkt + 4, 4);
  h->counter = get_le(pkt + 8, 8);
  return 0;
}

static void nonce_of(uint64_t counter, uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES])
{
  memset(nonce, 0, crypto_aead_chacha20poly1305_IETF_NPUBBYTES);
  put_le64(nonce + 4, counter);
}

int mesh_udp_seal(const uint8_t key[MESH_UDP_KEY_LEN], const mesh_udp_header *h,
                  const uint8_t *payload, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
  if (len > MESH_UDP_PAYLOAD_LIMIT || cap < MESH_UDP_OVERHEAD + len)
    return -EMSGSIZE;
  out[0] = h->type;
  out[1] = h->channel;
  out[2] = 0;
  out[3] = 0;
  put_le32(out + 4, h->index);
  put_le64(out + 8, h->counter);
  uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];
  nonce_of(h->counter, nonce);
  unsigned long long clen = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(out + MESH_UDP_HEADER_LEN, &clen, payload, len, out,
                                            MESH_UDP_HEADER_LEN, NULL, nonce, key);
  *out_len = MESH_UDP_HEADER_LEN + (size_t)clen;
  return 0;
}

int mesh_udp_open(const uint8_t key[MESH_UDP_KEY_LEN], const uint8_t *pkt, size_t len, uint8_t *out,
                  size_t cap, size_t *out_len)
{
  if (len < MESH_UDP_OVERHEAD)
    return -EBADMSG;
  if (cap < len - MESH_UDP_OVERHEAD)
    return -EMSGSIZE;
  uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];
  nonce_of(get_le(pkt + 8, 8), nonce);
  unsigned long long mlen = 0;
  if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &mlen, NULL, pkt + MESH_UDP_HEADER_LEN,
                                                len - MESH_UDP_HEADER_LEN, pkt, MESH_UDP_HEADER_LEN,
                                                nonce, key) != 0)
    return -MESH_EAUTH;
  *out_len = (size_t)mlen;
  return 0;
}
