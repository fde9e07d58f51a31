/*
 * Sequenced bulk over RDMA (net/rdma_bulk.h) without a device: a sender and
 * a receiver joined by a lossy frame pipe and a reliable TCP pipe, driven by
 * a clock the test moves, must deliver every message once and in order
 * whatever frames are lost, and keep the credit and the path order.
 */
#include "coord/bulk_wire.h"
#include "net/frame.h"
#include "net/rdma_bulk.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define FB 100   /* message bytes per frame */
#define CREDIT 8 /* frames */
#define RTO 50

typedef struct pair {
  mesh_rbulk_tx tx;
  mesh_rbulk_rx rx;
  mesh_time_ms now;
  uint64_t delivered;   /* messages delivered */
  uint64_t frame_count; /* frames posted */
  uint64_t drop_nth;    /* lose frame number n (1-based), 0 none */
  uint64_t drop_every;  /* lose every n-th frame, 0 none */
} pair;

static void fill(uint8_t *b, size_t len, uint64_t seq)
{
  for (size_t i = 0; i < len; i++)
    b[i] = (uint8_t)(seq * 31 + i);
}

static void check_msg(pair *p, const uint8_t *m, size_t len)
{
  uint8_t want[1000];
  assert_true(len <= sizeof want);
  fill(want, len, p->delivered);
  assert_memory_equal(m, want, len);
  p->delivered++;
}

static void receiver_nack(pair *p)
{
  uint64_t seq;
  if (mesh_rbulk_rx_take_nack(&p->rx, &seq))
    assert_int_equal(mesh_rbulk_tx_nack(&p->tx, seq), 0);
}

/* Moves everything that waits: frames (some lost), TCP copies, acks. */
static void pump(pair *p)
{
  uint64_t seq;
  size_t off, total, len;
  const uint8_t *data;
  while (mesh_rbulk_tx_frame(&p->tx, &seq, &off, &total, &data, &len)) {
    p->frame_count++;
    mesh_rbulk_tx_frame_sent(&p->tx, p->now);
    bool lost = p->frame_count == p->drop_nth ||
                (p->drop_every != 0 && p->frame_count % p->drop_every == 0);
    if (lost)
      continue;
    const uint8_t *m;
    size_t mlen;
    mesh_rbulk_verdict v = mesh_rbulk_rx_frame(&p->rx, seq, off, total, data, len, &m, &mlen);
    if (v == MESH_RBULK_DELIVER) {
      check_msg(p, m, mlen);
      assert_int_equal(mesh_rbulk_tx_ack(&p->tx, p->rx.next), 0);
    }
    receiver_nack(p);
  }
  while (mesh_rbulk_tx_tcp(&p->tx, &seq, &data, &len)) {
    mesh_rbulk_tx_tcp_sent(&p->tx);
    mesh_rbulk_verdict v = mesh_rbulk_rx_tcp(&p->rx, seq);
    if (v == MESH_RBULK_DELIVER) {
      check_msg(p, data, len);
      assert_int_equal(mesh_rbulk_tx_ack(&p->tx, p->rx.next), 0);
    }
    receiver_nack(p);
  }
}

static void setup(pair *p)
{
  memset(p, 0, sizeof *p);
  mesh_rbulk_tx_init(&p->tx, FB, CREDIT, RTO);
  mesh_rbulk_rx_init(&p->rx, 1000);
  p->now = 1000;
}

static void teardown(pair *p)
{
  mesh_rbulk_tx_clear(&p->tx);
  mesh_rbulk_rx_clear(&p->rx);
}

/* Sends n messages of len bytes, pumping and advancing the clock while the
 * sender says -EAGAIN; returns how many went over RDMA. */
static uint64_t run(pair *p, uint64_t n, size_t len, bool rdma)
{
  uint8_t buf[1000];
  uint64_t over_rdma = 0;
  for (uint64_t i = 0; i < n; i++) {
    fill(buf, len, i);
    bool via;
    int rc;
    int turns = 0;
    while ((rc = mesh_rbulk_tx_submit(&p->tx, buf, len, rdma, &via)) == -EAGAIN) {
      pump(p);
      p->now += 10;
      mesh_rbulk_tx_tick(&p->tx, p->now);
      assert_true(++turns < 1000);
    }
    assert_int_equal(rc, 0);
    over_rdma += via;
    /* Only part of the pipe is moved at once, so frames of several
     * messages are in flight when something is lost. */
    if (i % 3 == 2)
      pump(p);
  }
  for (int turns = 0; !mesh_rbulk_tx_idle(&p->tx); turns++) {
    assert_true(turns < 1000);
    pump(p);
    p->now += 10;
    mesh_rbulk_tx_tick(&p->tx, p->now);
  }
  pump(p);
  return over_rdma;
}

