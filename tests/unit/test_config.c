/*
 * Tests of src/base/config: the value parsers (durations, sizes, bools,
 * integers, addresses) including overflow and junk, the precedence of flags
 * over environment over file over defaults, list options, unknown options
 * and keys, error messages that name the option and the source, INI errors
 * with line numbers, derived defaults, and the generated help and example.
 *
 * The environment is passed as an array, so the process environment plays
 * no part. Files go into a fresh directory under $MESH_TEST_TMP (or /tmp).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/multiaddr.h"
#include "src/base/config.h"

#define SEC 1000ull
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static char tmpdir[4096];
static char conf_path[4200];
static char home_env[4300];

static int setup(void **state)
{
  const char *base = getenv("MESH_TEST_TMP");
  if (base == NULL || *base == '\0')
    base = "/tmp";
  mkdir(base, 0700);
  snprintf(tmpdir, sizeof tmpdir, "%s/test_config.XXXXXX", base);
  assert_non_null(mkdtemp(tmpdir));
  snprintf(conf_path, sizeof conf_path, "%s/meshd.conf", tmpdir);
  snprintf(home_env, sizeof home_env, "MESH_HOME=%s", tmpdir);
  return 0;
}

static int teardown(void **state)
{
  unlink(conf_path);
  rmdir(tmpdir);
  return 0;
}

static void write_conf(const char *text)
{
  FILE *f = fopen(conf_path, "w");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
}

/* Loads with args (NULL-terminated) and env (NULL-terminated). */
static int load(mesh_config *cfg, const char *const *args, const char *const *env, char *err,
                size_t errlen)
{
  int n = 0;
  while (args != NULL && args[n] != NULL)
    n++;
  err[0] = '\0';
  return mesh_config_load(cfg, n, (char *const *)args, (char *const *)env, err, errlen);
}

/* ---- value parsers ---------------------------------------------------- */

static void test_durations(void **state)
{
  static const struct {
    const char *s;
    uint64_t ms;
  } ok[] = {
      {"0", 0},
      {"200ms", 200},
      {"5s", 5 * SEC},
      {"10m", 10 * MIN},
      {"24h", 24 * HOUR},
      {"7d", 7 * DAY},
      {"1m30s", 90 * SEC},
      {"1d2h3m4s5ms", DAY + 2 * HOUR + 3 * MIN + 4 * SEC + 5},
      {"0s", 0},
      {"18446744073709551615ms", UINT64_MAX},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    uint64_t ms = 12345;
    const char *why = NULL;
    assert_int_equal(mesh_config_parse_duration(ok[i].s, &ms, &why), 0);
    assert_true(ms == ok[i].ms);
  }
  static const char *const junk[] = {"",       "5",   "5x",    "s",    "ms",   "1m1h",
                                     "1s1s",   "-5s", " 5s",   "5s ",  "1.5s", "5S",
                                     "1h 30m", "5sx", "0x10s", "1mss", "5 s",  "1m30"};
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
    uint64_t ms = 777;
    const char *why = NULL;
    int rc = mesh_config_parse_duration(junk[i], &ms, &why);
    if (rc != -EINVAL)
      fail_msg("duration \"%s\" gave %d", junk[i], rc);
    assert_non_null(why);
    assert_true(ms == 777);
  }
  uint64_t ms = 0;
  const char *why = NULL;
  /* The number itself overflows, the product overflows, the sum overflows. */
  assert_int_equal(mesh_config_parse_duration("99999999999999999999s", &ms, &why), -ERANGE);
  assert_int_equal(mesh_config_parse_duration("213503982334602d", &ms, &why), -ERANGE);
  assert_int_equal(mesh_config_parse_duration("213503982334601d86400000ms", &ms, &why), -ERANGE);
  assert_non_null(strstr(why, "too large"));
}

static void test_sizes(void **state)
{
  static const struct {
    const char *s;
    uint64_t b;
  } ok[] = {
      {"0", 0},
      {"1024", 1024},
      {"500MB", 500000000ull},
      {"2GiB", 2ull << 30},
      {"1KiB", 1024},
      {"1kB", 1000},
      {"1KB", 1000},
      {"3TB", 3000000000000ull},
      {"1TiB", 1ull << 40},
      {"7B", 7},
      {"18446744073709551615", UINT64_MAX},
      {"16777215TiB", 16777215ull << 40},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    uint64_t b = 1;
    const char *why = NULL;
    assert_int_equal(mesh_config_parse_size(ok[i].s, &b, &why), 0);
    assert_true(b == ok[i].b);
  }
  static const char *const junk[] = {"",       "MB",    "5 MB", "5mb",  "5XB", "-1",
                                     "1.5GiB", "5MiBs", "5M",   "GiB5", " 5"};
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
    uint64_t b = 9;
    const char *why = NULL;
    int rc = mesh_config_parse_size(junk[i], &b, &why);
    if (rc != -EINVAL)
      fail_msg("size \"%s\" gave %d", junk[i], rc);
    assert_non_null(why);
    assert_true(b == 9);
  }
  uint64_t b;
  assert_int_equal(mesh_config_parse_size("18446744073709551616", &b, NULL), -ERANGE);
  assert_int_equal(mesh_config_parse_size("16777216TiB", &b, NULL), -ERANGE);
  assert_int_equal(mesh_config_parse_size("18446744073709552GB", &b, NULL), -ERANGE);
}

static void test_bool_int(void **state)
{
  bool v = false;
  assert_int_equal(mesh_config_parse_bool("yes", &v, NULL), 0);
  assert_true(v);
  assert_int_equal(mesh_config_parse_bool("OFF", &v, NULL), 0);
  assert_false(v);
  assert_int_equal(mesh_config_parse_bool("maybe", &v, NULL), -EINVAL);
  int64_t n = 0;
  assert_int_equal(mesh_config_parse_int("-42", &n, NULL), 0);
  assert_true(n == -42);
  assert_int_equal(mesh_config_parse_int("9223372036854775807", &n, NULL), 0);
  assert_true(n == INT64_MAX);
  assert_int_equal(mesh_config_parse_int("-9223372036854775808", &n, NULL), 0);
  assert_true(n == INT64_MIN);
  assert_int_equal(mesh_config_parse_int("9223372036854775808", &n, NULL), -ERANGE);
  assert_int_equal(mesh_config_parse_int("12a", &n, NULL), -EINVAL);
  assert_int_equal(mesh_config_parse_int("", &n, NULL), -EINVAL);
  assert_int_equal(mesh_config_parse_int("-", &n, NULL), -EINVAL);
}

