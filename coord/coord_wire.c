/*
 * The coordinator's wire: encoding and decoding of proto/coord.proto
 * messages, signing and checking documents and commands, and dispatch of
 * what arrives on MESH_CH_COORD. Every count, length and string from the
 * network is bounded here before anything else sees it.
 */
#include "coord/coord_internal.h"

#include "proto/coord.pb-c.h"
#include "src/base/err.h"
#include "src/identity/signed.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest CoordMessage accepted: an envelope of the largest payload plus
 * the envelope's own fields. */
#define COORD_MSG_MAX (MESH_ENVELOPE_MAX_PAYLOAD + 4096)

/* ---- encoding ------------------------------------------------------------ */

static int pack_message(const Mesh__Coord__CoordMessage *m, uint8_t **out, size_t *len)
{
  size_t n = mesh__coord__coord_message__get_packed_size(m);
  uint8_t *buf = malloc(n > 0 ? n : 1);
  if (buf == NULL)
    return -ENOMEM;
  mesh__coord__coord_message__pack(m, buf);
  *out = buf;
  *len = n;
  return 0;
}

int coord_wire_doc_encode(mesh_coord *c, mesh_time_ms now, uint8_t **out, size_t *len)
{
  Mesh__Coord__Document doc;
  mesh__coord__document__init(&doc);
  Mesh__Coord__Entry *ents = NULL;
  Mesh__Coord__Entry **ptrs = NULL;
  uint8_t *payload = NULL;
  int rc = -ENOMEM;
  size_t n = 0;

  if (c->own_n > 0) {
    ents = calloc(c->own_n, sizeof *ents);
    ptrs = calloc(c->own_n, sizeof *ptrs);
    if (ents == NULL || ptrs == NULL)
      goto out;
  }
  for (size_t i = 0; i < c->own_n; i++) {
    const coord_own *o = &c->own[i];
    if (o->verifying)
      continue;
    Mesh__Coord__Entry *e = &ents[n];
    mesh__coord__entry__init(e);
    e->model_id = (char *)o->e.model_id;
    e->revision = (char *)o->e.revision;
    e->status = (Mesh__Coord__Status)o->e.status;
    e->model_dir = (char *)o->e.model_dir;
    e->total_bytes = o->e.total_bytes;
    e->done_bytes = o->e.done_bytes;
    e->files_done = o->e.files_done;
    e->files_total = o->e.files_total;
    e->speed_bps = o->e.speed_bps;
    e->eta_ms = o->e.eta_ms;
    e->error = (char *)o->e.error;
    e->attempts = o->e.attempts;
    e->retry_in_ms = o->e.retry_at > now ? o->e.retry_at - now : 0;
    ptrs[n++] = e;
  }
  doc.owner.data = (uint8_t *)c->id->id.b;
  doc.owner.len = MESH_PEER_ID_LEN;
  doc.epoch = c->epoch;
  doc.version = c->version;
  doc.n_entries = n;
  doc.entries = ptrs;
  doc.models_dir = c->pub_models_dir;
  size_t plen = mesh__coord__document__get_packed_size(&doc);
  payload = malloc(plen > 0 ? plen : 1);
  if (payload == NULL)
    goto out;
  mesh__coord__document__pack(&doc, payload);
  rc = mesh_envelope_seal(c->id, MESH_DOMAIN_DOWNLOADS, (const uint8_t *)MESH_COORD_DOC_TYPE,
                          strlen(MESH_COORD_DOC_TYPE), payload, plen, out, len);
out:
  free(payload);
  free(ptrs);
  free(ents);
  return rc;
}

int coord_wire_wrap_doc(const uint8_t *env, size_t env_len, uint8_t **out, size_t *len)
{
  Mesh__Coord__CoordMessage m;
  mesh__coord__coord_message__init(&m);
  m.body_case = MESH__COORD__COORD_MESSAGE__BODY_DOCUMENT;
  m.document.data = (uint8_t *)env;
  m.document.len = env_len;
  return pack_message(&m, out, len);
}

int coord_wire_request(const mesh_peer_id *owner, uint64_t epoch, uint64_t version, uint8_t **out,
                       size_t *len)
{
  Mesh__Coord__DocRequest r;
  mesh__coord__doc_request__init(&r);
  r.owner.data = (uint8_t *)owner->b;
  r.owner.len = MESH_PEER_ID_LEN;
  r.epoch = epoch;
  r.version = version;
  Mesh__Coord__CoordMessage m;
  mesh__coord__coord_message__init(&m);
  m.body_case = MESH__COORD__COORD_MESSAGE__BODY_REQUEST;
  m.request = &r;
  return pack_message(&m, out, len);
}

