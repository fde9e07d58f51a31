/*
 * The bulk channel's codec: what is encoded decodes the same, and every
 * field out of bounds is refused on both sides.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "coord/bulk_wire.h"
#include "proto/bulk.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void request(mesh_bulk_msg *m, const char *path)
{
  memset(m, 0, sizeof *m);
  m->kind = MESH_BULK_REQUEST;
  m->id = 7;
  snprintf(m->model_id, sizeof m->model_id, "org/model");
  snprintf(m->revision, sizeof m->revision, "main");
  snprintf(m->path, sizeof m->path, "%s", path);
  m->offset = 1u << 20;
  m->length = 5u << 20;
  m->credit = 1u << 20;
}

static void test_round_trip(void **state)
{
  (void)state;
  mesh_bulk_msg m, d;
  uint8_t *buf;
  size_t len;
  request(&m, "sub/model-00001.safetensors");
  assert_int_equal(mesh_bulk_encode(&m, &buf, &len), 0);
  assert_int_equal(mesh_bulk_decode(buf, len, &d), 0);
  free(buf);
  assert_int_equal(d.kind, MESH_BULK_REQUEST);
  assert_int_equal(d.id, 7);
  assert_string_equal(d.path, "sub/model-00001.safetensors");
  assert_int_equal(d.offset, 1u << 20);
  assert_int_equal(d.length, 5u << 20);
  assert_int_equal(d.credit, 1u << 20);
  mesh_bulk_msg_clear(&d);

  uint8_t data[1000];
  memset(data, 0x5a, sizeof data);
  mesh_bulk_msg c = {
      .kind = MESH_BULK_CHUNK, .id = 3, .offset = 42, .data = data, .data_len = sizeof data};
  assert_int_equal(mesh_bulk_encode(&c, &buf, &len), 0);
  assert_int_equal(mesh_bulk_decode(buf, len, &d), 0);
  assert_int_equal(d.kind, MESH_BULK_CHUNK);
  assert_int_equal(d.offset, 42);
  assert_int_equal(d.data_len, sizeof data);
  assert_memory_equal(d.data, data, sizeof data); /* may point into buf */
  mesh_bulk_msg_clear(&d);
  free(buf);

  mesh_bulk_msg e = {.kind = MESH_BULK_END, .id = 3, .code = -EBUSY};
  snprintf(e.reason, sizeof e.reason, "uploads at their limit");
  assert_int_equal(mesh_bulk_encode(&e, &buf, &len), 0);
  assert_int_equal(mesh_bulk_decode(buf, len, &d), 0);
  free(buf);
  assert_int_equal(d.code, -EBUSY);
  assert_string_equal(d.reason, "uploads at their limit");
  mesh_bulk_msg_clear(&d);
}

/* Paths that could leave the model directory never pass, whichever side. */
static void test_paths_refused(void **state)
{
  (void)state;
  const char *bad[] = {"../etc/passwd", "/etc/passwd", "a/../../b", "a//b",
                       "./x",           "a/./b",       "",          "x\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mesh_bulk_msg m;
    uint8_t *buf;
    size_t len;
    request(&m, bad[i]);
    assert_int_equal(mesh_bulk_encode(&m, &buf, &len), -EINVAL);
    /* The same crafted on the wire by a hostile member. */
    Mesh__Bulk__BulkRequest r;
    mesh__bulk__bulk_request__init(&r);
    r.id = 1;
    r.model_id = (char *)"org/model";
    r.revision = (char *)"main";
    r.path = (char *)bad[i];
    r.length = 10;
    r.credit = 10;
    Mesh__Bulk__BulkMessage bm;
    mesh__bulk__bulk_message__init(&bm);
    bm.version = 1;
    bm.body_case = MESH__BULK__BULK_MESSAGE__BODY_REQUEST;
    bm.request = &r;
    uint8_t wire[4096];
    len = mesh__bulk__bulk_message__pack(&bm, wire);
    mesh_bulk_msg d;
    assert_int_equal(mesh_bulk_decode(wire, len, &d), -EBADMSG);
  }
}