static void test_addresses(void **state)
{
  static const char *const ok[] = {
      "/ip4/0.0.0.0/tcp/52416",
      "/ip6/::1/tcp/1",
      "/dns4/node-a.lan/tcp/52416",
      "/ip4/10.0.0.2/tcp/52416/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
      "127.0.0.1:52416",
      "localhost:0",
      "[::1]:52417",
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    if (mesh_config_check_addr(ok[i], NULL) != 0)
      fail_msg("address %s refused", ok[i]);
  }
  static const char *const bad[] = {
      "",
      "localhost",
      "host:",
      "host:65536",
      ":52416",
      "::1:52416",
      "/ip4/1.2.3.4",
      "/ip4/1.2.3.4/udp/1",
      "/ip5/1.2.3.4/tcp/1",
      "[::1:5",
      "/ip4/1.2.3.4/tcp/1/p2p",
      "/ip4/1.2.3.4/tcp/1/x/y",
      "a b:1",
      "host:12x",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *why = NULL;
    if (mesh_config_check_addr(bad[i], &why) != -EINVAL)
      fail_msg("address \"%s\" accepted", bad[i]);
    assert_non_null(why);
  }
}

static int net_check(const char *s, const char **why)
{
  mesh_multiaddr a;
  return mesh_multiaddr_parse(s, &a, why);
}

/* With the network layer's parser installed, as meshd does, values the
 * syntax check lets through stop the load with the option named: an IPv6
 * address under /ip4, a name under /ip4, a /p2p/ value that is no libp2p
 * key. Trailing slashes are fine (as in go-multiaddr). */
static void test_addresses_parsed_fully_at_load(void **state)
{
  mesh_config_set_addr_check(net_check);
  static const char *const bad[] = {
      "/ip4/::1/tcp/1",
      "/ip4/node-a/tcp/1",
      "/ip4/10.0.0.2/tcp/1/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC",
      "/ip4/10.0.0.2/tcp/1/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3p",
  };
  static const char *const opts[] = {"--join", "--listen", "--advertise"};
  for (size_t o = 0; o < sizeof opts / sizeof opts[0]; o++) {
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      mesh_config cfg;
      char err[512];
      const char *args[] = {opts[o], bad[i], NULL};
      const char *env[] = {NULL};
      assert_int_equal(load(&cfg, args, env, err, sizeof err), -EINVAL);
      mesh_config_free(&cfg); /* what a failed load filled in */
      char head[41];          /* long values are shortened in the message */
      snprintf(head, sizeof head, "%s", bad[i]);
      if (strstr(err, opts[o] + 2) == NULL || strstr(err, head) == NULL)
        fail_msg("error \"%s\" does not name %s and %s", err, opts[o], bad[i]);
    }
  }
  mesh_config cfg;
  char err[512];
  const char *args[] = {"--join", "/ip4/10.0.0.2/tcp/52416/", "--join", "/dns4/a.lan/tcp/1//",
                        NULL};
  const char *env[] = {home_env, NULL};
  if (load(&cfg, args, env, err, sizeof err) != 0)
    fail_msg("refused: %s", err);
  assert_int_equal(cfg.join.len, 2);
  mesh_config_free(&cfg);
  mesh_config_set_addr_check(NULL);
}

static void test_format_roundtrip(void **state)
{
  static const uint64_t ds[] = {0, 1, 999, 1000, 90000, DAY + 5, 7 * DAY, UINT64_MAX};
  for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
    char buf[64];
    uint64_t back = 1;
    mesh_config_format_duration(ds[i], buf, sizeof buf);
    assert_int_equal(mesh_config_parse_duration(buf, &back, NULL), 0);
    assert_true(back == ds[i]);
  }
  char buf[64];
  mesh_config_format_size(1ull << 20, buf, sizeof buf);
  assert_string_equal(buf, "1MiB");
  mesh_config_format_size(1000, buf, sizeof buf);
  assert_string_equal(buf, "1000");
}

/* ---- loading ---------------------------------------------------------- */

static void test_defaults(void **state)
{
  const char *env[] = {"HOME=/home/someone", NULL};
  mesh_config cfg;
  char err[512];
  assert_int_equal(load(&cfg, NULL, env, err, sizeof err), 0);
  assert_string_equal(cfg.home, "/home/someone/.meshd");
  assert_null(cfg.config_file); /* no meshd.conf there */
  assert_string_equal(cfg.listen, "/ip4/0.0.0.0/tcp/52416");
  assert_int_equal(cfg.join.len, 0);
  assert_string_equal(cfg.api, "127.0.0.1:52417");
  assert_null(cfg.api_token);
  assert_int_equal(cfg.profile, MESH_PROFILE_LAN);
  assert_int_equal(cfg.transport, MESH_TRANSPORT_AUTO);
  assert_int_equal(cfg.frame_cipher, MESH_FRAME_CIPHER_AUTO);
  assert_null(cfg.rdma_device);
  assert_int_equal(cfg.udp, MESH_UDP_ON);
  assert_true(cfg.udp_payload_max == 1400);
  assert_string_equal(cfg.swarm_key, "/home/someone/.meshd/swarm.key");
  assert_true(cfg.probe_interval_ms == 0);
  assert_true(cfg.push_pull_interval_ms == 0);
  assert_int_equal(cfg.suspicion_mult, 0);
  assert_int_equal(cfg.max_introductions, 0); /* the profile's: 256 */
  assert_true(cfg.dead_member_ttl_ms == 0);
  assert_true(cfg.ended_epoch_ttl_ms == HOUR);
  assert_true(cfg.gc_grace_ms == 5 * MIN);
  assert_true(cfg.docs_budget == 64ull << 20);
  assert_int_equal(cfg.docs_budget_entries, 65536);
  assert_int_equal(cfg.journal_max_records, 10000);
  assert_true(cfg.journal_max_age_ms == 7 * DAY);
  assert_true(cfg.max_download_bytes == 0);
  assert_string_equal(cfg.models_dir, "/home/someone/.meshd/models");
  assert_string_equal(cfg.hf_endpoint, "https://huggingface.co");
  assert_null(cfg.hf_token);
  assert_int_equal(cfg.downloads_at_once, 2);
  assert_int_equal(cfg.files_at_once, 4);
  assert_int_equal(cfg.serve_models, 1);
  assert_int_equal(cfg.max_uploads, 8);
  assert_int_equal(cfg.max_connections, 256);
  assert_int_equal(cfg.api_max_connections, 64);
  assert_int_equal(cfg.member_reserve, 25);
  assert_int_equal(cfg.max_connections_per_source, 16);
  assert_true(cfg.unjoined_grace_ms == 10 * SEC);
  assert_true(cfg.frame_max == (1u << 20));
  assert_true(cfg.handshake_timeout_ms == 5 * SEC);
  assert_int_equal(cfg.log_level, MESH_LOG_INFO);
  assert_int_equal(cfg.log_format, MESH_LOG_TEXT);
  assert_false(cfg.show_help);
  mesh_config_free(&cfg);
}

