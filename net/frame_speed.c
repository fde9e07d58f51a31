/* The frame ciphers' start-up self-test (net/frame_speed.h). */
#include "net/frame_speed.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU time of this thread, in seconds: another process taking the CPU
 * does not count against the cipher being measured. POSIX, also on
 * macOS. */
static double thread_cpu_s(void)
{
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
    return 0;
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One round: seals and opens frames of frame bytes until bytes went
 * through. Returns GB/s, or 0 when the cipher failed. */
static double round_gbps(mesh_frame_cipher c, uint8_t *wire, size_t cap, size_t frame, size_t bytes)
{
  mesh_frame_dir tx, rx;
  memset(&tx, 0, sizeof tx);
  randombytes_buf(tx.key, sizeof tx.key);
  tx.cipher = (uint8_t)c;
  rx = tx;
  size_t frames = bytes / frame > 0 ? bytes / frame : 1;
  double t0 = thread_cpu_s();
  for (size_t i = 0; i < frames; i++) {
    /* The payload is whatever the buffer holds (the last frame's
     * plaintext): ciphers do not care, and refilling it would be timed. */
    mesh_frame f = {.type = MESH_FRAME_DATA,
                    .channel = 1,
                    .cls = 1,
                    .flags = MESH_FRAME_FIRST | MESH_FRAME_LAST,
                    .total = (uint32_t)frame,
                    .payload = wire + MESH_FRAME_PREFIX + MESH_FRAME_INNER,
                    .len = frame};
    size_t n;
    mesh_frame out;
    if (mesh_frame_seal(&tx, &f, wire, cap, &n) != 0 || mesh_frame_open(&rx, wire, n, &out) != 0)
      return 0;
  }
  double dt = thread_cpu_s() - t0;
  sodium_memzero(&tx, sizeof tx);
  sodium_memzero(&rx, sizeof rx);
  /* Below the clock's resolution: report the fastest figure measurable
   * rather than divide by zero. */
  if (dt <= 1e-6)
    dt = 1e-6;
  return (double)(frames * frame) / dt / 1e9;
}

int mesh_frame_speed_measure(size_t frame, size_t bytes, int rounds, mesh_frame_speed *out)
{
  memset(out, 0, sizeof *out);
  if (frame == 0 || rounds < 1)
    return -EINVAL;
  size_t cap = mesh_frame_wire_size(frame);
  uint8_t *wire = calloc(1, cap); /* owned here, freed below */
  if (wire == NULL)
    return -ENOMEM;
  /* Rounds alternate between the ciphers, so that both see the same
   * moments of the machine (frequency steps, a neighbour's burst). */
  for (int r = 0; r < rounds; r++)
    for (int c = 0; c < MESH_FRAME_CIPHER_COUNT; c++) {
      double g = round_gbps((mesh_frame_cipher)c, wire, cap, frame, bytes);
      if (g > out->gbps[c])
        out->gbps[c] = g;
    }
  free(wire);
  return 0;
}

bool mesh_frame_speed_aes_faster(const mesh_frame_speed *s)
{
  return s->gbps[MESH_FRAME_AES_256_GCM] >
         s->gbps[MESH_FRAME_CHACHA20_POLY1305] * MESH_FRAME_SPEED_AES_MARGIN;
}
