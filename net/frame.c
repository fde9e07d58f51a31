#include "net/frame.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static void put_be32(uint8_t *p, uint32_t x)
{
  p[0] = (uint8_t)(x >> 24);
  p[1] = (uint8_t)(x >> 16);
  p[2] = (uint8_t)(x >> 8);
  p[3] = (uint8_t)x;
}

static uint32_t get_be32(const uint8_t *p)
{
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put_be64(uint8_t *p, uint64_t x)
{
  put_be32(p, (uint32_t)(x >> 32));
  put_be32(p + 4, (uint32_t)x);
}

static uint64_t get_be64(const uint8_t *p)
{
  return ((uint64_t)get_be32(p) << 32) | get_be32(p + 4);
}

/* The XChaCha20 subkey of a direction: HChaCha20 over the nonce's fixed
 * first 16 bytes. */
static const uint8_t *subkey(mesh_frame_dir *d)
{
  if (!d->has_subkey) {
    uint8_t prefix[crypto_core_hchacha20_INPUTBYTES] = {0};
    memcpy(prefix, "meshd-fr", 8);
    crypto_core_hchacha20(d->subkey, prefix, d->key, NULL);
    d->has_subkey = 1;
  }
  return d->subkey;
}

/* The ChaCha20-Poly1305 (IETF) nonce under the subkey: 4 zero bytes and
 * the last 8 bytes of the XChaCha20 nonce. */
static void make_nonce(uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES], uint64_t ctr)
{
  memset(nonce, 0, crypto_aead_chacha20poly1305_ietf_NPUBBYTES);
  put_be64(nonce + 4, ctr);
}

size_t mesh_frame_wire_size(size_t len)
{
  return MESH_FRAME_OVERHEAD + len;
}

int mesh_frame_seal(mesh_frame_dir *tx, const mesh_frame *f, uint8_t *out, size_t cap,
                    size_t *out_len)
{
  size_t wire = mesh_frame_wire_size(f->len);
  if (f->len > UINT32_MAX - MESH_FRAME_OVERHEAD)
    return -EMSGSIZE;
  if (cap < wire)
    return -ENOSPC;
  put_be32(out, (uint32_t)(wire - MESH_FRAME_LEN_SIZE));
  put_be64(out + 4, tx->counter);
  uint8_t *pt = out + MESH_FRAME_PREFIX;
  pt[0] = f->type;
  pt[1] = f->channel;
  pt[2] = f->cls;
  pt[3] = f->flags;
  put_be32(pt + 4, f->total);
  if (f->len > 0)
    memmove(pt + MESH_FRAME_INNER, f->payload, f->len);
  uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
  make_nonce(nonce, tx->counter);
  unsigned long long clen;
  crypto_aead_chacha20poly1305_ietf_encrypt(pt, &clen, pt, MESH_FRAME_INNER + f->len, out,
                                            MESH_FRAME_PREFIX, NULL, nonce, subkey(tx));
  tx->counter++;
  *out_len = wire;
  return 0;
}

int mesh_frame_peek(const uint8_t *buf, size_t avail, size_t max_body, size_t *frame_len)
{
  *frame_len = 0;
  if (avail < MESH_FRAME_LEN_SIZE)
    return 0;
  uint32_t body = get_be32(buf);
  if (body > max_body)
    return -EMSGSIZE;
  if (body < MESH_FRAME_MIN_BODY)
    return -EBADMSG;
  *frame_len = MESH_FRAME_LEN_SIZE + (size_t)body;
  return 0;
}