static void test_no_home_is_an_error(void **state)
{
  const char *env[] = {NULL};
  mesh_config cfg;
  char err[512];
  assert_int_equal(load(&cfg, NULL, env, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "MESH_HOME"));
  mesh_config_free(&cfg);
}

/* Serving model files to peers: on by default, off by flag, environment or
 * file; the upload bound refuses 0 and absurd values. */
static void test_serve_models_and_uploads(void **state)
{
  (void)state;
  const char *env_home[] = {home_env, NULL};
  const char *off[] = {"--serve-models", "off", "--max-uploads", "3", NULL};
  mesh_config cfg;
  char err[512];
  assert_int_equal(load(&cfg, off, env_home, err, sizeof err), 0);
  assert_int_equal(cfg.serve_models, 0);
  assert_int_equal(cfg.max_uploads, 3);
  mesh_config_free(&cfg);
  const char *env_off[] = {home_env, "MESH_SERVE_MODELS=off", NULL};
  assert_int_equal(load(&cfg, NULL, env_off, err, sizeof err), 0);
  assert_int_equal(cfg.serve_models, 0);
  mesh_config_free(&cfg);
  const char *zero[] = {"--max-uploads", "0", NULL};
  assert_int_equal(load(&cfg, zero, env_home, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "max-uploads"));
  mesh_config_free(&cfg);
  const char *bad[] = {"--serve-models", "maybe", NULL};
  assert_int_equal(load(&cfg, bad, env_home, err, sizeof err), -EINVAL);
  mesh_config_free(&cfg);
}

/* Model bytes over RDMA: on by default, off by flag or environment. */
static void test_rdma_bulk(void **state)
{
  (void)state;
  const char *env_home[] = {home_env, NULL};
  mesh_config cfg;
  char err[512];
  assert_int_equal(load(&cfg, NULL, env_home, err, sizeof err), 0);
  assert_int_equal(cfg.rdma_bulk, 1);
  mesh_config_free(&cfg);
  const char *off[] = {"--rdma-bulk", "off", NULL};
  assert_int_equal(load(&cfg, off, env_home, err, sizeof err), 0);
  assert_int_equal(cfg.rdma_bulk, 0);
  mesh_config_free(&cfg);
  const char *env_off[] = {home_env, "MESH_RDMA_BULK=off", NULL};
  assert_int_equal(load(&cfg, NULL, env_off, err, sizeof err), 0);
  assert_int_equal(cfg.rdma_bulk, 0);
  mesh_config_free(&cfg);
  const char *bad[] = {"--rdma-bulk", "maybe", NULL};
  assert_int_equal(load(&cfg, bad, env_home, err, sizeof err), -EINVAL);
  mesh_config_free(&cfg);
}

static void test_precedence(void **state)
{
  write_conf("probe_interval = 1s\n"
             "gossip_nodes = 3\n"
             "profile = wan\n");
  const char *env_all[] = {home_env, "MESH_PROBE_INTERVAL=2s", "MESH_GOSSIP_NODES=4", NULL};
  const char *env_home[] = {home_env, NULL};
  const char *flag[] = {"--probe-interval", "3s", NULL};
  mesh_config cfg;
  char err[512];

  /* flag > env > file > default, option by option */
  assert_int_equal(load(&cfg, flag, env_all, err, sizeof err), 0);
  assert_true(cfg.probe_interval_ms == 3 * SEC);
  assert_int_equal(cfg.gossip_nodes, 4);
  assert_int_equal(cfg.profile, MESH_PROFILE_WAN);
  assert_int_equal(cfg.indirect_checks, 0);
  assert_string_equal(cfg.config_file, conf_path);
  assert_int_equal(cfg.source[0], MESH_CFG_ENV); /* home */
  mesh_config_free(&cfg);

  assert_int_equal(load(&cfg, NULL, env_all, err, sizeof err), 0);
  assert_true(cfg.probe_interval_ms == 2 * SEC);
  mesh_config_free(&cfg);

  assert_int_equal(load(&cfg, NULL, env_home, err, sizeof err), 0);
  assert_true(cfg.probe_interval_ms == 1 * SEC);
  assert_int_equal(cfg.gossip_nodes, 3);
  mesh_config_free(&cfg);

  unlink(conf_path);
  assert_int_equal(load(&cfg, NULL, env_home, err, sizeof err), 0);
  assert_true(cfg.probe_interval_ms == 0);
  assert_int_equal(cfg.profile, MESH_PROFILE_LAN);
  assert_null(cfg.config_file);
  mesh_config_free(&cfg);

  /* The frame cipher, from a flag, the environment or the file; a name
   * that is not one is refused with the choices. */
  const char *fc[] = {"--frame-cipher", "aes-256-gcm", NULL};
  assert_int_equal(load(&cfg, fc, env_home, err, sizeof err), 0);
  assert_int_equal(cfg.frame_cipher, MESH_FRAME_CIPHER_AES);
  mesh_config_free(&cfg);
  const char *fc_env[] = {home_env, "MESH_FRAME_CIPHER=chacha20-poly1305", NULL};
  assert_int_equal(load(&cfg, NULL, fc_env, err, sizeof err), 0);
  assert_int_equal(cfg.frame_cipher, MESH_FRAME_CIPHER_CHACHA);
  mesh_config_free(&cfg);
  const char *fc_bad[] = {"--frame-cipher", "aes-128-gcm", NULL};
  assert_int_equal(load(&cfg, fc_bad, env_home, err, sizeof err), -EINVAL);
  assert_string_equal(err, "--frame-cipher: invalid value \"aes-128-gcm\": expected one of "
                           "auto, chacha20-poly1305, aes-256-gcm");
  mesh_config_free(&cfg);

  /* The introduction cap of push-pull, from a flag or the environment. */
  const char *intro[] = {"--max-introductions", "64", NULL};
  assert_int_equal(load(&cfg, intro, env_home, err, sizeof err), 0);
  assert_int_equal(cfg.max_introductions, 64);
  mesh_config_free(&cfg);
  const char *env_intro[] = {home_env, "MESH_MAX_INTRODUCTIONS=1000", NULL};
  assert_int_equal(load(&cfg, NULL, env_intro, err, sizeof err), 0);
  assert_int_equal(cfg.max_introductions, 1000);
  mesh_config_free(&cfg);

  /* The later of two flags wins; "--name=value" works like "--name value". */
  const char *twice[] = {"--probe-interval=3s", "--probe-interval", "4s", NULL};
  assert_int_equal(load(&cfg, twice, env_home, err, sizeof err), 0);
  assert_true(cfg.probe_interval_ms == 4 * SEC);
  mesh_config_free(&cfg);
}

