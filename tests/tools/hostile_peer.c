/*
 * hostile_peer: a peer that holds the swarm key and misbehaves, for the
 * fault scenarios. It connects to one node and sends, each once:
 *
 *   member      a member record for VICTIM at a far higher epoch, signed by
 *               our own key instead of VICTIM's (membership: bad signature)
 *   dead        a dead claim for the live VICTIM naming WITNESS as accuser,
 *               signed by our key (membership: bad signature)
 *   doc         a download document for VICTIM as owner with a "completed"
 *               entry, signed by our key (coordinator: forged)
 *   doc-flip    a download document of our own with one signature byte
 *               flipped (coordinator: malformed or forged)
 *   garbage     random bytes on the membership channel as datagram and as
 *               stream, and on the coordinator channel (malformed)
 *
 * Its connection goes through a relay inside this program that records
 * every byte we send; once that session is over, the recording is written
 * raw on a new TCP connection to the node (a replay: the handshake is bound
 * to the node's fresh ephemeral key, so it must be refused).
 *
 *   hostile_peer --psk F --connect HOST:PORT --victim ID --witness ID
 *                [--victim-epoch N] [--seed N]
 *                [--forge-result SEQ --forge-count N --result-epoch E]
 *
 * With --forge-result it sends only answers to commands instead: N
 * CommandResults with sequence numbers SEQ..SEQ+N-1 naming target epoch E,
 * code 0, as if it were the target of the node's pending commands (the
 * node must drop them: an answer counts only from the command's target).
 *
 * Prints one JSON line of what it sent and exits 0, or says why it could
 * not and exits 1.
 */
#include "coord/coord.h"
#include "net/swim.h"
#include "net/swim_internal.h"
#include "net/transport.h"
#include "proto/coord.pb-c.h"
#include "src/base/err.h"
#include "src/base/rng.h"
#include "src/daemon/loop.h"
#include "src/identity/identity.h"
#include "src/identity/psk.h"
#include "src/identity/signed.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RECORD_MAX (1024 * 1024)

typedef struct relay {
  int listen_fd;
  struct sockaddr_in upstream;
  uint8_t *rec; /* client -> server bytes */
  size_t rec_len;
  int result;
} relay;

typedef struct hostile {
  mesh_loop *loop;
  mesh_net *net;
  mesh_identity id;
  mesh_peer_id victim, witness, target;
  uint64_t victim_epoch;
  uint64_t forge_seq;   /* --forge-result: first sequence number */
  uint64_t forge_epoch; /* --result-epoch */
  uint32_t forge_n;     /* --forge-count; 0: the usual attacks */
  mesh_rng rng;
  mesh_timer *done_timer, *deadline;
  bool sent;
  int sends_ok, sends_failed;
  int exit_code;
  const char *why;
} hostile;

static int parse_hostport(const char *s, struct sockaddr_in *sa)
{
  char host[64];
  const char *colon = strrchr(s, ':');
  if (colon == NULL || (size_t)(colon - s) >= sizeof host)
    return -EINVAL;
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = '\0';
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons((uint16_t)atoi(colon + 1));
  return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -EINVAL;
}

static void *relay_main(void *arg)
{
  relay *r = arg;
  r->result = -1;
  int c = accept(r->listen_fd, NULL, NULL);
  if (c < 0)
    return NULL;
  int u = socket(AF_INET, SOCK_STREAM, 0);
  if (u < 0 || connect(u, (struct sockaddr *)&r->upstream, sizeof r->upstream) != 0) {
    close(c);
    if (u >= 0)
      close(u);
    return NULL;
  }
  uint8_t buf[16384];
  struct pollfd p[2] = {{.fd = c, .events = POLLIN}, {.fd = u, .events = POLLIN}};
  for (;;) {
    if (poll(p, 2, 30000) <= 0)
      break;
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(c, buf, sizeof buf);
      if (n <= 0)
        break;
      size_t room = RECORD_MAX - r->rec_len;
      size_t keep = (size_t)n < room ? (size_t)n : room;
      memcpy(r->rec + r->rec_len, buf, keep);
      r->rec_len += keep;
      if (write(u, buf, (size_t)n) != n)
        break;
    }
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(u, buf, sizeof buf);
      if (n <= 0)
        break;
      if (write(c, buf, (size_t)n) != n)
        break;
    }
  }
  close(c);
  close(u);
  r->result = 0;
  return NULL;
}

/* Writes the recording raw on a new connection and reads until the node
 * closes it (or 5 s pass). Returns the bytes the node answered. */
