/*
 * Encoding and decoding of the bulk channel's messages (coord/bulk_wire.h),
 * with every length, count and string from the network bounded first.
 */
#include "coord/bulk_wire.h"

#include "proto/bulk.pb-c.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *mesh_bulk_kind_name(mesh_bulk_kind k)
{
  switch (k) {
  case MESH_BULK_REQUEST:
    return "request";
  case MESH_BULK_CREDIT:
    return "credit";
  case MESH_BULK_CHUNK:
    return "chunk";
  case MESH_BULK_END:
    return "end";
  case MESH_BULK_CANCEL:
    return "cancel";
  }
  return "?";
}

/* A reason is printable ASCII only: it reaches logs and the API. */
static bool reason_ok(const char *s, size_t len)
{
  if (len > MESH_BULK_REASON_MAX)
    return false;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
      return false;
  return true;
}

/* The fields of a request, whichever side checks them. */
static bool request_ok(const char *model, const char *rev, const char *path, bool file_list,
                       uint64_t offset, uint64_t length, uint64_t credit)
{
  const char *why;
  size_t ml = strlen(model), rl = strlen(rev), pl = strlen(path);
  bool path_ok =
      file_list ? pl == 0 : pl <= MESH_HF_PATH_MAX && mesh_hf_path_check(path, pl, &why) == 0;
  return ml < MESH_MODEL_ID_MAX && mesh_model_id_validate(model, ml, &why) == 0 &&
         rl <= MESH_REVISION_MAX && mesh_revision_validate(rev, rl) == 0 && path_ok && length > 0 &&
         offset <= UINT64_MAX - length && credit > 0 && credit <= MESH_BULK_CREDIT_MAX;
}

int mesh_bulk_encode(const mesh_bulk_msg *m, uint8_t **out, size_t *len)
{
  Mesh__Bulk__BulkMessage bm;
  mesh__bulk__bulk_message__init(&bm);
  bm.version = MESH_BULK_VERSION;
  Mesh__Bulk__BulkRequest rq;
  Mesh__Bulk__BulkCredit cr;
  Mesh__Bulk__BulkChunk ck;
  Mesh__Bulk__BulkEnd en;
  Mesh__Bulk__BulkCancel ca;
  if (m->id == 0)
    return -EINVAL;
  switch (m->kind) {
  case MESH_BULK_REQUEST:
    if (!request_ok(m->model_id, m->revision, m->path, m->file_list, m->offset, m->length,
                    m->credit))
      return -EINVAL;
    mesh__bulk__bulk_request__init(&rq);
    rq.id = m->id;
    rq.model_id = (char *)m->model_id;
    rq.revision = (char *)m->revision;
    rq.path = (char *)m->path;
    rq.offset = m->offset;
    rq.length = m->length;
    rq.credit = m->credit;
    rq.file_list = m->file_list;
    bm.body_case = MESH__BULK__BULK_MESSAGE__BODY_REQUEST;
    bm.request = &rq;
    break;
  case MESH_BULK_CREDIT:
    if (m->credit == 0 || m->credit > MESH_BULK_CREDIT_MAX)
      return -EINVAL;
    mesh__bulk__bulk_credit__init(&cr);
    cr.id = m->id;
    cr.bytes = m->credit;
    bm.body_case = MESH__BULK__BULK_MESSAGE__BODY_CREDIT;
    bm.credit = &cr;
    break;
  case MESH_BULK_CHUNK:
    if (m->data_len == 0 || m->data_len > MESH_BULK_CHUNK_MAX || m->data == NULL ||
        m->offset > UINT64_MAX - m->data_len)
      return -EINVAL; /* the decoder would refuse it */
    mesh__bulk__bulk_chunk__init(&ck);
    ck.id = m->id;
    ck.offset = m->offset;
    ck.data.data = (uint8_t *)m->data;
    ck.data.len = m->data_len;
    bm.body_case = MESH__BULK__BULK_MESSAGE__BODY_CHUNK;
    bm.chunk = &ck;
    break;
  case MESH_BULK_END:
    if (m->code > 0 || m->code < -4095 || !reason_ok(m->reason, strlen(m->reason)))
      return -EINVAL;
    mesh__bulk__bulk_end__init(&en);
    en.id = m->id;
    en.code = m->code;
    en.reason = (char *)m->reason;
    bm.body_case = MESH__BULK__BULK_MESSAGE__BODY_END;
    bm.end = &en;
    break;
  case MESH_BULK_CANCEL:
    mesh__bulk__bulk_cancel__init(&ca);
    ca.id = m->id;
    bm.body_case = MESH__BULK__BULK_MESSAGE__BODY_CANCEL;
    bm.cancel = &ca;
    break;
  default:
    return -EINVAL;
  }
  size_t n = mesh__bulk__bulk_message__get_packed_size(&bm);
  uint8_t *buf = malloc(n > 0 ? n : 1);
  if (buf == NULL)
    return -ENOMEM;
  mesh__bulk__bulk_message__pack(&bm, buf);
  *out = buf;
  *len = n;
  return 0;
}

