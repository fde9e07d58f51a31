/*
 * The verified-files manifest of a completed download (format in
 * coord/hf_manifest.h): writing it from the file list, finding a file in it.
 */
#include "coord/hf_manifest.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char head[] = "meshd-files 1\n";

int mesh_hf_manifest_encode(const mesh_hf_tree *t, char **out, size_t *len)
{
  size_t cap = sizeof head;
  for (size_t i = 0; i < t->len; i++)
    cap += strlen(t->files[i].path) + MESH_HF_HEX_MAX + 24;
  char *s = malloc(cap);
  if (s == NULL)
    return -ENOMEM;
  size_t n = 0;
  memcpy(s, head, sizeof head - 1);
  n = sizeof head - 1;
  for (size_t i = 0; i < t->len; i++) {
    const mesh_hf_file *f = &t->files[i];
    int k = snprintf(s + n, cap - n, "%llu %s %s\n", (unsigned long long)f->size,
                     f->lfs ? f->sha256 : f->oid, f->path);
    if (k < 0 || (size_t)k >= cap - n) {
      free(s);
      return -ENOMEM;
    }
    n += (size_t)k;
  }
  *out = s;
  *len = n;
  return 0;
}

/* Splits the line [p, nl) into its size, hash and path: false when it is
 * not "<size> <hash> <path>". */
static bool split_line(const char *p, const char *nl, uint64_t *size, const char **hash,
                       size_t *hash_len, const char **name)
{
  uint64_t v = 0;
  int digits = 0;
  while (p < nl && *p >= '0' && *p <= '9' && digits < 20) {
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return false;
    v = v * 10 + d;
    p++;
    digits++;
  }
  if (digits == 0 || p == nl || *p != ' ')
    return false;
  const char *sp = memchr(p + 1, ' ', (size_t)(nl - p - 1));
  if (sp == NULL || sp == p + 1)
    return false;
  *size = v;
  *hash = p + 1;
  *hash_len = (size_t)(sp - p - 1);
  *name = sp + 1;
  return true;
}

int mesh_hf_manifest_parse(const char *text, size_t len, const mesh_hf_tree_limits *lim,
                           mesh_hf_tree *t, char *err, size_t errlen)
{
  if (len > MESH_HF_MANIFEST_MAX) {
    snprintf(err, errlen, "manifest larger than %zu bytes", MESH_HF_MANIFEST_MAX);
    return -EMSGSIZE;
  }
  if (len < sizeof head - 1 || memcmp(text, head, sizeof head - 1) != 0) {
    snprintf(err, errlen, "not a manifest (version 1)");
    return -EBADMSG;
  }
  const char *p = text + sizeof head - 1, *end = text + len;
  size_t line = 2;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    uint64_t size;
    const char *hash, *name;
    size_t hash_len;
    if (nl == NULL || !split_line(p, nl, &size, &hash, &hash_len, &name)) {
      snprintf(err, errlen, "manifest line %zu is malformed", line);
      return -EBADMSG;
    }
    int rc = mesh_hf_tree_add(t, name, (size_t)(nl - name), size, hash, hash_len, lim, err, errlen);
    if (rc != 0)
      return rc;
    p = nl + 1;
    line++;
  }
  return mesh_hf_tree_finish(t, err, errlen);
}

int mesh_hf_manifest_find(const char *text, size_t len, const char *path, uint64_t *size)
{
  if (len < sizeof head - 1 || memcmp(text, head, sizeof head - 1) != 0)
    return -EBADMSG;
  size_t plen = strlen(path);
  const char *p = text + sizeof head - 1, *end = text + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL)
      return -EBADMSG;
    uint64_t v;
    const char *hash, *name;
    size_t hash_len;
    if (!split_line(p, nl, &v, &hash, &hash_len, &name))
      return -EBADMSG;
    if ((size_t)(nl - name) == plen && memcmp(name, path, plen) == 0) {
      *size = v;
      return 0;
    }
    p = nl + 1;
  }
  return -ENOENT;
}