/* The connection slot settings, from each source. */
static void test_slot_options(void **state)
{
  write_conf("member_reserve = 40\n"
             "max_connections_per_source = 3\n"
             "unjoined_grace = 2m\n");
  const char *env_home[] = {home_env, NULL};
  const char *env[] = {home_env, "MESH_MEMBER_RESERVE=0", "MESH_UNJOINED_GRACE=500ms", NULL};
  const char *flag[] = {"--max-connections-per-source", "64", "--unjoined-grace=30s", NULL};
  mesh_config cfg;
  char err[512];
  assert_int_equal(load(&cfg, NULL, env_home, err, sizeof err), 0);
  assert_int_equal(cfg.member_reserve, 40);
  assert_int_equal(cfg.max_connections_per_source, 3);
  assert_true(cfg.unjoined_grace_ms == 2 * MIN);
  mesh_config_free(&cfg);

  assert_int_equal(load(&cfg, flag, env, err, sizeof err), 0);
  assert_int_equal(cfg.member_reserve, 0);
  assert_int_equal(cfg.max_connections_per_source, 64);
  assert_true(cfg.unjoined_grace_ms == 30 * SEC);
  mesh_config_free(&cfg);
  unlink(conf_path);
}

/* --udp and --udp-payload-max from the file, the environment and flags;
 * a payload outside its bounds is refused. */
static void test_udp_options(void **state)
{
  write_conf("udp = off\n"
             "udp_payload_max = 1200\n");
  const char *env_home[] = {home_env, NULL};
  const char *env[] = {home_env, "MESH_UDP=on", NULL};
  const char *flag[] = {"--udp-payload-max", "1300", NULL};
  const char *bad[] = {"--udp-payload-max", "100", NULL};
  const char *bad_mode[] = {"--udp", "maybe", NULL};
  mesh_config cfg;
  char err[512];
  assert_int_equal(load(&cfg, NULL, env_home, err, sizeof err), 0);
  assert_int_equal(cfg.udp, MESH_UDP_OFF);
  assert_true(cfg.udp_payload_max == 1200);
  mesh_config_free(&cfg);

  assert_int_equal(load(&cfg, flag, env, err, sizeof err), 0);
  assert_int_equal(cfg.udp, MESH_UDP_ON);
  assert_true(cfg.udp_payload_max == 1300);
  mesh_config_free(&cfg);

  assert_int_not_equal(load(&cfg, bad, env_home, err, sizeof err), 0);
  assert_non_null(strstr(err, "udp-payload-max"));
  mesh_config_free(&cfg);
  assert_int_not_equal(load(&cfg, bad_mode, env_home, err, sizeof err), 0);
  assert_non_null(strstr(err, "udp"));
  mesh_config_free(&cfg);
  unlink(conf_path);
}

static void test_config_flag_and_home_from_flag(void **state)
{
  char other[4300];
  snprintf(other, sizeof other, "%s/other.conf", tmpdir);
  FILE *f = fopen(other, "w");
  assert_non_null(f);
  fputs("[meshd]\nlog_level = debug\n", f);
  fclose(f);
  write_conf("log_level = warn\n");
  const char *env[] = {"HOME=/nonexistent", NULL};
  mesh_config cfg;
  char err[512];

  /* --home finds $MESH_HOME/meshd.conf */
  const char *a1[] = {"--home", tmpdir, NULL};
  assert_int_equal(load(&cfg, a1, env, err, sizeof err), 0);
  assert_int_equal(cfg.log_level, MESH_LOG_WARN);
  mesh_config_free(&cfg);

  /* --config picks another file */
  const char *a2[] = {"--home", tmpdir, "--config", other, NULL};
  assert_int_equal(load(&cfg, a2, env, err, sizeof err), 0);
  assert_int_equal(cfg.log_level, MESH_LOG_DEBUG);
  assert_string_equal(cfg.config_file, other);
  mesh_config_free(&cfg);
  unlink(other);

  /* a missing --config file is an error; a missing default file is not */
  assert_int_equal(load(&cfg, a2, env, err, sizeof err), -ENOENT);
  assert_non_null(strstr(err, other));
  mesh_config_free(&cfg);
}