/* Copies a string field of the wire into dst (cap bytes): false when it does
 * not fit or holds a NUL. */
static bool copy_str(char *dst, size_t cap, const char *src)
{
  if (src == NULL) {
    dst[0] = '\0';
    return true;
  }
  size_t n = strlen(src);
  if (n >= cap)
    return false;
  memcpy(dst, src, n + 1);
  return true;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}

static size_t varint_len(uint64_t v)
{
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

size_t mesh_bulk_chunk_header(uint64_t id, uint64_t offset, size_t n, uint8_t *hdr)
{
  if (id == 0 || n == 0 || n > MESH_BULK_CHUNK_MAX || offset > UINT64_MAX - n)
    return 0;
  /* The chunk: id, the offset unless 0 (proto3 leaves it out), the data. */
  size_t body =
      1 + varint_len(id) + (offset != 0 ? 1 + varint_len(offset) : 0) + 1 + varint_len(n) + n;
  size_t h = 0;
  hdr[h++] = 0x08; /* version */
  hdr[h++] = MESH_BULK_VERSION;
  hdr[h++] = 0x22; /* chunk */
  h += put_varint(hdr + h, body);
  hdr[h++] = 0x08;
  h += put_varint(hdr + h, id);
  if (offset != 0) {
    hdr[h++] = 0x10;
    h += put_varint(hdr + h, offset);
  }
  hdr[h++] = 0x1a;
  h += put_varint(hdr + h, n);
  return h;
}

/* A varint at *p as the encoder writes it: at most 10 bytes, a value that
 * fits 64 bits, no needless zero bytes at its end (end: one past the last
 * byte there is); advances *p. */
static bool get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
  uint64_t x = 0;
  for (int i = 0; i < 10 && *p < end; i++) {
    uint8_t b = *(*p)++;
    if ((i == 9 && b > 1) || (i > 0 && b == 0))
      return false;
    x |= (uint64_t)(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      *v = x;
      return true;
    }
  }
  return false;
}

/*
 * The chunk, every byte of a model that crosses the bulk channel, read
 * where it lies: libprotobuf-c's unpack copies a bytes field into memory of
 * its own, a second copy of every byte on the loop. Only the layout
 * mesh_bulk_encode writes is taken here (version 1, then the chunk: id,
 * offset unless it is 0, data, the data ending the message; every varint
 * in its shortest form), with the same bounds as below; anything else, even an equivalent encoding,
 * goes to the general decoder, which gives the same answer (fuzz_bulk_wire compares the two).
 */
static bool chunk_in_place(const uint8_t *buf, size_t len, mesh_bulk_msg *m)
{
  const uint8_t *p = buf, *end = buf + len;
  uint64_t body, id, off, n;
  if (len < 4 || p[0] != 0x08 || p[1] != MESH_BULK_VERSION || p[2] != 0x22)
    return false;
  p += 3;
  if (!get_varint(&p, end, &body) || body != (uint64_t)(end - p))
    return false;
  if (p == end || *p++ != 0x08 || !get_varint(&p, end, &id))
    return false;
  off = 0; /* proto3 leaves a zero offset out */
  if (p < end && *p == 0x10) {
    p++;
    if (!get_varint(&p, end, &off))
      return false;
  }
  if (p == end || *p++ != 0x1a || !get_varint(&p, end, &n) || n != (uint64_t)(end - p))
    return false;
  if (id == 0 || n == 0 || n > MESH_BULK_CHUNK_MAX || off > UINT64_MAX - n)
    return false;
  m->kind = MESH_BULK_CHUNK;
  m->id = id;
  m->offset = off;
  m->data = p;
  m->data_len = (size_t)n;
  return true;
}