int coord_wire_command(mesh_coord *c, const mesh_coord_cmd *cmd, uint64_t target_epoch,
                       uint64_t seq, uint8_t **out, size_t *len)
{
  Mesh__Coord__Command k;
  mesh__coord__command__init(&k);
  k.sender.data = (uint8_t *)c->id->id.b;
  k.sender.len = MESH_PEER_ID_LEN;
  k.sender_epoch = c->epoch;
  k.target.data = (uint8_t *)cmd->target->b;
  k.target.len = MESH_PEER_ID_LEN;
  k.target_epoch = target_epoch;
  k.seq = seq;
  k.kind = (Mesh__Coord__CommandKind)cmd->kind;
  k.model_id = (char *)cmd->model_id;
  k.revision = (char *)(cmd->revision != NULL ? cmd->revision : "main");
  k.total_bytes = cmd->total_bytes;
  size_t plen = mesh__coord__command__get_packed_size(&k);
  uint8_t *payload = malloc(plen > 0 ? plen : 1);
  if (payload == NULL)
    return -ENOMEM;
  mesh__coord__command__pack(&k, payload);
  uint8_t *env;
  size_t env_len;
  int rc = mesh_envelope_seal(c->id, MESH_DOMAIN_COMMAND, (const uint8_t *)MESH_COORD_CMD_TYPE,
                              strlen(MESH_COORD_CMD_TYPE), payload, plen, &env, &env_len);
  free(payload);
  if (rc != 0)
    return rc;
  Mesh__Coord__CoordMessage m;
  mesh__coord__coord_message__init(&m);
  m.body_case = MESH__COORD__COORD_MESSAGE__BODY_COMMAND;
  m.command.data = env;
  m.command.len = env_len;
  rc = pack_message(&m, out, len);
  free(env);
  return rc;
}

int coord_wire_result(uint64_t seq, uint64_t target_epoch, int code, const char *message,
                      uint8_t **out, size_t *len)
{
  Mesh__Coord__CommandResult r;
  mesh__coord__command_result__init(&r);
  r.seq = seq;
  r.target_epoch = target_epoch;
  r.code = code;
  r.message = (char *)message;
  Mesh__Coord__CoordMessage m;
  mesh__coord__coord_message__init(&m);
  m.body_case = MESH__COORD__COORD_MESSAGE__BODY_RESULT;
  m.result = &r;
  return pack_message(&m, out, len);
}

int coord_wire_digest(uint64_t epoch, uint64_t version, uint32_t entries, uint8_t **out,
                      size_t *len)
{
  Mesh__Coord__Digest d;
  mesh__coord__digest__init(&d);
  d.epoch = epoch;
  d.version = version;
  d.entries = entries;
  size_t n = mesh__coord__digest__get_packed_size(&d);
  uint8_t *buf = malloc(n > 0 ? n : 1);
  if (buf == NULL)
    return -ENOMEM;
  mesh__coord__digest__pack(&d, buf);
  *out = buf;
  *len = n;
  return 0;
}

int coord_wire_decode_digest(const uint8_t *buf, size_t len, uint64_t *epoch, uint64_t *version)
{
  if (len > 64)
    return -EMSGSIZE;
  Mesh__Coord__Digest *d = mesh__coord__digest__unpack(NULL, len, buf);
  if (d == NULL)
    return -EBADMSG;
  *epoch = d->epoch;
  *version = d->version;
  mesh__coord__digest__free_unpacked(d, NULL);
  return 0;
}

/* ---- decoding documents --------------------------------------------------- */

int mesh_coord_models_dir_check(const char *path, size_t len)
{
  if (path == NULL || len == 0 || len > MESH_COORD_MODELS_DIR_MAX || path[0] != '/')
    return -EINVAL;
  size_t comp = 1; /* start of the current component */
  for (size_t i = 1; i <= len; i++) {
    if (i == len || path[i] == '/') {
      if (i - comp == 2 && path[comp] == '.' && path[comp + 1] == '.')
        return -EINVAL;
      comp = i + 1;
      continue;
    }
    unsigned char ch = (unsigned char)path[i];
    if (ch < 0x20 || ch == 0x7f)
      return -EINVAL;
  }
  return 0;
}