static void test_lists(void **state)
{
  write_conf("join = 10.0.0.1:1, 10.0.0.2:2\n"
             "join = 10.0.0.3:3\n");
  const char *env_home[] = {home_env, NULL};
  const char *env_join[] = {home_env, "MESH_JOIN=/ip4/10.0.0.9/tcp/9,10.0.0.8:8", NULL};
  const char *env_empty[] = {home_env, "MESH_JOIN=", NULL};
  mesh_config cfg;
  char err[512];

  /* repeated file keys append */
  assert_int_equal(load(&cfg, NULL, env_home, err, sizeof err), 0);
  assert_int_equal(cfg.join.len, 3);
  assert_string_equal(cfg.join.items[0], "10.0.0.1:1");
  assert_string_equal(cfg.join.items[1], "10.0.0.2:2");
  assert_string_equal(cfg.join.items[2], "10.0.0.3:3");
  mesh_config_free(&cfg);

  /* the environment replaces the file's list */
  assert_int_equal(load(&cfg, NULL, env_join, err, sizeof err), 0);
  assert_int_equal(cfg.join.len, 2);
  assert_string_equal(cfg.join.items[0], "/ip4/10.0.0.9/tcp/9");
  assert_string_equal(cfg.join.items[1], "10.0.0.8:8");
  mesh_config_free(&cfg);

  /* an empty variable clears it */
  assert_int_equal(load(&cfg, NULL, env_empty, err, sizeof err), 0);
  assert_int_equal(cfg.join.len, 0);
  mesh_config_free(&cfg);

  /* repeated flags append and replace both lower levels */
  const char *flags[] = {"--join", "127.0.0.1:5", "--join=127.0.0.1:6,127.0.0.1:7", NULL};
  assert_int_equal(load(&cfg, flags, env_join, err, sizeof err), 0);
  assert_int_equal(cfg.join.len, 3);
  assert_string_equal(cfg.join.items[0], "127.0.0.1:5");
  assert_string_equal(cfg.join.items[2], "127.0.0.1:7");
  mesh_config_free(&cfg);

  /* a bad item names itself and the source */
  const char *bad[] = {"--join", "127.0.0.1:5,nonsense", NULL};
  assert_int_equal(load(&cfg, bad, env_home, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "--join"));
  assert_non_null(strstr(err, "\"nonsense\""));
  mesh_config_free(&cfg);
  const char *trailing[] = {"--join", "127.0.0.1:5,", NULL};
  assert_int_equal(load(&cfg, trailing, env_home, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "empty list item"));
  mesh_config_free(&cfg);
}

/* --accept-commands-from: any-member by default; none, or peer IDs, from
 * flag, environment or file; anything else named in the error. The quota
 * is bounded by what the operator's reserve leaves. */
static void test_accept_commands_from(void **state)
{
  const char *env_home[] = {home_env, NULL};
  mesh_config cfg;
  char err[512];
  assert_int_equal(load(&cfg, NULL, env_home, err, sizeof err), 0);
  assert_int_equal(cfg.accept_commands_from.len, 1);
  assert_string_equal(cfg.accept_commands_from.items[0], "any-member");
  assert_int_equal(cfg.command_quota, 64);
  mesh_config_free(&cfg);

  const char *none[] = {"--accept-commands-from", "none", "--command-quota", "0", NULL};
  assert_int_equal(load(&cfg, none, env_home, err, sizeof err), 0);
  assert_int_equal(cfg.accept_commands_from.len, 1);
  assert_string_equal(cfg.accept_commands_from.items[0], "none");
  assert_int_equal(cfg.command_quota, 0);
  mesh_config_free(&cfg);

  const char *id = "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq";
  char env_ids[256];
  snprintf(env_ids, sizeof env_ids, "MESH_ACCEPT_COMMANDS_FROM=%s, %s", id, id);
  const char *env_list[] = {home_env, env_ids, NULL};
  assert_int_equal(load(&cfg, NULL, env_list, err, sizeof err), 0);
  assert_int_equal(cfg.accept_commands_from.len, 2);
  assert_string_equal(cfg.accept_commands_from.items[1], id);
  mesh_config_free(&cfg);

  write_conf("accept_commands_from = 10.0.0.1:1\n");
  assert_int_equal(load(&cfg, NULL, env_home, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "accept_commands_from"));
  assert_non_null(strstr(err, "any-member, none or a peer ID"));
  mesh_config_free(&cfg);
  write_conf("");
  const char *bad_id[] = {"--accept-commands-from",
                          "12D3KooW-not/a-peer-id-but-long-enough-to-pass", NULL};
  assert_int_equal(load(&cfg, bad_id, env_home, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "letters and digits"));
  mesh_config_free(&cfg);
  const char *too_many[] = {"--command-quota", "769", NULL};
  assert_int_equal(load(&cfg, too_many, env_home, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "--command-quota"));
  mesh_config_free(&cfg);
}

static void test_unknown_options(void **state)
{
  const char *env[] = {home_env, NULL};
  mesh_config cfg;
  char err[512];
  const char *a1[] = {"--probe-intervall", "1s", NULL};
  assert_int_equal(load(&cfg, a1, env, err, sizeof err), -EINVAL);
  assert_string_equal(err, "unknown option --probe-intervall (see meshd --help)");
  mesh_config_free(&cfg);

  const char *a2[] = {"stray", NULL};
  assert_int_equal(load(&cfg, a2, env, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "unexpected argument \"stray\""));
  mesh_config_free(&cfg);

  const char *a3[] = {"--listen", NULL};
  assert_int_equal(load(&cfg, a3, env, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "--listen needs a value"));
  mesh_config_free(&cfg);

  /* unknown MESH_* variables are not errors: the environment is shared */
  const char *env2[] = {home_env, "MESH_TEST_SRCDIR=/x", NULL};
  assert_int_equal(load(&cfg, NULL, env2, err, sizeof err), 0);
  mesh_config_free(&cfg);

  write_conf("# comment\n\nlisten = 127.0.0.1:1\nbogus_key = 1\n");
  assert_int_equal(load(&cfg, NULL, env, err, sizeof err), -EINVAL);
  char want[4400];
  snprintf(want, sizeof want, "%s:4: unknown key \"bogus_key\" (see meshd config-example)",
           conf_path);
  assert_string_equal(err, want);
  mesh_config_free(&cfg);

  write_conf("[network]\nlisten = 127.0.0.1:1\n");
  assert_int_equal(load(&cfg, NULL, env, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, ":2: unknown section [network]"));
  mesh_config_free(&cfg);

  write_conf("config = /etc/other.conf\n");
  assert_int_equal(load(&cfg, NULL, env, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, ":1: config cannot be set in the file"));
  mesh_config_free(&cfg);
}