int mesh_bulk_decode(const uint8_t *buf, size_t len, mesh_bulk_msg *m)
{
  memset(m, 0, sizeof *m);
  if (len == 0 || len > MESH_BULK_MSG_MAX)
    return -EBADMSG;
  if (chunk_in_place(buf, len, m))
    return 0;
  return mesh_bulk_decode_general(buf, len, m);
}

int mesh_bulk_decode_general(const uint8_t *buf, size_t len, mesh_bulk_msg *m)
{
  memset(m, 0, sizeof *m);
  if (len == 0 || len > MESH_BULK_MSG_MAX)
    return -EBADMSG;
  Mesh__Bulk__BulkMessage *bm = mesh__bulk__bulk_message__unpack(NULL, len, buf);
  if (bm == NULL)
    return -EBADMSG;
  bool ok = bm->version == MESH_BULK_VERSION;
  switch (ok ? bm->body_case : MESH__BULK__BULK_MESSAGE__BODY__NOT_SET) {
  case MESH__BULK__BULK_MESSAGE__BODY_REQUEST: {
    const Mesh__Bulk__BulkRequest *r = bm->request;
    m->kind = MESH_BULK_REQUEST;
    m->id = r->id;
    m->offset = r->offset;
    m->length = r->length;
    m->credit = r->credit;
    m->file_list = r->file_list;
    ok = copy_str(m->model_id, sizeof m->model_id, r->model_id) &&
         copy_str(m->revision, sizeof m->revision, r->revision) &&
         copy_str(m->path, sizeof m->path, r->path) &&
         request_ok(m->model_id, m->revision, m->path, m->file_list, m->offset, m->length,
                    m->credit);
    break;
  }
  case MESH__BULK__BULK_MESSAGE__BODY_CREDIT:
    m->kind = MESH_BULK_CREDIT;
    m->id = bm->credit->id;
    m->credit = bm->credit->bytes;
    ok = m->credit > 0 && m->credit <= MESH_BULK_CREDIT_MAX;
    break;
  case MESH__BULK__BULK_MESSAGE__BODY_CHUNK:
    m->kind = MESH_BULK_CHUNK;
    m->id = bm->chunk->id;
    m->offset = bm->chunk->offset;
    m->data = bm->chunk->data.data;
    m->data_len = bm->chunk->data.len;
    ok = m->data_len > 0 && m->data_len <= MESH_BULK_CHUNK_MAX &&
         m->offset <= UINT64_MAX - m->data_len;
    break;
  case MESH__BULK__BULK_MESSAGE__BODY_END:
    m->kind = MESH_BULK_END;
    m->id = bm->end->id;
    m->code = bm->end->code;
    ok = m->code <= 0 && m->code >= -4095 && bm->end->reason != NULL &&
         reason_ok(bm->end->reason, strlen(bm->end->reason)) &&
         copy_str(m->reason, sizeof m->reason, bm->end->reason);
    break;
  case MESH__BULK__BULK_MESSAGE__BODY_CANCEL:
    m->kind = MESH_BULK_CANCEL;
    m->id = bm->cancel->id;
    break;
  default:
    ok = false;
    break;
  }
  if (!ok || m->id == 0) {
    mesh__bulk__bulk_message__free_unpacked(bm, NULL);
    memset(m, 0, sizeof *m);
    return -EBADMSG;
  }
  m->priv = bm;
  return 0;
}

void mesh_bulk_msg_clear(mesh_bulk_msg *m)
{
  if (m->priv != NULL)
    mesh__bulk__bulk_message__free_unpacked(m->priv, NULL);
  m->priv = NULL;
  m->data = NULL;
  m->data_len = 0;
}