/* Copies a bounded protobuf string; -EBADMSG when it is too long. */
static int bounded(const char *s, size_t max, size_t *n)
{
  size_t len = strnlen(s, max + 1);
  if (len > max)
    return -EBADMSG;
  *n = len;
  return 0;
}

/* Decodes one entry into *out (malloc'd, the caller's); *size receives the
 * bytes of that allocation. */
static int rentry_from_pb(const Mesh__Coord__Entry *pe, coord_rentry **out, size_t *size)
{
  size_t nm, nr, ne;
  if (bounded(pe->model_id, MESH_MODEL_ID_MAX - 1, &nm) != 0 ||
      mesh_model_id_validate(pe->model_id, nm, NULL) != 0)
    return -EBADMSG;
  if (bounded(pe->revision, MESH_REVISION_MAX, &nr) != 0 ||
      mesh_revision_validate(pe->revision, nr) != 0)
    return -EBADMSG;
  if (bounded(pe->error, MESH_COORD_ERROR_MAX - 1, &ne) != 0)
    return -EBADMSG;
  if (pe->status < MESH__COORD__STATUS__PENDING || pe->status > MESH__COORD__STATUS__DELETING)
    return -EBADMSG;
  /* The directory is derived here from the validated model ID; what the peer
   * wrote in model_dir is never used as a path. */
  char dir[MESH_MODEL_DIR_MAX];
  if (mesh_model_dir_name(pe->model_id, pe->revision, dir, sizeof dir) != 0)
    return -EBADMSG;
  size_t nd = strlen(dir);
  *size = sizeof(coord_rentry) + nm + 1 + nr + 1 + nd + 1 + ne + 1;
  coord_rentry *r = malloc(*size);
  if (r == NULL)
    return -ENOMEM;
  r->status = (mesh_coord_status)pe->status;
  r->files_done = pe->files_done;
  r->files_total = pe->files_total;
  r->attempts = pe->attempts;
  r->total_bytes = pe->total_bytes;
  r->done_bytes = pe->done_bytes;
  r->speed_bps = pe->speed_bps;
  r->eta_ms = pe->eta_ms;
  r->retry_in_ms = pe->retry_in_ms;
  char *p = r->strs;
  memcpy(p, pe->model_id, nm);
  p[nm] = '\0';
  r->rev_off = (uint16_t)(nm + 1);
  memcpy(p + r->rev_off, pe->revision, nr);
  p[r->rev_off + nr] = '\0';
  r->dir_off = (uint16_t)(r->rev_off + nr + 1);
  memcpy(p + r->dir_off, dir, nd + 1);
  r->err_off = (uint16_t)(r->dir_off + nd + 1);
  memcpy(p + r->err_off, pe->error, ne);
  p[r->err_off + ne] = '\0';
  *out = r;
  return 0;
}

