/*
 * Streaming SHA-256 and git blob SHA-1 over libcrypto's EVP interface.
 */
#include "coord/hf_verify.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static void to_hex(const unsigned char *d, unsigned n, char *hex)
{
  static const char digits[] = "0123456789abcdef";
  for (unsigned i = 0; i < n; i++) {
    hex[2 * i] = digits[d[i] >> 4];
    hex[2 * i + 1] = digits[d[i] & 15];
  }
  hex[2 * n] = '\0';
}

/* (Re)starts ctx for kind; a git blob gets its "blob <size>\0" header first. */
static int start(EVP_MD_CTX *ctx, mesh_hf_hash_kind kind, uint64_t size)
{
  const EVP_MD *md = kind == MESH_HF_HASH_SHA256 ? EVP_sha256() : EVP_sha1();
  if (EVP_DigestInit_ex(ctx, md, NULL) != 1)
    return -ENOMEM;
  if (kind == MESH_HF_HASH_GIT_BLOB) {
    char hdr[32];
    int n = snprintf(hdr, sizeof hdr, "blob %" PRIu64, size);
    /* The header ends with its NUL, which is part of what git hashes. */
    if (EVP_DigestUpdate(ctx, hdr, (size_t)n + 1) != 1)
      return -ENOMEM;
  }
  return 0;
}

int mesh_hf_hash_init(mesh_hf_hash *h, mesh_hf_hash_kind kind, uint64_t size)
{
  h->kind = kind;
  h->ctx = EVP_MD_CTX_new();
  if (h->ctx == NULL)
    return -ENOMEM;
  int rc = start(h->ctx, kind, size);
  if (rc != 0) {
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
  }
  return rc;
}

int mesh_hf_hash_reset(mesh_hf_hash *h, uint64_t size)
{
  return start(h->ctx, h->kind, size);
}

void mesh_hf_hash_update(mesh_hf_hash *h, const void *data, size_t len)
{
  if (len > 0)
    EVP_DigestUpdate(h->ctx, data, len);
}

int mesh_hf_hash_final_hex(mesh_hf_hash *h, char *hex)
{
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  if (EVP_DigestFinal_ex(h->ctx, d, &n) != 1)
    return -EINVAL;
  to_hex(d, n, hex);
  return 0;
}

void mesh_hf_hash_free(mesh_hf_hash *h)
{
  EVP_MD_CTX_free(h->ctx);
  h->ctx = NULL;
}

static void one_shot(mesh_hf_hash_kind kind, const void *data, size_t len, char *hex)
{
  mesh_hf_hash h;
  hex[0] = '\0';
  if (mesh_hf_hash_init(&h, kind, len) != 0)
    return;
  mesh_hf_hash_update(&h, data, len);
  mesh_hf_hash_final_hex(&h, hex);
  mesh_hf_hash_free(&h);
}

void mesh_hf_sha256_hex(const void *data, size_t len, char hex[MESH_HF_HEX_MAX])
{
  one_shot(MESH_HF_HASH_SHA256, data, len, hex);
}

void mesh_hf_git_blob_oid(const void *data, size_t len, char hex[MESH_HF_HEX_MAX])
{
  one_shot(MESH_HF_HASH_GIT_BLOB, data, len, hex);
}

void mesh_hf_sha1_hex(const void *data, size_t len, char hex[MESH_HF_HEX_MAX])
{
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  hex[0] = '\0';
  if (EVP_Digest(data, len, d, &n, EVP_sha1(), NULL) == 1)
    to_hex(d, n, hex);
}

bool mesh_hf_is_hex(const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (!isxdigit((unsigned char)s[i]))
      return false;
  return s[n] == '\0';
}

bool mesh_hf_hex_equal(const char *a, const char *b)
{
  return strcasecmp(a, b) == 0;
}
