/*
 * A short timed self-test of the frame ciphers, so that a node can prefer the faster one.
 *
 * Each cipher seals and opens the same frames through mesh_frame_seal and
 * mesh_frame_open (the path real frames take, OpenSSL and libsodium alike)
 * for a few MiB; the figure is payload bytes per CPU second of the calling
 * thread, sealing plus opening (what one byte costs the two ends of a
 * connection), the best of a few rounds so that a preempted round does not
 * decide. On 64 KiB frames it takes about 10 ms at the speeds of
 * these machines.
 */
#ifndef MESH_NET_FRAME_SPEED_H
#define MESH_NET_FRAME_SPEED_H

#include "net/frame.h"

#include <stddef.h>

#define MESH_FRAME_SPEED_FRAME 65536         /* frame payload measured at start */
#define MESH_FRAME_SPEED_BYTES (4u << 20)    /* payload per cipher and round */
#define MESH_FRAME_SPEED_ROUNDS 3

typedef struct mesh_frame_speed {
  double gbps[MESH_FRAME_CIPHER_COUNT]; /* 1e9 payload bytes sealed and opened per CPU second; 0: failed */
} mesh_frame_speed;

/*
 * Measures every cipher on frames of frame payload bytes, bytes of payload
 * per round, best of rounds. -ENOMEM when the buffer cannot be had;
 * a cipher that fails (a libcrypto without it) gets 0.
 */
int mesh_frame_speed_measure(size_t frame, size_t bytes, int rounds, mesh_frame_speed *out);

/* AES-256-GCM is preferred only when it measured this much faster than
 * ChaCha20-Poly1305: where the two are close (and a busy machine's
 * figures scatter by more than their difference) the preference would
 * flip from one start to the next, and ChaCha is what older nodes speak. */
#define MESH_FRAME_SPEED_AES_MARGIN 1.10

/* Whether AES-256-GCM measured faster than ChaCha20-Poly1305 by the
 * margin above. */
bool mesh_frame_speed_aes_faster(const mesh_frame_speed *s);

#endif
