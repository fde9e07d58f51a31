/*
 * The verified-files manifest of a completed download (format in
 * coord/hf_manifest.h): writing it from the file list, finding a file in it.
 */
#include "coord/hf_manifest.h"

#include <errno.h>
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
    uint64_t v = 0;
    int digits = 0;
    while (p < nl && *p >= '0' && *p <= '9' && digits < 20) {
      unsigned d = (unsigned)(*p - '0');
      if (v > (UINT64_MAX - d) / 10)
        return -EBADMSG;
      v = v * 10 + d;
      p++;
      digits++;
    }
    if (digits == 0 || p == nl || *p != ' ')
      return -EBADMSG;
    const char *sp = memchr(p + 1, ' ', (size_t)(nl - p - 1));
    if (sp == NULL || sp == p + 1)
      return -EBADMSG;
    const char *name = sp + 1;
    if ((size_t)(nl - name) == plen && memcmp(name, path, plen) == 0) {
      *size = v;
      return 0;
    }
    p = nl + 1;
  }
  return -ENOENT;
}
