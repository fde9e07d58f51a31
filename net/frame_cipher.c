/* Frame cipher names, offers and their agreement (net/frame_cipher.h). */
#include "net/frame_cipher.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const char *mesh_frame_cipher_name(mesh_frame_cipher c)
{
  switch (c) {
  case MESH_FRAME_CHACHA20_POLY1305:
    return "chacha20-poly1305";
  case MESH_FRAME_AES_256_GCM:
    return "aes-256-gcm";
  case MESH_FRAME_CIPHER_COUNT:
    break;
  }
  return "unknown";
}

int mesh_frame_cipher_pref_parse(const char *text, mesh_frame_cipher_pref *out)
{
  if (text == NULL)
    return -EINVAL;
  if (strcmp(text, "auto") == 0)
    *out = MESH_FRAME_PREF_AUTO;
  else if (strcmp(text, "chacha20-poly1305") == 0)
    *out = MESH_FRAME_PREF_CHACHA20_POLY1305;
  else if (strcmp(text, "aes-256-gcm") == 0)
    *out = MESH_FRAME_PREF_AES_256_GCM;
  else
    return -EINVAL;
  return 0;
}

const char *mesh_frame_cipher_pref_name(mesh_frame_cipher_pref p)
{
  switch (p) {
  case MESH_FRAME_PREF_AUTO:
    return "auto";
  case MESH_FRAME_PREF_CHACHA20_POLY1305:
    return "chacha20-poly1305";
  case MESH_FRAME_PREF_AES_256_GCM:
    return "aes-256-gcm";
  }
  return "unknown";
}

void mesh_frame_offer_default(mesh_frame_offer *o)
{
  mesh_frame_offer_make(o, MESH_FRAME_PREF_AUTO, false);
}

void mesh_frame_offer_make(mesh_frame_offer *o, mesh_frame_cipher_pref pref, bool aes_faster)
{
  memset(o, 0, sizeof *o);
  switch (pref) {
  case MESH_FRAME_PREF_CHACHA20_POLY1305:
    o->ciphers[o->n++] = MESH_FRAME_CHACHA20_POLY1305;
    return;
  case MESH_FRAME_PREF_AES_256_GCM:
    o->ciphers[o->n++] = MESH_FRAME_AES_256_GCM;
    return;
  case MESH_FRAME_PREF_AUTO:
    break;
  }
  o->ciphers[o->n++] = aes_faster ? MESH_FRAME_AES_256_GCM : MESH_FRAME_CHACHA20_POLY1305;
  o->ciphers[o->n++] = aes_faster ? MESH_FRAME_CHACHA20_POLY1305 : MESH_FRAME_AES_256_GCM;
}

static int code_of(uint8_t c)
{
  return c == MESH_FRAME_AES_256_GCM ? MESH_FRAME_OFFER_AES_256_GCM
                                     : MESH_FRAME_OFFER_CHACHA20_POLY1305;
}

int mesh_frame_offer_encode(const mesh_frame_offer *o, uint8_t *buf, size_t cap, size_t *len)
{
  if (cap < o->n)
    return -ENOSPC;
  for (uint8_t i = 0; i < o->n; i++)
    buf[i] = (uint8_t)code_of(o->ciphers[i]);
  *len = o->n;
  return 0;
}

static bool has(const mesh_frame_offer *o, mesh_frame_cipher c)
{
  for (uint8_t i = 0; i < o->n; i++)
    if (o->ciphers[i] == c)
      return true;
  return false;
}

int mesh_frame_offer_decode(const uint8_t *buf, size_t len, mesh_frame_offer *o)
{
  memset(o, 0, sizeof *o);
  if (len == 0) {
    o->ciphers[o->n++] = MESH_FRAME_CHACHA20_POLY1305;
    return 0;
  }
  if (len > MESH_FRAME_OFFER_WIRE_MAX)
    return -EMSGSIZE;
  for (size_t i = 0; i < len; i++) {
    mesh_frame_cipher c;
    if (buf[i] == MESH_FRAME_OFFER_CHACHA20_POLY1305)
      c = MESH_FRAME_CHACHA20_POLY1305;
    else if (buf[i] == MESH_FRAME_OFFER_AES_256_GCM)
      c = MESH_FRAME_AES_256_GCM;
    else
      continue;
    if (!has(o, c))
      o->ciphers[o->n++] = (uint8_t)c;
  }
  return o->n > 0 ? 0 : -EBADMSG;
}

void mesh_frame_offer_text(const mesh_frame_offer *o, char *buf, size_t len)
{
  if (len == 0)
    return;
  buf[0] = '\0';
  size_t off = 0;
  for (uint8_t i = 0; i < o->n && off < len; i++) {
    int n = snprintf(buf + off, len - off, "%s%s", i > 0 ? "," : "",
                     mesh_frame_cipher_name((mesh_frame_cipher)o->ciphers[i]));
    if (n < 0)
      break;
    off += (size_t)n;
  }
}

int mesh_frame_agree(const mesh_frame_offer *a, const mesh_frame_offer *b, mesh_frame_cipher *out)
{
  /* An empty offer is an older node's, as on the wire. */
  mesh_frame_offer legacy;
  mesh_frame_offer_decode(NULL, 0, &legacy);
  if (a->n == 0)
    a = &legacy;
  if (b->n == 0)
    b = &legacy;
  bool aes = has(a, MESH_FRAME_AES_256_GCM) && has(b, MESH_FRAME_AES_256_GCM);
  bool chacha = has(a, MESH_FRAME_CHACHA20_POLY1305) && has(b, MESH_FRAME_CHACHA20_POLY1305);
  bool both_aes_first = a->n > 0 && b->n > 0 && a->ciphers[0] == MESH_FRAME_AES_256_GCM &&
                        b->ciphers[0] == MESH_FRAME_AES_256_GCM;
  if (aes && (!chacha || both_aes_first))
    *out = MESH_FRAME_AES_256_GCM;
  else if (chacha)
    *out = MESH_FRAME_CHACHA20_POLY1305;
  else
    return -ENOPROTOOPT;
  return 0;
}
