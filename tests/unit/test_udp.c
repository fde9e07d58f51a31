/* The UDP transport on loopback: datagrams take UDP once the path answers, streams and big
 * datagrams take TCP, a peer without UDP falls back to TCP, stray packets are counted. */
#include "net/transport.h"
#include "net/udp.h"
#include "src/base/platform.h"
#include "src/daemon/loop.h"
#include "support_loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

typedef struct node {
  mesh_identity id;
  mesh_net *net;
  mesh_multiaddr addr;
  char addr_text[MESH_MULTIADDR_TEXT_MAX + MESH_PEER_ID_TEXT_MAX + 8];
  int got[MESH_CLASS_COUNT]; /* messages received, by class */
  size_t last_len;
  uint8_t last[2048];
} node;

static mesh_loop *loop;
static mesh_psk psk;
/* Link timings of the nodes started next (0: the defaults). */
static mesh_time_ms keepalive_ms, idle_ms;

#define WAIT(cond, ms) LOOP_TEST_WAIT(loop, cond, ms)

static void on_msg(void *arg, const mesh_peer_id *from, uint64_t epoch, mesh_channel ch,
                   mesh_class cls, const uint8_t *buf, size_t len)
{
  (void)from;
  (void)epoch;
  (void)ch;
  node *n = arg;
  n->got[cls]++;
  n->last_len = len < sizeof n->last ? len : sizeof n->last;
  memcpy(n->last, buf, n->last_len);
}

static mesh_time_ms loop_now(void *arg)
{
  return mesh_loop_now(arg);
}

/* A node on 127.0.0.1 with UDP (short path timings) or without. */
static void node_start(node *n, bool udp)
{
  memset(n, 0, sizeof *n);
  assert_int_equal(mesh_identity_generate(&n->id), 0);
  mesh_net_options o;
  mesh_net_options_default(&o);
  o.identity = &n->id;
  o.epoch = 1;
  o.psk = psk;
  o.base = mesh_loop_base(loop);
  o.now = loop_now;
  o.now_arg = loop;
  o.rng_seed = 7;
  if (keepalive_ms > 0)
    o.keepalive_ms = keepalive_ms;
  if (idle_ms > 0)
    o.idle_timeout_ms = idle_ms;
  assert_int_equal(mesh_net_new(&o, &n->net), 0);
  mesh_net_on_message(n->net, on_msg, n);
  if (udp) {
    mesh_udp_options uo;
    mesh_udp_options_default(&uo);
    uo.payload_max = 1000;
    uo.path.ping_ms = 50;
    uo.path.probe_ms = 300;
    uo.path.backoff_min_ms = 10000;
    assert_int_equal(mesh_udp_attach(n->net, &uo), 0);
  }
  assert_int_equal(mesh_net_listen(n->net, "/ip4/127.0.0.1/tcp/0", &n->addr), 0);
  char id[MESH_PEER_ID_TEXT_MAX], a[MESH_MULTIADDR_TEXT_MAX];
  mesh_peer_id_to_text(&n->id.id, id, sizeof id);
  assert_int_equal(mesh_multiaddr_format(&n->addr, a, sizeof a), 0);
  snprintf(n->addr_text, sizeof n->addr_text, "%s/p2p/%s", a, id);
}

static void node_stop(node *n)
{
  mesh_net_free(n->net);
  n->net = NULL;
}

static const mesh_transport_counters *ctr(node *n, const char *scheme)
{
  return mesh_net_counters_of(n->net, scheme);
}

static bool path_is(node *n, node *peer, mesh_udp_path_state want)
{
  mesh_udp_path_state s;
  return mesh_udp_path_of(n->net, &peer->id.id, &s) == 0 && s == want;
}

static void connect_pair(node *a, node *b)
{
  assert_int_equal(mesh_net_dial(a->net, b->addr_text, NULL, 1), 0);
  WAIT(ctr(a, "tcp")->peers_up == 1 && ctr(b, "tcp")->peers_up == 1, 3000);
}

