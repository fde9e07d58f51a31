/*
 * A small seeded random source (xoshiro256**, seeded through splitmix64).
 *
 * Cores take a mesh_rng * instead of calling rand(): the daemon seeds one from
 * the operating system (mesh_rng_seed_os), tests and the simulator seed one
 * from a number, so a seed reproduces a run exactly. Not for keys: keys come
 * from libsodium.
 */
#ifndef MESH_BASE_RNG_H
#define MESH_BASE_RNG_H

#include <stdint.h>

typedef struct mesh_rng {
  uint64_t s[4]; /* xoshiro256** state; never all zero */
} mesh_rng;

void mesh_rng_seed(mesh_rng *r, uint64_t seed);
/* Seeds from the OS random source (libsodium's randombytes). */
void mesh_rng_seed_os(mesh_rng *r);
uint64_t mesh_rng_next(mesh_rng *r);
/* Uniform in [0, n); n == 0 returns 0. No modulo bias. */
uint64_t mesh_rng_below(mesh_rng *r, uint64_t n);
/* Uniform double in [0, 1). */
double mesh_rng_unit(mesh_rng *r);

#endif