static void test_bad_value_messages(void **state)
{
  const char *env[] = {home_env, NULL};
  mesh_config cfg;
  char err[512];

  const char *a1[] = {"--probe-interval", "5x", NULL};
  assert_int_equal(load(&cfg, a1, env, err, sizeof err), -EINVAL);
  assert_string_equal(err, "--probe-interval: invalid value \"5x\": unknown unit (use ms, s, m, h "
                           "or d)");
  mesh_config_free(&cfg);

  const char *env2[] = {home_env, "MESH_MAX_DOWNLOAD_BYTES=lots", NULL};
  assert_int_equal(load(&cfg, NULL, env2, err, sizeof err), -EINVAL);
  assert_string_equal(err, "MESH_MAX_DOWNLOAD_BYTES (max-download-bytes): invalid value \"lots\": "
                           "expected a number");
  mesh_config_free(&cfg);

  write_conf("profile = lan\n\nprofile = fast\n");
  assert_int_equal(load(&cfg, NULL, env, err, sizeof err), -EINVAL);
  char want[4400];
  snprintf(want, sizeof want,
           "%s:3: profile: invalid value \"fast\": expected one of lan, thunderbolt, wan",
           conf_path);
  assert_string_equal(err, want);
  mesh_config_free(&cfg);
  unlink(conf_path);

  const char *a3[] = {"--indirect-checks", "33", NULL};
  assert_int_equal(load(&cfg, a3, env, err, sizeof err), -EINVAL);
  assert_string_equal(err, "--indirect-checks: invalid value \"33\": out of range (0 to 32)");
  mesh_config_free(&cfg);

  const char *a4[] = {"--handshake-timeout", "50ms", NULL};
  assert_int_equal(load(&cfg, a4, env, err, sizeof err), -EINVAL);
  assert_string_equal(err,
                      "--handshake-timeout: invalid value \"50ms\": out of range (100ms to 10m)");
  mesh_config_free(&cfg);

  const char *a4b[] = {"--member-reserve", "91", NULL};
  assert_int_equal(load(&cfg, a4b, env, err, sizeof err), -EINVAL);
  assert_string_equal(err, "--member-reserve: invalid value \"91\": out of range (0 to 90)");
  mesh_config_free(&cfg);

  const char *a4c[] = {"--max-connections-per-source", "0", NULL};
  assert_int_equal(load(&cfg, a4c, env, err, sizeof err), -EINVAL);
  assert_string_equal(
      err, "--max-connections-per-source: invalid value \"0\": out of range (1 to 65536)");
  mesh_config_free(&cfg);

  const char *a4d[] = {"--unjoined-grace", "20m", NULL};
  assert_int_equal(load(&cfg, a4d, env, err, sizeof err), -EINVAL);
  assert_string_equal(err, "--unjoined-grace: invalid value \"20m\": out of range (100ms to 10m)");
  mesh_config_free(&cfg);

  const char *a5[] = {"--frame-max", "1GiB", NULL};
  assert_int_equal(load(&cfg, a5, env, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "out of range (4KiB to 64MiB)"));
  mesh_config_free(&cfg);

  const char *a5b[] = {"--api-max-connections", "0", NULL};
  assert_int_equal(load(&cfg, a5b, env, err, sizeof err), -EINVAL);
  assert_string_equal(err, "--api-max-connections: invalid value \"0\": out of range (1 to 65536)");
  mesh_config_free(&cfg);

  const char *a5c[] = {"--api-max-connections", "500", NULL};
  assert_int_equal(load(&cfg, a5c, env, err, sizeof err), 0);
  assert_int_equal(cfg.api_max_connections, 500);
  mesh_config_free(&cfg);

  const char *a6[] = {"--api", "/ip4/127.0.0.1/tcp/1", NULL};
  assert_int_equal(load(&cfg, a6, env, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "--api: invalid value"));
  mesh_config_free(&cfg);

  const char *a7[] = {"--hf-endpoint", "ftp://x", NULL};
  assert_int_equal(load(&cfg, a7, env, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "--hf-endpoint: invalid value \"ftp://x\""));
  mesh_config_free(&cfg);

  /* control characters in a value are not echoed raw */
  const char *a8[] = {"--log-level", "de\x1b[2Jbug", NULL};
  assert_int_equal(load(&cfg, a8, env, err, sizeof err), -EINVAL);
  assert_null(strchr(err, '\x1b'));
  mesh_config_free(&cfg);
}

static void test_api_beyond_loopback_needs_token(void **state)
{
  const char *env[] = {home_env, NULL};
  mesh_config cfg;
  char err[512];
  const char *open_api[] = {"--api", "0.0.0.0:52417", NULL};
  assert_int_equal(load(&cfg, open_api, env, err, sizeof err), -EINVAL);
  assert_string_equal(err, "api: 0.0.0.0:52417 (from --api) is not a loopback address: set "
                           "api-token too to serve the control API beyond this machine");
  mesh_config_free(&cfg);

  const char *tricky[] = {"--api", "127.0.0.1.example.com:52417", NULL};
  assert_int_equal(load(&cfg, tricky, env, err, sizeof err), -EINVAL);
  mesh_config_free(&cfg);

  const char *with_token[] = {"--api", "0.0.0.0:52417", "--api-token", "s3cret", NULL};
  assert_int_equal(load(&cfg, with_token, env, err, sizeof err), 0);
  assert_string_equal(cfg.api_token, "s3cret");
  mesh_config_free(&cfg);

  static const char *const loopback[] = {"127.0.0.1:1", "127.1.2.3:9", "localhost:5", "[::1]:5",
                                         "unix:/run/meshd.sock"};
  for (size_t i = 0; i < sizeof loopback / sizeof loopback[0]; i++) {
    const char *a[] = {"--api", loopback[i], NULL};
    if (load(&cfg, a, env, err, sizeof err) != 0)
      fail_msg("api %s refused: %s", loopback[i], err);
    mesh_config_free(&cfg);
  }
}

static void test_ini_syntax_errors(void **state)
{
  const char *env[] = {home_env, NULL};
  mesh_config cfg;
  char err[512];
  char want[4400];

  write_conf("listen = 127.0.0.1:1\n; fine\njust some words\n");
  assert_int_equal(load(&cfg, NULL, env, err, sizeof err), -EINVAL);
  snprintf(want, sizeof want, "%s:3: syntax error (expected key = value or [section])", conf_path);
  assert_string_equal(err, want);
  mesh_config_free(&cfg);

  write_conf("[meshd\n");
  assert_int_equal(load(&cfg, NULL, env, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, ":1: syntax error"));
  mesh_config_free(&cfg);

  char big[600];
  memset(big, 'a', sizeof big);
  memcpy(big, "api_token = ", 12);
  big[sizeof big - 2] = '\n';
  big[sizeof big - 1] = '\0';
  char text[800];
  snprintf(text, sizeof text, "log_level = info\n%s", big);
  write_conf(text);
  assert_int_equal(load(&cfg, NULL, env, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, ":2: line too long"));
  mesh_config_free(&cfg);

  /* CRLF line ends, a BOM, inline comments and whitespace are fine */
  write_conf("\xef\xbb\xbf[meshd]\r\n  log_format =  json ; machines\r\ngc_grace=1m30s\r\n");
  assert_int_equal(load(&cfg, NULL, env, err, sizeof err), 0);
  assert_int_equal(cfg.log_format, MESH_LOG_JSON);
  assert_true(cfg.gc_grace_ms == 90 * SEC);
  mesh_config_free(&cfg);
}

