/*
 * Range bookkeeping of a file fetched from several sources at once, and its
 * sidecar text (format in coord/hf_ranges.h). Pure.
 */
#include "coord/hf_ranges.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mesh_hf_ranges_init(mesh_hf_ranges *r, uint64_t size, uint64_t range_bytes)
{
  memset(r, 0, sizeof *r);
  if (size == 0 || range_bytes == 0)
    return -EINVAL;
  uint64_t n = size / range_bytes + (size % range_bytes != 0);
  if (n > MESH_HF_RANGES_MAX)
    return -EINVAL;
  r->state = calloc((size_t)n, sizeof *r->state);
  r->got = calloc((size_t)n, sizeof *r->got);
  if (r->state == NULL || r->got == NULL) {
    mesh_hf_ranges_free(r);
    return -ENOMEM;
  }
  r->size = size;
  r->range_bytes = range_bytes;
  r->n = (uint32_t)n;
  return 0;
}

void mesh_hf_ranges_free(mesh_hf_ranges *r)
{
  free(r->state);
  free(r->got);
  memset(r, 0, sizeof *r);
}

uint64_t mesh_hf_range_start(const mesh_hf_ranges *r, uint32_t i)
{
  return (uint64_t)i * r->range_bytes;
}

uint64_t mesh_hf_range_end(const mesh_hf_ranges *r, uint32_t i)
{
  uint64_t end = ((uint64_t)i + 1) * r->range_bytes;
  return end < r->size ? end : r->size;
}

uint32_t mesh_hf_range_of(const mesh_hf_ranges *r, uint64_t off)
{
  return (uint32_t)(off / r->range_bytes);
}

int64_t mesh_hf_ranges_next_missing(const mesh_hf_ranges *r, uint32_t from)
{
  for (uint32_t k = 0; k < r->n; k++) {
    uint32_t i = (uint32_t)(((uint64_t)from + k) % r->n);
    if (r->state[i] == MESH_HF_RANGE_MISSING)
      return i;
  }
  return -1;
}

void mesh_hf_ranges_take_prefix(mesh_hf_ranges *r, uint64_t prefix)
{
  for (uint32_t i = 0; i < r->n && mesh_hf_range_end(r, i) <= prefix; i++) {
    r->state[i] = MESH_HF_RANGE_DONE;
    r->got[i] = mesh_hf_range_end(r, i) - mesh_hf_range_start(r, i);
  }
}

uint64_t mesh_hf_ranges_have(const mesh_hf_ranges *r)
{
  uint64_t have = 0;
  for (uint32_t i = 0; i < r->n; i++)
    have += r->state[i] == MESH_HF_RANGE_DONE ? mesh_hf_range_end(r, i) - mesh_hf_range_start(r, i)
                                              : r->got[i];
  return have;
}

uint32_t mesh_hf_ranges_done(const mesh_hf_ranges *r)
{
  uint32_t n = 0;
  for (uint32_t i = 0; i < r->n; i++)
    n += r->state[i] == MESH_HF_RANGE_DONE;
  return n;
}

bool mesh_hf_ranges_complete(const mesh_hf_ranges *r)
{
  return r->n > 0 && mesh_hf_ranges_done(r) == r->n;
}

int mesh_hf_ranges_encode(const mesh_hf_ranges *r, char *buf, size_t cap)
{
  static const char hex[] = "0123456789abcdef";
  int k = snprintf(buf, cap, "meshd-ranges 1 %llu %llu %u\n", (unsigned long long)r->size,
                   (unsigned long long)r->range_bytes, r->n);
  if (k < 0 || (size_t)k >= cap)
    return -ENOSPC;
  size_t len = (size_t)k;
  size_t bytes = (r->n + 7u) / 8u;
  if (len + 2 * bytes + 2 > cap)
    return -ENOSPC;
  for (size_t b = 0; b < bytes; b++) {
    unsigned v = 0;
    for (unsigned bit = 0; bit < 8; bit++) {
      size_t i = b * 8 + bit;
      if (i < r->n && r->state[i] == MESH_HF_RANGE_DONE)
        v |= 1u << bit;
    }
    buf[len++] = hex[v >> 4];
    buf[len++] = hex[v & 15];
  }
  buf[len++] = '\n';
  buf[len] = '\0';
  return (int)len;
}

/* A decimal of at most 20 digits at *p (advanced past it) within end. */
static int parse_u64(const char **p, const char *end, uint64_t *out)
{
  const char *s = *p;
  uint64_t v = 0;
  int digits = 0;
  while (s < end && *s >= '0' && *s <= '9') {
    unsigned d = (unsigned)(*s - '0');
    if (digits == 20 || v > (UINT64_MAX - d) / 10)
      return -EBADMSG;
    v = v * 10 + d;
    s++;
    digits++;
  }
  /* No leading zeros: one spelling per number, as the encoder writes it. */
  if (digits == 0 || (digits > 1 && **p == '0'))
    return -EBADMSG;
  *p = s;
  *out = v;
  return 0;
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

int mesh_hf_ranges_decode(mesh_hf_ranges *r, const char *text, size_t len)
{
  static const char magic[] = "meshd-ranges 1 ";
  const char *p = text, *end = text + len;
  uint64_t size, rb, n;
  if (len < sizeof magic - 1 || memcmp(p, magic, sizeof magic - 1) != 0)
    return -EBADMSG;
  p += sizeof magic - 1;
  if (parse_u64(&p, end, &size) != 0 || p == end || *p++ != ' ' || parse_u64(&p, end, &rb) != 0 ||
      p == end || *p++ != ' ' || parse_u64(&p, end, &n) != 0 || p == end || *p++ != '\n')
    return -EBADMSG;
  if (rb == 0 || size == 0 || n > MESH_HF_RANGES_MAX || n != size / rb + (size % rb != 0))
    return -EBADMSG;
  size_t bytes = (size_t)((n + 7) / 8);
  if ((size_t)(end - p) != 2 * bytes + 1 || end[-1] != '\n')
    return -EBADMSG;
  for (size_t b = 0; b < bytes; b++) {
    int hi = hexval(p[2 * b]), lo = hexval(p[2 * b + 1]);
    if (hi < 0 || lo < 0)
      return -EBADMSG;
    /* Bits past the last range are zero: a second spelling would be one
     * more thing to get wrong. */
    unsigned v = (unsigned)(hi << 4 | lo);
    if (b == bytes - 1 && n % 8 != 0 && (v >> (n % 8)) != 0)
      return -EBADMSG;
  }
  if (size != r->size || rb != r->range_bytes || n != r->n)
    return -ESTALE;
  for (uint32_t i = 0; i < r->n; i++) {
    unsigned v = (unsigned)(hexval(p[2 * (i / 8)]) << 4 | hexval(p[2 * (i / 8) + 1]));
    if (v & (1u << (i % 8))) {
      r->state[i] = MESH_HF_RANGE_DONE;
      r->got[i] = mesh_hf_range_end(r, i) - mesh_hf_range_start(r, i);
    }
  }
  return 0;
}
