/*
 * RDMA without a device: the attribute encoding and its bounds, the frame
 * keys both ends derive, the replay window over lost and reordered frames,
 * and the decisions taken when RDMA is not there (TCP alone, or a refusal
 * to start when RDMA is required).
 */
#include "net/rdma.h"
#include "src/base/err.h"

#include <errno.h>
#include <event2/event.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

static mesh_rdma_attr sample(void)
{
  mesh_rdma_attr a;
  memset(&a, 0, sizeof a);
  static const uint8_t gid[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 88, 0, 1};
  memcpy(a.gid, gid, sizeof gid);
  a.qpn = 0x11;
  a.psn = 0xabcdef;
  a.mtu = 1024;
  a.buf_size = 65536;
  a.depth = 32;
  memset(a.kx_public, 7, sizeof a.kx_public);
  return a;
}

static void test_attr_roundtrip(void **st)
{
  (void)st;
  mesh_rdma_attr a = sample(), b;
  uint8_t buf[MESH_RDMA_ATTR_MAX];
  size_t len;
  assert_int_equal(mesh_rdma_attr_encode(&a, buf, sizeof buf, &len), 0);
  assert_true(len <= MESH_RDMA_ATTR_MAX);
  assert_int_equal(mesh_rdma_attr_decode(buf, len, &b), 0);
  assert_memory_equal(&a, &b, sizeof a);
  /* Too small an output is refused, not overrun. */
  assert_int_equal(mesh_rdma_attr_encode(&a, buf, 10, &len), -ENOSPC);
}

static int encode_decode(mesh_rdma_attr a)
{
  uint8_t buf[MESH_RDMA_ATTR_MAX];
  size_t len;
  assert_int_equal(mesh_rdma_attr_encode(&a, buf, sizeof buf, &len), 0);
  mesh_rdma_attr b;
  return mesh_rdma_attr_decode(buf, len, &b);
}

static void test_attr_bounds(void **st)
{
  (void)st;
  mesh_rdma_attr a = sample();
  a.qpn = 1; /* the management queue pairs are never a peer's */
  assert_int_equal(encode_decode(a), -EBADMSG);
  a = sample();
  a.qpn = 1u << 24;
  assert_int_equal(encode_decode(a), -EBADMSG);
  a = sample();
  a.psn = 1u << 24;
  assert_int_equal(encode_decode(a), -EBADMSG);
  a = sample();
  a.mtu = 1500;
  assert_int_equal(encode_decode(a), -EBADMSG);
  a = sample();
  a.buf_size = MESH_RDMA_BUF_MIN - 1;
  assert_int_equal(encode_decode(a), -EBADMSG);
  a = sample();
  a.buf_size = MESH_RDMA_BUF_MAX + 1;
  assert_int_equal(encode_decode(a), -EBADMSG);
  a = sample();
  a.depth = 0;
  assert_int_equal(encode_decode(a), -EBADMSG);
  a = sample();
  a.depth = MESH_RDMA_DEPTH_MAX + 1;
  assert_int_equal(encode_decode(a), -EBADMSG);
  for (uint32_t mtu = 256; mtu <= 4096; mtu *= 2) {
    a = sample();
    a.mtu = mtu;
    assert_int_equal(encode_decode(a), 0);
  }

  mesh_rdma_attr b;
  uint8_t junk[MESH_RDMA_ATTR_MAX + 1];
  memset(junk, 0xff, sizeof junk);
  assert_int_equal(mesh_rdma_attr_decode(junk, sizeof junk, &b), -EMSGSIZE);
  assert_int_equal(mesh_rdma_attr_decode(junk, 0, &b), -EBADMSG);
  assert_int_equal(mesh_rdma_attr_decode(junk, 20, &b), -EBADMSG);
  /* An empty message decodes as version 0: another version. */
  static const uint8_t v2[] = {0x08, 0x02};
  assert_int_equal(mesh_rdma_attr_decode(v2, sizeof v2, &b), -EPROTONOSUPPORT);
}

typedef struct pair {
  mesh_rdma_link d, l; /* dialer's and listener's */
} pair;