static int setup(void **state)
{
  (void)state;
  if (loop == NULL) {
    assert_int_equal(mesh_loop_new(&loop), 0);
    randombytes_buf(psk.key, sizeof psk.key);
  }
  return 0;
}

static void test_datagrams_over_udp(void **state)
{
  (void)state;
  node a, b;
  node_start(&a, true);
  node_start(&b, true);
  connect_pair(&a, &b);
  /* Both ends hear each other's pings: UP on both. */
  WAIT(path_is(&a, &b, MESH_UDP_PATH_UP) && path_is(&b, &a, MESH_UDP_PATH_UP), 3000);
  assert_string_equal(mesh_net_route(a.net, &b.id.id, MESH_CLASS_DATAGRAM), "udp");
  assert_string_equal(mesh_net_route(a.net, &b.id.id, MESH_CLASS_STREAM), "tcp");

  uint64_t tcp_dg = ctr(&a, "tcp")->messages_sent[MESH_CLASS_DATAGRAM];
  uint8_t msg[600];
  randombytes_buf(msg, sizeof msg);
  for (int i = 0; i < 20; i++)
    assert_int_equal(
        mesh_net_send(a.net, &b.id.id, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, msg, sizeof msg), 0);
  WAIT(b.got[MESH_CLASS_DATAGRAM] == 20, 2000);
  assert_int_equal(b.last_len, sizeof msg);
  assert_memory_equal(b.last, msg, sizeof msg);
  assert_true(ctr(&a, "udp")->messages_sent[MESH_CLASS_DATAGRAM] == 20);
  assert_true(ctr(&b, "udp")->messages_received[MESH_CLASS_DATAGRAM] == 20);
  assert_true(ctr(&a, "tcp")->messages_sent[MESH_CLASS_DATAGRAM] == tcp_dg);
  assert_true(ctr(&a, "udp")->bytes_sent >= 20 * (sizeof msg + MESH_UDP_OVERHEAD));

  /* Streams take TCP; a datagram over payload_max too. */
  assert_int_equal(
      mesh_net_send(a.net, &b.id.id, MESH_CH_COORD, MESH_CLASS_STREAM, msg, sizeof msg), 0);
  WAIT(b.got[MESH_CLASS_STREAM] == 1, 2000);
  uint8_t big[1500];
  randombytes_buf(big, sizeof big);
  assert_int_equal(
      mesh_net_send(a.net, &b.id.id, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, big, sizeof big), 0);
  WAIT(b.got[MESH_CLASS_DATAGRAM] == 21, 2000);
  assert_int_equal(b.last_len, sizeof big);
  assert_true(ctr(&a, "tcp")->messages_sent[MESH_CLASS_DATAGRAM] == tcp_dg + 1);
  mesh_udp_stats st;
  assert_int_equal(mesh_udp_stats_of(a.net, &st), 0);
  assert_true(st.too_big == 1);
  assert_true(st.fallbacks == 0);
  assert_true(st.peers_up == 1);
  assert_true(st.sockets == 1);

  /* The link goes with the TCP connection. */
  assert_int_equal(mesh_net_disconnect(a.net, &b.id.id), 0);
  WAIT(ctr(&b, "tcp")->peers_up == 0, 2000);
  mesh_udp_path_state s;
  assert_int_equal(mesh_udp_path_of(a.net, &b.id.id, &s), -ENOENT);

  /* A new connection brings new keys (counters from 0 again, under them)
   * and the path comes up again, dialled the other way this time. */
  assert_int_equal(mesh_net_dial(b.net, a.addr_text, NULL, 2), 0);
  WAIT(ctr(&a, "tcp")->peers_up == 1 && ctr(&b, "tcp")->peers_up == 1, 3000);
  WAIT(path_is(&a, &b, MESH_UDP_PATH_UP) && path_is(&b, &a, MESH_UDP_PATH_UP), 3000);
  assert_int_equal(
      mesh_net_send(b.net, &a.id.id, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, msg, sizeof msg), 0);
  WAIT(a.got[MESH_CLASS_DATAGRAM] == 1, 2000);
  assert_true(ctr(&a, "udp")->messages_received[MESH_CLASS_DATAGRAM] == 1);
  assert_int_equal(mesh_udp_stats_of(b.net, &st), 0);
  assert_true(st.replays == 0 && st.auth_failures == 0 && st.unknown_index == 0);
  node_stop(&a);
  node_stop(&b);
}

