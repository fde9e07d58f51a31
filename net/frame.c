/* Sealing, opening and reassembly of peer connection frames (net/frame.h). */
#include "net/frame.h"
#include "src/base/err.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
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
static void make_nonce(uint8_t nonce[MESH_FRAME_NONCE], uint64_t ctr)
{
  memset(nonce, 0, MESH_FRAME_NONCE);
  put_be64(nonce + 4, ctr);
}

/*
 * The per-frame AEAD of bulk frames runs on OpenSSL: on 64 KiB frames on
 * these (AVX-512) machines, sealed and opened, its ChaCha20-Poly1305 is
 * 3x libsodium 1.0.18's and its AES-256-GCM 2.5x libsodium's AES-NI code
 * (scripts/bench-frame-cipher; frame_bench --portable gives libsodium's
 * figures). Each thread keeps
 * one cipher context per cipher for sealing and one for opening, so a frame
 * costs no allocation; a context remembers which key it holds and is
 * re-keyed only when a frame of another direction comes along (ChaCha20 has
 * no key schedule: re-keying copies 32 bytes; AES-256-GCM's costs well
 * under a microsecond, against 16 us of work for a 64 KiB frame). The
 * contexts are freed when their thread exits.
 *
 * Small frames (probes, acks, gossip) go through libsodium's
 * implementation of the same construction instead: below about 700 bytes
 * of plaintext its lower fixed cost per call wins (a 64-byte ChaCha frame
 * sealed and opened costs 1.33 us there, 1.54 us through EVP). For
 * AES-256-GCM that path keeps libsodium's precomputed key schedule in the
 * direction (made on first use), so a small frame never re-keys a shared
 * context; libsodium 1.0.18 has AES-GCM only where the CPU has AES-NI and
 * carry-less multiplication, and elsewhere small AES frames take the
 * OpenSSL path too. ChaCha frames for which OpenSSL cannot give a context
 * (out of memory, or a build without ChaCha20, as FIPS-only ones are) also
 * go through libsodium. The bytes are the same either way.
 */
#define SMALL_FRAME 768 /* plaintext bytes below which libsodium seals and opens */

_Static_assert(sizeof(crypto_aead_aes256gcm_state) <= MESH_FRAME_AES_STATE,
               "libsodium's AES-GCM state fits mesh_frame_dir");
_Static_assert(MESH_FRAME_NONCE == crypto_aead_aes256gcm_NPUBBYTES &&
                   MESH_FRAME_NONCE == crypto_aead_chacha20poly1305_IETF_NPUBBYTES,
               "both AEADs take a 96-bit nonce");

typedef struct aead_ctx {
  EVP_CIPHER_CTX *ctx;
  uint8_t key[MESH_FRAME_KEY_LEN]; /* the key ctx holds, when keyed */
  bool keyed;
} aead_ctx;

typedef struct aead_cache {
  aead_ctx seal[MESH_FRAME_CIPHER_COUNT], open[MESH_FRAME_CIPHER_COUNT];
} aead_cache;

static bool portable_only; /* test hook: libsodium for every frame */

void mesh_frame_test_portable(bool on)
{
  portable_only = on;
}

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static int cache_key_rc;
static bool sodium_aes; /* libsodium has AES-256-GCM on this CPU */

static void cache_free(void *p)
{
  aead_cache *c = p;
  for (int i = 0; i < MESH_FRAME_CIPHER_COUNT; i++) {
    EVP_CIPHER_CTX_free(c->seal[i].ctx);
    EVP_CIPHER_CTX_free(c->open[i].ctx);
  }
  sodium_memzero(c, sizeof *c);
  free(c);
}

static void cache_key_make(void)
{
  cache_key_rc = pthread_key_create(&cache_key, cache_free);
  /* sodium_init fills the CPU features crypto_aead_aes256gcm_is_available
   * reads; it is idempotent and thread-safe. */
  sodium_aes = sodium_init() >= 0 && crypto_aead_aes256gcm_is_available() != 0;
}

static const EVP_CIPHER *evp_cipher(mesh_frame_cipher c)
{
  return c == MESH_FRAME_AES_256_GCM ? EVP_aes_256_gcm() : EVP_chacha20_poly1305();
}