static void make_pair(pair *p, const mesh_psk *psk)
{
  uint8_t dpk[32], dsk[32], lpk[32], lsk[32];
  mesh_rdma_kx_keypair(dpk, dsk);
  mesh_rdma_kx_keypair(lpk, lsk);
  mesh_rdma_attr da = sample(), la = sample();
  memcpy(da.kx_public, dpk, 32);
  memcpy(la.kx_public, lpk, 32);
  la.qpn = 0x12;
  uint8_t de[MESH_RDMA_ATTR_MAX], le[MESH_RDMA_ATTR_MAX];
  size_t dn, ln;
  assert_int_equal(mesh_rdma_attr_encode(&da, de, sizeof de, &dn), 0);
  assert_int_equal(mesh_rdma_attr_encode(&la, le, sizeof le, &ln), 0);
  assert_int_equal(mesh_rdma_link_init(&p->d, true, psk, dsk, dpk, lpk, de, dn, le, ln), 0);
  assert_int_equal(mesh_rdma_link_init(&p->l, false, psk, lsk, lpk, dpk, le, ln, de, dn), 0);
}

static size_t seal(mesh_rdma_link *l, const char *text, uint8_t *out, size_t cap)
{
  mesh_frame f = {.type = MESH_FRAME_DATA,
                  .channel = 1,
                  .flags = 3,
                  .total = (uint32_t)strlen(text),
                  .payload = (const uint8_t *)text,
                  .len = strlen(text)};
  size_t n;
  assert_int_equal(mesh_rdma_link_seal(l, &f, out, cap, &n), 0);
  return n;
}

static mesh_rdma_verdict open_copy(mesh_rdma_link *l, const uint8_t *wire, size_t n, mesh_frame *f,
                                   uint8_t *scratch)
{
  memcpy(scratch, wire, n);
  return mesh_rdma_link_open(l, scratch, n, f);
}

/* The frame size of a path: the smaller buffer of the two sides, the same
 * whichever side computes it; nothing below the 4 KiB floor, which the
 * attributes refuse and the options too. */
static void test_frame_size_negotiation(void **st)
{
  (void)st;
  const uint32_t floor = MESH_RDMA_FRAME_FLOOR;
  assert_int_equal(floor, 4096);
  struct {
    uint32_t a, b, want;
  } cases[] = {
      {65536, 65536, 65536}, /* two Linux nodes at the default */
      {65536, 4096, 4096},   /* a Mac on older macOS: 4 KiB both ways */
      {16384, 65536, 16384}, /* a Mac that says it can take more */
      {4096, 4096, 4096},    /* the floor */
      {4095, 65536, 0},      /* below the floor: no path */
      {65536, 256, 0},
      {MESH_RDMA_BUF_MAX, MESH_RDMA_BUF_MAX, MESH_RDMA_BUF_MAX},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(mesh_rdma_frame_size(cases[i].a, cases[i].b), cases[i].want);
    assert_int_equal(mesh_rdma_frame_size(cases[i].b, cases[i].a), cases[i].want);
  }
  /* What each side advertises goes through the signed attributes. */
  mesh_rdma_attr a = sample();
  a.buf_size = floor;
  assert_int_equal(encode_decode(a), 0);
  a.buf_size = floor - 1;
  assert_int_equal(encode_decode(a), -EBADMSG);

  /* The device options stay within Apple's Thunderbolt 5 limits. */
  mesh_rdma_dev_options o;
  mesh_rdma_dev_options_default(&o);
  char why[200] = "";
  assert_int_equal(mesh_rdma_dev_options_check(&o, why, sizeof why), 0);
  assert_true(o.max_qps <= MESH_RDMA_APPLE_MAX_QPS && o.depth <= MESH_RDMA_APPLE_RECV_DEPTH &&
              o.send_depth <= MESH_RDMA_APPLE_SEND_DEPTH && o.buf_size >= floor);
  o.depth = MESH_RDMA_APPLE_RECV_DEPTH;
  o.send_depth = MESH_RDMA_APPLE_SEND_DEPTH;
  o.max_qps = MESH_RDMA_APPLE_MAX_QPS;
  o.buf_size = floor;
  assert_int_equal(mesh_rdma_dev_options_check(&o, why, sizeof why), 0);
  mesh_rdma_dev_options bad = o;
  bad.depth++;
  assert_int_equal(mesh_rdma_dev_options_check(&bad, why, sizeof why), -EINVAL);
  assert_non_null(strstr(why, "63 receives"));
  bad = o;
  bad.send_depth++;
  assert_int_equal(mesh_rdma_dev_options_check(&bad, why, sizeof why), -EINVAL);
  bad = o;
  bad.max_qps++;
  assert_int_equal(mesh_rdma_dev_options_check(&bad, why, sizeof why), -EINVAL);
  bad = o;
  bad.buf_size = floor - 1;
  assert_int_equal(mesh_rdma_dev_options_check(&bad, why, sizeof why), -EINVAL);
}

