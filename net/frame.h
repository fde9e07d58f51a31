/*
 * Frames: what travels on a peer connection after the handshake.
 *
 * Every frame is encrypted and authenticated under the key of its direction
 * (net/handshake.h derives one per direction) with the cipher the handshake
 * agreed for the connection (net/frame_cipher.h): XChaCha20-Poly1305, the
 * default and all that older nodes speak, or AES-256-GCM. The frame counter
 * is that direction's frame number, starting at 0 and going up by one per
 * frame; it is the nonce, and the header is the associated data. A receiver
 * accepts only the counter it expects next, so a replayed (lower counter),
 * reordered or skipped (higher counter), forged or altered (tag fails) frame
 * is refused, and the connection with it.
 *
 *   wire frame (the same for both ciphers)
 *   OFFSET SIZE  FIELD
 *   0      4     body length L, big-endian: bytes after this field
 *   4      8     counter, big-endian
 *   12     L-8   ciphertext of the plaintext below, then the 16-byte tag
 *
 *   plaintext
 *   OFFSET SIZE  FIELD
 *   0      1     type: 1 data, 2 keepalive, 3 finish (handshake confirmation)
 *   1      1     channel (data): MESH_CH_SWIM 1, MESH_CH_COORD 2, MESH_CH_BULK 3
 *   2      1     class (data): 0 datagram, 1 stream
 *   3      1     flags (data): 1 first chunk, 2 last chunk (a datagram has both)
 *   4      4     message length, big-endian (first chunk; 0 otherwise)
 *   8      n     payload
 *
 *   XChaCha20-Poly1305 nonce (24 bytes) = "meshd-fr" || 8 zero bytes || counter (8, BE)
 *   AES-256-GCM nonce (12 bytes)        = 4 zero bytes || counter (8, BE)
 *
 * Both nonces are unique per direction key: the counter never repeats on a
 * direction (it only goes up, and a connection never lives for 2^64
 * frames), each direction has its own key, and a connection uses one
 * cipher, so no key is ever used under two ciphers. Keys are not renewed
 * while a connection lives: for AES-256-GCM the distinguishing advantage
 * after s bytes under one key is about (s/16)^2 / 2^129, 2^-57 at 1 TiB
 * one way (where TLS 1.3 draws its line), 2^-49 at 16 TiB; ChaCha20-Poly1305
 * has no such term.
 *
 * The first 16 bytes of every XChaCha20 nonce are the same, so XChaCha20's
 * HChaCha20 subkey is the same for every frame of a direction: it is
 * computed once (libsodium's HChaCha20) and each frame costs one
 * ChaCha20-Poly1305 (IETF) operation with the nonce 4 zero bytes ||
 * counter, which is exactly what XChaCha20-Poly1305 computes (the unit test
 * opens frames with libsodium's XChaCha20 API).
 *
 * Either cipher runs on OpenSSL's libcrypto for bulk frames (2.5-3x
 * libsodium's speed on the machines meshd targets)
 * and on libsodium for small ones, where its lower cost per call wins
 * (AES-256-GCM there from a per-direction precomputed key schedule, where
 * libsodium has AES instructions to use; see frame.c).
 *
 * A stream message longer than one chunk is sent as several data frames of
 * the same channel, the first flagged first, the last flagged last; no other
 * stream frame comes in between, so the receiver needs one reassembly buffer
 * per connection. Datagrams may come between the chunks of a stream message.
 *
 * The decoder bounds L (MESH_FRAME_MIN_BODY .. the caller's maximum) before
 * reading the body. Everything here is pure: no IO, and no allocation
 * beyond one pair of cipher contexts per thread, made on first use.
 */
#ifndef MESH_NET_FRAME_H
#define MESH_NET_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MESH_FRAME_KEY_LEN 32
#define MESH_FRAME_LEN_SIZE 4
#define MESH_FRAME_PREFIX 12 /* length + counter */
#define MESH_FRAME_TAG 16
#define MESH_FRAME_INNER 8
#define MESH_FRAME_NONCE 12 /* the IETF nonce under the subkey; AES-GCM's nonce */
/* Bytes a frame adds to its payload. */
#define MESH_FRAME_OVERHEAD (MESH_FRAME_PREFIX + MESH_FRAME_TAG + MESH_FRAME_INNER)
/* Smallest valid L: counter, tag and the plaintext header. */
#define MESH_FRAME_MIN_BODY (8 + MESH_FRAME_TAG + MESH_FRAME_INNER)

enum {
  MESH_FRAME_DATA = 1,
  MESH_FRAME_KEEPALIVE = 2,
  MESH_FRAME_FINISH = 3,
};

#define MESH_FRAME_FIRST 1
#define MESH_FRAME_LAST 2

/* The frame ciphers. Zero is XChaCha20-Poly1305, so that a direction
 * filled with zeros and a key (tests, older callers) seals as before. */
typedef enum mesh_frame_cipher {
  MESH_FRAME_CHACHA20_POLY1305 = 0,
  MESH_FRAME_AES_256_GCM = 1,
  MESH_FRAME_CIPHER_COUNT
} mesh_frame_cipher;

