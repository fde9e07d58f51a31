/*
 * The identity key file: a libp2p PrivateKey protobuf (proto/crypto.proto).
 *
 *   OFFSET SIZE  FIELD
 *   0      2     0x08 0x01  PrivateKey.Type = Ed25519
 *   2      2     0x12 0x40  PrivateKey.Data, 64 bytes
 *   4      32    Ed25519 seed (libp2p calls it the private key)
 *   36     32    Ed25519 public key
 *
 * Older libp2p versions wrote Data as seed || pk || pk (96 bytes); such a
 * file is accepted when both copies of the public key agree, as the libp2p
 * spec asks. The public key must be the one the seed derives, so a file with
 * a damaged half is refused rather than producing a node whose peer ID does
 * not match its signatures.
 */
#include "src/identity/identity.h"

#include "src/base/err.h"
#include "src/base/fileperm.h"
#include "src/identity/durable.h"

#include "proto/crypto.pb-c.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A key file is 68 bytes; anything far larger is not one. */
#define KEYFILE_MAX 1024

static int sodium_ready(void)
{
  return sodium_init() < 0 ? -EIO : 0;
}

int mesh_identity_generate(mesh_identity *out)
{
  int rc = sodium_ready();
  if (rc != 0)
    return rc;
  if (crypto_sign_keypair(out->pk, out->sk) != 0)
    return -EIO;
  mesh_peer_id_from_pubkey(out->pk, &out->id);
  return 0;
}

int mesh_identity_from_seed(const uint8_t seed[MESH_SEED_LEN], mesh_identity *out)
{
  int rc = sodium_ready();
  if (rc != 0)
    return rc;
  if (crypto_sign_seed_keypair(out->pk, out->sk, seed) != 0)
    return -EIO;
  mesh_peer_id_from_pubkey(out->pk, &out->id);
  return 0;
}

static const char *key_type_name(int type)
{
  switch (type) {
  case MESH__CRYPTO__KEY_TYPE__RSA:
    return "RSA";
  case MESH__CRYPTO__KEY_TYPE__Ed25519:
    return "Ed25519";
  case MESH__CRYPTO__KEY_TYPE__Secp256k1:
    return "Secp256k1";
  case MESH__CRYPTO__KEY_TYPE__ECDSA:
    return "ECDSA";
  default:
    return "unknown";
  }
}

/* Decodes a PrivateKey; on -EBADMSG, why receives the reason. */
static int decode_key(const uint8_t *buf, size_t len, mesh_identity *out, char *why, size_t wlen)
{
  if (len > KEYFILE_MAX) {
    mesh_identity_errf(why, wlen, "%zu bytes is too large for a key file", len);
    return -EBADMSG;
  }
  Mesh__Crypto__PrivateKey *pk = mesh__crypto__private_key__unpack(NULL, len, buf);
  if (pk == NULL) {
    mesh_identity_errf(why, wlen, "not a libp2p PrivateKey protobuf (truncated or damaged)");
    return -EBADMSG;
  }
  int rc = -EBADMSG;
  const uint8_t *d = pk->data.data;
  size_t dlen = pk->data.len;
  if ((int)pk->type != MESH__CRYPTO__KEY_TYPE__Ed25519) {
    mesh_identity_errf(why, wlen, "key type %s (%d); only Ed25519 keys are supported",
                       key_type_name((int)pk->type), (int)pk->type);
  } else if (dlen != 64 && dlen != 96) {
    mesh_identity_errf(why, wlen, "Ed25519 key data is %zu bytes; expected 64", dlen);
  } else if (dlen == 96 && sodium_memcmp(d + 32, d + 64, MESH_PUBKEY_LEN) != 0) {
    mesh_identity_errf(why, wlen, "the two copies of the public key differ");
  } else {
    mesh_identity id;
    rc = mesh_identity_from_seed(d, &id);
    if (rc == 0 && sodium_memcmp(id.pk, d + MESH_SEED_LEN, MESH_PUBKEY_LEN) != 0) {
      mesh_identity_errf(why, wlen, "the public key does not match the private key");
      rc = -EBADMSG;
    }
    if (rc == 0)
      *out = id;
    sodium_memzero(&id, sizeof id);
  }
  /* The unpacked copy holds the secret seed: wipe it before it is freed. */
  if (pk->data.data != NULL)
    sodium_memzero(pk->data.data, pk->data.len);
  mesh__crypto__private_key__free_unpacked(pk, NULL);
  return rc;
}