int coord_wire_doc_open(const uint8_t *buf, size_t len, mesh_peer_id *owner, coord_doc **out)
{
  mesh_envelope env;
  if (len > COORD_MSG_MAX)
    return -EMSGSIZE;
  int rc = mesh_envelope_open(MESH_DOMAIN_DOWNLOADS, buf, len, &env);
  if (rc != 0)
    return rc;
  if (env.type_len != strlen(MESH_COORD_DOC_TYPE) ||
      memcmp(env.type, MESH_COORD_DOC_TYPE, env.type_len) != 0)
    return -EBADMSG;
  Mesh__Coord__Document *pd = mesh__coord__document__unpack(NULL, env.payload_len, env.payload);
  if (pd == NULL)
    return -EBADMSG;
  coord_doc *d = NULL;
  rc = mesh_peer_id_from_bytes(pd->owner.data, pd->owner.len, owner);
  if (rc != 0)
    goto out;
  if (!mesh_peer_id_eq(owner, &env.signer)) {
    rc = -EPERM; /* someone else speaking for the owner */
    goto out;
  }
  if (pd->n_entries > MESH_COORD_MAX_DOC_ENTRIES) {
    rc = -EMSGSIZE;
    goto out;
  }
  rc = -ENOMEM;
  d = calloc(1, sizeof *d);
  if (d == NULL)
    goto out;
  d->epoch = pd->epoch;
  d->version = pd->version;
  d->bytes = sizeof *d + len + pd->n_entries * sizeof *d->entries;
  /* The owner's models directory is only shown, never opened here; still,
   * what is shown to loaders as a path must look like one. */
  if (pd->models_dir != NULL && pd->models_dir[0] != '\0') {
    size_t nd = strnlen(pd->models_dir, MESH_COORD_MODELS_DIR_MAX + 1);
    if (mesh_coord_models_dir_check(pd->models_dir, nd) != 0) {
      rc = -ENOTDIR;
      goto out;
    }
    d->models_dir = strndup(pd->models_dir, nd);
    rc = -ENOMEM;
    if (d->models_dir == NULL)
      goto out;
    d->bytes += nd + 1;
  }
  if (pd->n_entries > 0) {
    d->entries = calloc(pd->n_entries, sizeof *d->entries);
    if (d->entries == NULL)
      goto out;
  }
  for (size_t i = 0; i < pd->n_entries; i++) {
    size_t size = 0;
    rc = rentry_from_pb(pd->entries[i], &d->entries[d->n], &size);
    if (rc != 0)
      goto out;
    d->n++;
    d->bytes += size;
  }
  d->raw = malloc(len);
  rc = -ENOMEM;
  if (d->raw == NULL)
    goto out;
  memcpy(d->raw, buf, len);
  d->raw_len = len;
  rc = 0;
out:
  mesh__coord__document__free_unpacked(pd, NULL);
  if (rc != 0) {
    coord_doc_free(d);
    d = NULL;
  }
  *out = d;
  return rc;
}

int mesh_coord_doc_check(const uint8_t *buf, size_t len, uint64_t *epoch, uint64_t *version,
                         size_t *entries)
{
  mesh_peer_id owner;
  coord_doc *d;
  int rc = coord_wire_doc_open(buf, len, &owner, &d);
  if (rc != 0)
    return rc;
  *epoch = d->epoch;
  *version = d->version;
  *entries = d->n;
  coord_doc_free(d);
  return 0;
}

/* ---- receiving ------------------------------------------------------------ */

static int on_document(mesh_coord *c, const uint8_t *buf, size_t len)
{
  mesh_peer_id owner;
  coord_doc *d;
  int rc = coord_wire_doc_open(buf, len, &owner, &d);
  if (rc == -MESH_EAUTH || rc == -EPERM) {
    c->st.docs_refused_forged++;
    return rc;
  }
  if (rc == -ENOTDIR) {
    c->st.docs_refused_models_dir++;
    return rc;
  }
  if (rc != 0) {
    c->st.docs_refused_malformed++;
    return rc;
  }
  if (mesh_peer_id_eq(&owner, &c->id->id)) {
    coord_doc_free(d); /* our own document relayed back */
    return 0;
  }
  coord_peer *p = coord_peer_find(c, &owner);
  if (p == NULL || !coord_peer_in_view(p)) {
    c->st.docs_refused_unknown++;
    rc = -EHOSTUNREACH;
  } else if (!p->answered) {
    /* A key holder can put members in the view by the hundred: a member's
     * document is worth memory only once it has answered us itself. It is
     * asked for when it does (MESH_VIEW_ANSWERED). */
    c->st.docs_refused_unanswered++;
    rc = -EAGAIN;
  } else if (d->epoch < p->epoch) {
    c->st.docs_refused_old_epoch++;
    rc = -ESTALE;
  } else if (d->epoch > p->epoch) {
    /* Membership has not told us of this epoch yet; the digest or the
     * epoch-changed event will make us ask again. */
    c->st.docs_refused_future_epoch++;
    rc = -EAGAIN;
  } else if (p->doc != NULL && p->doc->epoch == d->epoch && d->version <= p->doc->version) {
    c->st.docs_refused_old_version++;
    rc = -ESTALE;
  } else if ((rc = coord_doc_admit(c, p, d)) != 0) {
    /* Over a cap or the budget: remembered, so that digests naming this
     * version do not make us ask for it again and again. */
    p->refused_epoch = d->epoch;
    p->refused_version = d->version;
  }
  if (rc != 0) {
    coord_doc_free(d);
    return rc;
  }
  coord_doc_install(c, p, d);
  c->st.docs_accepted++;
  return 0;
}