/* b has no UDP socket (as behind a firewall that drops it): a's pings go
 * unanswered, its path falls back, and datagrams arrive over TCP. */
static void test_unreachable_falls_back_to_tcp(void **state)
{
  (void)state;
  node a, b;
  node_start(&a, true);
  node_start(&b, false);
  connect_pair(&a, &b);
  assert_true(path_is(&a, &b, MESH_UDP_PATH_PROBING));
  /* Probing: datagrams take TCP already. */
  assert_string_equal(mesh_net_route(a.net, &b.id.id, MESH_CLASS_DATAGRAM), "tcp");
  uint8_t msg[100] = {1, 2, 3};
  assert_int_equal(
      mesh_net_send(a.net, &b.id.id, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, msg, sizeof msg), 0);
  WAIT(b.got[MESH_CLASS_DATAGRAM] == 1, 2000);
  WAIT(path_is(&a, &b, MESH_UDP_PATH_FALLBACK), 3000);
  mesh_udp_stats st;
  assert_int_equal(mesh_udp_stats_of(a.net, &st), 0);
  assert_true(st.fallbacks == 1);
  assert_true(st.peers_fallback == 1);
  assert_true(st.peers_up == 0);
  assert_true(st.pings_sent >= 2);
  assert_string_equal(mesh_net_route(a.net, &b.id.id, MESH_CLASS_DATAGRAM), "tcp");
  assert_int_equal(
      mesh_net_send(a.net, &b.id.id, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, msg, sizeof msg), 0);
  WAIT(b.got[MESH_CLASS_DATAGRAM] == 2, 2000);
  assert_true(ctr(&a, "udp")->messages_sent[MESH_CLASS_DATAGRAM] == 0);
  assert_true(ctr(&a, "tcp")->messages_sent[MESH_CLASS_DATAGRAM] == 2);
  node_stop(&a);
  node_stop(&b);
}

/* Turns the loop for ms milliseconds. */
static void turn_for(mesh_time_ms ms)
{
  mesh_time_ms until = mesh_clock_now_ms() + ms;
  while (mesh_clock_now_ms() < until)
    loop_test_turn(loop);
}

static bool b_is_member = true;

static bool member_check(void *arg, const mesh_peer_id *peer)
{
  (void)arg;
  (void)peer;
  return b_is_member;
}

/* A member whose datagrams go over UDP gets no keepalives on TCP and its
 * connection is not closed for silence: the membership protocol watches it
 * over UDP. Once it is no member (or UDP no longer carries it), the
 * connection has keepalives again, and a whole idle timeout from then. */
