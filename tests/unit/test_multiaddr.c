/* Addresses: the multiaddr forms and host:port, both ways. */
#include "net/multiaddr.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

static void roundtrip(const char *in, const char *want)
{
  mesh_multiaddr a;
  const char *why = NULL;
  int rc = mesh_multiaddr_parse(in, &a, &why);
  if (rc != 0)
    fail_msg("%s: %s", in, why ? why : "?");
  char out[MESH_MULTIADDR_TEXT_MAX];
  assert_int_equal(mesh_multiaddr_format(&a, out, sizeof out), 0);
  assert_string_equal(out, want);
}

static void refused(const char *in)
{
  mesh_multiaddr a;
  const char *why = NULL;
  int rc = mesh_multiaddr_parse(in, &a, &why);
  if (rc == 0)
    fail_msg("accepted %s", in);
  assert_true(rc == -EBADMSG || rc == -EMSGSIZE);
}

static void test_forms(void **state)
{
  roundtrip("/ip4/127.0.0.1/tcp/52416", "/ip4/127.0.0.1/tcp/52416");
  roundtrip("/ip6/::1/tcp/1", "/ip6/::1/tcp/1");
  roundtrip("/ip6/0:0:0:0:0:0:0:1/tcp/1", "/ip6/::1/tcp/1");
  roundtrip("/dns4/node-a.lan/tcp/80", "/dns4/node-a.lan/tcp/80");
  roundtrip("/dns6/x/tcp/80", "/dns6/x/tcp/80");
  roundtrip("/dns/x.y/tcp/80", "/dns/x.y/tcp/80");
  roundtrip("127.0.0.1:9", "/ip4/127.0.0.1/tcp/9");
  roundtrip("localhost:9", "/dns/localhost/tcp/9");
  roundtrip("[::1]:9", "/ip6/::1/tcp/9");
  roundtrip("0.0.0.0:0", "/ip4/0.0.0.0/tcp/0");
}

static void test_peer_id(void **state)
{
  mesh_identity id;
  assert_int_equal(mesh_identity_generate(&id), 0);
  char text[MESH_PEER_ID_TEXT_MAX], in[MESH_MULTIADDR_TEXT_MAX], want[MESH_MULTIADDR_TEXT_MAX];
  mesh_peer_id_to_text(&id.id, text, sizeof text);
  snprintf(in, sizeof in, "/ip4/10.0.0.2/tcp/52416/p2p/%s", text);
  roundtrip(in, in);
  mesh_multiaddr a;
  assert_int_equal(mesh_multiaddr_parse(in, &a, NULL), 0);
  assert_true(a.has_peer);
  assert_true(mesh_peer_id_eq(&a.peer, &id.id));
  snprintf(in, sizeof in, "/ip6/::1/tcp/5/ipfs/%s", text);
  snprintf(want, sizeof want, "/ip6/::1/tcp/5/p2p/%s", text);
  roundtrip(in, want);
  snprintf(in, sizeof in, "/ip4/1.2.3.4/tcp/5/p2p/%sX", text);
  refused(in);
}

static void test_refused(void **state)
{
  refused("");
  refused("/");
  refused("/ip4");
  refused("/ip4/1.2.3.4");
  refused("/ip4/1.2.3.4/tcp");
  refused("/ip4/1.2.3.4/tcp/65536");
  refused("/ip4/1.2.3.4/tcp/-1");
  refused("/ip4/1.2.3.4/tcp/1x");
  refused("/ip4/1.2.3.4/udp/1");
  refused("/ip4/1.2.3/tcp/1");
  refused("/ip4/::1/tcp/1");
  refused("/ip6/1.2.3.4/tcp/1");
  refused("/ip4/1.2.3.4/tcp/1/p2p");
  refused("/ip4/1.2.3.4/tcp/1/quic");
  refused("/unix/tmp/x");
  refused("1.2.3.4");
  refused("1.2.3.4:");
  refused(":5");
  refused("::1:5");
  refused("[::1]5");
  refused("[1.2.3.4]:5");
  refused("bad host!:5");
  char longer[MESH_MULTIADDR_TEXT_MAX + 10];
  memset(longer, 'a', sizeof longer - 1);
  longer[sizeof longer - 1] = '\0';
  refused(longer);
}