int mesh_identity_decode(const uint8_t *buf, size_t len, mesh_identity *out)
{
  return decode_key(buf, len, out, NULL, 0);
}

int mesh_identity_encode(const mesh_identity *id, uint8_t *buf, size_t cap, size_t *len)
{
  Mesh__Crypto__PrivateKey pk = MESH__CRYPTO__PRIVATE_KEY__INIT;
  pk.type = MESH__CRYPTO__KEY_TYPE__Ed25519;
  pk.data.len = MESH_SECKEY_LEN;
  pk.data.data = (uint8_t *)id->sk;
  size_t need = mesh__crypto__private_key__get_packed_size(&pk);
  if (need > cap)
    return -ENOSPC;
  *len = mesh__crypto__private_key__pack(&pk, buf);
  return 0;
}

int mesh_identity_load(const char *path, mesh_identity *out, char *err, size_t errlen)
{
  uint8_t buf[KEYFILE_MAX];
  size_t len = 0;
  struct stat st;
  int fd;
  /* Owner-only, not a link (src/base/fileperm.h): the message names the fix. */
  int rc = mesh_file_open_checked(path, MESH_FILE_SECRET, "key file", &fd, &st, err, errlen);
  if (rc != 0)
    return rc;
  rc = mesh_durable_read_fd(fd, buf, sizeof buf, &len);
  close(fd);
  if (rc == -EFBIG) {
    mesh_identity_errf(err, errlen, "key file '%s' is too large to be a key file", path);
    return -EBADMSG;
  }
  if (rc != 0) {
    mesh_identity_errf(err, errlen, "cannot read key file '%s': %s", path, mesh_strerror(rc));
    return rc;
  }
  char why[128];
  rc = decode_key(buf, len, out, why, sizeof why);
  sodium_memzero(buf, sizeof buf);
  if (rc == -EBADMSG)
    mesh_identity_errf(err, errlen, "key file '%s' is not a valid Ed25519 key: %s", path, why);
  else if (rc != 0)
    mesh_identity_errf(err, errlen, "key file '%s': %s", path, mesh_strerror(rc));
  return rc;
}

/* Writes id to path; replace = false refuses an existing file. */
static int write_key(const char *path, const mesh_identity *id, bool replace)
{
  uint8_t buf[128];
  size_t len;
  int rc = mesh_identity_encode(id, buf, sizeof buf, &len);
  if (rc == 0)
    rc = mesh_durable_write(path, NULL, buf, len, 0600, replace);
  sodium_memzero(buf, sizeof buf);
  return rc;
}

int mesh_identity_save(const char *path, const mesh_identity *id)
{
  return write_key(path, id, true);
}

int mesh_identity_load_or_create(const char *path, mesh_identity *out, char *err, size_t errlen)
{
  int rc = mesh_identity_load(path, out, err, errlen);
  if (rc != -ENOENT)
    return rc;
  mesh_identity id;
  rc = mesh_identity_generate(&id);
  if (rc == 0)
    rc = write_key(path, &id, false);
  if (rc == 0) {
    *out = id;
  } else if (rc == -EEXIST) {
    /* Another process created the key between our load and our link: use
     * theirs, so both agree on one identity. */
    rc = mesh_identity_load(path, out, err, errlen);
  } else {
    mesh_identity_errf(err, errlen, "cannot create key file '%s': %s", path, mesh_strerror(rc));
  }
  sodium_memzero(&id, sizeof id);
  return rc;
}
