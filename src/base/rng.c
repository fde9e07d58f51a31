/* The seeded random source the protocol cores draw from (src/base/rng.h). */
#include "src/base/rng.h"

#include <sodium.h>

static uint64_t splitmix64(uint64_t *x)
{
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void mesh_rng_seed(mesh_rng *r, uint64_t seed)
{
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64(&seed);
}

void mesh_rng_seed_os(mesh_rng *r)
{
  uint64_t seed;
  randombytes_buf(&seed, sizeof seed);
  mesh_rng_seed(r, seed);
}

static uint64_t rotl(uint64_t x, int k)
{
  return (x << k) | (x >> (64 - k));
}

uint64_t mesh_rng_next(mesh_rng *r)
{
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

uint64_t mesh_rng_below(mesh_rng *r, uint64_t n)
{
  if (n == 0)
    return 0;
  /* Rejection sampling: drop the top partial range so every value is equally likely. */
  uint64_t limit = UINT64_MAX - (UINT64_MAX % n);
  uint64_t x;
  do {
    x = mesh_rng_next(r);
  } while (x >= limit);
  return x % n;
}

double mesh_rng_unit(mesh_rng *r)
{
  return (double)(mesh_rng_next(r) >> 11) * 0x1.0p-53;
}