static void test_bounds_refused(void **state)
{
  (void)state;
  mesh_bulk_msg m;
  uint8_t *buf;
  size_t len;
  request(&m, "f");
  m.credit = MESH_BULK_CREDIT_MAX + 1;
  assert_int_equal(mesh_bulk_encode(&m, &buf, &len), -EINVAL);
  request(&m, "f");
  m.length = 0;
  assert_int_equal(mesh_bulk_encode(&m, &buf, &len), -EINVAL);
  request(&m, "f");
  m.offset = UINT64_MAX;
  assert_int_equal(mesh_bulk_encode(&m, &buf, &len), -EINVAL);
  request(&m, "f");
  m.id = 0;
  assert_int_equal(mesh_bulk_encode(&m, &buf, &len), -EINVAL);
  mesh_bulk_msg e = {.kind = MESH_BULK_END, .id = 1, .code = 5};
  assert_int_equal(mesh_bulk_encode(&e, &buf, &len), -EINVAL);

  /* Another version, an empty body, a chunk over its bound. */
  Mesh__Bulk__BulkCancel ca;
  mesh__bulk__bulk_cancel__init(&ca);
  ca.id = 1;
  Mesh__Bulk__BulkMessage bm;
  mesh__bulk__bulk_message__init(&bm);
  bm.version = 2;
  bm.body_case = MESH__BULK__BULK_MESSAGE__BODY_CANCEL;
  bm.cancel = &ca;
  uint8_t wire[64];
  len = mesh__bulk__bulk_message__pack(&bm, wire);
  mesh_bulk_msg d;
  assert_int_equal(mesh_bulk_decode(wire, len, &d), -EBADMSG);
  bm.version = 1;
  len = mesh__bulk__bulk_message__pack(&bm, wire);
  assert_int_equal(mesh_bulk_decode(wire, len, &d), 0);
  mesh_bulk_msg_clear(&d);
  bm.body_case = MESH__BULK__BULK_MESSAGE__BODY__NOT_SET;
  len = mesh__bulk__bulk_message__pack(&bm, wire);
  assert_int_equal(mesh_bulk_decode(wire, len, &d), -EBADMSG);

  size_t big = MESH_BULK_CHUNK_MAX + 1;
  uint8_t *data = calloc(1, big);
  assert_non_null(data);
  Mesh__Bulk__BulkChunk ck;
  mesh__bulk__bulk_chunk__init(&ck);
  ck.id = 1;
  ck.data.data = data;
  ck.data.len = big;
  bm.body_case = MESH__BULK__BULK_MESSAGE__BODY_CHUNK;
  bm.chunk = &ck;
  size_t n = mesh__bulk__bulk_message__get_packed_size(&bm);
  uint8_t *w = malloc(n);
  assert_non_null(w);
  mesh__bulk__bulk_message__pack(&bm, w);
  assert_int_equal(mesh_bulk_decode(w, n, &d), -EBADMSG);
  free(w);
  free(data);
  assert_int_equal(mesh_bulk_decode((const uint8_t *)"\xff\xff", 2, &d), -EBADMSG);
}

/* mesh_bulk_encode of a chunk of n bytes of data, which must succeed. */
static uint8_t *encode_chunk(uint64_t id, uint64_t offset, const uint8_t *data, size_t n,
                             size_t *len)
{
  mesh_bulk_msg c = {
      .kind = MESH_BULK_CHUNK, .id = id, .offset = offset, .data = data, .data_len = n};
  uint8_t *buf;
  assert_int_equal(mesh_bulk_encode(&c, &buf, len), 0);
  return buf;
}

/* Both decoders give the same answer: the return code, and every field. */
static void same_answer(const uint8_t *buf, size_t len)
{
  mesh_bulk_msg a, b;
  int ra = mesh_bulk_decode(buf, len, &a);
  int rb = mesh_bulk_decode_general(buf, len, &b);
  assert_int_equal(ra, rb);
  if (ra == 0) {
    assert_int_equal(a.kind, b.kind);
    assert_int_equal(a.id, b.id);
    assert_int_equal(a.offset, b.offset);
    assert_int_equal(a.data_len, b.data_len);
    if (a.data_len > 0)
      assert_memory_equal(a.data, b.data, a.data_len);
    assert_int_equal(a.code, b.code);
    assert_int_equal(a.credit, b.credit);
    assert_string_equal(a.path, b.path);
    mesh_bulk_msg_clear(&a);
    mesh_bulk_msg_clear(&b);
  }
}