static void test_link_keys(void **st)
{
  (void)st;
  mesh_psk psk;
  memset(psk.key, 9, sizeof psk.key);
  pair p;
  make_pair(&p, &psk);
  /* Each direction has its own key; each end's send key is the other's
   * receive key. */
  assert_memory_equal(p.d.tx.key, p.l.rx.key, MESH_FRAME_KEY_LEN);
  assert_memory_equal(p.l.tx.key, p.d.rx.key, MESH_FRAME_KEY_LEN);
  assert_memory_not_equal(p.d.tx.key, p.l.tx.key, MESH_FRAME_KEY_LEN);

  uint8_t w[256], s[256];
  mesh_frame f;
  size_t n = seal(&p.d, "probe", w, sizeof w);
  assert_int_equal(open_copy(&p.l, w, n, &f, s), MESH_RDMA_OK);
  assert_int_equal(f.len, 5);
  assert_memory_equal(f.payload, "probe", 5);
  n = seal(&p.l, "ack", w, sizeof w);
  assert_int_equal(open_copy(&p.d, w, n, &f, s), MESH_RDMA_OK);
  assert_memory_equal(f.payload, "ack", 3);

  /* Another swarm key gives other keys: nothing opens. */
  mesh_psk other;
  memset(other.key, 8, sizeof other.key);
  pair q;
  make_pair(&q, &other);
  for (int i = 0; i < 5; i++) /* past the counters p.l has seen */
    n = seal(&q.d, "probe", w, sizeof w);
  assert_int_equal(open_copy(&p.l, w, n, &f, s), MESH_RDMA_AUTH);

  /* A peer key of all zeros (a low-order point) is refused. */
  uint8_t pk[32], sk[32], zero[32] = {0};
  mesh_rdma_kx_keypair(pk, sk);
  mesh_rdma_link bad;
  assert_int_equal(mesh_rdma_link_init(&bad, true, &psk, sk, pk, zero, w, 1, w, 1), -MESH_EAUTH);
}

