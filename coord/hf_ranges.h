/*
 * Which byte ranges of one large file are on disk: the bookkeeping of a file
 * fetched in ranges from several sources at once, and its sidecar format.
 *
 * A file of `size` bytes is cut into n ranges of `range_bytes` (the last one
 * shorter). Each range is MISSING, CLAIMED by a lane of the file job (one
 * transfer, from a peer or the Hub), or DONE (every byte written to the
 * partial file). `got` counts the bytes of a range already taken in order
 * from its start, so a lane that fails hands its range back and the next
 * lane goes on from there. Only DONE ranges are kept across a restart.
 *
 * Correctness never rests on this table: the whole file is hashed against
 * the Hub's hash before it is put in place, so a table that says too much
 * (a crash between a write and the page cache reaching the disk) costs a
 * refetch, never a wrong file.
 *
 * Sidecar file (`<file>.partial.ranges`, written to a temporary name and
 * renamed over the old one), text, two lines:
 *
 *   OFFSET  CONTENT
 *   0       "meshd-ranges 1 <size> <range_bytes> <n>\n"   (decimal)
 *   ...     n bits in lowercase hex, range i is bit (i % 8) of byte i / 8,
 *           ceil(n / 8) bytes, then "\n"; a set bit: the range is DONE
 *
 * Pure: no IO, allocation only in mesh_hf_ranges_init. Owned by one thread.
 */
#ifndef MESH_COORD_HF_RANGES_H
#define MESH_COORD_HF_RANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most ranges a file may have: 1 TiB in ranges of 16 MiB, a 16 KiB sidecar. */
#define MESH_HF_RANGES_MAX 65536u
/* Largest sidecar (header and hex bitmap). */
#define MESH_HF_RANGES_TEXT_MAX (96u + MESH_HF_RANGES_MAX / 4u)
#define MESH_HF_RANGES_SUFFIX ".ranges"

typedef enum mesh_hf_range_state {
  MESH_HF_RANGE_MISSING = 0,
  MESH_HF_RANGE_CLAIMED = 1,
  MESH_HF_RANGE_DONE = 2,
} mesh_hf_range_state;

typedef struct mesh_hf_ranges {
  uint64_t size;        /* the file's listed size */
  uint64_t range_bytes; /* bytes per range (the last one may be shorter) */
  uint32_t n;           /* ranges */
  uint8_t *state;       /* n states (mesh_hf_range_state), owned */
  uint64_t *got;        /* n counts of bytes taken from each range's start, owned */
} mesh_hf_ranges;

/* Cuts size bytes into ranges of range_bytes, all MISSING. 0, -EINVAL (size
 * or range_bytes 0, or more than MESH_HF_RANGES_MAX ranges) or -ENOMEM. */
int mesh_hf_ranges_init(mesh_hf_ranges *r, uint64_t size, uint64_t range_bytes);
void mesh_hf_ranges_free(mesh_hf_ranges *r);
/* First byte and end (exclusive) of range i. */
uint64_t mesh_hf_range_start(const mesh_hf_ranges *r, uint32_t i);
uint64_t mesh_hf_range_end(const mesh_hf_ranges *r, uint32_t i);
/* The range holding byte off (off < size). */
uint32_t mesh_hf_range_of(const mesh_hf_ranges *r, uint64_t off);
/* The first MISSING range at or after `from`, wrapping around; -1 if none.
 * Lanes start at different places so they do not queue on one range. */
int64_t mesh_hf_ranges_next_missing(const mesh_hf_ranges *r, uint32_t from);
/* Marks every range wholly within [0, prefix) DONE: a partial file written
 * in order by an earlier run without a sidecar. */
void mesh_hf_ranges_take_prefix(mesh_hf_ranges *r, uint64_t prefix);
/* Bytes of DONE ranges plus the got of the others. */
uint64_t mesh_hf_ranges_have(const mesh_hf_ranges *r);
uint32_t mesh_hf_ranges_done(const mesh_hf_ranges *r);
bool mesh_hf_ranges_complete(const mesh_hf_ranges *r);
/* Writes the sidecar text into buf (cap bytes; MESH_HF_RANGES_TEXT_MAX is
 * always enough): its length, or -ENOSPC. */
int mesh_hf_ranges_encode(const mesh_hf_ranges *r, char *buf, size_t cap);
/* Reads a sidecar (len bytes of text, borrowed) into r, already set up for
 * the file: marks the ranges it says DONE. 0; -EBADMSG for a malformed
 * text; -ESTALE for one of another size or range size (r untouched: the
 * caller starts the file over). */
int mesh_hf_ranges_decode(mesh_hf_ranges *r, const char *text, size_t len);

#endif