/* A chunk as the encoder writes it is read where it lies (no unpacked
 * copy: priv stays NULL, data points into the buffer); any other layout
 * goes through libprotobuf-c; and the two agree on every chunk, on a
 * reordered one, and on each of its bytes changed. */
static void test_chunk_read_in_place(void **state)
{
  (void)state;
  static uint8_t data[MESH_BULK_CHUNK_MAX];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t)(i * 31 + 7);
  const struct {
    uint64_t id, offset;
    size_t n;
  } cases[] = {{1, 0, 1},
               {3, 42, 1000},
               {UINT64_MAX, UINT64_MAX - MESH_BULK_CHUNK_SEND, MESH_BULK_CHUNK_SEND},
               {9, 1ull << 40, MESH_BULK_CHUNK_MAX}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    size_t len;
    uint8_t *buf = encode_chunk(cases[k].id, cases[k].offset, data, cases[k].n, &len);
    mesh_bulk_msg d;
    assert_int_equal(mesh_bulk_decode(buf, len, &d), 0);
    assert_null(d.priv);
    assert_true(d.data >= buf && d.data + d.data_len == buf + len);
    assert_int_equal(d.id, cases[k].id);
    assert_int_equal(d.offset, cases[k].offset);
    assert_int_equal(d.data_len, cases[k].n);
    assert_memory_equal(d.data, data, cases[k].n);
    mesh_bulk_msg_clear(&d);
    same_answer(buf, len);
    /* Cut short anywhere: refused by both. */
    for (size_t cut = 0; cut < len && cut < 40; cut++)
      same_answer(buf, cut);
    free(buf);
  }
  /* The same chunk with offset before id: the general decoder reads it. */
  static const uint8_t reordered[] = {0x08, 0x01, 0x22, 0x09, 0x10, 0x2a, 0x08,
                                      0x03, 0x1a, 0x03, 'a',  'b',  'c'};
  mesh_bulk_msg d;
  assert_int_equal(mesh_bulk_decode(reordered, sizeof reordered, &d), 0);
  assert_non_null(d.priv);
  assert_int_equal(d.id, 3);
  assert_int_equal(d.offset, 42);
  assert_int_equal(d.data_len, 3);
  mesh_bulk_msg_clear(&d);
  /* Every byte of a small chunk changed, every bit in turn: both decoders
   * agree each time. */
  mesh_bulk_msg c = {
      .kind = MESH_BULK_CHUNK, .id = 300, .offset = 70000, .data = data, .data_len = 20};
  uint8_t *buf;
  size_t len;
  assert_int_equal(mesh_bulk_encode(&c, &buf, &len), 0);
  uint8_t *mut = malloc(len + 1);
  assert_non_null(mut);
  for (size_t i = 0; i < len; i++) {
    for (int bit = 0; bit < 8; bit++) {
      memcpy(mut, buf, len);
      mut[i] ^= (uint8_t)(1u << bit);
      same_answer(mut, len);
    }
  }
  /* Out of bounds in the layout read in place: refused, as by the other. */
  static const uint8_t id_zero[] = {0x08, 0x01, 0x22, 0x05, 0x08, 0x00, 0x1a, 0x01, 'x'};
  static const uint8_t past_end[] = {0x08, 0x01, 0x22, 0x10, 0x08, 0x01, 0x10, 0xff, 0xff, 0xff,
                                     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x1a, 0x01, 'x'};
  mesh_bulk_msg z;
  assert_int_equal(mesh_bulk_decode(id_zero, sizeof id_zero, &z), -EBADMSG);
  assert_int_equal(mesh_bulk_decode(past_end, sizeof past_end, &z), -EBADMSG);
  same_answer(id_zero, sizeof id_zero);
  same_answer(past_end, sizeof past_end);
  size_t big_len = 3 + 3 + 2 + 1 + 3 + MESH_BULK_CHUNK_MAX + 1;
  uint8_t *big = calloc(1, big_len);
  assert_non_null(big);
  size_t body = 2 + 1 + 3 + MESH_BULK_CHUNK_MAX + 1, data_n = MESH_BULK_CHUNK_MAX + 1;
  uint8_t head[] = {0x08,
                    0x01,
                    0x22,
                    (uint8_t)(0x80 | (body & 0x7f)),
                    (uint8_t)(0x80 | ((body >> 7) & 0x7f)),
                    (uint8_t)(body >> 14),
                    0x08,
                    0x05,
                    0x1a,
                    (uint8_t)(0x80 | (data_n & 0x7f)),
                    (uint8_t)(0x80 | ((data_n >> 7) & 0x7f)),
                    (uint8_t)(data_n >> 14)};
  memcpy(big, head, sizeof head);
  assert_int_equal(sizeof head + data_n, big_len);
  assert_int_equal(mesh_bulk_decode(big, big_len, &z), -EBADMSG);
  same_answer(big, big_len);
  free(big);
  /* Varints longer than they need be (the body's length, the id, the
   * data's length): left to the general decoder, which answers alike. */
  static const uint8_t long_body[] = {0x08, 0x01, 0x22, 0x85, 0x80, 0x80, 0x80,
                                      0x80, 0x00, 0x08, 0x01, 0x1a, 0x01, 'x'};
  static const uint8_t long_id[] = {0x08, 0x01, 0x22, 0x06, 0x08, 0x81, 0x00, 0x1a, 0x01, 'x'};
  static const uint8_t long_data[] = {0x08, 0x01, 0x22, 0x06, 0x08, 0x01, 0x1a, 0x81, 0x00, 'x'};
  same_answer(long_body, sizeof long_body);
  same_answer(long_id, sizeof long_id);
  same_answer(long_data, sizeof long_data);
  assert_int_equal(mesh_bulk_decode(long_id, sizeof long_id, &z), 0);
  assert_non_null(z.priv); /* not read in place */
  mesh_bulk_msg_clear(&z);
  /* A byte more at the end: a field the general decoder judges. */
  memcpy(mut, buf, len);
  mut[len] = 0x08;
  same_answer(mut, len + 1);
  free(mut);
  free(buf);
}