static long replay_raw(const relay *r)
{
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0 || connect(s, (const struct sockaddr *)&r->upstream, sizeof r->upstream) != 0) {
    if (s >= 0)
      close(s);
    return -1;
  }
  size_t off = 0;
  while (off < r->rec_len) {
    ssize_t n = write(s, r->rec + off, r->rec_len - off);
    if (n <= 0)
      break;
    off += (size_t)n;
  }
  long got = 0;
  uint8_t buf[4096];
  struct pollfd p = {.fd = s, .events = POLLIN};
  while (poll(&p, 1, 5000) > 0) {
    ssize_t n = read(s, buf, sizeof buf);
    if (n <= 0)
      break;
    got += n;
  }
  close(s);
  return got;
}

static mesh_time_ms hostile_now(void *arg)
{
  return mesh_loop_now(arg);
}

static int swim_packet_of(const uint8_t *upd, size_t ulen, uint8_t **out, size_t *len)
{
  const uint8_t *ups[1] = {upd};
  size_t lens[1] = {ulen};
  swim_packet_out p = {.kind = MESH_SWIM_MSG_GOSSIP,
                       .epoch = 1,
                       .updates = ups,
                       .update_lens = lens,
                       .n_updates = 1};
  return swim_packet_encode(&p, 0, out, len);
}

static int forged_member(hostile *h, uint8_t **pkt, size_t *len)
{
  uint8_t *body = NULL, *upd = NULL;
  size_t blen, ulen;
  uint8_t sig[MESH_SIG_LEN];
  const char *addrs[1] = {"/ip4/10.0.0.1/tcp/1"};
  int rc = swim_member_body_encode(&h->victim, h->victim_epoch + 1000, 0, false, addrs, 1, NULL, 0,
                                   "meshd/0.1.0", "forged", &body, &blen);
  if (rc == 0)
    rc = mesh_sign(&h->id, MESH_DOMAIN_MEMBER, (const uint8_t *)SWIM_TYPE_MEMBER,
                   strlen(SWIM_TYPE_MEMBER), body, blen, sig);
  if (rc == 0)
    rc = swim_update_encode(&h->victim, false, body, blen, sig, &upd, &ulen);
  if (rc == 0)
    rc = swim_packet_of(upd, ulen, pkt, len);
  free(body);
  free(upd);
  return rc;
}

static int forged_dead(hostile *h, uint8_t **pkt, size_t *len)
{
  swim_accuse_body a = {.target = h->victim,
                        .accuser = h->witness,
                        .epoch = h->victim_epoch,
                        .incarnation = 1000,
                        .dead = true};
  uint8_t *body = NULL, *upd = NULL;
  size_t blen, ulen;
  uint8_t sig[MESH_SIG_LEN];
  int rc = swim_accuse_body_encode(&a, &body, &blen);
  if (rc == 0)
    rc = mesh_sign(&h->id, MESH_DOMAIN_ACCUSE, (const uint8_t *)SWIM_TYPE_ACCUSE,
                   strlen(SWIM_TYPE_ACCUSE), body, blen, sig);
  if (rc == 0)
    rc = swim_update_encode(&h->victim, true, body, blen, sig, &upd, &ulen);
  if (rc == 0)
    rc = swim_packet_of(upd, ulen, pkt, len);
  free(body);
  free(upd);
  return rc;
}

/* A Document naming owner, sealed by our key, wrapped as a CoordMessage. */
static int forged_doc(hostile *h, const mesh_peer_id *owner, bool flip, uint8_t **out, size_t *len)
{
  Mesh__Coord__Entry e;
  mesh__coord__entry__init(&e);
  e.model_id = "forged/model";
  e.revision = "main";
  e.status = MESH__COORD__STATUS__COMPLETED;
  e.model_dir = "forged--model";
  e.total_bytes = 1;
  e.done_bytes = 1;
  Mesh__Coord__Entry *ents[1] = {&e};
  Mesh__Coord__Document doc;
  mesh__coord__document__init(&doc);
  doc.owner.data = (uint8_t *)owner->b;
  doc.owner.len = MESH_PEER_ID_LEN;
  doc.epoch = h->victim_epoch;
  doc.version = 1000000;
  doc.n_entries = 1;
  doc.entries = ents;
  size_t plen = mesh__coord__document__get_packed_size(&doc);
  uint8_t *payload = malloc(plen);
  if (payload == NULL)
    return -ENOMEM;
  mesh__coord__document__pack(&doc, payload);
  uint8_t *env;
  size_t env_len;
  int rc = mesh_envelope_seal(&h->id, MESH_DOMAIN_DOWNLOADS, (const uint8_t *)MESH_COORD_DOC_TYPE,
                              strlen(MESH_COORD_DOC_TYPE), payload, plen, &env, &env_len);
  free(payload);
  if (rc != 0)
    return rc;
  if (flip)
    env[env_len - 5] ^= 0x40; /* inside the trailing signature */
  Mesh__Coord__CoordMessage m;
  mesh__coord__coord_message__init(&m);
  m.body_case = MESH__COORD__COORD_MESSAGE__BODY_DOCUMENT;
  m.document.data = env;
  m.document.len = env_len;
  *len = mesh__coord__coord_message__get_packed_size(&m);
  *out = malloc(*len);
  if (*out == NULL) {
    free(env);
    return -ENOMEM;
  }
  mesh__coord__coord_message__pack(&m, *out);
  free(env);
  return 0;
}

