/*
 * The frame cipher offer of a peer's Hello: decoding, and agreement with
 * each offer this node can make.
 *
 * Input: the bytes of a HelloBody's frame_ciphers field. A decoded offer
 * must hold only known ciphers, each once, and agreement with any of our
 * offers must be symmetric and pick a cipher both offers hold.
 */
#include "net/frame_cipher.h"

#include <stdlib.h>

static int holds(const mesh_frame_offer *o, mesh_frame_cipher c)
{
  for (uint8_t i = 0; i < o->n; i++)
    if (o->ciphers[i] == c)
      return 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  mesh_frame_offer theirs;
  if (mesh_frame_offer_decode(data, size, &theirs) != 0)
    return 0;
  if (theirs.n == 0 || theirs.n > MESH_FRAME_CIPHER_COUNT)
    abort();
  for (uint8_t i = 0; i < theirs.n; i++)
    for (uint8_t j = 0; j < i; j++)
      if (theirs.ciphers[i] >= MESH_FRAME_CIPHER_COUNT || theirs.ciphers[i] == theirs.ciphers[j])
        abort();
  const mesh_frame_cipher_pref prefs[] = {MESH_FRAME_PREF_AUTO, MESH_FRAME_PREF_CHACHA20_POLY1305,
                                          MESH_FRAME_PREF_AES_256_GCM};
  for (size_t p = 0; p < sizeof prefs / sizeof prefs[0]; p++)
    for (int fast = 0; fast < 2; fast++) {
      mesh_frame_offer ours;
      mesh_frame_offer_make(&ours, prefs[p], fast != 0);
      mesh_frame_cipher a, b;
      int ra = mesh_frame_agree(&ours, &theirs, &a), rb = mesh_frame_agree(&theirs, &ours, &b);
      if (ra != rb || (ra == 0 && (a != b || !holds(&ours, a) || !holds(&theirs, a))))
        abort();
    }
  return 0;
}