/* The header a source writes ahead of the data it read in place, with the
 * data, is byte for byte the message mesh_bulk_encode makes; and it is
 * refused where encode refuses. */
static void test_chunk_header_is_the_encoding(void **state)
{
  (void)state;
  static uint8_t data[MESH_BULK_CHUNK_MAX];
  static uint8_t msg[MESH_BULK_CHUNK_HDR_MAX + MESH_BULK_CHUNK_MAX];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t)(i * 13 + 1);
  const struct {
    uint64_t id, offset;
    size_t n;
  } cases[] = {{1, 0, 1},
               {127, 127, 127},
               {128, 128, 128},
               {5, 0, 65536},
               {UINT64_MAX, UINT64_MAX - MESH_BULK_CHUNK_MAX, MESH_BULK_CHUNK_MAX},
               {300, 1ull << 40, MESH_BULK_CHUNK_SEND}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    size_t len;
    uint8_t *enc = encode_chunk(cases[k].id, cases[k].offset, data, cases[k].n, &len);
    size_t hl = mesh_bulk_chunk_header(cases[k].id, cases[k].offset, cases[k].n, msg);
    assert_true(hl > 0 && hl <= MESH_BULK_CHUNK_HDR_MAX);
    memcpy(msg + hl, data, cases[k].n);
    assert_int_equal(hl + cases[k].n, len);
    assert_memory_equal(msg, enc, len);
    free(enc);
  }
  uint8_t hdr[MESH_BULK_CHUNK_HDR_MAX];
  assert_int_equal(mesh_bulk_chunk_header(0, 0, 10, hdr), 0);
  assert_int_equal(mesh_bulk_chunk_header(1, 0, 0, hdr), 0);
  assert_int_equal(mesh_bulk_chunk_header(1, 0, MESH_BULK_CHUNK_MAX + 1, hdr), 0);
  assert_int_equal(mesh_bulk_chunk_header(1, UINT64_MAX, 1, hdr), 0);
  mesh_bulk_msg past = {
      .kind = MESH_BULK_CHUNK, .id = 1, .offset = UINT64_MAX, .data = data, .data_len = 1};
  uint8_t *enc;
  size_t len;
  assert_int_equal(mesh_bulk_encode(&past, &enc, &len), -EINVAL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chunk_header_is_the_encoding),
      cmocka_unit_test(test_chunk_read_in_place),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_paths_refused),
      cmocka_unit_test(test_bounds_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