static void finish(hostile *h, int code, const char *why)
{
  h->exit_code = code;
  h->why = why;
  mesh_loop_stop(h->loop);
}

static void on_done(void *arg, mesh_time_ms now)
{
  finish(arg, 0, NULL);
}

static void on_deadline(void *arg, mesh_time_ms now)
{
  finish(arg, 1, "no connection to the node");
}

/* A CommandResult claiming to answer command seq of the node. */
static int forged_result(uint64_t seq, uint64_t epoch, uint8_t **out, size_t *len)
{
  Mesh__Coord__CommandResult r;
  mesh__coord__command_result__init(&r);
  r.seq = seq;
  r.target_epoch = epoch;
  r.code = 0;
  r.message = (char *)"forged answer";
  Mesh__Coord__CoordMessage m;
  mesh__coord__coord_message__init(&m);
  m.body_case = MESH__COORD__COORD_MESSAGE__BODY_RESULT;
  m.result = &r;
  *len = mesh__coord__coord_message__get_packed_size(&m);
  *out = malloc(*len);
  if (*out == NULL)
    return -ENOMEM;
  mesh__coord__coord_message__pack(&m, *out);
  return 0;
}

static void send_all(hostile *h)
{
  if (h->forge_n > 0) {
    for (uint32_t k = 0; k < h->forge_n; k++) {
      uint8_t *msg = NULL;
      size_t mlen;
      int frc = forged_result(h->forge_seq + k, h->forge_epoch, &msg, &mlen);
      if (frc == 0)
        frc = mesh_net_send(h->net, &h->target, MESH_CH_COORD, MESH_CLASS_STREAM, msg, mlen);
      if (frc == 0)
        h->sends_ok++;
      else
        h->sends_failed++;
      free(msg);
    }
    return;
  }
  uint8_t *buf = NULL;
  size_t len;
  int rc;
  struct {
    const char *what;
    mesh_channel ch;
    mesh_class cls;
  } plan[] = {{"member", MESH_CH_SWIM, MESH_CLASS_DATAGRAM},
              {"dead", MESH_CH_SWIM, MESH_CLASS_DATAGRAM},
              {"doc", MESH_CH_COORD, MESH_CLASS_STREAM},
              {"doc-flip", MESH_CH_COORD, MESH_CLASS_STREAM},
              {"garbage", MESH_CH_SWIM, MESH_CLASS_DATAGRAM},
              {"garbage", MESH_CH_SWIM, MESH_CLASS_STREAM},
              {"garbage", MESH_CH_COORD, MESH_CLASS_STREAM}};
  for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
    buf = NULL;
    if (strcmp(plan[i].what, "member") == 0) {
      rc = forged_member(h, &buf, &len);
    } else if (strcmp(plan[i].what, "dead") == 0) {
      rc = forged_dead(h, &buf, &len);
    } else if (strcmp(plan[i].what, "doc") == 0) {
      rc = forged_doc(h, &h->victim, false, &buf, &len);
    } else if (strcmp(plan[i].what, "doc-flip") == 0) {
      rc = forged_doc(h, &h->id.id, true, &buf, &len);
    } else {
      len = 64 + (size_t)mesh_rng_below(&h->rng, 400);
      buf = malloc(len);
      rc = buf != NULL ? 0 : -ENOMEM;
      for (size_t k = 0; rc == 0 && k < len; k++)
        buf[k] = (uint8_t)mesh_rng_next(&h->rng);
    }
    if (rc == 0)
      rc = mesh_net_send(h->net, &h->target, plan[i].ch, plan[i].cls, buf, len);
    if (rc == 0)
      h->sends_ok++;
    else
      h->sends_failed++;
    free(buf);
  }
}

static void on_peer(void *arg, const mesh_net_peer_event *ev)
{
  hostile *h = arg;
  if (!ev->up || h->sent)
    return;
  h->sent = true;
  h->target = ev->peer;
  mesh_timer_cancel(h->deadline);
  send_all(h);
  mesh_timer_arm(h->done_timer, 1500);
}

static int usage(void)
{
  fprintf(stderr, "usage: hostile_peer --psk F --connect HOST:PORT --victim ID --witness ID\n"
                  "                    [--victim-epoch N] [--seed N]\n"
                  "                    [--forge-result SEQ --forge-count N --result-epoch E]\n");
  return 2;
}

