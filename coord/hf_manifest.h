/*
 * The verified-files manifest a completed download leaves in its model
 * directory: the files it checked against the Hub's hashes, with their sizes,
 * so that a node serves members only those files, at that size.
 *
 * File `.meshd-files` in the model directory (a hidden name: never served,
 * never taken for a model file), text, written to a temporary name and
 * renamed into place once every file of the download was verified:
 *
 *   line 1      "meshd-files 1\n"
 *   each file   "<size> <hash> <path>\n"   size in decimal; hash the SHA-256
 *               (LFS files) or git blob SHA-1 the file was verified with, in
 *               lowercase hex; path as the Hub lists it (last: it may hold
 *               spaces, never a newline)
 *
 * Pure: no IO. Any thread.
 */
#ifndef MESH_COORD_HF_MANIFEST_H
#define MESH_COORD_HF_MANIFEST_H

#include "coord/hf_tree.h"

#include <stddef.h>
#include <stdint.h>

#define MESH_HF_MANIFEST ".meshd-files"
/* Largest manifest a server reads (100000 files of long paths fit). */
#define MESH_HF_MANIFEST_MAX ((size_t)64 << 20)

/* Encodes the files of t into a malloc'ed text (*out, the caller's to free)
 * of *len bytes. 0 or -ENOMEM. */
int mesh_hf_manifest_encode(const mesh_hf_tree *t, char **out, size_t *len);
/* Looks path up in a manifest (len bytes of text, borrowed): 0 with *size,
 * -ENOENT when it is not listed, -EBADMSG for a malformed manifest. */
int mesh_hf_manifest_find(const char *text, size_t len, const char *path, uint64_t *size);

/* Reads a whole manifest (len bytes of text, borrowed) into t (empty, from
 * mesh_hf_tree_init) and finishes it (sorted, no duplicates), with the same
 * bounds as the Hub's list (lim, may be NULL). 0, -EBADMSG (malformed: err
 * says where), -EMSGSIZE (a bound crossed) or -ENOMEM. After an error t
 * should be freed. */
int mesh_hf_manifest_parse(const char *text, size_t len, const mesh_hf_tree_limits *lim,
                           mesh_hf_tree *t, char *err, size_t errlen);

#endif
