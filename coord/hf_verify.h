/*
 * Content hashes of Hugging Face Hub files.
 *
 * The Hub names every file of a repository by a hash, and a downloaded file is
 * renamed into place only when its bytes hash to that name:
 *   - LFS files (weights): SHA-256 of the content, compared with `lfs.oid`
 *     (64 hex digits);
 *   - other files: the git blob id, SHA-1 of "blob <size>\0" followed by the
 *     content, compared with `oid` (40 hex digits).
 *
 * A mesh_hf_hash is fed the content as it streams in, so that verifying a file
 * costs no second read. Both digests come from OpenSSL's libcrypto, which uses
 * the CPU's SHA extensions (about 1.5 GB/s for SHA-256 where libsodium's
 * portable SHA-256 gives 0.3 GB/s: the difference decides whether hashing or
 * the network limits a download).
 *
 * Nothing here blocks or allocates beyond the digest context. The client
 * hashes file data only in work functions of the pool (hf_work.c): a
 * mesh_hf_hash belongs to one file's strand, so one thread at a time uses it.
 */
#ifndef MESH_COORD_HF_VERIFY_H
#define MESH_COORD_HF_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Which name a file is checked against. */
typedef enum mesh_hf_hash_kind {
  MESH_HF_HASH_SHA256 = 0,   /* LFS files: SHA-256 of the content */
  MESH_HF_HASH_GIT_BLOB = 1, /* other files: SHA-1 of "blob <size>\0" + content */
} mesh_hf_hash_kind;

#define MESH_HF_SHA1_HEX_LEN 40
#define MESH_HF_SHA256_HEX_LEN 64
/* Room for either digest in lower-case hex and its terminating NUL. */
#define MESH_HF_HEX_MAX (MESH_HF_SHA256_HEX_LEN + 1)

typedef struct mesh_hf_hash {
  mesh_hf_hash_kind kind;
  void *ctx; /* EVP_MD_CTX *, owned */
} mesh_hf_hash;

/*
 * Starts a hash of `size` content bytes (size is part of a git blob's header
 * and ignored for SHA-256). Returns 0 or -ENOMEM.
 */
int mesh_hf_hash_init(mesh_hf_hash *h, mesh_hf_hash_kind kind, uint64_t size);
/* Starts over, as after mesh_hf_hash_init with the same arguments. */
int mesh_hf_hash_reset(mesh_hf_hash *h, uint64_t size);
void mesh_hf_hash_update(mesh_hf_hash *h, const void *data, size_t len);
/* Writes the digest in lower-case hex into hex (>= MESH_HF_HEX_MAX bytes). */
int mesh_hf_hash_final_hex(mesh_hf_hash *h, char *hex);
void mesh_hf_hash_free(mesh_hf_hash *h);

/* One-shot digests in lower-case hex, for tests and the stand-in Hub. */
void mesh_hf_sha256_hex(const void *data, size_t len, char hex[MESH_HF_HEX_MAX]);
void mesh_hf_sha1_hex(const void *data, size_t len, char hex[MESH_HF_HEX_MAX]);
void mesh_hf_git_blob_oid(const void *data, size_t len, char hex[MESH_HF_HEX_MAX]);

/* True when s is exactly n lower- or upper-case hex digits. */
bool mesh_hf_is_hex(const char *s, size_t n);
/* Compares two hex digests case-insensitively. */
bool mesh_hf_hex_equal(const char *a, const char *b);

#endif
