/*
 * The multiformats pieces that peer IDs are made of: unsigned varints,
 * base58btc, base32 (RFC 4648, lowercase, no padding: multibase 'b') and
 * CIDv1.
 *
 * Everything here is a pure function over caller-owned buffers: nothing
 * allocates, nothing blocks. Decoders bound their input before doing any work
 * (base58 costs time quadratic in its length, so callers pass short strings
 * and the decoder refuses anything longer than MESH_BASE58_MAX_TEXT).
 *
 *   unsigned varint (multiformats/unsigned-varint)
 *   7 bits per byte, least significant group first, high bit set on every
 *   byte but the last. Minimal encodings only, at most 9 bytes (63 bits).
 *
 *   CIDv1, binary
 *   OFFSET SIZE  FIELD
 *   0      var   version, uvarint 1
 *   var    var   content codec, uvarint (libp2p-key = 0x72)
 *   var    rest  multihash: uvarint code, uvarint digest length, digest
 *
 *   CIDv1, text: multibase prefix 'b' followed by base32 of the binary form.
 */
#ifndef MESH_IDENTITY_MULTIFORMATS_H
#define MESH_IDENTITY_MULTIFORMATS_H

#include <stddef.h>
#include <stdint.h>

/* The longest varint the multiformats spec allows (63 bits of value). */
#define MESH_UVARINT_MAX 9
/* Longest base58 text the decoder accepts (enough for 64 bytes), and the
 * most bytes the encoder takes (base58 costs time quadratic in length). */
#define MESH_BASE58_MAX_TEXT 128
#define MESH_BASE58_MAX_BYTES 92

#define MESH_MULTICODEC_LIBP2P_KEY 0x72
#define MESH_MULTIHASH_IDENTITY 0x00
#define MESH_MULTIHASH_SHA2_256 0x12

/* Writes x (< 2^63) to out; returns the bytes written (1 to 9), or 0 when x
 * is too large for the format. */
size_t mesh_uvarint_put(uint8_t out[MESH_UVARINT_MAX], uint64_t x);
/* Reads one varint from buf. *used receives the bytes read. -EBADMSG when the
 * varint is truncated, longer than 9 bytes, or not minimally encoded. */
int mesh_uvarint_get(const uint8_t *buf, size_t len, uint64_t *out, size_t *used);

/*
 * base58btc (the Bitcoin alphabet). Encode writes a NUL-terminated string
 * into out; -ENOSPC when cap is too small. Decode writes *out_len bytes;
 * -EBADMSG on a character outside the alphabet or an empty string, -EMSGSIZE
 * when the text is longer than MESH_BASE58_MAX_TEXT or stands for more than
 * MESH_BASE58_MAX_BYTES, -ENOSPC when the bytes do not fit in cap.
 */
int mesh_base58_encode(const uint8_t *in, size_t len, char *out, size_t cap);
int mesh_base58_decode(const char *text, size_t len, uint8_t *out, size_t cap, size_t *out_len);

/*
 * base32, RFC 4648 alphabet, lowercase, no padding. Decode refuses uppercase,
 * padding, characters outside the alphabet and a trailing group that carries
 * non-zero spare bits or cannot occur (1, 3 or 6 characters) with -EBADMSG.
 */
int mesh_base32_encode(const uint8_t *in, size_t len, char *out, size_t cap);
int mesh_base32_decode(const char *text, size_t len, uint8_t *out, size_t cap, size_t *out_len);

/*
 * CIDv1 text ('b' + base32) of (codec, multihash). The multihash bytes are
 * copied as given; mesh_cid_parse checks that they are a well-formed
 * multihash (code, length, exactly that many digest bytes).
 */
int mesh_cid_format(uint64_t codec, const uint8_t *mh, size_t mh_len, char *out, size_t cap);
/* Parses CIDv1 text. The multihash is copied into mh (cap bytes). -EBADMSG
 * for a multibase other than 'b', a version other than 1, or a malformed
 * multihash. */
int mesh_cid_parse(const char *text, size_t len, uint64_t *codec, uint8_t *mh, size_t cap,
                   size_t *mh_len);

/* Checks that buf is exactly one multihash; hands out its code and digest
 * length. -EBADMSG otherwise. */
int mesh_multihash_check(const uint8_t *buf, size_t len, uint64_t *code, size_t *digest_len);

#endif
