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
 * Two floods, for the connection manager's bounds:
 *
 *   hostile_peer --mode ping-req-flood --psk F --connect HOST:PORT
 *                [--count N] [--rate N] [--addr-net A.B] [--seed N]
 *       indirect-probe requests (SWIM PING_REQ) naming N distinct unknown
 *       members, each at its own address A.B.x.y/tcp/1 (default 10.99:
 *       give a range with no route in the node's namespace, so that the
 *       dials it may make fail at once and never leave the machine). They
 *       go out in paced batches, --rate a second (10,000); one that finds
 *       our queue full is sent again on the next turn, so all N reach the
 *       node unless it closes our connection (exit 1 after 10 s without
 *       progress; the JSON line says how many were sent).
 *
 *   hostile_peer --mode idle-conns --psk F --connect HOST:PORT
 *                [--count N] [--hold SECONDS] [--redial-ms MS]
 *       N connections, each under its own throwaway identity that holds
 *       the key and never joins the view (it sends nothing but the
 *       transport's keepalives), held for SECONDS (default 20); one that
 *       the node closes or refuses is dialled again after MS (0, the
 *       default: never, and a slot freed by an evicted handshake stays
 *       free; redialling takes every slot the node gives strangers).
 *       Prints {"ready":..} once every
 *       connection's first dial ended (up or refused) and, when
 *       redialling, the node refused us three rounds in a row with none
 *       coming up ("saturated") or 5 s passed; then the final line at the
 *       end.
 *
 * Four more attacks of a key holder (accuse, bad-sig-flood, sybil-docs,
 * push-pull-flood) are described where they are made, below.
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
  char *end;
  unsigned long port = strtoul(colon + 1, &end, 10);
  if (*end != '\0' || port == 0 || port > 65535)
    return -EINVAL;
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons((uint16_t)port);
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

/* A transport under identity id on loop, ready to dial. */
static int net_for(mesh_loop *loop, const mesh_identity *id, const mesh_psk *psk, mesh_net **out)
{
  mesh_net_options opt;
  mesh_net_options_default(&opt);
  opt.identity = id;
  opt.epoch = 1;
  opt.psk = *psk;
  opt.base = mesh_loop_base(loop);
  opt.now = hostile_now;
  opt.now_arg = loop;
  return mesh_net_new(&opt, out);
}

/* --- ping-req-flood --- */

#define FLOOD_TICK_MS 10     /* the pacing timer's period: --rate / 100 a turn */
#define FLOOD_MAX 64000      /* distinct addresses in A.B.0-255.1-250 */
#define FLOOD_STALL_MS 10000 /* no request queued for this long: give up */

typedef struct flood {
  mesh_loop *loop;
  mesh_net *net; /* owned */
  mesh_identity id;
  mesh_peer_id target; /* the node, once connected */
  mesh_rng rng;
  mesh_timer *tick, *done_timer, *deadline; /* owned */
  const char *connect_to;                   /* the node's address */
  bool up;                                  /* connected now */
  bool dialing;                             /* a dial attempt is under way */
  long redials;                             /* dials after the first (the node closed us) */
  unsigned net_a, net_b;                    /* first two octets of the mentioned addresses */
  long count;                               /* requests to send */
  long batch;                               /* requests a turn of the pacing timer */
  long sent;                                /* queued on the connection */
  long requeued;                            /* found our queue full: sent again later */
  long lost_connection;                     /* times the node closed our connection */
  mesh_time_ms first_at, last_at;           /* first and last request queued */
  int exit_code;
  const char *why;
} flood;

/* PING_REQ number i: a fresh unknown member at its own address.
 * *pkt is the caller's (free). */
static int ping_req_of(flood *f, long i, uint8_t **pkt, size_t *len)
{
  uint8_t pk[MESH_PUBKEY_LEN];
  for (size_t k = 0; k < sizeof pk; k++)
    pk[k] = (uint8_t)mesh_rng_next(&f->rng);
  mesh_peer_id who;
  mesh_peer_id_from_pubkey(pk, &who);
  char addr[64];
  snprintf(addr, sizeof addr, "/ip4/%u.%u.%ld.%ld/tcp/1", f->net_a, f->net_b, i / 250, i % 250 + 1);
  swim_packet_out p = {.kind = MESH_SWIM_MSG_PING_REQ,
                       .seq = (uint32_t)(i + 1),
                       .target = &who,
                       .target_addrs = addr, /* one NUL-terminated address */
                       .n_target_addrs = 1,
                       .nack = true,
                       .epoch = 1};
  return swim_packet_encode(&p, 0, pkt, len);
}

static void flood_finish(flood *f, int code, const char *why)
{
  f->exit_code = code;
  f->why = why;
  mesh_loop_stop(f->loop);
}

static void flood_on_done(void *arg, mesh_time_ms now)
{
  flood_finish(arg, 0, NULL);
}

static void flood_on_deadline(void *arg, mesh_time_ms now)
{
  flood *f = arg;
  flood_finish(f, 1,
               f->sent > 0 ? "connection lost before every request was sent"
                           : "no connection to the node");
}

static void flood_on_tick(void *arg, mesh_time_ms now)
{
  flood *f = arg;
  long before = f->sent;
  if (!f->up && !f->dialing && f->sent > 0) {
    /* The node closed our connection: come back, as an attacker would. */
    f->dialing = mesh_net_dial(f->net, f->connect_to, NULL, 1) == 0;
    f->redials++;
  }
  for (long k = 0; k < f->batch && f->up && f->sent < f->count; k++) {
    uint8_t *pkt = NULL;
    size_t len;
    int rc = ping_req_of(f, f->sent, &pkt, &len);
    if (rc == 0)
      rc = mesh_net_send(f->net, &f->target, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, pkt, len);
    free(pkt);
    if (rc == -ENOBUFS) {
      f->requeued++;
      break; /* our queue is full: the rest on the next turn */
    }
    if (rc == -ENOTCONN)
      break; /* closed: the down event is on its way, then we dial again */
    if (rc != 0) {
      flood_finish(f, 1, "cannot encode or send a request");
      return;
    }
    if (f->sent == 0)
      f->first_at = now;
    f->last_at = now;
    f->sent++;
  }
  if (f->sent > before)
    mesh_timer_arm(f->deadline, FLOOD_STALL_MS); /* progress: the stall clock restarts */
  if (f->sent == f->count) {
    /* Time for the queue to drain onto the wire before we close. */
    mesh_timer_cancel(f->deadline);
    mesh_timer_arm(f->done_timer, 1000);
    return;
  }
  mesh_timer_arm(f->tick, FLOOD_TICK_MS);
}

static void flood_on_peer(void *arg, const mesh_net_peer_event *ev)
{
  flood *f = arg;
  if (f->up && !ev->up)
    f->lost_connection++;
  f->up = ev->up;
  if (ev->up)
    f->target = ev->peer;
}

static void flood_on_dial(void *arg, uint64_t token, int rc, const mesh_peer_id *peer)
{
  flood *f = arg;
  f->dialing = false;
}

static int run_ping_req_flood(const mesh_psk *psk, const char *connect_to, long count, long rate,
                              const char *addr_net, uint64_t seed)
{
  flood f = {.count = count,
             .connect_to = connect_to,
             .batch = rate * FLOOD_TICK_MS / 1000 > 0 ? rate * FLOOD_TICK_MS / 1000 : 1,
             .exit_code = 1,
             .why = "stopped"};
  if (sscanf(addr_net, "%u.%u", &f.net_a, &f.net_b) != 2 || f.net_a > 255 || f.net_b > 255) {
    fprintf(stderr, "hostile_peer: --addr-net wants A.B\n");
    return 2;
  }
  mesh_rng_seed(&f.rng, seed);
  int rc = mesh_identity_generate(&f.id);
  if (rc == 0)
    rc = mesh_loop_new(&f.loop);
  if (rc != 0) {
    fprintf(stderr, "hostile_peer: %s\n", mesh_strerror(rc));
    return 1;
  }
  mesh_loop_handle_signals(f.loop, NULL, NULL, NULL);
  rc = net_for(f.loop, &f.id, psk, &f.net);
  if (rc == 0)
    rc = mesh_timer_new(f.loop, flood_on_tick, &f, &f.tick);
  if (rc == 0)
    rc = mesh_timer_new(f.loop, flood_on_done, &f, &f.done_timer);
  if (rc == 0)
    rc = mesh_timer_new(f.loop, flood_on_deadline, &f, &f.deadline);
  if (rc == 0) {
    mesh_net_on_peer(f.net, flood_on_peer, &f);
    mesh_net_on_dial(f.net, flood_on_dial, &f);
    mesh_timer_arm(f.deadline, FLOOD_STALL_MS);
    mesh_timer_arm(f.tick, FLOOD_TICK_MS);          /* sends once connected */
    rc = mesh_net_dial(f.net, connect_to, NULL, 1); /* host:port is a dial address too */
    f.dialing = rc == 0;
  }
  if (rc != 0) {
    fprintf(stderr, "hostile_peer: %s\n", mesh_strerror(rc));
    f.why = "cannot set up";
  } else {
    mesh_loop_run(f.loop);
  }
  printf("{\"mode\":\"ping-req-flood\",\"count\":%ld,\"sent\":%ld,\"requeued\":%ld,"
         "\"lost_connection\":%ld,\"redials\":%ld,\"send_ms\":%" PRIu64 "}\n",
         f.count, f.sent, f.requeued, f.lost_connection, f.redials,
         (uint64_t)(f.sent > 0 ? f.last_at - f.first_at : 0));
  if (f.exit_code != 0)
    fprintf(stderr, "hostile_peer: %s\n", f.why);
  mesh_net_free(f.net);
  mesh_timer_free(f.tick);
  mesh_timer_free(f.done_timer);
  mesh_timer_free(f.deadline);
  mesh_loop_free(f.loop);
  return f.exit_code;
}

/* --- idle-conns --- */

#define IDLE_MAX 4096
#define IDLE_QUIET_ROUNDS 3    /* redial rounds refused in a row: the node is full of us */
#define IDLE_READY_MAX_MS 5000 /* ready by then, full or not */

struct idle;

typedef struct idle_conn {
  struct idle *owner;
  mesh_identity id; /* throwaway: made for this connection only */
  mesh_net *net;    /* owned */
  bool ever_up, up;
  bool dialing; /* a dial attempt is under way */
  bool tried;   /* its first dial attempt ended (up or refused) */
} idle_conn;

typedef struct idle {
  mesh_loop *loop;
  idle_conn *conns; /* owned, count of them */
  long count;
  long ever_up;    /* connections that finished a handshake at least once */
  long up_now;     /* connections up now */
  long downs;      /* up connections that the node (or the network) ended */
  long reconnects; /* handshakes after a down */
  long tried;      /* connections whose first dial attempt ended */
  long dials;      /* dial attempts, first ones included */
  long dial_failures;
  const char *connect_to;
  mesh_timer *redial;       /* owned: brings back connections the node closed or refused */
  mesh_time_ms redial_ms;   /* its period; 0: never */
  mesh_timer *hold, *check; /* owned */
  mesh_time_ms started_at;
  long ups_seen, fails_seen; /* up events and dial failures at the last redial round */
  int quiet_rounds;          /* redial rounds in a row with refusals and nothing coming up */
  bool saturated;            /* the node took no more of us for IDLE_QUIET_ROUNDS rounds */
  bool ready_printed;
} idle;

static void idle_on_peer(void *arg, const mesh_net_peer_event *ev)
{
  idle_conn *c = arg;
  idle *w = c->owner;
  if (ev->up) {
    if (c->ever_up)
      w->reconnects++;
    else
      w->ever_up++;
    c->ever_up = true;
    if (!c->up)
      w->up_now++;
    c->up = true;
  } else if (c->up) {
    c->up = false;
    w->up_now--;
    w->downs++;
  }
}

static void idle_print(const idle *w, const char *what)
{
  printf("{\"mode\":\"idle-conns\",\"%s\":true,\"count\":%ld,\"ever_up\":%ld,\"up_now\":%ld,"
         "\"downs\":%ld,\"reconnects\":%ld,\"dials\":%ld,\"dial_failures\":%ld,"
         "\"saturated\":%s}\n",
         what, w->count, w->ever_up, w->up_now, w->downs, w->reconnects, w->dials, w->dial_failures,
         w->saturated ? "true" : "false");
  fflush(stdout);
}

static void idle_on_check(void *arg, mesh_time_ms now)
{
  idle *w = arg;
  /* Redialling: ready once the node takes no more of us (or after a
   * while: a node that evicts strangers keeps some coming and going). */
  bool settled = w->redial_ms == 0 || w->saturated || now - w->started_at >= IDLE_READY_MAX_MS;
  if (!w->ready_printed && w->tried == w->count && settled) {
    w->ready_printed = true;
    idle_print(w, "ready");
  }
  mesh_timer_arm(w->check, 100);
}

static void idle_on_dial(void *arg, uint64_t token, int rc, const mesh_peer_id *peer)
{
  idle_conn *c = arg;
  c->dialing = false;
  if (!c->tried)
    c->owner->tried++;
  c->tried = true;
  if (rc != 0)
    c->owner->dial_failures++;
}

static void idle_dial(idle *w, idle_conn *c)
{
  w->dials++;
  c->dialing = mesh_net_dial(c->net, w->connect_to, NULL, 1) == 0;
  if (!c->dialing) {
    w->dial_failures++;
    if (!c->tried)
      w->tried++;
    c->tried = true;
  }
}

/* A throwaway connection that the node closed or refused comes back, as
 * an attacker's would: slots freed by eviction are taken again. */
static void idle_on_redial(void *arg, mesh_time_ms now)
{
  idle *w = arg;
  long ups = w->ever_up + w->reconnects;
  if (ups == w->ups_seen && w->dial_failures > w->fails_seen)
    w->quiet_rounds++;
  else
    w->quiet_rounds = 0;
  w->ups_seen = ups;
  w->fails_seen = w->dial_failures;
  if (w->quiet_rounds >= IDLE_QUIET_ROUNDS)
    w->saturated = true;
  for (long i = 0; i < w->count; i++)
    if (!w->conns[i].up && !w->conns[i].dialing)
      idle_dial(w, &w->conns[i]);
  mesh_timer_arm(w->redial, w->redial_ms);
}

static void idle_on_hold(void *arg, mesh_time_ms now)
{
  idle *w = arg;
  mesh_loop_stop(w->loop);
}

static int run_idle_conns(const mesh_psk *psk, const char *connect_to, long count, long hold_s,
                          long redial_ms)
{
  idle w = {.count = count, .connect_to = connect_to, .redial_ms = (mesh_time_ms)redial_ms};
  long made = 0;
  int code = 1;
  int rc = mesh_loop_new(&w.loop);
  if (rc != 0) {
    fprintf(stderr, "hostile_peer: %s\n", mesh_strerror(rc));
    return 1;
  }
  mesh_loop_handle_signals(w.loop, NULL, NULL, NULL);
  w.conns = calloc((size_t)count, sizeof *w.conns);
  if (w.conns == NULL)
    goto out_loop;
  if (mesh_timer_new(w.loop, idle_on_hold, &w, &w.hold) != 0)
    goto out_conns;
  if (mesh_timer_new(w.loop, idle_on_check, &w, &w.check) != 0)
    goto out_hold;
  if (mesh_timer_new(w.loop, idle_on_redial, &w, &w.redial) != 0)
    goto out_check;
  for (; made < count; made++) {
    idle_conn *c = &w.conns[made];
    c->owner = &w;
    rc = mesh_identity_generate(&c->id);
    if (rc == 0)
      rc = net_for(w.loop, &c->id, psk, &c->net);
    if (rc != 0)
      break;
    mesh_net_on_peer(c->net, idle_on_peer, c);
    mesh_net_on_dial(c->net, idle_on_dial, c);
    idle_dial(&w, c);
  }
  if (rc != 0) {
    fprintf(stderr, "hostile_peer: connection %ld: %s\n", made, mesh_strerror(rc));
  } else {
    mesh_timer_arm(w.check, 100);
    w.started_at = mesh_loop_now(w.loop);
    if (w.redial_ms > 0)
      mesh_timer_arm(w.redial, w.redial_ms);
    mesh_timer_arm(w.hold, (mesh_time_ms)hold_s * 1000);
    mesh_loop_run(w.loop);
    idle_print(&w, "done");
    code = 0;
  }
  for (long i = made - 1; i >= 0; i--)
    mesh_net_free(w.conns[i].net);
  mesh_timer_free(w.redial);
out_check:
  mesh_timer_free(w.check);
out_hold:
  mesh_timer_free(w.hold);
out_conns:
  free(w.conns);
out_loop:
  mesh_loop_free(w.loop);
  return code;
}

/* --- key-holder attacks: accuse, bad-sig-flood, sybil-docs ---
 *
 *   hostile_peer --mode accuse --psk F --connect HOST:PORT
 *                --claim ID@EPOCH [--claim ...] [--rounds N]
 *       N rounds (5), 200 ms apart, of a suspect and a dead claim about
 *       each member named (at the epoch given, with a higher incarnation
 *       each round), made and signed by our own key, which never joined
 *       the view: the node must drop every one (accuser-not-member).
 *
 *   hostile_peer --mode bad-sig-flood --psk F --connect HOST:PORT
 *                --claim ID@EPOCH [--seconds N]
 *       for N seconds (10), gossip datagrams as fast as our queue takes
 *       them, each with four member records of the member named, at its
 *       epoch and ever higher incarnations, signed by our key instead of
 *       the member's; a connection the node closes is dialled again.
 *
 *   hostile_peer --mode sybil-docs --psk F --connect HOST:PORT
 *                [--count N] [--entries N] [--over-cap N] [--hold S]
 *       N identities (12) join the node's view (each sends its own member
 *       record and answers the node's probes) and publish a download
 *       document of --entries entries (1024, each with a long model ID and
 *       the longest failure message), a new version every second, for S
 *       seconds (20); the first --over-cap of them publish one entry more
 *       than an honest owner ever holds.
 *
 *   hostile_peer --mode push-pull-flood --psk F --connect HOST:PORT
 *                [--intro N] [--rate N] [--seconds N]
 *       state exchanges (push-pulls) at --rate a second (10,000: as fast
 *       as the stream takes them) for N seconds (10); the first carries the
 *       records of --intro fresh members (0), each signed by its own key,
 *       the others nothing.
 */

#define CLAIMS_MAX 16                     /* --claim given at most this many times */
#define KH_TICK_MS 10                     /* the pacing timer's period of the floods */
#define KH_UPDATES_PER_PKT 4              /* forged records in one gossip datagram */
#define SYBIL_MAX 256                     /* --count of sybil-docs */
#define SYBIL_ADDR "/ip4/10.99.0.1/tcp/1" /* no route there: a dial to it fails at once */

typedef struct claim_target {
  mesh_peer_id id;
  uint64_t epoch;
} claim_target;

/* "ID@EPOCH" into *t. */
static int claim_parse(const char *s, claim_target *t)
{
  const char *at = strchr(s, '@');
  char idtext[MESH_PEER_ID_TEXT_MAX];
  if (at == NULL || (size_t)(at - s) >= sizeof idtext)
    return -EINVAL;
  memcpy(idtext, s, (size_t)(at - s));
  idtext[at - s] = '\0';
  char *end;
  errno = 0;
  unsigned long long e = strtoull(at + 1, &end, 10);
  if (errno != 0 || end == at + 1 || *end != '\0' || e == 0)
    return -EINVAL;
  t->epoch = e;
  return mesh_peer_id_parse(idtext, &t->id);
}

/* A gossip datagram carrying one claim about target, made and signed by
 * signer in its own name: a key that holds the swarm key but never joined.
 * *pkt is the caller's (free). */
static int own_claim(const mesh_identity *signer, const claim_target *t, bool dead, uint64_t inc,
                     uint8_t **pkt, size_t *len)
{
  swim_accuse_body a = {
      .target = t->id, .accuser = signer->id, .epoch = t->epoch, .incarnation = inc, .dead = dead};
  uint8_t *body = NULL, *upd = NULL;
  size_t blen, ulen;
  uint8_t sig[MESH_SIG_LEN];
  int rc = swim_accuse_body_encode(&a, &body, &blen);
  if (rc == 0)
    rc = mesh_sign(signer, MESH_DOMAIN_ACCUSE, (const uint8_t *)SWIM_TYPE_ACCUSE,
                   strlen(SWIM_TYPE_ACCUSE), body, blen, sig);
  if (rc == 0)
    rc = swim_update_encode(&t->id, true, body, blen, sig, &upd, &ulen);
  if (rc == 0)
    rc = swim_packet_of(upd, ulen, pkt, len);
  free(body);
  free(upd);
  return rc;
}

/* One key-holder session: a transport under one identity, connected to the
 * node (redialled when the node closes it). */
typedef struct kh {
  mesh_loop *loop;
  mesh_net *net; /* owned */
  mesh_identity id;
  mesh_peer_id node; /* valid while up */
  const char *connect_to;
  bool up, dialing;
  long downs, redials;
} kh;

static void kh_on_peer(void *arg, const mesh_net_peer_event *ev)
{
  kh *k = arg;
  if (k->up && !ev->up)
    k->downs++;
  k->up = ev->up;
  if (ev->up)
    k->node = ev->peer;
}

static void kh_on_dial(void *arg, uint64_t token, int rc, const mesh_peer_id *peer)
{
  kh *k = arg;
  k->dialing = false;
}

/* Dials when not connected and no dial is under way. */
static void kh_redial(kh *k)
{
  if (k->up || k->dialing)
    return;
  k->dialing = mesh_net_dial(k->net, k->connect_to, NULL, 1) == 0;
  k->redials++;
}

static int kh_open(kh *k, mesh_loop *loop, const mesh_psk *psk, const char *connect_to)
{
  k->loop = loop;
  k->connect_to = connect_to;
  int rc = mesh_identity_generate(&k->id);
  if (rc == 0)
    rc = net_for(loop, &k->id, psk, &k->net);
  if (rc != 0)
    return rc;
  mesh_net_on_peer(k->net, kh_on_peer, k);
  mesh_net_on_dial(k->net, kh_on_dial, k);
  kh_redial(k);
  k->redials = 0; /* the first dial is not a redial */
  return 0;
}

/* accuse: rounds of suspect and dead claims about each --claim member. */
typedef struct accuser {
  kh k;
  claim_target t[CLAIMS_MAX];
  size_t n;
  long rounds, round;
  long sent, failed;
  mesh_timer *tick, *stop; /* owned */
  int exit_code;
} accuser;

static void accuse_on_stop(void *arg, mesh_time_ms now)
{
  accuser *a = arg;
  mesh_loop_stop(a->k.loop);
}

static void accuse_on_tick(void *arg, mesh_time_ms now)
{
  accuser *a = arg;
  if (!a->k.up) {
    kh_redial(&a->k);
    mesh_timer_arm(a->tick, 100);
    return;
  }
  for (size_t i = 0; i < a->n; i++) {
    for (int dead = 0; dead < 2; dead++) {
      uint8_t *pkt = NULL;
      size_t len;
      int rc = own_claim(&a->k.id, &a->t[i], dead != 0, 1000 + (uint64_t)a->round, &pkt, &len);
      if (rc == 0)
        rc = mesh_net_send(a->k.net, &a->k.node, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, pkt, len);
      free(pkt);
      if (rc == 0)
        a->sent++;
      else
        a->failed++;
    }
  }
  if (++a->round >= a->rounds) {
    a->exit_code = 0;
    mesh_timer_arm(a->stop, 1000); /* time for the last datagrams to go out */
    return;
  }
  mesh_timer_arm(a->tick, 200);
}

static int run_accuse(const mesh_psk *psk, const char *connect_to, const claim_target *t, size_t n,
                      long rounds)
{
  accuser a = {.n = n, .rounds = rounds, .exit_code = 1};
  memcpy(a.t, t, n * sizeof *t);
  mesh_loop *loop;
  int rc = mesh_loop_new(&loop);
  if (rc != 0) {
    fprintf(stderr, "hostile_peer: %s\n", mesh_strerror(rc));
    return 1;
  }
  mesh_loop_handle_signals(loop, NULL, NULL, NULL);
  rc = mesh_timer_new(loop, accuse_on_tick, &a, &a.tick);
  if (rc == 0)
    rc = mesh_timer_new(loop, accuse_on_stop, &a, &a.stop);
  if (rc == 0)
    rc = kh_open(&a.k, loop, psk, connect_to);
  if (rc == 0) {
    mesh_timer_arm(a.tick, 50);
    mesh_timer_arm(a.stop, 15000); /* replaced by the short one once every round went out */
    mesh_loop_run(loop);
  } else {
    fprintf(stderr, "hostile_peer: %s\n", mesh_strerror(rc));
  }
  char who[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(&a.k.id.id, who, sizeof who);
  printf("{\"mode\":\"accuse\",\"accuser\":\"%s\",\"rounds\":%ld,\"claims_sent\":%ld,"
         "\"claims_failed\":%ld,\"downs\":%ld}\n",
         who, a.round, a.sent, a.failed, a.k.downs);
  if (a.exit_code != 0)
    fprintf(stderr, "hostile_peer: not every round went out (no connection?)\n");
  mesh_net_free(a.k.net);
  mesh_timer_free(a.tick);
  mesh_timer_free(a.stop);
  mesh_loop_free(loop);
  return a.exit_code;
}

/* bad-sig-flood: gossip datagrams, each with KH_UPDATES_PER_PKT member
 * records for a live member at its epoch and a higher incarnation, signed
 * by our key instead of the member's: each one the node would take if the
 * signature held, so each costs it a verification until its budget cuts us
 * off. Sent as fast as our queue takes them for --seconds; a connection the
 * node closes is dialled again at once. */
typedef struct sigflood {
  kh k;
  claim_target subject;
  uint64_t inc;
  long sent, requeued;
  mesh_time_ms until, first_at, last_at;
  mesh_timer *tick; /* owned */
} sigflood;

/* One datagram of the flood; *pkt is the caller's (free). */
static int forged_records(sigflood *f, uint8_t **pkt, size_t *len)
{
  const uint8_t *ups[KH_UPDATES_PER_PKT] = {NULL};
  size_t lens[KH_UPDATES_PER_PKT];
  const char *addrs[1] = {SYBIL_ADDR};
  int rc = 0;
  size_t n = 0;
  for (; n < KH_UPDATES_PER_PKT && rc == 0; n++) {
    uint8_t *body = NULL, *upd = NULL;
    size_t blen;
    uint8_t sig[MESH_SIG_LEN];
    rc = swim_member_body_encode(&f->subject.id, f->subject.epoch, ++f->inc, false, addrs, 1, NULL,
                                 0, "meshd/0.1.0", "forged", &body, &blen);
    if (rc == 0)
      rc = mesh_sign(&f->k.id, MESH_DOMAIN_MEMBER, (const uint8_t *)SWIM_TYPE_MEMBER,
                     strlen(SWIM_TYPE_MEMBER), body, blen, sig);
    if (rc == 0)
      rc = swim_update_encode(&f->subject.id, false, body, blen, sig, &upd, &lens[n]);
    free(body);
    ups[n] = upd;
  }
  if (rc == 0) {
    swim_packet_out p = {.kind = MESH_SWIM_MSG_GOSSIP,
                         .epoch = 1,
                         .updates = ups,
                         .update_lens = lens,
                         .n_updates = n};
    rc = swim_packet_encode(&p, 0, pkt, len);
  }
  for (size_t i = 0; i < n; i++)
    free((uint8_t *)ups[i]);
  return rc;
}

static void sigflood_on_tick(void *arg, mesh_time_ms now)
{
  sigflood *f = arg;
  if (now >= f->until) {
    mesh_loop_stop(f->k.loop);
    return;
  }
  kh_redial(&f->k);
  /* A turn's worth: the queue refuses the rest, which waits for the next. */
  for (int i = 0; i < 64 && f->k.up; i++) {
    uint8_t *pkt = NULL;
    size_t len;
    int rc = forged_records(f, &pkt, &len);
    if (rc == 0)
      rc = mesh_net_send(f->k.net, &f->k.node, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, pkt, len);
    free(pkt);
    if (rc != 0) {
      if (rc == -ENOBUFS)
        f->requeued++;
      break;
    }
    if (f->sent == 0)
      f->first_at = now;
    f->last_at = now;
    f->sent++;
  }
  mesh_timer_arm(f->tick, KH_TICK_MS);
}

static int run_bad_sig_flood(const mesh_psk *psk, const char *connect_to, const claim_target *t,
                             long seconds)
{
  sigflood f = {.subject = *t, .inc = 1000000};
  mesh_loop *loop;
  int rc = mesh_loop_new(&loop);
  if (rc != 0) {
    fprintf(stderr, "hostile_peer: %s\n", mesh_strerror(rc));
    return 1;
  }
  mesh_loop_handle_signals(loop, NULL, NULL, NULL);
  rc = mesh_timer_new(loop, sigflood_on_tick, &f, &f.tick);
  if (rc == 0)
    rc = kh_open(&f.k, loop, psk, connect_to);
  if (rc == 0) {
    f.until = mesh_loop_now(loop) + (mesh_time_ms)seconds * 1000;
    mesh_timer_arm(f.tick, KH_TICK_MS);
    mesh_loop_run(loop);
  } else {
    fprintf(stderr, "hostile_peer: %s\n", mesh_strerror(rc));
  }
  printf("{\"mode\":\"bad-sig-flood\",\"packets_sent\":%ld,\"records_sent\":%ld,"
         "\"requeued\":%ld,\"downs\":%ld,\"redials\":%ld,\"send_ms\":%" PRIu64 "}\n",
         f.sent, f.sent * KH_UPDATES_PER_PKT, f.requeued, f.k.downs, f.k.redials,
         (uint64_t)(f.sent > 0 ? f.last_at - f.first_at : 0));
  mesh_net_free(f.k.net);
  mesh_timer_free(f.tick);
  mesh_loop_free(loop);
  return rc == 0 && f.sent > 0 ? 0 : 1;
}

/* sybil-docs: --count identities that each join (their own member record,
 * signed by themselves, answering the node's probes) and publish a download
 * document of --entries entries, a new version every second. The first
 * --over-cap of them publish more entries than any honest owner holds. */
struct sybils;

typedef struct sybil {
  kh k;
  struct sybils *owner;
  uint64_t version;
  bool joined; /* our member record went out on this connection */
} sybil;

typedef struct sybils {
  mesh_loop *loop;
  sybil *s; /* owned, count of them */
  long count, entries, over_cap;
  long docs_sent, doc_failures, records_sent, pings_answered;
  uint64_t doc_bytes_max;  /* the largest document sent */
  mesh_timer *tick, *hold; /* owned */
} sybils;

/* Our own member record, as a gossip datagram; *pkt is the caller's (free). */
static int own_record(const sybil *y, uint8_t **pkt, size_t *len)
{
  uint8_t *body = NULL, *upd = NULL;
  size_t blen, ulen;
  uint8_t sig[MESH_SIG_LEN];
  const char *addrs[1] = {SYBIL_ADDR};
  int rc = swim_member_body_encode(&y->k.id.id, 1, 0, false, addrs, 1, NULL, 0, "meshd/0.1.0",
                                   "sybil", &body, &blen);
  if (rc == 0)
    rc = mesh_sign(&y->k.id, MESH_DOMAIN_MEMBER, (const uint8_t *)SWIM_TYPE_MEMBER,
                   strlen(SWIM_TYPE_MEMBER), body, blen, sig);
  if (rc == 0)
    rc = swim_update_encode(&y->k.id.id, false, body, blen, sig, &upd, &ulen);
  if (rc == 0)
    rc = swim_packet_of(upd, ulen, pkt, len);
  free(body);
  free(upd);
  return rc;
}

/* Our document of n entries, each as large as an entry gets (a long model
 * ID and a failure message of the longest kind), sealed by us, as a
 * CoordMessage; *out is the caller's (free). */
static int sybil_doc(const sybil *y, long n, uint8_t **out, size_t *len)
{
  int rc = -ENOMEM;
  char err[MESH_COORD_ERROR_MAX];
  memset(err, 'e', sizeof err - 1);
  err[sizeof err - 1] = '\0';
  Mesh__Coord__Entry *ents = calloc((size_t)n, sizeof *ents);
  Mesh__Coord__Entry **ptrs = calloc((size_t)n, sizeof *ptrs);
  char(*ids)[MESH_MODEL_ID_MAX] = calloc((size_t)n, sizeof *ids);
  uint8_t *payload = NULL, *env = NULL;
  size_t env_len = 0;
  if (ents == NULL || ptrs == NULL || ids == NULL)
    goto out;
  for (long i = 0; i < n; i++) {
    mesh__coord__entry__init(&ents[i]);
    snprintf(ids[i], sizeof ids[i],
             "sybil-org-%06ld/model-%06ld-padding-padding-padding-padding-padding-padding", i, i);
    ents[i].model_id = ids[i];
    ents[i].revision = (char *)"main";
    ents[i].status = MESH__COORD__STATUS__FAILED;
    ents[i].model_dir = (char *)"";
    ents[i].error = err;
    ents[i].total_bytes = 1u << 30;
    ptrs[i] = &ents[i];
  }
  Mesh__Coord__Document doc;
  mesh__coord__document__init(&doc);
  doc.owner.data = (uint8_t *)y->k.id.id.b;
  doc.owner.len = MESH_PEER_ID_LEN;
  doc.epoch = 1;
  doc.version = y->version;
  doc.n_entries = (size_t)n;
  doc.entries = ptrs;
  size_t plen = mesh__coord__document__get_packed_size(&doc);
  payload = malloc(plen);
  if (payload == NULL)
    goto out;
  mesh__coord__document__pack(&doc, payload);
  rc = mesh_envelope_seal(&y->k.id, MESH_DOMAIN_DOWNLOADS, (const uint8_t *)MESH_COORD_DOC_TYPE,
                          strlen(MESH_COORD_DOC_TYPE), payload, plen, &env, &env_len);
  if (rc != 0)
    goto out;
  Mesh__Coord__CoordMessage m;
  mesh__coord__coord_message__init(&m);
  m.body_case = MESH__COORD__COORD_MESSAGE__BODY_DOCUMENT;
  m.document.data = env;
  m.document.len = env_len;
  *len = mesh__coord__coord_message__get_packed_size(&m);
  *out = malloc(*len);
  rc = *out != NULL ? 0 : -ENOMEM;
  if (rc == 0)
    mesh__coord__coord_message__pack(&m, *out);
out:
  free(env);
  free(payload);
  free(ids);
  free(ptrs);
  free(ents);
  return rc;
}

/* A member answers the node's probes: an ACK for every PING meant for us. */
static void sybil_on_message(void *arg, const mesh_peer_id *from, uint64_t epoch, mesh_channel ch,
                             mesh_class cls, const uint8_t *buf, size_t len)
{
  sybil *y = arg;
  if (ch != MESH_CH_SWIM)
    return;
  swim_packet p;
  if (swim_packet_decode(buf, len, &p) != 0)
    return;
  if (p.kind == MESH_SWIM_MSG_PING && (!p.has_target || mesh_peer_id_eq(&p.target, &y->k.id.id))) {
    swim_packet_out a = {.kind = MESH_SWIM_MSG_ACK, .seq = p.seq, .epoch = 1};
    uint8_t *out = NULL;
    size_t olen;
    if (swim_packet_encode(&a, 0, &out, &olen) == 0 &&
        mesh_net_send(y->k.net, from, MESH_CH_SWIM, cls, out, olen) == 0)
      y->owner->pings_answered++;
    free(out);
  }
  swim_packet_release(&p);
}

static void sybils_on_tick(void *arg, mesh_time_ms now)
{
  sybils *w = arg;
  for (long i = 0; i < w->count; i++) {
    sybil *y = &w->s[i];
    if (!y->k.up) {
      y->joined = false;
      kh_redial(&y->k);
      continue;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;
    if (!y->joined) {
      /* Join first; the document goes next turn, once we are in the view. */
      rc = own_record(y, &buf, &len);
      if (rc == 0)
        rc = mesh_net_send(y->k.net, &y->k.node, MESH_CH_SWIM, MESH_CLASS_DATAGRAM, buf, len);
      if (rc == 0) {
        y->joined = true;
        w->records_sent++;
      }
      free(buf);
      continue;
    }
    y->version++;
    rc = sybil_doc(y, i < w->over_cap ? MESH_COORD_MAX_OWN_ENTRIES + 1 : w->entries, &buf, &len);
    if (rc == 0)
      rc = mesh_net_send(y->k.net, &y->k.node, MESH_CH_COORD, MESH_CLASS_STREAM, buf, len);
    if (rc == 0) {
      w->docs_sent++;
      if (len > w->doc_bytes_max)
        w->doc_bytes_max = len;
    } else {
      w->doc_failures++;
    }
    free(buf);
  }
  mesh_timer_arm(w->tick, 1000);
}

static void sybils_on_hold(void *arg, mesh_time_ms now)
{
  sybils *w = arg;
  mesh_loop_stop(w->loop);
}

static int run_sybil_docs(const mesh_psk *psk, const char *connect_to, long count, long entries,
                          long over_cap, long hold_s)
{
  sybils w = {.count = count, .entries = entries, .over_cap = over_cap};
  long made = 0, up = 0;
  int rc = mesh_loop_new(&w.loop);
  if (rc != 0) {
    fprintf(stderr, "hostile_peer: %s\n", mesh_strerror(rc));
    return 1;
  }
  mesh_loop_handle_signals(w.loop, NULL, NULL, NULL);
  w.s = calloc((size_t)count, sizeof *w.s);
  rc = w.s != NULL ? 0 : -ENOMEM;
  if (rc == 0)
    rc = mesh_timer_new(w.loop, sybils_on_tick, &w, &w.tick);
  if (rc == 0)
    rc = mesh_timer_new(w.loop, sybils_on_hold, &w, &w.hold);
  for (; rc == 0 && made < count; made++) {
    sybil *y = &w.s[made];
    y->owner = &w;
    rc = kh_open(&y->k, w.loop, psk, connect_to);
    if (rc == 0)
      mesh_net_on_message(y->k.net, sybil_on_message, y);
    else
      break;
  }
  if (rc == 0) {
    mesh_timer_arm(w.tick, 300);
    mesh_timer_arm(w.hold, (mesh_time_ms)hold_s * 1000);
    mesh_loop_run(w.loop);
  } else {
    fprintf(stderr, "hostile_peer: sybil %ld: %s\n", made, mesh_strerror(rc));
  }
  for (long i = 0; i < made; i++)
    up += w.s[i].k.up ? 1 : 0;
  printf("{\"mode\":\"sybil-docs\",\"count\":%ld,\"up_at_end\":%ld,\"records_sent\":%ld,"
         "\"docs_sent\":%ld,\"doc_failures\":%ld,\"doc_bytes_max\":%" PRIu64
         ",\"pings_answered\":%ld}\n",
         made, up, w.records_sent, w.docs_sent, w.doc_failures, w.doc_bytes_max, w.pings_answered);
  for (long i = made - 1; i >= 0; i--)
    mesh_net_free(w.s[i].k.net);
  free(w.s);
  mesh_timer_free(w.tick);
  mesh_timer_free(w.hold);
  mesh_loop_free(w.loop);
  return rc == 0 && w.docs_sent > 0 ? 0 : 1;
}

/* push-pull-flood: state exchanges as fast as --rate allows, for
 * --seconds; the first one introduces --intro members nobody knows (fresh
 * identities, each record signed by its own key), the others carry nothing.
 * Each costs the node a pass and an answer as large as its view, so it
 * takes only a few a second from one peer. */
typedef struct ppflood {
  kh k;
  long batch; /* exchanges a turn of the pacing timer */
  long sent, queue_full;
  bool intro_sent;
  uint8_t *intro; /* owned: the first exchange */
  size_t intro_len;
  mesh_time_ms until;
  mesh_timer *tick; /* owned */
} ppflood;

/* A push-pull carrying n fresh members' records (n may be 0); *pkt is the
 * caller's (free). */
static int push_pull_of(long n, uint8_t **pkt, size_t *len)
{
  const uint8_t **ups = calloc((size_t)n + 1, sizeof *ups);
  size_t *lens = calloc((size_t)n + 1, sizeof *lens);
  int rc = ups != NULL && lens != NULL ? 0 : -ENOMEM;
  long made = 0;
  for (; rc == 0 && made < n; made++) {
    mesh_identity who;
    uint8_t *body = NULL, *upd = NULL;
    size_t blen;
    uint8_t sig[MESH_SIG_LEN];
    char addr[64];
    snprintf(addr, sizeof addr, "/ip4/10.97.%ld.%ld/tcp/1", made / 250, made % 250 + 1);
    const char *addrs[1] = {addr};
    rc = mesh_identity_generate(&who);
    if (rc == 0)
      rc = swim_member_body_encode(&who.id, 1, 0, false, addrs, 1, NULL, 0, "meshd/0.1.0",
                                   "introduced", &body, &blen);
    if (rc == 0)
      rc = mesh_sign(&who, MESH_DOMAIN_MEMBER, (const uint8_t *)SWIM_TYPE_MEMBER,
                     strlen(SWIM_TYPE_MEMBER), body, blen, sig);
    if (rc == 0)
      rc = swim_update_encode(&who.id, false, body, blen, sig, &upd, &lens[made]);
    free(body);
    ups[made] = upd;
    if (rc != 0)
      break;
  }
  if (rc == 0) {
    swim_packet_out p = {.kind = MESH_SWIM_MSG_PUSH_PULL,
                         .epoch = 1,
                         .updates = ups,
                         .update_lens = lens,
                         .n_updates = (size_t)n};
    rc = swim_packet_encode(&p, 0, pkt, len);
  }
  for (long i = 0; ups != NULL && i <= made && i < n; i++)
    free((uint8_t *)ups[i]);
  free(ups);
  free(lens);
  return rc;
}

static void ppflood_on_tick(void *arg, mesh_time_ms now)
{
  ppflood *f = arg;
  if (now >= f->until) {
    mesh_loop_stop(f->k.loop);
    return;
  }
  kh_redial(&f->k);
  for (long i = 0; i < f->batch && f->k.up; i++) {
    uint8_t *pkt = NULL;
    size_t len = 0;
    int rc = 0;
    if (!f->intro_sent) {
      pkt = f->intro;
      len = f->intro_len;
    } else {
      rc = push_pull_of(0, &pkt, &len);
    }
    if (rc == 0)
      rc = mesh_net_send(f->k.net, &f->k.node, MESH_CH_SWIM, MESH_CLASS_STREAM, pkt, len);
    if (pkt != f->intro)
      free(pkt);
    if (rc != 0) {
      f->queue_full++;
      break; /* the stream's queue is full: the rest next turn */
    }
    f->intro_sent = true;
    f->sent++;
  }
  mesh_timer_arm(f->tick, KH_TICK_MS);
}

static int run_push_pull_flood(const mesh_psk *psk, const char *connect_to, long intro, long rate,
                               long seconds)
{
  ppflood f = {.batch = rate * KH_TICK_MS / 1000 > 0 ? rate * KH_TICK_MS / 1000 : 1};
  mesh_loop *loop;
  int rc = mesh_loop_new(&loop);
  if (rc != 0) {
    fprintf(stderr, "hostile_peer: %s\n", mesh_strerror(rc));
    return 1;
  }
  mesh_loop_handle_signals(loop, NULL, NULL, NULL);
  rc = push_pull_of(intro, &f.intro, &f.intro_len);
  if (rc == 0)
    rc = mesh_timer_new(loop, ppflood_on_tick, &f, &f.tick);
  if (rc == 0)
    rc = kh_open(&f.k, loop, psk, connect_to);
  if (rc == 0) {
    f.until = mesh_loop_now(loop) + (mesh_time_ms)seconds * 1000;
    mesh_timer_arm(f.tick, KH_TICK_MS);
    mesh_loop_run(loop);
  } else {
    fprintf(stderr, "hostile_peer: %s\n", mesh_strerror(rc));
  }
  printf("{\"mode\":\"push-pull-flood\",\"sent\":%ld,\"introduced\":%ld,\"queue_full\":%ld,"
         "\"downs\":%ld,\"redials\":%ld}\n",
         f.sent, f.intro_sent ? intro : 0, f.queue_full, f.k.downs, f.k.redials);
  mesh_net_free(f.k.net);
  mesh_timer_free(f.tick);
  free(f.intro);
  mesh_loop_free(loop);
  return rc == 0 && f.intro_sent ? 0 : 1;
}

static int usage(void)
{
  fprintf(stderr, "usage: hostile_peer --psk F --connect HOST:PORT --victim ID --witness ID\n"
                  "                    [--victim-epoch N] [--seed N]\n"
                  "                    [--forge-result SEQ --forge-count N --result-epoch E]\n"
                  "       hostile_peer --mode ping-req-flood --psk F --connect HOST:PORT\n"
                  "                    [--count N] [--rate N] [--addr-net A.B] [--seed N]\n"
                  "       hostile_peer --mode idle-conns --psk F --connect HOST:PORT\n"
                  "                    [--count N] [--hold SECONDS] [--redial-ms MS]\n");
  fprintf(stderr, "       hostile_peer --mode accuse --psk F --connect HOST:PORT\n"
                  "                    --claim ID@EPOCH [--claim ...] [--rounds N]\n"
                  "       hostile_peer --mode bad-sig-flood --psk F --connect HOST:PORT\n"
                  "                    --claim ID@EPOCH [--seconds N]\n"
                  "       hostile_peer --mode sybil-docs --psk F --connect HOST:PORT\n"
                  "                    [--count N] [--entries N] [--over-cap N] [--hold S]\n"
                  "       hostile_peer --mode push-pull-flood --psk F --connect HOST:PORT\n"
                  "                    [--intro N] [--rate N] [--seconds N]\n");
  return 2;
}

/* A whole decimal number in [lo, hi], or -1. */
static long number_arg(const char *v, long lo, long hi)
{
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno != 0 || end == v || *end != '\0' || n < lo || n > hi)
    return -1;
  return n;
}

int main(int argc, char **argv)
{
  const char *psk_path = NULL, *connect_to = NULL, *victim = NULL, *witness = NULL;
  const char *mode = "forge", *addr_net = "10.99";
  long count = -1, hold_s = 20, rate = 10000, redial_ms = 0;
  long rounds = 5, seconds = 10, entries = MESH_COORD_MAX_OWN_ENTRIES, over_cap = 0, intro = 0;
  claim_target claims[CLAIMS_MAX];
  size_t n_claims = 0;
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
    else if (strcmp(k, "--mode") == 0)
      mode = v;
    else if (strcmp(k, "--count") == 0)
      count = number_arg(v, 1, FLOOD_MAX);
    else if (strcmp(k, "--hold") == 0)
      hold_s = number_arg(v, 1, 3600);
    else if (strcmp(k, "--rate") == 0)
      rate = number_arg(v, 1, 1000000);
    else if (strcmp(k, "--redial-ms") == 0)
      redial_ms = number_arg(v, 0, 600000);
    else if (strcmp(k, "--addr-net") == 0)
      addr_net = v;
    else if (strcmp(k, "--claim") == 0) {
      if (n_claims == CLAIMS_MAX || claim_parse(v, &claims[n_claims]) != 0)
        return usage();
      n_claims++;
    } else if (strcmp(k, "--rounds") == 0)
      rounds = number_arg(v, 1, 1000);
    else if (strcmp(k, "--seconds") == 0)
      seconds = number_arg(v, 1, 3600);
    else if (strcmp(k, "--entries") == 0)
      entries = number_arg(v, 0, MESH_COORD_MAX_OWN_ENTRIES);
    else if (strcmp(k, "--over-cap") == 0)
      over_cap = number_arg(v, 0, SYBIL_MAX);
    else if (strcmp(k, "--intro") == 0)
      intro = number_arg(v, 0, FLOOD_MAX);
    else
      return usage();
    if (rounds < 0 || seconds < 0 || entries < 0 || over_cap < 0 || intro < 0)
      return usage();
    if (count == -1 && strcmp(k, "--count") == 0)
      return usage();
    if (hold_s < 0 || rate < 0 || redial_ms < 0)
      return usage();
  }
  if (argc % 2 == 0 || psk_path == NULL || connect_to == NULL)
    return usage();
  bool forge = strcmp(mode, "forge") == 0;
  if (forge && (victim == NULL || witness == NULL))
    return usage();
  bool claims_mode = strcmp(mode, "accuse") == 0 || strcmp(mode, "bad-sig-flood") == 0;
  if (!forge && !claims_mode && strcmp(mode, "ping-req-flood") != 0 &&
      strcmp(mode, "idle-conns") != 0 && strcmp(mode, "sybil-docs") != 0 &&
      strcmp(mode, "push-pull-flood") != 0)
    return usage();
  if (claims_mode && n_claims == 0)
    return usage();
  if (strcmp(mode, "sybil-docs") == 0 && count > SYBIL_MAX)
    return usage();
  if (strcmp(mode, "idle-conns") == 0 && count > IDLE_MAX)
    return usage();
  char err[256];
  mesh_psk psk;
  if (mesh_psk_load(psk_path, &psk, err, sizeof err) != 0) {
    fprintf(stderr, "hostile_peer: swarm key: %s\n", err);
    return 2;
  }
  if (strcmp(mode, "ping-req-flood") == 0)
    return run_ping_req_flood(&psk, connect_to, count > 0 ? count : 10000, rate, addr_net, seed);
  if (strcmp(mode, "idle-conns") == 0)
    return run_idle_conns(&psk, connect_to, count > 0 ? count : 300, hold_s, redial_ms);
  if (strcmp(mode, "accuse") == 0)
    return run_accuse(&psk, connect_to, claims, n_claims, rounds);
  if (strcmp(mode, "bad-sig-flood") == 0)
    return run_bad_sig_flood(&psk, connect_to, &claims[0], seconds);
  if (strcmp(mode, "sybil-docs") == 0)
    return run_sybil_docs(&psk, connect_to, count > 0 ? count : 12, entries, over_cap, hold_s);
  if (strcmp(mode, "push-pull-flood") == 0)
    return run_push_pull_flood(&psk, connect_to, intro, rate, seconds);
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
  int rc = net_for(h.loop, &h.id, &psk, &h.net);
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
