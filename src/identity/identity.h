/*
 * Node identity: an Ed25519 key pair and the libp2p peer ID derived from it.
 *
 * The key file ($MESH_HOME/identity.key) is a libp2p PrivateKey protobuf
 * (Type = Ed25519, Data = 32-byte seed || 32-byte public key), mode 0600.
 * A key file readable by group or others is refused, as ssh does.
 *
 * A peer ID is the identity multihash (code 0x00, length 36) of the
 * deterministic protobuf encoding of the PublicKey message (Type = Ed25519,
 * Data = 32-byte public key), 38 bytes in all. Its text form is base58btc
 * ("12D3KooW..."); the CIDv1 form (multibase 'b' base32, codec libp2p-key
 * 0x72) is accepted on input and printed on request.
 *
 *   peer ID bytes
 *   OFFSET SIZE  FIELD
 *   0      1     multihash code 0x00 (identity)
 *   1      1     digest length 0x24 (36)
 *   2      2     0x08 0x01  PublicKey.Type = Ed25519
 *   4      2     0x12 0x20  PublicKey.Data, 32 bytes
 *   6      32    Ed25519 public key
 *
 * Only Ed25519 identities exist in meshd, so a peer ID is a fixed-size value
 * that can be copied and compared with memcmp.
 */
#ifndef MESH_IDENTITY_IDENTITY_H
#define MESH_IDENTITY_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#define MESH_PUBKEY_LEN 32
#define MESH_SECKEY_LEN 64 /* libsodium's form: seed || public key */
#define MESH_SIG_LEN 64
#define MESH_PEER_ID_LEN 38
/* Longest text form (CIDv1 base32 is 65 characters, base58 is 52) plus NUL. */
#define MESH_PEER_ID_TEXT_MAX 72
/* A short form for tables: the last 8 characters of the base58 text, plus NUL. */
#define MESH_PEER_ID_SHORT_MAX 9

typedef struct mesh_peer_id {
  uint8_t b[MESH_PEER_ID_LEN]; /* the multihash bytes, laid out as above */
} mesh_peer_id;

typedef struct mesh_identity {
  uint8_t pk[MESH_PUBKEY_LEN]; /* Ed25519 public key */
  uint8_t sk[MESH_SECKEY_LEN]; /* Ed25519 secret key (seed || pk) */
  mesh_peer_id id;             /* derived from pk */
} mesh_identity;

/* Creates a new random identity. */
int mesh_identity_generate(mesh_identity *out);
/* Derives the identity of a 32-byte Ed25519 seed (deterministic: tests and
 * the simulator make their peers this way). */
#define MESH_SEED_LEN 32
int mesh_identity_from_seed(const uint8_t seed[MESH_SEED_LEN], mesh_identity *out);

/*
 * Loads the key file at path, or creates it (mode 0600, written atomically)
 * when it does not exist. Errors: -EACCES when the file is readable by group
 * or others or owned by another user, -ELOOP when path is a symbolic link,
 * -EBADMSG when it is not a valid Ed25519 PrivateKey (or is larger than any
 * key file), -EINVAL when path is not a regular file, and the errno
 * of any failed system call. err (may be NULL) receives a one-line message
 * that names the file and, for permissions, says how to fix them:
 *   Permissions 0644 for 'F' are too open; run: chmod 600 F
 * A damaged or unsafe file is never replaced. Processes creating the same
 * key at once all end up with the one key that reached the disk first. The
 * directory must exist. Blocks on disk IO.
 */
int mesh_identity_load_or_create(const char *path, mesh_identity *out, char *err, size_t errlen);
/* As above but never creates: -ENOENT when the file is missing. */
int mesh_identity_load(const char *path, mesh_identity *out, char *err, size_t errlen);
/* Writes the identity as a key file, replacing any (temp file, fsync,
 * rename, fsync dir; mode 0600). */
int mesh_identity_save(const char *path, const mesh_identity *id);

/* Decodes / encodes the PrivateKey protobuf bytes of a key file. Decoding
 * accepts Data of 64 bytes (seed || pk) and libp2p's older 96 bytes
 * (seed || pk || pk); the public key must be the one the seed derives.
 * -EBADMSG otherwise. */
int mesh_identity_decode(const uint8_t *buf, size_t len, mesh_identity *out);
/* buf must hold 68 bytes; *len receives the length written. */
int mesh_identity_encode(const mesh_identity *id, uint8_t *buf, size_t cap, size_t *len);

/* Peer IDs. */
void mesh_peer_id_from_pubkey(const uint8_t pk[MESH_PUBKEY_LEN], mesh_peer_id *out);
/* Checks the multihash layout; -EBADMSG when the bytes are not an Ed25519 peer ID. */
int mesh_peer_id_from_bytes(const uint8_t *buf, size_t len, mesh_peer_id *out);
void mesh_peer_id_pubkey(const mesh_peer_id *id, uint8_t pk[MESH_PUBKEY_LEN]);
/* base58btc text; buf of at least MESH_PEER_ID_TEXT_MAX. */
void mesh_peer_id_to_text(const mesh_peer_id *id, char *buf, size_t len);
/* CIDv1 text ("bafz..."); buf of at least MESH_PEER_ID_TEXT_MAX. */
void mesh_peer_id_to_cid(const mesh_peer_id *id, char *buf, size_t len);
/* The last 8 characters of the base58 text, for tables and logs. */
void mesh_peer_id_short(const mesh_peer_id *id, char *buf, size_t len);
/* Parses base58btc or CIDv1 text. -EBADMSG on anything else. */
int mesh_peer_id_parse(const char *text, mesh_peer_id *out);
/* As mesh_peer_id_parse; on failure err (may be NULL) receives a one-line
 * reason ("bad base58btc text", "a sha2-256 peer ID ...", ...). */
int mesh_peer_id_parse_err(const char *text, mesh_peer_id *out, char *err, size_t errlen);
int mesh_peer_id_cmp(const mesh_peer_id *a, const mesh_peer_id *b);
int mesh_peer_id_eq(const mesh_peer_id *a, const mesh_peer_id *b);

#endif
