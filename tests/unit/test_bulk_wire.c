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
  free(buf);
  assert_int_equal(d.kind, MESH_BULK_CHUNK);
  assert_int_equal(d.offset, 42);
  assert_int_equal(d.data_len, sizeof data);
  assert_memory_equal(d.data, data, sizeof data);
  mesh_bulk_msg_clear(&d);

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

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_paths_refused),
      cmocka_unit_test(test_bounds_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
