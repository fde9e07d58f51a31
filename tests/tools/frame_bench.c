/*
 * frame_bench: seals and opens frames of given sizes with both frame
 * ciphers through net/frame.h, and prints payload GB per CPU second (for
 * scripts/bench-frame-cipher).
 *
 *   frame_bench [--sizes 4096,65536] [--bytes N] [--rounds N] [--portable]
 *
 * One line per size: "size <bytes> aes-256-gcm <GB/s> chacha20-poly1305
 * <GB/s>". --portable takes libsodium for every frame (the small-frame
 * path) instead of OpenSSL for bulk frames.
 */
#include "net/frame.h"
#include "net/frame_cipher.h"
#include "net/frame_speed.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_size(const char *s, size_t *out)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || v == 0 || v > (64ull << 20))
    return -EINVAL;
  *out = (size_t)v;
  return 0;
}

int main(int argc, char **argv)
{
  char sizes_text[256] = "4096,65536";
  size_t bytes = 64u << 20;
  size_t rounds = 3;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
      snprintf(sizes_text, sizeof sizes_text, "%s", argv[++i]);
    } else if (strcmp(argv[i], "--bytes") == 0 && i + 1 < argc) {
      if (parse_size(argv[++i], &bytes) != 0)
        goto usage;
    } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
      if (parse_size(argv[++i], &rounds) != 0 || rounds > 100)
        goto usage;
    } else if (strcmp(argv[i], "--portable") == 0) {
      mesh_frame_test_portable(true);
    } else {
      goto usage;
    }
  }
  for (char *p = sizes_text; *p != '\0';) {
    char *comma = strchr(p, ',');
    if (comma != NULL)
      *comma = '\0';
    size_t frame;
    if (parse_size(p, &frame) != 0)
      goto usage;
    mesh_frame_speed sp;
    int rc = mesh_frame_speed_measure(frame, bytes, (int)rounds, &sp);
    if (rc != 0) {
      fprintf(stderr, "frame_bench: %s\n", strerror(-rc));
      return 1;
    }
    printf("size %zu %s %.3f %s %.3f\n", frame, mesh_frame_cipher_name(MESH_FRAME_AES_256_GCM),
           sp.gbps[MESH_FRAME_AES_256_GCM], mesh_frame_cipher_name(MESH_FRAME_CHACHA20_POLY1305),
           sp.gbps[MESH_FRAME_CHACHA20_POLY1305]);
    fflush(stdout);
    if (comma == NULL)
      break;
    p = comma + 1;
  }
  return 0;
usage:
  fprintf(stderr, "usage: frame_bench [--sizes 4096,65536] [--bytes N] [--rounds N] [--portable]\n");
  return 2;
}