/* meshd.conf: writable by group or others, owned by another user (root
 * excepted), or a symbolic link: refused with the fix. A token in a file
 * others may read is refused too; 0644 without one is fine. */
static void test_config_file_rules(void **state)
{
  const char *env[] = {home_env, NULL};
  mesh_config cfg;
  char err[1024], want[9000], link[4300];
  write_conf("log_level = warn\n");
  static const mode_t bad[] = {0666, 0646, 0664, 0622, 0602, 0620};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(chmod(conf_path, bad[i]), 0);
    assert_int_equal(load(&cfg, NULL, env, err, sizeof err), -EACCES);
    snprintf(want, sizeof want,
             "config file '%s' is writable by group or others (mode %04o); run: chmod go-w %s",
             conf_path, (unsigned)bad[i], conf_path);
    assert_string_equal(err, want);
    mesh_config_free(&cfg);
  }
  static const mode_t good[] = {0644, 0640, 0600, 0400, 0444};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    assert_int_equal(chmod(conf_path, good[i]), 0);
    assert_int_equal(load(&cfg, NULL, env, err, sizeof err), 0);
    assert_int_equal(cfg.log_level, MESH_LOG_WARN);
    mesh_config_free(&cfg);
  }
  assert_int_equal(chmod(conf_path, 0600), 0);

  /* A symbolic link, named by --config or as the default file. */
  snprintf(link, sizeof link, "%s/link.conf", tmpdir);
  assert_int_equal(symlink(conf_path, link), 0);
  const char *a[] = {"--config", link, NULL};
  assert_int_equal(load(&cfg, a, env, err, sizeof err), -ELOOP);
  assert_non_null(strstr(err, "symbolic link"));
  assert_non_null(strstr(err, link));
  mesh_config_free(&cfg);
  assert_int_equal(unlink(link), 0);

  /* Tokens stay out of files others can read. */
  write_conf("api_token = s3cret\n");
  assert_int_equal(chmod(conf_path, 0644), 0);
  assert_int_equal(load(&cfg, NULL, env, err, sizeof err), -EACCES);
  snprintf(want, sizeof want,
           "config file %s sets api-token but others can read it (mode 0644); run: chmod o-rwx %s",
           conf_path, conf_path);
  assert_string_equal(err, want);
  mesh_config_free(&cfg);
  write_conf("hf_token = hf_abc\n");
  assert_int_equal(load(&cfg, NULL, env, err, sizeof err), -EACCES);
  assert_non_null(strstr(err, "sets hf-token"));
  mesh_config_free(&cfg);
  assert_int_equal(chmod(conf_path, 0640), 0);
  assert_int_equal(load(&cfg, NULL, env, err, sizeof err), 0);
  assert_string_equal(cfg.hf_token, "hf_abc");
  mesh_config_free(&cfg);

  if (geteuid() != 0) {
    print_message("skipped: config owned by another user (needs root to chown)\n");
    return;
  }
  assert_int_equal(chown(conf_path, 1, 1), 0);
  assert_int_equal(load(&cfg, NULL, env, err, sizeof err), -EACCES);
  snprintf(want, sizeof want,
           "config file '%s' is owned by uid 1, but meshd runs as uid 0; run: chown 0 %s",
           conf_path, conf_path);
  assert_string_equal(err, want);
  mesh_config_free(&cfg);
  assert_int_equal(chown(conf_path, 0, 0), 0);
}

/* The budget of others' documents: a size and a count, each bounded below so
 * that one honest owner's document always fits. */
static void test_docs_budget(void **state)
{
  const char *env[] = {home_env, NULL};
  mesh_config cfg;
  char err[512];
  write_conf("docs_budget = 128MiB\ndocs_budget_entries = 20000\n");
  assert_int_equal(load(&cfg, NULL, env, err, sizeof err), 0);
  assert_true(cfg.docs_budget == 128ull << 20);
  assert_int_equal(cfg.docs_budget_entries, 20000);
  mesh_config_free(&cfg);
  const char *a[] = {"--docs-budget", "1MiB", NULL};
  assert_int_equal(load(&cfg, a, env, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "--docs-budget"));
  mesh_config_free(&cfg);
  const char *b[] = {"--docs-budget-entries", "100", NULL};
  assert_int_equal(load(&cfg, b, env, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "--docs-budget-entries"));
  mesh_config_free(&cfg);
  const char *c[] = {"--docs-budget", "1GiB", "--docs-budget-entries", "1000000", NULL};
  assert_int_equal(load(&cfg, c, env, err, sizeof err), 0);
  assert_true(cfg.docs_budget == 1ull << 30);
  assert_int_equal(cfg.docs_budget_entries, 1000000);
  mesh_config_free(&cfg);
}

static void test_hf_env(void **state)
{
  const char *env[] = {home_env, "HF_ENDPOINT=http://127.0.0.1:8080/", "HF_TOKEN=hf_abc", NULL};
  mesh_config cfg;
  char err[512];
  assert_int_equal(load(&cfg, NULL, env, err, sizeof err), 0);
  assert_string_equal(cfg.hf_endpoint, "http://127.0.0.1:8080");
  assert_string_equal(cfg.hf_token, "hf_abc");
  mesh_config_free(&cfg);

  const char *flags[] = {"--hf-endpoint", "https://mirror.example", "--hf-token", "hf_flag", NULL};
  assert_int_equal(load(&cfg, flags, env, err, sizeof err), 0);
  assert_string_equal(cfg.hf_endpoint, "https://mirror.example");
  assert_string_equal(cfg.hf_token, "hf_flag");
  mesh_config_free(&cfg);

  const char *bad[] = {home_env, "HF_ENDPOINT=nonsense", NULL};
  assert_int_equal(load(&cfg, NULL, bad, err, sizeof err), -EINVAL);
  assert_non_null(strstr(err, "HF_ENDPOINT"));
  mesh_config_free(&cfg);
}

