/*
 * A member's file list, signed: the verified-files manifest of one of its
 * completed downloads (coord/hf_manifest.h), bound by its identity key to
 * the model, the revision, the member's peer ID and its epoch. When the Hub
 * cannot be reached and the operator allows it, a downloader takes the file
 * list (paths, sizes, hashes) from a member that completed the revision
 * instead of from the Hub, and still verifies every file against it.
 *
 * The signed list, as sent on the bulk channel (text, lines end in '\n'):
 *
 *   LINE        CONTENT
 *   1           "meshd-file-list 1"
 *   2           "model <org/name>"           as coord/diskexec.h validates it
 *   3           "revision <rev>"             likewise
 *   4           "owner <peer ID, base58btc>" who signed
 *   5           "epoch <decimal>"            the owner's epoch when it signed
 *   6           "sha256 <64 hex>"            SHA-256 of the manifest below
 *   7           "sig <128 hex>"              Ed25519 signature by the owner
 *   8...        the manifest, exactly as in the model directory
 *
 * The signature covers lines 1 to 6 (with their newlines) under the domain
 * MESH_DOMAIN_FILE_LIST (src/identity/signed.h), payload type "text"; the
 * manifest is covered through its hash. A list is at most
 * MESH_HF_FILELIST_MAX bytes; the head at most MESH_HF_FILELIST_HEAD_MAX.
 *
 * Pure functions over memory: no IO, no clock, no logging. Hashing a list
 * reads all of it: call them on a worker, not on the event loop.
 */
#ifndef MESH_COORD_HF_FILELIST_H
#define MESH_COORD_HF_FILELIST_H

#include "coord/hf_manifest.h"
#include "coord/model_id.h"
#include "src/identity/identity.h"

#include <stddef.h>
#include <stdint.h>

#define MESH_DOMAIN_FILE_LIST "meshd-file-list"
#define MESH_HF_FILELIST_HEAD_MAX 1024
#define MESH_HF_FILELIST_MAX (MESH_HF_MANIFEST_MAX + MESH_HF_FILELIST_HEAD_MAX)

/* What a signed list says about itself. */
typedef struct mesh_hf_filelist_meta {
  char model_id[MESH_MODEL_ID_MAX];
  char revision[MESH_REVISION_MAX + 1];
  mesh_peer_id owner;
  uint64_t epoch;
} mesh_hf_filelist_meta;

/*
 * Signs manifest (mlen bytes, borrowed) as the list of meta's model and
 * revision, by id (meta->owner must be id's peer ID) in meta->epoch, into a
 * malloc'ed buffer (*out, the caller's to free) of *len bytes. 0, -EINVAL
 * (a field out of bounds, a manifest over MESH_HF_MANIFEST_MAX) or -ENOMEM.
 */
int mesh_hf_filelist_seal(const mesh_identity *id, const mesh_hf_filelist_meta *meta,
                          const char *manifest, size_t mlen, uint8_t **out, size_t *len);

/*
 * Checks a signed list of len bytes (borrowed): its head is well formed,
 * it was signed by want->owner for want->model_id and want->revision in
 * want->epoch, and the manifest's hash is the one signed. 0 with *manifest
 * and *mlen pointing into buf; -EMSGSIZE (over MESH_HF_FILELIST_MAX),
 * -EBADMSG (malformed, or another model, revision, owner or epoch: err says
 * which) or -MESH_EAUTH (the signature or the hash does not match).
 */
int mesh_hf_filelist_open(const uint8_t *buf, size_t len, const mesh_hf_filelist_meta *want,
                          const char **manifest, size_t *mlen, char *err, size_t errlen);

#endif
