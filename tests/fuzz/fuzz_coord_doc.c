/*
 * Fuzzes the coordinator's decoders. The first byte picks what the rest is:
 *   0  a CoordMessage as received from a peer (documents, commands,
 *      requests, results)
 *   1  a Document payload, sealed here with a fixed key of a peer in the
 *      view so that decoding gets past the signature
 *   2  a Command payload, sealed likewise and sent by that peer
 *   3  a membership digest (application state) of that peer
 *   4  a CommandResult from that peer, after a command was sent to it; when
 *      the second byte is odd, its seq and target_epoch are set to the
 *      command's so that the answer is matched
 * Any refusal is fine; a crash, a leak, an entry with a model ID that does
 * not validate, a shown models directory that is not a plain absolute path,
 * or an answer whose code is not 0 or a negative errno or
 * whose text holds a control byte, is not.
 */
#include "coord/coord.h"
#include "proto/coord.pb-c.h"
#include "src/identity/signed.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static mesh_identity me;
static mesh_identity peer;
static mesh_rng rng;
static mesh_coord *coord;
static mesh_time_ms now;

static void fixed_identity(mesh_identity *id, uint8_t fill)
{
  uint8_t seed[crypto_sign_SEEDBYTES];
  memset(seed, fill, sizeof seed);
  crypto_sign_seed_keypair(id->pk, id->sk, seed);
  mesh_peer_id_from_pubkey(id->pk, &id->id);
}

static void init(void)
{
  if (coord != NULL)
    return;
  if (sodium_init() < 0)
    abort();
  fixed_identity(&me, 1);
  fixed_identity(&peer, 2);
  mesh_rng_seed(&rng, 1);
  mesh_coord_settings set;
  mesh_coord_settings_default(&set);
  if (mesh_coord_new(&me, 1, &set, &rng, &coord) != 0)
    abort();
  mesh_view_event ev = {.type = MESH_VIEW_JOINED, .peer = peer.id, .epoch = 1, .old_epoch = 1};
  mesh_coord_view_event(coord, &ev, 0);
}

static void check_entry(void *arg, const mesh_coord_view_entry *ve)
{
  (void)arg;
  if (mesh_model_id_validate(ve->e->model_id, strlen(ve->e->model_id), NULL) != 0)
    abort();
  char dir[MESH_MODEL_DIR_MAX];
  if (mesh_model_dir_name(ve->e->model_id, ve->e->revision, dir, sizeof dir) != 0 ||
      strcmp(dir, ve->e->model_dir) != 0)
    abort();
  /* A models directory shown is a plain absolute path, whatever was sent. */
  if (ve->models_dir != NULL &&
      mesh_coord_models_dir_check(ve->models_dir, strlen(ve->models_dir)) != 0)
    abort();
}

static void sealed(const char *domain, const char *type, int body, const uint8_t *p, size_t n)
{
  uint8_t *env;
  size_t env_len;
  if (mesh_envelope_seal(&peer, domain, (const uint8_t *)type, strlen(type), p, n, &env,
                         &env_len) != 0)
    return;
  uint64_t epoch, version;
  size_t entries;
  if (body == 1)
    (void)mesh_coord_doc_check(env, env_len, &epoch, &version, &entries);
  Mesh__Coord__CoordMessage m;
  mesh__coord__coord_message__init(&m);
  m.body_case = body == 1 ? MESH__COORD__COORD_MESSAGE__BODY_DOCUMENT
                          : MESH__COORD__COORD_MESSAGE__BODY_COMMAND;
  if (body == 1) {
    m.document.data = env;
    m.document.len = env_len;
  } else {
    m.command.data = env;
    m.command.len = env_len;
  }
  size_t len = mesh__coord__coord_message__get_packed_size(&m);
  uint8_t *buf = malloc(len + 1);
  if (buf != NULL) {
    mesh__coord__coord_message__pack(&m, buf);
    mesh_coord_receive(coord, &peer.id, buf, len, now);
    free(buf);
  }
  free(env);
}

/* Sends a command to the peer, then hands it the fuzzed answer. */
static void answer(const uint8_t *p, size_t n)
{
  if (n == 0)
    return;
  mesh_coord_cmd cmd = {.kind = MESH_COORD_CMD_START, .model_id = "org/m", .target = &peer.id};
  uint64_t seq = 0;
  if (mesh_coord_command(coord, &cmd, now, &seq, NULL, 0) != 0)
    return;
  bool match = (p[0] & 1) != 0;
  Mesh__Coord__CommandResult *r = mesh__coord__command_result__unpack(NULL, n - 1, p + 1);
  if (r == NULL)
    return;
  if (match) {
    r->seq = seq;
    r->target_epoch = 1;
  }
  Mesh__Coord__CoordMessage m;
  mesh__coord__coord_message__init(&m);
  m.body_case = MESH__COORD__COORD_MESSAGE__BODY_RESULT;
  m.result = r;
  size_t len = mesh__coord__coord_message__get_packed_size(&m);
  uint8_t *buf = malloc(len + 1);
  if (buf != NULL) {
    mesh__coord__coord_message__pack(&m, buf);
    mesh_coord_receive(coord, &peer.id, buf, len, now);
    free(buf);
  }
  mesh__coord__command_result__free_unpacked(r, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  init();
  if (size == 0)
    return 0;
  now += 1000;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  switch (data[0] % 5) {
  case 0:
    mesh_coord_receive(coord, &peer.id, p, n, now);
    break;
  case 1:
    sealed(MESH_DOMAIN_DOWNLOADS, MESH_COORD_DOC_TYPE, 1, p, n);
    break;
  case 2:
    sealed(MESH_DOMAIN_COMMAND, MESH_COORD_CMD_TYPE, 2, p, n);
    break;
  case 3:
    mesh_coord_app_state(coord, &peer.id, p, n, now);
    break;
  case 4:
    answer(p, n);
    break;
  }
  mesh_coord_visit(coord, now, check_entry, NULL);
  mesh_coord_tick(coord, now);
  mesh_coord_out o;
  while (mesh_coord_pop(coord, &o)) {
    if (o.kind == MESH_COORD_OUT_RESULT) {
      if (o.u.result.code > 0 || o.u.result.code < -4095)
        abort();
      for (const char *c = o.u.result.message; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
          abort();
    }
    mesh_coord_out_release(&o);
  }
  return 0;
}
