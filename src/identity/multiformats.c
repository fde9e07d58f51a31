/* Varints, base58btc and base32: the multiformats pieces of peer IDs. */
#include "src/identity/multiformats.h"

#include "src/base/err.h"

#include <string.h>

static const char b58_alphabet[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
static const char b32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

/* Longest CID text mesh_cid_parse looks at; a peer ID's is 62 characters. */
#define CID_MAX_TEXT 200

size_t mesh_uvarint_put(uint8_t out[MESH_UVARINT_MAX], uint64_t x)
{
  if (x >> 63)
    return 0;
  size_t n = 0;
  while (x >= 0x80) {
    out[n++] = (uint8_t)(x | 0x80);
    x >>= 7;
  }
  out[n++] = (uint8_t)x;
  return n;
}

int mesh_uvarint_get(const uint8_t *buf, size_t len, uint64_t *out, size_t *used)
{
  uint64_t x = 0;
  for (size_t i = 0; i < len && i < MESH_UVARINT_MAX; i++) {
    uint8_t b = buf[i];
    x |= (uint64_t)(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      /* A last byte of zero after others means the same value fitted in
       * fewer bytes: the spec requires the minimal form. */
      if (b == 0 && i > 0)
        return -EBADMSG;
      *out = x;
      *used = i + 1;
      return 0;
    }
  }
  return -EBADMSG;
}

int mesh_base58_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
  if (len > MESH_BASE58_MAX_BYTES)
    return -EMSGSIZE;
  size_t zeros = 0;
  while (zeros < len && in[zeros] == 0)
    zeros++;
  /* log(256) / log(58) < 1.38, so this many base58 digits always suffice. */
  size_t size = (len - zeros) * 138 / 100 + 1;
  if (cap < zeros + size + 1)
    return -ENOSPC;

  /* The digits are built in place in out, most significant first, then
   * shifted down over any unused leading digits while being mapped to the
   * alphabet (the read index never falls behind the write index). */
  uint8_t *d = (uint8_t *)out + zeros;
  memset(d, 0, size);
  size_t high = size; /* d[high..size) holds the digits used so far */
  for (size_t i = zeros; i < len; i++) {
    unsigned carry = in[i];
    size_t j = size;
    while (j > 0 && (j > high || carry != 0)) {
      j--;
      carry += 256u * d[j];
      d[j] = (uint8_t)(carry % 58);
      carry /= 58;
    }
    high = j;
  }
  size_t k = 0;
  while (k < size && d[k] == 0)
    k++;
  memset(out, '1', zeros);
  size_t n = zeros;
  for (; k < size; k++)
    out[n++] = b58_alphabet[d[k]];
  out[n] = '\0';
  return 0;
}

static int b58_value(char c)
{
  const char *p = c != '\0' ? strchr(b58_alphabet, c) : NULL;
  return p != NULL ? (int)(p - b58_alphabet) : -1;
}

int mesh_base58_decode(const char *text, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
  if (len == 0)
    return -EBADMSG;
  if (len > MESH_BASE58_MAX_TEXT)
    return -EMSGSIZE;
  size_t ones = 0;
  while (ones < len && text[ones] == '1')
    ones++;
  /* log(58) / log(256) < 0.733: bytes needed for the digits after the ones. */
  uint8_t b[MESH_BASE58_MAX_TEXT];
  size_t size = (len - ones) * 733 / 1000 + 1;
  memset(b, 0, size);
  size_t high = size;
  for (size_t i = ones; i < len; i++) {
    int v = b58_value(text[i]);
    if (v < 0)
      return -EBADMSG;
    unsigned carry = (unsigned)v;
    size_t j = size;
    while (j > 0 && (j > high || carry != 0)) {
      j--;
      carry += 58u * b[j];
      b[j] = (uint8_t)(carry & 0xff);
      carry >>= 8;
    }
    high = j;
  }
  size_t k = 0;
  while (k < size && b[k] == 0)
    k++;
  size_t n = ones + (size - k);
  /* What decodes must encode again: the same bound holds both ways. */
  if (n > MESH_BASE58_MAX_BYTES)
    return -EMSGSIZE;
  if (n > cap)
    return -ENOSPC;
  memset(out, 0, ones);
  memcpy(out + ones, b + k, size - k);
  *out_len = n;
  return 0;
}