/* Cases from the multiaddr spec's reference implementation (go-multiaddr's
 * construct tests), for the protocols a meshd address uses: ip4, ip6,
 * dns/dns4/dns6, tcp, p2p (and its old name ipfs). Protocols meshd does not
 * dial (udp, quic, unix, ip6zone, ipcidr) are refused with a reason. */
static void test_spec_cases(void **state)
{
  static const char *const ok[] = {
      "/ip4/1.2.3.4/tcp/80",
      "/ip4/0.0.0.0/tcp/0",
      "/ip4/127.0.0.1/tcp/1234/",
      "/ip4/127.0.0.1/tcp/1234//",
      "/ip6/::1/tcp/5000",
      "/ip6/2601:9:4f81:9700:803e:ca65:66e8:c21/tcp/1",
      "/ip6/::ffff:127.0.0.1/tcp/111",
      "/dns/example.com/tcp/443",
      "/dns4/example.com/tcp/443",
      "/dns6/example.com/tcp/443",
      "/ip4/127.0.0.1/tcp/1234/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
      "/ip4/127.0.0.1/tcp/1234/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq/",
      "/ip4/127.0.0.1/tcp/1234/ipfs/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    mesh_multiaddr a;
    const char *why = NULL;
    if (mesh_multiaddr_parse(ok[i], &a, &why) != 0)
      fail_msg("%s refused: %s", ok[i], why ? why : "?");
  }
  static const char *const bad[] = {
      "/ip4",
      "/ip4/::1",
      "/ip4/fdpsofodsajfdoisa",
      "/ip4/::/ipcidr/256",
      "/ip6",
      "/ip6zone",
      "/ip6zone/",
      "/ip4/127.0.0.1/tcp/jfodsajfidosajfoidsa",
      "/ip4/127.0.0.1/tcp",
      "/ip4/127.0.0.1/tcp/9090/tcp",
      "/ip4/127.0.0.1/tcp//9090",
      "/p2p",
      "/p2p/tcp",
      "/ip4/127.0.0.1/tcp/65536",
      "/ip4/127.0.0.1/udp/1234",
      "/ip4/127.0.0.1/tcp/1234/quic",
      "/dns4",
      "/dns4/",
      "/dns/a b.com/tcp/1",
      /* Not a libp2p key: an RSA key's sha256 multihash (meshd peers are
       * Ed25519), a digest cut short, a CIDv1 with another codec. */
      "/ip4/127.0.0.1/tcp/1234/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC",
      "/ip4/127.0.0.1/tcp/1234/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3",
      "/ip4/127.0.0.1/tcp/1234/p2p/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
      "/ip4/127.0.0.1/tcp/1234/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq/tcp/1",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mesh_multiaddr a;
    const char *why = NULL;
    if (mesh_multiaddr_parse(bad[i], &a, &why) == 0)
      fail_msg("%s accepted", bad[i]);
    assert_non_null(why);
  }
}

static void test_sockaddr(void **state)
{
  struct sockaddr_storage ss;
  socklen_t sl;
  mesh_multiaddr a, b;
  assert_int_equal(mesh_multiaddr_parse("[::1]:4242", &a, NULL), 0);
  assert_int_equal(mesh_multiaddr_resolve(&a, &ss, &sl), 0);
  assert_int_equal(ss.ss_family, AF_INET6);
  assert_int_equal(mesh_multiaddr_from_sockaddr((struct sockaddr *)&ss, sl, "tcp", &b), 0);
  assert_string_equal(b.host, "::1");
  assert_int_equal(b.port, 4242);
  assert_int_equal(mesh_multiaddr_parse("/ip4/127.0.0.1/tcp/7", &a, NULL), 0);
  assert_int_equal(mesh_multiaddr_resolve(&a, &ss, &sl), 0);
  assert_int_equal(ss.ss_family, AF_INET);
  assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 7);
  char small[8];
  assert_int_equal(mesh_multiaddr_format(&a, small, sizeof small), -ENOSPC);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forms),
      cmocka_unit_test(test_peer_id),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_spec_cases),
      cmocka_unit_test(test_sockaddr),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