/* Answers command k on the connection it came from. */
static void reply(mesh_coord *c, const mesh_peer_id *to, const Mesh__Coord__Command *k, int code,
                  const char *msg)
{
  uint8_t *out;
  size_t len;
  if (coord_wire_result(k->seq, k->target_epoch, code, msg, &out, &len) == 0)
    coord_send(c, to, out, len);
}

static int on_command(mesh_coord *c, const mesh_peer_id *from, const uint8_t *buf, size_t len,
                      mesh_time_ms now)
{
  mesh_envelope env;
  int rc = mesh_envelope_open(MESH_DOMAIN_COMMAND, buf, len, &env);
  if (rc == -MESH_EAUTH) {
    c->st.cmds_refused++;
    c->st.cmds_refused_forged++;
    return rc;
  }
  if (rc != 0 || env.type_len != strlen(MESH_COORD_CMD_TYPE) ||
      memcmp(env.type, MESH_COORD_CMD_TYPE, env.type_len) != 0) {
    c->st.msgs_malformed++;
    return -EBADMSG;
  }
  Mesh__Coord__Command *k = mesh__coord__command__unpack(NULL, env.payload_len, env.payload);
  if (k == NULL) {
    c->st.msgs_malformed++;
    return -EBADMSG;
  }
  mesh_peer_id sender, target;
  char msg[MESH_COORD_ERROR_MAX];
  char who[MESH_PEER_ID_TEXT_MAX];
  coord_peer *p;
  if (mesh_peer_id_from_bytes(k->sender.data, k->sender.len, &sender) != 0 ||
      mesh_peer_id_from_bytes(k->target.data, k->target.len, &target) != 0) {
    c->st.msgs_malformed++;
    rc = -EBADMSG;
    goto out;
  }
  if (!mesh_peer_id_eq(&sender, &env.signer) || !mesh_peer_id_eq(&sender, from)) {
    c->st.cmds_refused++;
    c->st.cmds_refused_forged++;
    rc = -EPERM;
    goto out;
  }
  mesh_peer_id_to_text(&sender, who, sizeof who);
  /* Who may command this node is the operator's choice; the answer says
   * so, and nothing else happens: no journal record, no store write. */
  if (!coord_accepts_from(c, &sender)) {
    c->st.cmds_refused++;
    c->st.cmds_refused_policy++;
    rc = -EPERM;
    if (c->set.accept == MESH_COORD_ACCEPT_NONE)
      snprintf(msg, sizeof msg,
               "this node carries out no other node's commands (--accept-commands-from none)");
    else
      snprintf(msg, sizeof msg,
               "this node does not accept commands from %s (not in --accept-commands-from)", who);
    reply(c, from, k, rc, msg);
    goto out;
  }
  p = coord_peer_find(c, &sender);
  if (p == NULL || !coord_peer_in_view(p) || p->epoch != k->sender_epoch) {
    c->st.cmds_refused++;
    c->st.cmds_refused_epoch++;
    rc = p != NULL && coord_peer_in_view(p) ? -ESTALE : -EHOSTUNREACH;
    snprintf(msg, sizeof msg, "sender %s in epoch %" PRIu64 " is not in this node's view", who,
             k->sender_epoch);
    reply(c, from, k, rc, msg);
    goto out;
  }
  if (k->sender_epoch == p->last_cmd_epoch && k->seq <= p->last_cmd_seq) {
    c->st.cmds_refused++;
    c->st.cmds_refused_replay++;
    rc = -EALREADY;
    goto out;
  }
  p->last_cmd_epoch = k->sender_epoch;
  p->last_cmd_seq = k->seq;
  if (!mesh_peer_id_eq(&target, &c->id->id)) {
    c->st.cmds_refused++;
    rc = -EHOSTUNREACH;
    reply(c, from, k, rc, "command is addressed to another node");
    goto out;
  }
  if (k->target_epoch != c->epoch) {
    c->st.cmds_refused++;
    c->st.cmds_refused_epoch++;
    rc = -ESTALE;
    snprintf(msg, sizeof msg,
             "command names epoch %" PRIu64 " of this node, whose current epoch is %" PRIu64,
             k->target_epoch, c->epoch);
    reply(c, from, k, rc, msg);
    goto out;
  }
  mesh_coord_cmd cmd = {
      .kind = (mesh_coord_cmd_kind)k->kind,
      .model_id = k->model_id,
      .revision = k->revision[0] != '\0' ? k->revision : "main",
      .total_bytes = k->total_bytes,
  };
  size_t nm, nr;
  const char *why = "bad command";
  if (k->kind < MESH__COORD__COMMAND_KIND__START || k->kind > MESH__COORD__COMMAND_KIND__DELETE ||
      bounded(cmd.model_id, MESH_MODEL_ID_MAX - 1, &nm) != 0 ||
      mesh_model_id_validate(cmd.model_id, nm, &why) != 0 ||
      bounded(cmd.revision, MESH_REVISION_MAX, &nr) != 0 ||
      mesh_revision_validate(cmd.revision, nr) != 0) {
    c->st.cmds_refused++;
    rc = -EINVAL;
    snprintf(msg, sizeof msg, "invalid command: %s", why);
    reply(c, from, k, rc, msg);
    goto out;
  }
  rc = coord_apply_local(c, cmd.kind, cmd.model_id, cmd.revision, cmd.total_bytes, &sender, now,
                         msg, sizeof msg);
  if (rc == 0)
    c->st.cmds_accepted++;
  else
    c->st.cmds_refused++;
  reply(c, from, k, rc, msg);
  coord_settle(c, now);
out:
  mesh__coord__command__free_unpacked(k, NULL);
  return rc;
}