static void test_window(void **st)
{
  (void)st;
  mesh_psk psk;
  memset(psk.key, 9, sizeof psk.key);
  pair p;
  make_pair(&p, &psk);
  enum { N = 200 };
  static uint8_t w[N][128];
  size_t n[N];
  for (int i = 0; i < N; i++)
    n[i] = seal(&p.d, "datagram", w[i], sizeof w[i]);
  uint8_t s[128];
  mesh_frame f;

  /* In order, then each again: a replay. */
  assert_int_equal(open_copy(&p.l, w[0], n[0], &f, s), MESH_RDMA_OK);
  assert_int_equal(open_copy(&p.l, w[0], n[0], &f, s), MESH_RDMA_REPLAY);
  /* Frames 1..9 lost; 10 arrives: a gap is not an error over UC. */
  assert_int_equal(open_copy(&p.l, w[10], n[10], &f, s), MESH_RDMA_OK);
  /* 5 arrives late (reordered): accepted once, then a replay. */
  assert_int_equal(open_copy(&p.l, w[5], n[5], &f, s), MESH_RDMA_OK);
  assert_int_equal(open_copy(&p.l, w[5], n[5], &f, s), MESH_RDMA_REPLAY);
  assert_int_equal(open_copy(&p.l, w[10], n[10], &f, s), MESH_RDMA_REPLAY);
  /* Jump far ahead: everything MESH_RDMA_WINDOW or more behind is refused,
   * what is inside the window and unseen is accepted. */
  assert_int_equal(open_copy(&p.l, w[150], n[150], &f, s), MESH_RDMA_OK);
  assert_int_equal(open_copy(&p.l, w[150 - MESH_RDMA_WINDOW], n[150 - MESH_RDMA_WINDOW], &f, s),
                   MESH_RDMA_REPLAY);
  assert_int_equal(
      open_copy(&p.l, w[150 - MESH_RDMA_WINDOW + 1], n[150 - MESH_RDMA_WINDOW + 1], &f, s),
      MESH_RDMA_OK);
  assert_int_equal(open_copy(&p.l, w[149], n[149], &f, s), MESH_RDMA_OK);
  assert_int_equal(open_copy(&p.l, w[11], n[11], &f, s), MESH_RDMA_REPLAY);

  /* A forged frame does not move the window: the real one still opens. */
  memcpy(s, w[151], n[151]);
  s[n[151] - 1] ^= 1;
  assert_int_equal(mesh_rdma_link_open(&p.l, s, n[151], &f), MESH_RDMA_AUTH);
  /* A forged counter far ahead does not either. */
  memcpy(s, w[152], n[152]);
  s[MESH_FRAME_LEN_SIZE] = 0x7f;
  assert_int_equal(mesh_rdma_link_open(&p.l, s, n[152], &f), MESH_RDMA_AUTH);
  assert_int_equal(open_copy(&p.l, w[151], n[151], &f, s), MESH_RDMA_OK);
  assert_int_equal(open_copy(&p.l, w[152], n[152], &f, s), MESH_RDMA_OK);

  /* Truncated and padded frames are malformed, before any crypto. */
  assert_int_equal(open_copy(&p.l, w[153], n[153] - 1, &f, s), MESH_RDMA_MALFORMED);
  assert_int_equal(open_copy(&p.l, w[153], 3, &f, s), MESH_RDMA_MALFORMED);
  assert_int_equal(open_copy(&p.l, w[153], n[153], &f, s), MESH_RDMA_OK);
}

/* On a machine without RDMA (this one: no device, or no verbs at all). */
static void test_no_rdma(void **st)
{
  (void)st;
  mesh_rdma_dev_options o;
  mesh_rdma_dev_options_default(&o);
  o.device = "meshd-test-no-such-device";
  mesh_rdma_dev *d = NULL;
  char why[200] = "";
  int rc = mesh_rdma_dev_open(&o, &d, why, sizeof why);
  assert_true(rc == -ENOSYS || rc == -ENODEV);
  assert_null(d);
  assert_true(strlen(why) > 0);

  /* Bad options are refused with a reason before any device is touched. */
  o.buf_size = 10;
  assert_int_equal(mesh_rdma_dev_open(&o, &d, why, sizeof why), -EINVAL);
  mesh_rdma_dev_options_default(&o);
  o.addr = "not-an-address";
  assert_int_equal(mesh_rdma_dev_open(&o, &d, why, sizeof why), -EINVAL);
  assert_non_null(strstr(why, "not-an-address"));
}

/* The transport cannot be registered except through mesh_rdma_attach,
 * which refuses (required) or declines (not required) without RDMA. */
