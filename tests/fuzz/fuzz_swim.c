/*
 * Fuzz target for the membership message decoder: the first byte picks the
 * class (datagram or stream), the rest is handed to a live core as a packet
 * from a known peer, and to each decoder on its own. The peer is a member of
 * the core's view first (its signed alive record arrives before the input),
 * so that claims naming it as accuser reach the signature check and the
 * bad-signature budget, not only the refusal of non-members. Nothing may
 * crash, leak or allocate without bound; the core must stay usable.
 */
#include "net/swim_internal.h"
#include "src/identity/signed.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static mesh_identity self, peer;
  static uint8_t *join_pkt; /* a GOSSIP packet with peer's alive record */
  static size_t join_len;
  static bool ready;
  if (!ready) {
    uint8_t seed[32];
    memset(seed, 1, sizeof seed);
    crypto_sign_seed_keypair(self.pk, self.sk, seed);
    mesh_peer_id_from_pubkey(self.pk, &self.id);
    memset(seed, 2, sizeof seed);
    crypto_sign_seed_keypair(peer.pk, peer.sk, seed);
    mesh_peer_id_from_pubkey(peer.pk, &peer.id);
    const char *addr = "/ip4/127.0.0.1/tcp/4001";
    uint8_t *body, *upd, sig[MESH_SIG_LEN];
    size_t blen, ulen;
    if (swim_member_body_encode(&peer.id, 1, 0, false, &addr, 1, NULL, 0, "f", "f", &body, &blen) !=
        0)
      return 0;
    if (mesh_sign(&peer, MESH_DOMAIN_MEMBER, (const uint8_t *)SWIM_TYPE_MEMBER,
                  strlen(SWIM_TYPE_MEMBER), body, blen, sig) != 0 ||
        swim_update_encode(&peer.id, false, body, blen, sig, &upd, &ulen) != 0) {
      free(body);
      return 0;
    }
    free(body);
    const uint8_t *ups[1] = {upd};
    size_t lens[1] = {ulen};
    swim_packet_out p = {.kind = MESH_SWIM_MSG_GOSSIP,
                         .epoch = 1,
                         .updates = ups,
                         .update_lens = lens,
                         .n_updates = 1};
    int rc = swim_packet_encode(&p, 0, &join_pkt, &join_len);
    free(upd);
    if (rc != 0)
      return 0;
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
  mesh_swim_handle_packet(s, &peer.id, MESH_SWIM_DATAGRAM, join_pkt, join_len, 5, &out);
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