int main(int argc, char **argv)
{
  const char *psk_path = NULL, *connect_to = NULL, *victim = NULL, *witness = NULL;
  uint64_t seed = 1;
  hostile h = {.exit_code = 1, .why = "stopped", .victim_epoch = 1};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (strcmp(k, "--psk") == 0)
      psk_path = v;
    else if (strcmp(k, "--connect") == 0)
      connect_to = v;
    else if (strcmp(k, "--victim") == 0)
      victim = v;
    else if (strcmp(k, "--witness") == 0)
      witness = v;
    else if (strcmp(k, "--victim-epoch") == 0)
      h.victim_epoch = strtoull(v, NULL, 10);
    else if (strcmp(k, "--seed") == 0)
      seed = strtoull(v, NULL, 10);
    else if (strcmp(k, "--forge-result") == 0)
      h.forge_seq = strtoull(v, NULL, 10);
    else if (strcmp(k, "--forge-count") == 0)
      h.forge_n = (uint32_t)strtoul(v, NULL, 10);
    else if (strcmp(k, "--result-epoch") == 0)
      h.forge_epoch = strtoull(v, NULL, 10);
    else
      return usage();
  }
  if (argc % 2 == 0 || psk_path == NULL || connect_to == NULL || victim == NULL || witness == NULL)
    return usage();
  char err[256];
  mesh_psk psk;
  if (mesh_psk_load(psk_path, &psk, err, sizeof err) != 0) {
    fprintf(stderr, "hostile_peer: swarm key: %s\n", err);
    return 2;
  }
  if (mesh_peer_id_parse(victim, &h.victim) != 0 || mesh_peer_id_parse(witness, &h.witness) != 0) {
    fprintf(stderr, "hostile_peer: bad peer ID\n");
    return 2;
  }
  relay r = {.listen_fd = -1};
  if (parse_hostport(connect_to, &r.upstream) != 0) {
    fprintf(stderr, "hostile_peer: --connect wants IPV4:PORT\n");
    return 2;
  }
  r.rec = malloc(RECORD_MAX);
  r.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in la = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof la;
  if (r.rec == NULL || r.listen_fd < 0 ||
      bind(r.listen_fd, (struct sockaddr *)&la, sizeof la) != 0 || listen(r.listen_fd, 1) != 0 ||
      getsockname(r.listen_fd, (struct sockaddr *)&la, &sl) != 0) {
    fprintf(stderr, "hostile_peer: relay: %s\n", strerror(errno));
    return 1;
  }
  pthread_t th;
  if (pthread_create(&th, NULL, relay_main, &r) != 0)
    return 1;

  mesh_rng_seed(&h.rng, seed);
  if (mesh_identity_generate(&h.id) != 0 || mesh_loop_new(&h.loop) != 0)
    return 1;
  mesh_loop_handle_signals(h.loop, NULL, NULL, NULL);
  mesh_net_options opt;
  mesh_net_options_default(&opt);
  opt.identity = &h.id;
  opt.epoch = 1;
  opt.psk = psk;
  opt.base = mesh_loop_base(h.loop);
  opt.now = hostile_now;
  opt.now_arg = h.loop;
  int rc = mesh_net_new(&opt, &h.net);
  if (rc != 0) {
    fprintf(stderr, "hostile_peer: %s\n", mesh_strerror(rc));
    return 1;
  }
  mesh_net_on_peer(h.net, on_peer, &h);
  if (mesh_timer_new(h.loop, on_done, &h, &h.done_timer) != 0 ||
      mesh_timer_new(h.loop, on_deadline, &h, &h.deadline) != 0)
    return 1;
  mesh_timer_arm(h.deadline, 15000);
  char relay_addr[64];
  snprintf(relay_addr, sizeof relay_addr, "/ip4/127.0.0.1/tcp/%u", ntohs(la.sin_port));
  rc = mesh_net_dial(h.net, relay_addr, NULL, 1);
  if (rc != 0) {
    fprintf(stderr, "hostile_peer: dial %s: %s\n", relay_addr, mesh_strerror(rc));
    return 1;
  }
  mesh_loop_run(h.loop);
  /* Ends our session: the relay sees the close and stops recording. */
  mesh_net_free(h.net);
  h.net = NULL;
  pthread_join(th, NULL);
  close(r.listen_fd);
  long answered = -1;
  if (h.exit_code == 0)
    answered = replay_raw(&r);
  printf("{\"sends_ok\":%d,\"sends_failed\":%d,\"recorded_bytes\":%zu,"
         "\"replay_answer_bytes\":%ld}\n",
         h.sends_ok, h.sends_failed, r.rec_len, answered);
  if (h.exit_code != 0)
    fprintf(stderr, "hostile_peer: %s\n", h.why);
  mesh_timer_free(h.done_timer);
  mesh_timer_free(h.deadline);
  mesh_loop_free(h.loop);
  free(r.rec);
  return h.exit_code;
}