int mesh_base32_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
  if (len > SIZE_MAX / 8)
    return -EMSGSIZE;
  size_t need = (len * 8 + 4) / 5;
  if (cap < need + 1)
    return -ENOSPC;
  size_t n = 0;
  uint32_t acc = 0; /* bits not yet written, right-aligned */
  unsigned bits = 0;
  for (size_t i = 0; i < len; i++) {
    acc = (acc << 8) | in[i];
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out[n++] = b32_alphabet[(acc >> bits) & 31];
    }
    acc &= (1u << bits) - 1;
  }
  if (bits > 0)
    out[n++] = b32_alphabet[(acc << (5 - bits)) & 31];
  out[n] = '\0';
  return 0;
}

static int b32_value(char c)
{
  if (c >= 'a' && c <= 'z')
    return c - 'a';
  if (c >= '2' && c <= '7')
    return c - '2' + 26;
  return -1;
}

int mesh_base32_decode(const char *text, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
  /* Unpadded base32 ends in a group of 2, 4, 5 or 7 characters (1 to 4
   * bytes); 1, 3 or 6 leftover characters cannot come from any input. */
  if (len > SIZE_MAX / 5)
    return -EMSGSIZE;
  size_t rem = len % 8;
  if (rem == 1 || rem == 3 || rem == 6)
    return -EBADMSG;
  size_t need = len * 5 / 8;
  if (need > cap)
    return -ENOSPC;
  size_t n = 0;
  uint32_t acc = 0;
  unsigned bits = 0;
  for (size_t i = 0; i < len; i++) {
    int v = b32_value(text[i]);
    if (v < 0)
      return -EBADMSG;
    acc = (acc << 5) | (uint32_t)v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (uint8_t)(acc >> bits);
    }
    acc &= (1u << bits) - 1;
  }
  /* The spare bits of the last character must be zero, or two texts would
   * decode to the same bytes. */
  if (acc != 0)
    return -EBADMSG;
  *out_len = n;
  return 0;
}

int mesh_multihash_check(const uint8_t *buf, size_t len, uint64_t *code, size_t *digest_len)
{
  uint64_t c, dl;
  size_t u1, u2;
  if (mesh_uvarint_get(buf, len, &c, &u1) != 0)
    return -EBADMSG;
  if (mesh_uvarint_get(buf + u1, len - u1, &dl, &u2) != 0)
    return -EBADMSG;
  if (dl != len - u1 - u2)
    return -EBADMSG;
  *code = c;
  *digest_len = (size_t)dl;
  return 0;
}

int mesh_cid_format(uint64_t codec, const uint8_t *mh, size_t mh_len, char *out, size_t cap)
{
  uint8_t bin[2 * MESH_UVARINT_MAX + 128];
  if (mh_len > 128)
    return -EMSGSIZE;
  size_t n = mesh_uvarint_put(bin, 1);
  size_t c = mesh_uvarint_put(bin + n, codec);
  if (c == 0)
    return -EINVAL;
  n += c;
  memcpy(bin + n, mh, mh_len);
  n += mh_len;
  if (cap < 2)
    return -ENOSPC;
  out[0] = 'b';
  return mesh_base32_encode(bin, n, out + 1, cap - 1);
}

int mesh_cid_parse(const char *text, size_t len, uint64_t *codec, uint8_t *mh, size_t cap,
                   size_t *mh_len)
{
  if (len < 2 || text[0] != 'b')
    return -EBADMSG;
  if (len > CID_MAX_TEXT)
    return -EMSGSIZE;
  uint8_t bin[CID_MAX_TEXT];
  size_t n;
  int rc = mesh_base32_decode(text + 1, len - 1, bin, sizeof bin, &n);
  if (rc != 0)
    return rc;
  uint64_t version, c, code;
  size_t u1, u2, dl;
  if (mesh_uvarint_get(bin, n, &version, &u1) != 0 || version != 1)
    return -EBADMSG;
  if (mesh_uvarint_get(bin + u1, n - u1, &c, &u2) != 0)
    return -EBADMSG;
  size_t off = u1 + u2;
  if (mesh_multihash_check(bin + off, n - off, &code, &dl) != 0)
    return -EBADMSG;
  if (n - off > cap)
    return -ENOSPC;
  memcpy(mh, bin + off, n - off);
  *codec = c;
  *mh_len = n - off;
  return 0;
}