static void test_lossless_all_over_rdma(void **state)
{
  (void)state;
  pair p;
  setup(&p);
  assert_int_equal(run(&p, 50, 250, true), 50);
  assert_int_equal(p.delivered, 50);
  assert_int_equal(p.frame_count, 150); /* 250 bytes: 3 frames each */
  assert_int_equal(p.tx.fallbacks, 0);
  assert_int_equal(p.rx.gaps, 0);
  assert_int_equal(p.tx.frames_out, 0);
  teardown(&p);
}

/* A lost frame in the middle: the next frame shows the gap, the NACK sends
 * everything from the receiver's next over TCP, all arrives once. */
static void test_gap_falls_back_to_tcp(void **state)
{
  (void)state;
  pair p;
  setup(&p);
  p.drop_nth = 5;
  /* Messages 0-2 were given to RDMA before the gap was seen (a pump every
   * third message); 1 and 2 go again over TCP, every later one over RDMA. */
  assert_int_equal(run(&p, 20, 250, true), 20);
  assert_int_equal(p.delivered, 20);
  assert_true(p.rx.gaps >= 1);
  assert_int_equal(p.tx.fallbacks, 1);
  assert_int_equal(p.tx.timeouts, 0);
  assert_true(p.tx.resent >= 1);
  assert_int_equal(p.tx.frames_out, 0);
  /* Back on RDMA afterwards: the last messages went as frames. */
  assert_false(p.tx.tcp_mode);
  teardown(&p);
}

/* The very last frame lost: no later frame shows a gap; the timeout does. */
static void test_tail_loss_times_out(void **state)
{
  (void)state;
  pair p;
  setup(&p);
  p.drop_nth = 6; /* message 1's last frame, the last of all */
  run(&p, 2, 250, true);
  assert_int_equal(p.delivered, 2);
  assert_int_equal(p.tx.timeouts, 1);
  assert_int_equal(p.tx.fallbacks, 1);
  assert_int_equal(p.rx.gaps, 0);
  teardown(&p);
}

/* Heavy loss: every 4th frame. Still every message, once, in order. */
static void test_heavy_loss_still_exact(void **state)
{
  (void)state;
  pair p;
  setup(&p);
  p.drop_every = 4;
  run(&p, 200, 230, true);
  assert_int_equal(p.delivered, 200);
  assert_true(p.tx.fallbacks > 0);
  teardown(&p);
}

/* The credit is never exceeded, and a message larger than the credit goes
 * over TCP once nothing is in flight. */
static void test_credit_and_oversize(void **state)
{
  (void)state;
  pair p;
  setup(&p);
  uint8_t buf[1000];
  bool via;
  fill(buf, 300, 0);
  assert_int_equal(mesh_rbulk_tx_submit(&p.tx, buf, 300, true, &via), 0); /* 3 frames */
  assert_true(via);
  fill(buf, 300, 1);
  assert_int_equal(mesh_rbulk_tx_submit(&p.tx, buf, 300, true, &via), 0); /* 6 */
  fill(buf, 300, 2);
  assert_int_equal(mesh_rbulk_tx_submit(&p.tx, buf, 300, true, &via), -EAGAIN); /* 9 > 8 */
  assert_int_equal(p.tx.frames_out, 6);
  /* 900 bytes = 9 frames: never over RDMA; it must wait for the two above. */
  fill(buf, 900, 2);
  assert_int_equal(mesh_rbulk_tx_submit(&p.tx, buf, 900, true, &via), -EAGAIN);
  pump(&p);
  assert_int_equal(p.delivered, 2);
  assert_int_equal(mesh_rbulk_tx_submit(&p.tx, buf, 900, true, &via), 0);
  assert_false(via);
  pump(&p);
  assert_int_equal(p.delivered, 3);
  /* Then RDMA again. */
  fill(buf, 100, 3);
  assert_int_equal(mesh_rbulk_tx_submit(&p.tx, buf, 100, true, &via), 0);
  assert_true(via);
  pump(&p);
  assert_int_equal(p.delivered, 4);
  teardown(&p);
}

/* No RDMA path: TCP copies with sequence numbers, in order. */
static void test_path_down_uses_tcp(void **state)
{
  (void)state;
  pair p;
  setup(&p);
  assert_int_equal(run(&p, 30, 250, false), 0);
  assert_int_equal(p.delivered, 30);
  assert_int_equal(p.tx.fallbacks, 0);
  teardown(&p);
}