/* Requests answered per member: a burst as large as a cluster's worth of
 * owners (a node that starts asks for every document at once), then a few a
 * second. A small request can cost a document of up to 2 MiB. */
#define REQ_BURST 256
#define REQ_PER_SEC 16

static bool take_request_token(coord_peer *p, mesh_time_ms now)
{
  const uint64_t cap = (uint64_t)REQ_BURST * 1000;
  if (!p->req_seeded) {
    p->req_seeded = true;
    p->req_tokens = cap;
    p->req_at = now;
  }
  if (now > p->req_at) {
    uint64_t add = (now - p->req_at) * REQ_PER_SEC;
    p->req_tokens = p->req_tokens + add > cap ? cap : p->req_tokens + add;
    p->req_at = now;
  }
  if (p->req_tokens < 1000)
    return false;
  p->req_tokens -= 1000;
  return true;
}

static int on_request(mesh_coord *c, const mesh_peer_id *from, const Mesh__Coord__DocRequest *r,
                      mesh_time_ms now)
{
  mesh_peer_id owner;
  if (mesh_peer_id_from_bytes(r->owner.data, r->owner.len, &owner) != 0) {
    c->st.msgs_malformed++;
    return -EBADMSG;
  }
  /* Only members of the view are answered, each within its budget. */
  coord_peer *asker = coord_peer_find(c, from);
  if (asker == NULL || !coord_peer_in_view(asker)) {
    c->st.requests_refused_stranger++;
    return 0;
  }
  if (!take_request_token(asker, now)) {
    c->st.requests_refused_rate++;
    return 0;
  }
  const uint8_t *raw = NULL;
  size_t raw_len = 0;
  if (mesh_peer_id_eq(&owner, &c->id->id)) {
    if (c->own_raw != NULL && (r->epoch < c->epoch || r->version < c->version)) {
      raw = c->own_raw;
      raw_len = c->own_raw_len;
    }
  } else {
    coord_peer *p = coord_peer_find(c, &owner);
    if (p != NULL && coord_peer_in_view(p) && p->doc != NULL &&
        (p->doc->epoch > r->epoch || (p->doc->epoch == r->epoch && p->doc->version > r->version))) {
      raw = p->doc->raw;
      raw_len = p->doc->raw_len;
    }
  }
  if (raw == NULL)
    return 0;
  uint8_t *out;
  size_t len;
  if (coord_wire_wrap_doc(raw, raw_len, &out, &len) != 0)
    return -ENOMEM;
  coord_send(c, from, out, len);
  c->st.requests_answered++;
  return 0;
}

/* Largest errno value an answer may carry (Linux's MAX_ERRNO). */
#define COORD_ERRNO_MAX 4095

/* An answer's code as 0 or a negative errno: the sign is forced, and a
 * magnitude beyond any errno (INT_MIN among them, whose negation is
 * undefined) becomes -EPROTO. Computed in 64 bits, so nothing overflows. */
static int clamp_code(int32_t code)
{
  int64_t v = code;
  if (v < 0)
    v = -v;
  if (v > COORD_ERRNO_MAX)
    v = EPROTO;
  return (int)-v;
}