static void test_help_and_version_flags(void **state)
{
  /* answered even when the environment holds a bad value */
  const char *env[] = {"MESH_PROFILE=fast", NULL};
  mesh_config cfg;
  char err[512];
  const char *a[] = {"--help", NULL};
  assert_int_equal(load(&cfg, a, env, err, sizeof err), 0);
  assert_true(cfg.show_help);
  mesh_config_free(&cfg);
  const char *b[] = {"--version", NULL};
  assert_int_equal(load(&cfg, b, env, err, sizeof err), 0);
  assert_true(cfg.show_version);
  mesh_config_free(&cfg);
}

static char *capture(void (*fn)(FILE *))
{
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  fn(f);
  fclose(f);
  return buf;
}

static const char *const every_option[] = {
    "home",
    "config",
    "listen",
    "join",
    "api",
    "api-token",
    "profile",
    "transport",
    "frame-cipher",
    "rdma-device",
    "rdma-bulk",
    "udp",
    "udp-payload-max",
    "swarm-key",
    "probe-interval",
    "probe-timeout",
    "suspicion-mult",
    "suspicion-max-mult",
    "indirect-checks",
    "retransmit-mult",
    "gossip-interval",
    "gossip-nodes",
    "push-pull-interval",
    "max-members",
    "max-introductions",
    "dead-member-ttl",
    "ended-epoch-ttl",
    "gc-grace",
    "docs-budget",
    "docs-budget-entries",
    "journal-max-records",
    "journal-max-age",
    "max-download-bytes",
    "models-dir",
    "hf-endpoint",
    "hf-token",
    "downloads-at-once",
    "files-at-once",
    "serve-models",
    "file-lists-from-members",
    "max-uploads",
    "accept-commands-from",
    "command-quota",
    "max-connections",
    "api-max-connections",
    "member-reserve",
    "max-connections-per-source",
    "unjoined-grace",
    "frame-max",
    "handshake-timeout",
    "log-level",
    "log-format",
};

static void test_help_lists_every_option(void **state)
{
  char *help = capture(mesh_config_print_help);
  for (size_t i = 0; i < sizeof every_option / sizeof every_option[0]; i++) {
    char flag[64], env[64];
    snprintf(flag, sizeof flag, "--%s ", every_option[i]);
    snprintf(env, sizeof env, "MESH_");
    for (const char *p = every_option[i]; *p; p++) {
      char c = *p == '-' ? '_' : (char)(*p - 'a' + 'A');
      if (*p >= '0' && *p <= '9')
        c = *p;
      strncat(env, &c, 1);
    }
    if (strstr(help, flag) == NULL || strstr(help, env) == NULL)
      fail_msg("help misses %s or %s", flag, env);
  }
  assert_non_null(strstr(help, "default: 1h"));
  free(help);
}

/* Uncomments every "#key = value" line of the example and loads it: the
 * result must be the defaults, and every settable option must be there. */
static void test_example_is_valid_and_complete(void **state)
{
  char *ex = capture(mesh_config_print_example);
  size_t n = strlen(ex);
  char *out = malloc(n + 1);
  assert_non_null(out);
  size_t o = 0;
  int keys = 0;
  for (char *line = ex; *line;) {
    char *nl = strchr(line, '\n');
    size_t ll = nl != NULL ? (size_t)(nl - line) + 1 : strlen(line);
    const char *eq = memchr(line, '=', ll);
    bool setting = line[0] == '#' && ll > 1 && line[1] >= 'a' && line[1] <= 'z' && eq != NULL;
    if (setting && eq[1] == ' ') {
      memcpy(out + o, line + 1, ll - 1);
      o += ll - 1;
      keys++;
    } else if (!setting) {
      memcpy(out + o, line, ll);
      o += ll;
    }
    line += ll;
  }
  out[o] = '\0';
  for (size_t i = 0; i < sizeof every_option / sizeof every_option[0]; i++) {
    char key[64];
    snprintf(key, sizeof key, "#%s =", every_option[i]);
    for (char *p = key; *p; p++)
      *p = *p == '-' ? '_' : *p;
    if (strcmp(every_option[i], "config") != 0 && strstr(ex, key) == NULL)
      fail_msg("example misses %s", key);
  }
  mesh_config cfg, def;
  mesh_config_init(&cfg);
  mesh_config_init(&def);
  char err[512] = "";
  int rc = mesh_config_apply_ini(&cfg, "example", out, o, err, sizeof err);
  if (rc != 0)
    fail_msg("example does not load: %s", err);
  assert_true(keys >= 25);
  assert_string_equal(cfg.listen, def.listen);
  assert_true(cfg.ended_epoch_ttl_ms == def.ended_epoch_ttl_ms);
  assert_true(cfg.journal_max_age_ms == def.journal_max_age_ms);
  assert_true(cfg.frame_max == def.frame_max);
  assert_int_equal(cfg.max_connections, def.max_connections);
  assert_int_equal(cfg.api_max_connections, def.api_max_connections);
  assert_int_equal(cfg.source[2], MESH_CFG_FILE); /* listen came from the text */
  mesh_config_free(&cfg);
  mesh_config_free(&def);
  free(out);
  free(ex);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_durations),
      cmocka_unit_test(test_sizes),
      cmocka_unit_test(test_bool_int),
      cmocka_unit_test(test_addresses),
      cmocka_unit_test(test_format_roundtrip),
      cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_home_is_an_error, setup, teardown),
      cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
      cmocka_unit_test_setup_teardown(test_serve_models_and_uploads, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rdma_bulk, setup, teardown),
      cmocka_unit_test_setup_teardown(test_slot_options, setup, teardown),
      cmocka_unit_test_setup_teardown(test_udp_options, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_flag_and_home_from_flag, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lists, setup, teardown),
      cmocka_unit_test_setup_teardown(test_accept_commands_from, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_options, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_value_messages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_api_beyond_loopback_needs_token, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ini_syntax_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hf_env, setup, teardown),
      cmocka_unit_test_setup_teardown(test_addresses_parsed_fully_at_load, setup, teardown),
      cmocka_unit_test_setup_teardown(test_config_file_rules, setup, teardown),
      cmocka_unit_test_setup_teardown(test_docs_budget, setup, teardown),
      cmocka_unit_test(test_help_and_version_flags),
      cmocka_unit_test(test_help_lists_every_option),
      cmocka_unit_test(test_example_is_valid_and_complete),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