static void test_attach_without_rdma(void **st)
{
  (void)st;
  struct event_base *base = event_base_new();
  assert_non_null(base);
  mesh_identity id;
  memset(&id, 0, sizeof id);
  crypto_sign_keypair(id.pk, id.sk);
  mesh_net_options opt;
  mesh_net_options_default(&opt);
  opt.identity = &id;
  opt.base = base;
  mesh_net *net;
  assert_int_equal(mesh_net_new(&opt, &net), 0);

  /* Registered directly, without a device: refused. */
  assert_int_equal(mesh_net_register(net, &mesh_rdma_transport), -EINVAL);

  mesh_rdma_config c;
  mesh_rdma_config_default(&c);
  c.dev.device = "meshd-test-no-such-device";
  char why[200] = "";
  int rc = mesh_rdma_attach(net, &c, why, sizeof why);
  assert_true(rc == -ENOSYS || rc == -ENODEV);
  assert_true(strlen(why) > 0);
  c.required = true;
  why[0] = 0;
  rc = mesh_rdma_attach(net, &c, why, sizeof why);
  assert_true(rc == -ENOSYS || rc == -ENODEV);
  assert_true(strlen(why) > 0);
  /* TCP alone: no rdma scheme, no stats, datagrams have no RDMA route. */
  assert_int_equal(mesh_net_transport_count(net), 1);
  assert_null(mesh_net_counters_of(net, "rdma"));
  mesh_rdma_stats s;
  assert_int_equal(mesh_rdma_stats_of(net, &s), -ENOENT);

  /* Nonsense timings are refused before the device is looked at. */
  mesh_rdma_config_default(&c);
  c.dead_ms = c.keepalive_ms;
  assert_int_equal(mesh_rdma_attach(net, &c, why, sizeof why), -EINVAL);
  mesh_rdma_config_default(&c);
  c.poll_budget_ms = 1001; /* more than a second per second */
  assert_int_equal(mesh_rdma_attach(net, &c, why, sizeof why), -EINVAL);
  /* No RDMA transport: no queue pair to reset. */
  mesh_peer_id nobody;
  memset(&nobody, 0, sizeof nobody);
  assert_int_equal(mesh_rdma_reset_peer(net, &nobody), -ENOENT);

  mesh_net_free(net);
  event_base_free(base);
}

static void test_keepalive_codec(void **st)
{
  (void)st;
  mesh_rdma_keepalive k = {.hears = true, .qpn = 0x123456, .psn = 0xabcdef}, out;
  uint8_t buf[MESH_RDMA_KEEPALIVE_MAX];
  size_t len;
  assert_int_equal(mesh_rdma_keepalive_encode(&k, buf, sizeof buf, &len), 0);
  assert_true(len <= MESH_RDMA_KEEPALIVE_MAX);
  assert_int_equal(mesh_rdma_keepalive_decode(buf, len, &out), 0);
  assert_true(out.hears);
  assert_int_equal(out.qpn, k.qpn);
  assert_int_equal(out.psn, k.psn);
  assert_int_equal(mesh_rdma_keepalive_encode(&k, buf, 3, &len), -ENOSPC);
  /* Out of range: a management queue pair, more than 24 bits, no qpn. */
  const uint32_t bad_qpn[] = {0, 1, 0x1000000};
  for (size_t i = 0; i < sizeof bad_qpn / sizeof bad_qpn[0]; i++) {
    mesh_rdma_keepalive b = k;
    b.qpn = bad_qpn[i];
    assert_int_equal(mesh_rdma_keepalive_encode(&b, buf, sizeof buf, &len), 0);
    assert_int_equal(mesh_rdma_keepalive_decode(buf, len, &out), -EBADMSG);
  }
  mesh_rdma_keepalive b = k;
  b.psn = 0x1000000;
  assert_int_equal(mesh_rdma_keepalive_encode(&b, buf, sizeof buf, &len), 0);
  assert_int_equal(mesh_rdma_keepalive_decode(buf, len, &out), -EBADMSG);
  /* The one-byte keepalive of before is not a keepalive now. */
  const uint8_t old[1] = {1};
  assert_int_equal(mesh_rdma_keepalive_decode(old, sizeof old, &out), -EBADMSG);
  uint8_t big[MESH_RDMA_KEEPALIVE_MAX + 1];
  memset(big, 0, sizeof big);
  assert_int_equal(mesh_rdma_keepalive_decode(big, sizeof big, &out), -EMSGSIZE);
}

int main(void)
{
  if (sodium_init() < 0)
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_attr_roundtrip),  cmocka_unit_test(test_attr_bounds),
      cmocka_unit_test(test_link_keys),       cmocka_unit_test(test_window),
      cmocka_unit_test(test_no_rdma),         cmocka_unit_test(test_attach_without_rdma),
      cmocka_unit_test(test_keepalive_codec), cmocka_unit_test(test_frame_size_negotiation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