/* Copies a peer's text for logs and the API: printable ASCII is kept,
 * anything else (control bytes, escape sequences, bytes of other
 * encodings) becomes \xNN, and a backslash becomes \\, so that what a peer
 * writes can neither forge log lines nor drive a terminal. Truncated to
 * cap - 1 bytes, never in the middle of an escape. */
static void escape_text(char *dst, size_t cap, const char *src)
{
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)src; *p != '\0'; p++) {
    if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
      if (o + 1 >= cap)
        break;
      dst[o++] = (char)*p;
    } else if (*p == '\\') {
      if (o + 2 >= cap)
        break;
      dst[o++] = '\\';
      dst[o++] = '\\';
    } else {
      if (o + 4 >= cap)
        break;
      dst[o++] = '\\';
      dst[o++] = 'x';
      dst[o++] = hex[*p >> 4];
      dst[o++] = hex[*p & 15];
    }
  }
  dst[o] = '\0';
}

/* An answer is taken only from the target of a command still awaited, on
 * its own authenticated connection, naming the epoch and sequence number
 * the command carried; any other is dropped and counted. */
static int on_result(mesh_coord *c, const mesh_peer_id *from, const Mesh__Coord__CommandResult *r)
{
  if (!coord_pending_take(c, from, r->target_epoch, r->seq)) {
    c->st.results_unmatched++;
    return -EPERM;
  }
  mesh_coord_out o = {.kind = MESH_COORD_OUT_RESULT};
  o.u.result.from = *from;
  o.u.result.seq = r->seq;
  o.u.result.code = clamp_code(r->code);
  escape_text(o.u.result.message, sizeof o.u.result.message, r->message != NULL ? r->message : "");
  coord_push(c, &o);
  return 0;
}

int mesh_coord_receive(mesh_coord *c, const mesh_peer_id *from, const uint8_t *buf, size_t len,
                       mesh_time_ms now)
{
  if (len > COORD_MSG_MAX) {
    c->st.msgs_malformed++;
    return -EMSGSIZE;
  }
  Mesh__Coord__CoordMessage *m = mesh__coord__coord_message__unpack(NULL, len, buf);
  if (m == NULL) {
    c->st.msgs_malformed++;
    return -EBADMSG;
  }
  int rc = 0;
  switch (m->body_case) {
  case MESH__COORD__COORD_MESSAGE__BODY_DOCUMENT:
    rc = on_document(c, m->document.data, m->document.len);
    break;
  case MESH__COORD__COORD_MESSAGE__BODY_COMMAND:
    rc = on_command(c, from, m->command.data, m->command.len, now);
    break;
  case MESH__COORD__COORD_MESSAGE__BODY_REQUEST:
    rc = on_request(c, from, m->request, now);
    break;
  case MESH__COORD__COORD_MESSAGE__BODY_RESULT:
    rc = on_result(c, from, m->result);
    break;
  default:
    c->st.msgs_malformed++;
    rc = -EBADMSG;
    break;
  }
  mesh__coord__coord_message__free_unpacked(m, NULL);
  return rc;
}

int mesh_coord_app_state(mesh_coord *c, const mesh_peer_id *peer, const uint8_t *buf, size_t len,
                         mesh_time_ms now)
{
  uint64_t epoch, version;
  int rc = coord_wire_decode_digest(buf, len, &epoch, &version);
  if (rc != 0) {
    c->st.msgs_malformed++;
    return rc;
  }
  coord_peer *p = coord_peer_find(c, peer);
  if (p == NULL || !coord_peer_in_view(p) || epoch != p->epoch || !p->answered)
    return 0; /* an unanswered member's document is asked for when it answers */
  if (version == 0 || (p->doc != NULL && p->doc->epoch == epoch && p->doc->version >= version))
    return 0;
  if (p->refused_epoch == epoch && p->refused_version >= version)
    return 0; /* refused for a cap or the budget; a later version is asked for */
  uint8_t *out;
  size_t olen;
  uint64_t have = (p->doc != NULL && p->doc->epoch == epoch) ? p->doc->version : 0;
  rc = coord_wire_request(&p->id, epoch, have, &out, &olen);
  if (rc != 0)
    return rc;
  coord_send(c, &p->id, out, olen);
  c->st.requests_sent++;
  return 0;
}