static int aead_init(aead_ctx *a, mesh_frame_cipher c, bool enc)
{
  a->ctx = EVP_CIPHER_CTX_new();
  if (a->ctx == NULL)
    return -ENOMEM;
  /* Both take a 12-byte IV by default; set it anyway, as the frame's nonce
   * length is what the wire format promises. */
  if (EVP_CipherInit_ex(a->ctx, evp_cipher(c), NULL, NULL, NULL, enc ? 1 : 0) != 1 ||
      EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_SET_IVLEN, MESH_FRAME_NONCE, NULL) != 1)
    return -ENOTSUP;
  return 0;
}

/* This thread's context of cipher c for sealing (enc) or opening, keyed
 * with key and set to nonce; NULL when OpenSSL fails (out of memory, or a
 * build without the cipher). Contexts are made on first use. */
static EVP_CIPHER_CTX *aead_get(mesh_frame_cipher c, bool enc, const uint8_t *key,
                                const uint8_t *nonce)
{
  aead_cache *cache = pthread_getspecific(cache_key);
  if (cache == NULL) {
    cache = calloc(1, sizeof *cache);
    if (cache == NULL)
      return NULL;
    if (pthread_setspecific(cache_key, cache) != 0) {
      cache_free(cache);
      return NULL;
    }
  }
  aead_ctx *a = enc ? &cache->seal[c] : &cache->open[c];
  if (a->ctx == NULL && aead_init(a, c, enc) != 0) {
    EVP_CIPHER_CTX_free(a->ctx);
    a->ctx = NULL;
    return NULL;
  }
  bool same = a->keyed && sodium_memcmp(a->key, key, MESH_FRAME_KEY_LEN) == 0;
  if (EVP_CipherInit_ex(a->ctx, NULL, NULL, same ? NULL : key, nonce, enc ? 1 : 0) != 1) {
    a->keyed = false;
    return NULL;
  }
  if (!same) {
    memcpy(a->key, key, MESH_FRAME_KEY_LEN);
    a->keyed = true;
  }
  return a->ctx;
}

/* libsodium's precomputed AES-256-GCM state of d, made on first use. */
static const crypto_aead_aes256gcm_state *aes_state(mesh_frame_dir *d)
{
  crypto_aead_aes256gcm_state *st = (crypto_aead_aes256gcm_state *)(void *)d->aes_state;
  if (!d->has_aes_state) {
    crypto_aead_aes256gcm_beforenm(st, d->key);
    d->has_aes_state = 1;
  }
  return st;
}

/* How a frame of plen plaintext bytes is sealed or opened under d. */
typedef enum aead_path {
  PATH_EVP,        /* OpenSSL, through *ctx */
  PATH_SODIUM,     /* libsodium, the same construction */
  PATH_UNAVAILABLE /* neither can do it */
} aead_path;

static aead_path choose(mesh_frame_dir *d, bool enc, size_t plen, const uint8_t *nonce,
                        EVP_CIPHER_CTX **ctx)
{
  *ctx = NULL;
  pthread_once(&cache_once, cache_key_make);
  if (d->cipher == MESH_FRAME_CHACHA20_POLY1305) {
    if (portable_only || plen < SMALL_FRAME || cache_key_rc != 0)
      return PATH_SODIUM;
    *ctx = aead_get(MESH_FRAME_CHACHA20_POLY1305, enc, subkey(d), nonce);
    return *ctx != NULL ? PATH_EVP : PATH_SODIUM;
  }
  if (d->cipher != MESH_FRAME_AES_256_GCM)
    return PATH_UNAVAILABLE;
  if (sodium_aes && (portable_only || plen < SMALL_FRAME))
    return PATH_SODIUM;
  if (cache_key_rc == 0)
    *ctx = aead_get(MESH_FRAME_AES_256_GCM, enc, d->key, nonce);
  if (*ctx != NULL)
    return PATH_EVP;
  return sodium_aes ? PATH_SODIUM : PATH_UNAVAILABLE;
}

size_t mesh_frame_wire_size(size_t len)
{
  return MESH_FRAME_OVERHEAD + len;
}

