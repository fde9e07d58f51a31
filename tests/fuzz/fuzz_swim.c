/*
 * Fuzz target for the membership message decoder: the first byte picks the
 * class (datagram or stream), the rest is handed to a live core as a packet
 * from a known peer, and to each decoder on its own. Nothing may crash, leak
 * or allocate without bound; the core must stay usable.
 */
#include "net/swim_internal.h"

#include <sodium.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static mesh_identity self, peer;
  static bool ready;
  if (!ready) {
    uint8_t seed[32];
    memset(seed, 1, sizeof seed);
    crypto_sign_seed_keypair(self.pk, self.sk, seed);
    mesh_peer_id_from_pubkey(self.pk, &self.id);
    memset(seed, 2, sizeof seed);
    crypto_sign_seed_keypair(peer.pk, peer.sk, seed);
    mesh_peer_id_from_pubkey(peer.pk, &peer.id);
    ready = true;
  }
  if (size < 1)
    return 0;
  mesh_swim_class cls = (data[0] & 1) ? MESH_SWIM_STREAM : MESH_SWIM_DATAGRAM;
  data++;
  size--;

  mesh_rng rng;
  mesh_rng_seed(&rng, 1);
  mesh_swim_config cfg = {.profile = MESH_SWIM_PROFILE_LAN};
  mesh_swim *s;
  if (mesh_swim_new(&cfg, &self, 1, &rng, &s) != 0)
    return 0;
  mesh_swim_outbox out;
  mesh_swim_outbox_init(&out);
  mesh_swim_join(s, NULL, 0, 0, &out);
  mesh_swim_handle_packet(s, &peer.id, cls, data, size, 10, &out);
  mesh_swim_handle_timer(s, out.timer_token, 5000, &out);
  mesh_swim_outbox_free(&out);
  mesh_swim_free(s);

  swim_update u;
  if (swim_update_decode(data, size, &u) == 0)
    swim_update_release(&u);
  swim_member_body b;
  if (swim_member_body_decode(data, size, &b) == 0)
    swim_member_body_release(&b);
  swim_accuse_body a;
  (void)swim_accuse_body_decode(data, size, &a);
  return 0;
}