int mesh_frame_open(mesh_frame_dir *rx, uint8_t *buf, size_t len, mesh_frame *out)
{
  if (len < MESH_FRAME_LEN_SIZE + MESH_FRAME_MIN_BODY || get_be32(buf) != len - MESH_FRAME_LEN_SIZE)
    return -EBADMSG;
  uint64_t ctr = get_be64(buf + 4);
  if (ctr < rx->counter)
    return -ESTALE;
  if (ctr > rx->counter)
    return -EPROTO;
  uint8_t nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
  make_nonce(nonce, ctr);
  uint8_t *ct = buf + MESH_FRAME_PREFIX;
  unsigned long long plen;
  if (crypto_aead_chacha20poly1305_ietf_decrypt(ct, &plen, NULL, ct, len - MESH_FRAME_PREFIX, buf,
                                                MESH_FRAME_PREFIX, nonce, subkey(rx)) != 0)
    return -EKEYREJECTED;
  rx->counter++;
  memset(out, 0, sizeof *out);
  out->type = ct[0];
  out->channel = ct[1];
  out->cls = ct[2];
  out->flags = ct[3];
  out->total = get_be32(ct + 4);
  out->payload = ct + MESH_FRAME_INNER;
  out->len = (size_t)plen - MESH_FRAME_INNER;
  if (out->type < MESH_FRAME_DATA || out->type > MESH_FRAME_FINISH)
    return -EBADMSG;
  if (out->type == MESH_FRAME_DATA &&
      (out->cls > 1 || (out->flags & ~(MESH_FRAME_FIRST | MESH_FRAME_LAST)) != 0))
    return -EBADMSG;
  return 0;
}

void mesh_frame_reasm_init(mesh_frame_reasm *r, size_t max)
{
  memset(r, 0, sizeof *r);
  r->max = max;
}

void mesh_frame_reasm_free(mesh_frame_reasm *r)
{
  free(r->buf);
  size_t max = r->max;
  memset(r, 0, sizeof *r);
  r->max = max;
}

static int reasm_append(mesh_frame_reasm *r, const uint8_t *p, size_t n)
{
  size_t need = r->len + n;
  if (need > r->cap) {
    size_t cap = r->cap < 4096 ? 4096 : r->cap;
    while (cap < need)
      cap *= 2;
    if (cap > r->total)
      cap = r->total;
    uint8_t *b = realloc(r->buf, cap);
    if (b == NULL)
      return -ENOMEM;
    r->buf = b;
    r->cap = cap;
  }
  if (n > 0)
    memcpy(r->buf + r->len, p, n);
  r->len = need;
  return 0;
}

int mesh_frame_reasm_add(mesh_frame_reasm *r, const mesh_frame *f, mesh_frame_msg *out)
{
  if (f->type != MESH_FRAME_DATA)
    return -EBADMSG;
  if (f->cls == 0) {
    /* A datagram: one whole frame, and never inside a stream message's
     * chunks' bookkeeping. */
    if (f->flags != (MESH_FRAME_FIRST | MESH_FRAME_LAST) || f->total != f->len)
      return -EBADMSG;
    if (f->len > r->max)
      return -EMSGSIZE;
    *out = (mesh_frame_msg){.channel = f->channel, .cls = 0, .data = f->payload, .len = f->len};
    return 1;
  }
  if (f->flags & MESH_FRAME_FIRST) {
    if (r->busy)
      return -EBADMSG;
    if (f->total > r->max)
      return -EMSGSIZE;
    if (f->len > f->total)
      return -EBADMSG;
    if (f->flags & MESH_FRAME_LAST) {
      if (f->len != f->total)
        return -EBADMSG;
      *out = (mesh_frame_msg){.channel = f->channel, .cls = 1, .data = f->payload, .len = f->len};
      return 1;
    }
    r->busy = 1;
    r->channel = f->channel;
    r->total = f->total;
    r->len = 0;
  } else if (!r->busy || f->channel != r->channel || f->total != 0) {
    return -EBADMSG;
  }
  if (r->len + f->len > r->total)
    return -EBADMSG;
  int rc = reasm_append(r, f->payload, f->len);
  if (rc != 0)
    return rc;
  if (!(f->flags & MESH_FRAME_LAST))
    return 0;
  if (r->len != r->total)
    return -EBADMSG;
  r->busy = 0;
  *out = (mesh_frame_msg){.channel = r->channel, .cls = 1, .data = r->buf, .len = r->len};
  /* Keep a small buffer for the next message; a big one goes back on the
   * next call (the message is borrowed until then). */
  return 1;
}