int mesh_frame_seal(mesh_frame_dir *tx, const mesh_frame *f, uint8_t *out, size_t cap,
                    size_t *out_len)
{
  if (f->len > (size_t)INT_MAX - MESH_FRAME_OVERHEAD ||
      f->head_len > (size_t)INT_MAX - MESH_FRAME_OVERHEAD - f->len)
    return -EMSGSIZE;
  size_t body = f->head_len + f->len;
  size_t wire = mesh_frame_wire_size(body);
  if (cap < wire)
    return -ENOSPC;
  uint8_t nonce[MESH_FRAME_NONCE];
  make_nonce(nonce, tx->counter);
  size_t plen = MESH_FRAME_INNER + body;
  EVP_CIPHER_CTX *ctx;
  aead_path path = choose(tx, true, plen, nonce, &ctx);
  if (path == PATH_UNAVAILABLE)
    return -EIO;
  put_be32(out, (uint32_t)(wire - MESH_FRAME_LEN_SIZE));
  put_be64(out + 4, tx->counter);
  uint8_t *pt = out + MESH_FRAME_PREFIX;
  /* The plaintext is made whole in out and encrypted there in one update:
   * OpenSSL's ChaCha20-Poly1305 runs a third slower when a message comes
   * in pieces (the 8-byte header, then the payload) than a copy costs. */
  if (f->len > 0)
    memmove(pt + MESH_FRAME_INNER + f->head_len, f->payload, f->len);
  if (f->head_len > 0)
    memcpy(pt + MESH_FRAME_INNER, f->head, f->head_len);
  pt[0] = f->type;
  pt[1] = f->channel;
  pt[2] = f->cls;
  pt[3] = f->flags;
  put_be32(pt + 4, f->total);
  int n;
  if (path == PATH_SODIUM) {
    unsigned long long clen;
    if (tx->cipher == MESH_FRAME_AES_256_GCM)
      crypto_aead_aes256gcm_encrypt_afternm(pt, &clen, pt, plen, out, MESH_FRAME_PREFIX, NULL,
                                            nonce, aes_state(tx));
    else
      crypto_aead_chacha20poly1305_ietf_encrypt(pt, &clen, pt, plen, out, MESH_FRAME_PREFIX, NULL,
                                                nonce, subkey(tx));
  } else if (EVP_EncryptUpdate(ctx, NULL, &n, out, MESH_FRAME_PREFIX) != 1 ||
             EVP_EncryptUpdate(ctx, pt, &n, pt, (int)plen) != 1 ||
             EVP_EncryptFinal_ex(ctx, pt + plen, &n) != 1 ||
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, MESH_FRAME_TAG, pt + plen) != 1)
    return -EIO;
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
  uint8_t nonce[MESH_FRAME_NONCE];
  make_nonce(nonce, ctr);
  uint8_t *ct = buf + MESH_FRAME_PREFIX;
  size_t clen = len - MESH_FRAME_PREFIX - MESH_FRAME_TAG;
  if (clen > INT_MAX)
    return -EBADMSG;
  EVP_CIPHER_CTX *ctx;
  aead_path path = choose(rx, false, clen, nonce, &ctx);
  if (path == PATH_UNAVAILABLE)
    return -MESH_EAUTH; /* cannot be verified: never accepted */
  /* Decrypted in place before the tag is checked; on a bad tag the
   * plaintext is never looked at (the caller drops the frame and the
   * connection). */
  int n;
  if (path == PATH_SODIUM) {
    int rc = rx->cipher == MESH_FRAME_AES_256_GCM
                 ? crypto_aead_aes256gcm_decrypt_detached_afternm(
                       ct, NULL, ct, clen, ct + clen, buf, MESH_FRAME_PREFIX, nonce, aes_state(rx))
                 : crypto_aead_chacha20poly1305_ietf_decrypt_detached(
                       ct, NULL, ct, clen, ct + clen, buf, MESH_FRAME_PREFIX, nonce, subkey(rx));
    if (rc != 0)
      return -MESH_EAUTH;
  } else if (EVP_DecryptUpdate(ctx, NULL, &n, buf, MESH_FRAME_PREFIX) != 1 ||
             EVP_DecryptUpdate(ctx, ct, &n, ct, (int)clen) != 1 ||
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, MESH_FRAME_TAG, ct + clen) != 1 ||
             EVP_DecryptFinal_ex(ctx, ct + clen, &n) != 1)
    return -MESH_EAUTH;
  size_t plen = clen;
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