/* Room for libsodium's precomputed AES-256-GCM state (512 bytes in
 * libsodium 1.0.18; frame.c checks that it fits). */
#define MESH_FRAME_AES_STATE 512

/* One direction of a connection: its key, cipher and next counter. The
 * key material is the owner's (wipe it with sodium_memzero). */
typedef struct mesh_frame_dir {
  uint8_t key[MESH_FRAME_KEY_LEN];
  uint64_t counter;                   /* the next frame's counter */
  uint8_t cipher;                     /* mesh_frame_cipher, agreed in the handshake */
  uint8_t subkey[MESH_FRAME_KEY_LEN]; /* ChaCha: HChaCha20(key, nonce prefix), made on first use */
  int has_subkey;                     /* subkey is valid for key */
  int has_aes_state;                  /* AES: aes_state is valid for key */
  _Alignas(16) uint8_t aes_state[MESH_FRAME_AES_STATE]; /* AES: small-frame key schedule */
} mesh_frame_dir;

/* A frame's plaintext. payload points into the caller's buffer. A sender
 * may put head_len bytes at head ahead of the payload: they are sealed as
 * its first bytes (the receiver sees one payload of head_len + len bytes),
 * which saves the caller a copy to join them. mesh_frame_open sets no head. */
typedef struct mesh_frame {
  uint8_t type;
  uint8_t channel;
  uint8_t cls;
  uint8_t flags;
  uint32_t total;         /* message length (first chunk) */
  const uint8_t *payload; /* borrowed */
  size_t len;
  const uint8_t *head; /* borrowed; never inside the seal's out */
  size_t head_len;
} mesh_frame;

/* Wire size of a frame carrying len payload bytes. */
size_t mesh_frame_wire_size(size_t len);

/*
 * Encrypts f into out (cap bytes, at least mesh_frame_wire_size(f->head_len
 * + f->len))
 * with tx's key, cipher and counter, then advances the counter. *out_len receives the
 * wire size. f->payload may lie anywhere, also inside out. -ENOSPC when out is too small, -EMSGSIZE
 * when the payload does not fit the length field, -EIO when the cipher failed (no
 * context could be made, or tx->cipher is unknown).
 */
int mesh_frame_seal(mesh_frame_dir *tx, const mesh_frame *f, uint8_t *out, size_t cap,
                    size_t *out_len);

/*
 * Looks at the first avail bytes of a stream. Returns 0 with *frame_len the
 * whole frame's size when a header is there (the frame may still be
 * incomplete: compare with avail), 0 with *frame_len 0 when fewer than 4
 * bytes are there, -EMSGSIZE when L > max_body, -EBADMSG when L is below
 * MESH_FRAME_MIN_BODY.
 */
int mesh_frame_peek(const uint8_t *buf, size_t avail, size_t max_body, size_t *frame_len);

/*
 * Authenticates and decrypts one whole frame of len bytes in place (buf is
 * the caller's and is modified), then advances rx's counter. out->payload
 * points into buf. -ESTALE: counter below the expected one (a replay);
 * -EPROTO: above it (reordered or skipped); -MESH_EAUTH: the tag did not
 * verify; -EBADMSG: bad length, type or fields.
 */
int mesh_frame_open(mesh_frame_dir *rx, uint8_t *buf, size_t len, mesh_frame *out);

/* Test hook: seal and open every frame with libsodium, the path of small
 * frames and of any ChaCha frame when OpenSSL cannot give a cipher context
 * (on: true; AES frames only where libsodium has AES instructions), or as
 * usual. */
void mesh_frame_test_portable(bool on);

/*
 * Reassembly of the data frames of one connection into messages. A
 * datagram is whole in one frame; a stream message arrives as chunks with
 * no other stream frame in between. The buffer grows with the bytes that
 * arrive, never by what a sender claims, and max bounds a message.
 */
typedef struct mesh_frame_reasm {
  size_t max;   /* largest message accepted (frame-max) */
  uint8_t *buf; /* the stream message being reassembled (heap) */
  size_t len;   /* bytes of it so far */
  size_t cap;   /* allocated size of buf */
  size_t total; /* its announced length */
  uint8_t channel;
  int busy; /* a stream message is in progress */
} mesh_frame_reasm;

/* A whole message, borrowed until the next call on the same reassembler. */
typedef struct mesh_frame_msg {
  uint8_t channel;
  uint8_t cls;
  const uint8_t *data;
  size_t len;
} mesh_frame_msg;

void mesh_frame_reasm_init(mesh_frame_reasm *r, size_t max);
void mesh_frame_reasm_free(mesh_frame_reasm *r);
/*
 * Takes one authenticated data frame (f->type == MESH_FRAME_DATA; channels
 * are the caller's to check). Returns 1 with *out set when a message is
 * whole, 0 when more chunks are needed, -EBADMSG for chunks out of order or
 * lengths that disagree, -EMSGSIZE for a message over max, -ENOMEM.
 */
int mesh_frame_reasm_add(mesh_frame_reasm *r, const mesh_frame *f, mesh_frame_msg *out);

#endif