static void test_quiet_connection_beside_udp(void **state)
{
  (void)state;
  keepalive_ms = 100;
  idle_ms = 300;
  node a, b;
  node_start(&a, true);
  node_start(&b, true);
  keepalive_ms = idle_ms = 0;
  mesh_net_set_member_check(a.net, member_check, NULL);
  b_is_member = true;
  connect_pair(&a, &b);
  WAIT(path_is(&a, &b, MESH_UDP_PATH_UP) && path_is(&b, &a, MESH_UDP_PATH_UP), 3000);
  WAIT(ctr(&a, "tcp")->quiet_links == 1 && ctr(&b, "tcp")->quiet_links == 1, 1000);
  uint64_t ka_a = ctr(&a, "tcp")->keepalives_sent, ka_b = ctr(&b, "tcp")->keepalives_sent;
  uint64_t closed = ctr(&a, "tcp")->dropped[MESH_DROP_IDLE_TIMEOUT];
  /* Five idle timeouts of silence on every path. */
  turn_for(1500);
  assert_int_equal(ctr(&a, "tcp")->keepalives_sent, ka_a);
  assert_int_equal(ctr(&b, "tcp")->keepalives_sent, ka_b);
  assert_int_equal(ctr(&a, "tcp")->dropped[MESH_DROP_IDLE_TIMEOUT], closed);
  assert_int_equal(ctr(&a, "tcp")->peers_up, 1);
  assert_int_equal(ctr(&b, "tcp")->peers_up, 1);
  assert_true(path_is(&a, &b, MESH_UDP_PATH_UP));
  /* b leaves a's view: a sends keepalives again, and closes the
   * connection once b has said nothing on any path for a whole idle
   * timeout counted from then (b, which still holds a a member heard over
   * UDP, sends none), not at once for the silence before. */
  b_is_member = false;
  mesh_time_ms left = mesh_clock_now_ms();
  WAIT(ctr(&a, "tcp")->keepalives_sent > ka_a, 1000);
  WAIT(ctr(&a, "tcp")->dropped[MESH_DROP_IDLE_TIMEOUT] == closed + 1, 2000);
  assert_true(mesh_clock_now_ms() - left >= 300);
  node_stop(&a);
  node_stop(&b);
}

/* Packets from nowhere: counted by reason, a live link unharmed. */
static void test_stray_packets_counted(void **state)
{
  (void)state;
  node a, b;
  node_start(&a, true);
  node_start(&b, true);
  connect_pair(&a, &b);
  WAIT(path_is(&a, &b, MESH_UDP_PATH_UP) && path_is(&b, &a, MESH_UDP_PATH_UP), 3000);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(b.addr.port)};
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  uint8_t junk[64];
  memset(junk, 0xee, sizeof junk); /* bad type */
  sendto(fd, junk, sizeof junk, 0, (struct sockaddr *)&to, sizeof to);
  sendto(fd, junk, 10, 0, (struct sockaddr *)&to, sizeof to); /* short */
  /* Well formed, naming no link (a sealed ping under a random key). */
  uint8_t key[MESH_UDP_KEY_LEN], pkt[64];
  randombytes_buf(key, sizeof key);
  size_t n;
  mesh_udp_header h = {.type = MESH_UDP_PING, .index = 0x5eed, .counter = 1};
  assert_int_equal(mesh_udp_seal(key, &h, NULL, 0, pkt, sizeof pkt, &n), 0);
  sendto(fd, pkt, n, 0, (struct sockaddr *)&to, sizeof to);
  mesh_udp_stats st;
  WAIT(mesh_udp_stats_of(b.net, &st) == 0 && st.malformed == 2 && st.unknown_index >= 1, 2000);
  close(fd);
  assert_true(st.auth_failures == 0);
  /* The link still carries datagrams. */
  uint8_t msg[10] = {9};
  assert_int_equal(
      mesh_net_send(a.net, &b.id.id, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, msg, sizeof msg), 0);
  WAIT(b.got[MESH_CLASS_DATAGRAM] == 1, 2000);
  assert_true(ctr(&b, "udp")->messages_received[MESH_CLASS_DATAGRAM] == 1);
  node_stop(&a);
  node_stop(&b);
}

int main(void)
{
  if (sodium_init() < 0)
    return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_datagrams_over_udp, setup),
      cmocka_unit_test_setup(test_unreachable_falls_back_to_tcp, setup),
      cmocka_unit_test_setup(test_quiet_connection_beside_udp, setup),
      cmocka_unit_test_setup(test_stray_packets_counted, setup),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
