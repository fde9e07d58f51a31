/*
 * The bulk channel's messages (proto/bulk.proto) as plain structs: encoding,
 * and decoding that bounds every field before anyone sees it.
 *
 * Wire format: one BulkMessage per MESH_CH_BULK stream message, version 1.
 *
 *   kind     fields used                         who sends it
 *   REQUEST  id model_id revision path offset    downloader -> source
 *            length credit file_list           (file_list: the signed file
 *                                              list, path empty)
 *   CREDIT   id credit                           downloader -> source
 *   CHUNK    id offset data/data_len             source -> downloader
 *   END      id code reason                      source -> downloader
 *   CANCEL   id                                  downloader -> source
 *
 * Pure: no IO, no allocation past the decoded message. Any thread.
 */
#ifndef MESH_COORD_BULK_WIRE_H
#define MESH_COORD_BULK_WIRE_H

#include "coord/diskexec.h"
#include "coord/hf_tree.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MESH_BULK_VERSION 1
/* Largest chunk payload: a coordinator message waits behind at most one. */
#define MESH_BULK_CHUNK_MAX ((size_t)256 << 10)
/* The chunk a source sends: 1 KiB under the largest, so that a chunk's
 * message (its fields take under 64 bytes) fills whole RDMA bulk frames of
 * 16, 32 and 64 KiB: four frames of 64 KiB, where a whole quarter MiB took
 * a fifth frame for its last few hundred bytes. With 8 and 4 KiB frames
 * the last of 33 or 65 frames is part-filled. Receivers take any size up
 * to MESH_BULK_CHUNK_MAX. */
#define MESH_BULK_CHUNK_SEND ((size_t)255 << 10)
/* Largest credit a downloader may grant at once (bytes in flight). */
#define MESH_BULK_CREDIT_MAX ((uint64_t)64 << 20)
#define MESH_BULK_REASON_MAX 127
/* Largest encoded message: a full chunk and its fields. */
#define MESH_BULK_MSG_MAX (MESH_BULK_CHUNK_MAX + 2048)

typedef enum mesh_bulk_kind {
  MESH_BULK_REQUEST = 1,
  MESH_BULK_CREDIT = 2,
  MESH_BULK_CHUNK = 3,
  MESH_BULK_END = 4,
  MESH_BULK_CANCEL = 5,
} mesh_bulk_kind;

/*
 * One message. For encoding the caller fills it (data borrowed); a decoded
 * one owns nothing but `priv` (the unpacked message): release it with
 * mesh_bulk_msg_clear. A decoded chunk's data points into the buffer given
 * to the decoder or into priv: use it while both live.
 */
typedef struct mesh_bulk_msg {
  mesh_bulk_kind kind;
  uint64_t id;
  char model_id[MESH_MODEL_ID_MAX];
  char revision[MESH_REVISION_MAX + 1];
  char path[MESH_HF_PATH_MAX + 1];
  uint64_t offset;     /* REQUEST: first byte; CHUNK: offset of data[0] */
  uint64_t length;     /* REQUEST: bytes wanted */
  uint64_t credit;     /* REQUEST: initial credit; CREDIT: more bytes */
  bool file_list;      /* REQUEST: the source's signed file list, not a file */
  const uint8_t *data; /* CHUNK: borrowed (encode); into buf or priv (decode) */
  size_t data_len;
  int32_t code; /* END: 0 or a negative errno in [-4095, -1] */
  char reason[MESH_BULK_REASON_MAX + 1];
  void *priv; /* decoded: the unpacked protobuf message, owned */
} mesh_bulk_msg;

/* Encodes m into a malloc'ed buffer (*out, the caller's to free). 0,
 * -EINVAL (a field out of bounds: nothing encoded) or -ENOMEM. */
int mesh_bulk_encode(const mesh_bulk_msg *m, uint8_t **out, size_t *len);
/* Longest part of a chunk's message ahead of its data. */
#define MESH_BULK_CHUNK_HDR_MAX 40
/* Writes into hdr (MESH_BULK_CHUNK_HDR_MAX bytes) what mesh_bulk_encode
 * puts ahead of a chunk's data, so that a source can read the data into
 * place after it rather than copy it into a new message: the header and
 * the n data bytes that follow it are the message. Returns the header's
 * length; 0 when id or n is 0, n is above MESH_BULK_CHUNK_MAX or
 * offset + n overflows (what encode refuses). */
size_t mesh_bulk_chunk_header(uint64_t id, uint64_t offset, size_t n, uint8_t *hdr);
/* Decodes len bytes of buf (borrowed) into *m. 0, or -EBADMSG for anything
 * malformed or out of bounds (m holds nothing to clear then), -ENOMEM. */
int mesh_bulk_decode(const uint8_t *buf, size_t len, mesh_bulk_msg *m);
/* The same without the chunk's in-place reading: every message through
 * libprotobuf-c (tests compare the two). */
int mesh_bulk_decode_general(const uint8_t *buf, size_t len, mesh_bulk_msg *m);
/* Frees what a decode left in m. */
void mesh_bulk_msg_clear(mesh_bulk_msg *m);
const char *mesh_bulk_kind_name(mesh_bulk_kind k);

#endif
