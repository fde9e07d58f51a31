/*
 * JSON renderings of what the backend shows, in the shape EXO's users know:
 * camelCase keys, download entries wrapped in their status name
 * ({"DownloadOngoing": {...}}), sizes as {"inBytes": N}.
 */
#include "src/daemon/api_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *mesh_api_member_state_name(mesh_api_member_state s)
{
  switch (s) {
  case MESH_API_ALIVE:
    return "alive";
  case MESH_API_SUSPECT:
    return "suspect";
  case MESH_API_DEAD:
    return "dead";
  case MESH_API_LEFT:
    return "left";
  }
  return "unknown";
}

const char *mesh_api_download_status_name(mesh_api_download_status s)
{
  switch (s) {
  case MESH_API_DL_PENDING:
    return "DownloadPending";
  case MESH_API_DL_ONGOING:
    return "DownloadOngoing";
  case MESH_API_DL_COMPLETED:
    return "DownloadCompleted";
  case MESH_API_DL_FAILED:
    return "DownloadFailed";
  case MESH_API_DL_DELETING:
    return "DownloadDeleting";
  }
  return NULL;
}

/* JSON integers are signed 64-bit; larger counts are clamped. */
static json_t *uint_json(uint64_t v)
{
  return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* A string as JSON; bytes that are not UTF-8 (a file name in an error, say)
 * become '?' rather than losing the whole record. */
static json_t *str_or_null(const char *s)
{
  if (s == NULL)
    return json_null();
  json_t *j = json_string(s);
  if (j != NULL)
    return j;
  char *copy = strdup(s);
  if (copy == NULL)
    return NULL;
  for (char *p = copy; *p != '\0'; p++) {
    if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20)
      *p = '?';
  }
  j = json_string(copy);
  free(copy);
  return j;
}

static json_t *addrs_json(const char *const *addrs, size_t n)
{
  json_t *a = json_array();
  if (a == NULL)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    if (addrs[i] != NULL && json_array_append_new(a, json_string(addrs[i])) < 0) {
      json_decref(a);
      return NULL;
    }
  }
  return a;
}

static json_t *in_bytes(uint64_t v)
{
  return json_pack("{s:o}", "inBytes", uint_json(v));
}

json_t *mesh_api_json_self(const mesh_api_self *s)
{
  return json_pack("{s:o, s:o, s:o, s:o}", "nodeId", str_or_null(s->peer_id), "epoch",
                   uint_json(s->epoch), "addresses", addrs_json(s->addrs, s->naddrs), "agent",
                   str_or_null(s->agent));
}

json_t *mesh_api_json_member(const mesh_api_member *m)
{
  return json_pack("{s:o, s:o, s:o, s:o, s:s, s:o, s:o, s:o, s:b}", "nodeId",
                   str_or_null(m->peer_id), "addresses", addrs_json(m->addrs, m->naddrs), "epoch",
                   uint_json(m->epoch), "incarnation", uint_json(m->incarnation), "state",
                   mesh_api_member_state_name(m->state), "timeInStateMs", uint_json(m->state_ms),
                   "transport", str_or_null(m->transport), "frameCipher",
                   str_or_null(m->frame_cipher), "self", m->is_self);
}

int mesh_api_json_add_download(json_t *downloads, const mesh_api_download *d)
{
  const char *wrap = mesh_api_download_status_name(d->status);
  if (wrap == NULL || d->owner_id == NULL)
    return -EINVAL;
  json_t *e = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b}", "nodeId", d->owner_id,
                        "epoch", uint_json(d->owner_epoch), "modelId", str_or_null(d->model_id),
                        "revision", str_or_null(d->revision), "modelDirectory",
                        str_or_null(d->model_dir), "downloaded", in_bytes(d->bytes_done), "total",
                        in_bytes(d->bytes_total), "filesDone", uint_json(d->files_done),
                        "filesTotal", uint_json(d->files_total), "abandoned", d->abandoned);
  if (e == NULL)
    return -ENOMEM;
  int rc = 0;
  if (d->abandoned)
    rc |= json_object_set_new(e, "abandonedCollectInMs", uint_json(d->collect_in_ms));
  if (d->status == MESH_API_DL_ONGOING) {
    json_t *p =
        json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "downloaded", in_bytes(d->bytes_done), "total",
                  in_bytes(d->bytes_total), "speed", uint_json(d->speed_bps), "etaMs",
                  d->eta_ms >= 0 ? json_integer(d->eta_ms) : json_null(), "filesDone",
                  uint_json(d->files_done), "filesTotal", uint_json(d->files_total));
    rc |= json_object_set_new(e, "downloadProgress", p);
  }
  if (d->has_sources) {
    /* Where the bytes came from: the Hub, or peers by ID. */
    json_t *peers = json_array();
    const char *p = d->peers != NULL ? d->peers : "";
    while (peers != NULL && *p != '\0') {
      const char *comma = strchr(p, ',');
      size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
      json_array_append_new(peers, json_stringn(p, n));
      p += n + (comma != NULL);
    }
    json_t *src = json_pack(
        "{s:o, s:o, s:o, s:o}", "hub", in_bytes(d->hub_bytes), "peers", in_bytes(d->peer_bytes),
        "peerIds", peers != NULL ? peers : json_array(), "speed", uint_json(d->source_speed_bps));
    rc |= json_object_set_new(e, "sources", src);
  }
  if (d->has_sources || d->file_list_source != NULL)
    rc |=
        json_object_set_new(e, "fileListSource",
                            json_string(d->file_list_source != NULL ? d->file_list_source : "hub"));
  if (d->status == MESH_API_DL_FAILED)
    rc |= json_object_set_new(e, "errorMessage", json_string(d->error != NULL ? d->error : ""));
  json_t *wrapped = json_pack("{s:o}", wrap, e);
  if (rc != 0 || wrapped == NULL) {
    json_decref(wrapped);
    return -ENOMEM;
  }
  json_t *list = json_object_get(downloads, d->owner_id);
  if (list == NULL) {
    list = json_array();
    if (list == NULL || json_object_set_new(downloads, d->owner_id, list) < 0) {
      json_decref(wrapped);
      return -ENOMEM;
    }
  }
  return json_array_append_new(list, wrapped) < 0 ? -ENOMEM : 0;
}

json_t *mesh_api_json_journal_entry(const mesh_api_journal_entry *e)
{
  return json_pack("{s:o, s:I, s:o, s:o, s:o, s:o}", "seq", uint_json(e->seq), "time",
                   (json_int_t)e->unix_ms, "kind", str_or_null(e->kind), "nodeId",
                   str_or_null(e->node_id), "modelId", str_or_null(e->model_id), "message",
                   str_or_null(e->message));
}