static void test_receiver_rules(void **state)
{
  (void)state;
  mesh_rbulk_rx rx;
  mesh_rbulk_rx_init(&rx, 1000);
  const uint8_t *m;
  size_t ml;
  uint8_t d[10] = {0};
  uint64_t seq;
  /* Out of range. */
  assert_int_equal(mesh_rbulk_rx_frame(&rx, 0, 0, 2000, d, 10, &m, &ml), MESH_RBULK_BAD);
  assert_int_equal(mesh_rbulk_rx_frame(&rx, 0, 15, 20, d, 10, &m, &ml), MESH_RBULK_BAD);
  assert_int_equal(mesh_rbulk_rx_frame(&rx, 0, 0, 20, d, 0, &m, &ml), MESH_RBULK_BAD);
  /* A later part first: a gap, one NACK for it however many follow. */
  assert_int_equal(mesh_rbulk_rx_frame(&rx, 0, 10, 20, d, 10, &m, &ml), MESH_RBULK_GAP);
  assert_true(mesh_rbulk_rx_take_nack(&rx, &seq));
  assert_int_equal(seq, 0);
  assert_int_equal(mesh_rbulk_rx_frame(&rx, 1, 0, 20, d, 10, &m, &ml), MESH_RBULK_GAP);
  assert_false(mesh_rbulk_rx_take_nack(&rx, &seq));
  /* The TCP copy delivers; its RDMA copy afterwards is a duplicate. */
  assert_int_equal(mesh_rbulk_rx_tcp(&rx, 0), MESH_RBULK_DELIVER);
  assert_int_equal(mesh_rbulk_rx_frame(&rx, 0, 0, 10, d, 10, &m, &ml), MESH_RBULK_DUP);
  assert_int_equal(mesh_rbulk_rx_tcp(&rx, 0), MESH_RBULK_DUP);
  /* A total that changes within a message is refused. */
  assert_int_equal(mesh_rbulk_rx_frame(&rx, 1, 0, 20, d, 10, &m, &ml), MESH_RBULK_PARTIAL);
  assert_int_equal(mesh_rbulk_rx_frame(&rx, 1, 10, 30, d, 10, &m, &ml), MESH_RBULK_BAD);
  assert_int_equal(rx.dups, 2);
  mesh_rbulk_rx_clear(&rx);
  /* The sender refuses acknowledgements of what it never sent. */
  mesh_rbulk_tx tx;
  mesh_rbulk_tx_init(&tx, FB, CREDIT, RTO);
  assert_int_equal(mesh_rbulk_tx_ack(&tx, 1), -EPROTO);
  assert_int_equal(mesh_rbulk_tx_nack(&tx, 1), -EPROTO);
  mesh_rbulk_tx_clear(&tx);
}

static void test_headers(void **state)
{
  (void)state;
  uint8_t b[MESH_RBULK_FRAME_HDR];
  uint64_t seq;
  uint32_t off;
  mesh_rbulk_put_frame_hdr(b, 0x0102030405060708ull, 0xa0b0c0d0u);
  mesh_rbulk_get_frame_hdr(b, &seq, &off);
  assert_true(seq == 0x0102030405060708ull);
  assert_true(off == 0xa0b0c0d0u);
  uint8_t t[MESH_RBULK_TCP_HDR];
  uint8_t kind;
  mesh_rbulk_put_tcp_hdr(t, MESH_RBULK_NACK, 77);
  assert_int_equal(mesh_rbulk_get_tcp_hdr(t, sizeof t, &kind, &seq), 0);
  assert_int_equal(kind, MESH_RBULK_NACK);
  assert_int_equal(seq, 77);
  assert_int_equal(mesh_rbulk_get_tcp_hdr(t, 8, &kind, &seq), -EBADMSG);
  t[0] = 9;
  assert_int_equal(mesh_rbulk_get_tcp_hdr(t, sizeof t, &kind, &seq), -EBADMSG);
}

/* A source's chunk, with the largest id and offset, fills whole bulk frames
 * of 16, 32 and 64 KiB, and leaves at most one part-filled frame at 4 and
 * 8 KiB (coord/bulk_wire.h's MESH_BULK_CHUNK_SEND). */
static void test_chunk_fills_whole_frames(void **state)
{
  (void)state;
  static uint8_t data[MESH_BULK_CHUNK_SEND];
  mesh_bulk_msg m = {.kind = MESH_BULK_CHUNK,
                     .id = UINT64_MAX,
                     .offset = UINT64_MAX - MESH_BULK_CHUNK_SEND,
                     .data = data,
                     .data_len = sizeof data};
  uint8_t *enc;
  size_t len;
  assert_int_equal(mesh_bulk_encode(&m, &enc, &len), 0);
  free(enc);
  assert_true(len - sizeof data < 64);
  const struct {
    size_t frame, frames;
  } fit[] = {{65536, 4}, {32768, 8}, {16384, 16}, {8192, 33}, {4096, 65}};
  for (size_t i = 0; i < sizeof fit / sizeof fit[0]; i++) {
    size_t room = fit[i].frame - mesh_frame_wire_size(MESH_RBULK_FRAME_HDR);
    assert_int_equal((len + room - 1) / room, fit[i].frames);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chunk_fills_whole_frames),
      cmocka_unit_test(test_lossless_all_over_rdma),
      cmocka_unit_test(test_gap_falls_back_to_tcp),
      cmocka_unit_test(test_tail_loss_times_out),
      cmocka_unit_test(test_heavy_loss_still_exact),
      cmocka_unit_test(test_credit_and_oversize),
      cmocka_unit_test(test_path_down_uses_tcp),
      cmocka_unit_test(test_receiver_rules),
      cmocka_unit_test(test_headers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
