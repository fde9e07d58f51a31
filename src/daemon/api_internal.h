/*
 * What the files of the control API share and nobody else uses: the metrics
 * collector behind mesh_api_metrics and the JSON renderings of the backend's
 * records. Everything here runs on the event loop's thread.
 */
#ifndef MESH_DAEMON_API_INTERNAL_H
#define MESH_DAEMON_API_INTERNAL_H

#include "src/daemon/api.h"

#include <jansson.h>

/* Bounds of one /metrics answer. */
#define MESH_API_METRICS_MAX_FAMILIES 512
#define MESH_API_METRICS_MAX_TEXT (4u << 20)

/* One family: HELP, TYPE and its samples, written out together. */
typedef struct mesh_api_family {
  char *name; /* owned */
  char *help; /* owned, escaped */
  mesh_api_metric_type type;
  char *text; /* owned: the sample lines */
  size_t len; /* bytes used in text */
  size_t cap; /* bytes allocated for text */
} mesh_api_family;

struct mesh_api_metrics {
  mesh_api_family *fam; /* owned array */
  size_t nfam;
  size_t capfam;
  size_t total;     /* bytes of text held in all families */
  uint64_t dropped; /* samples refused (bounds or bad names) */
};

void mesh_api_metrics_init(mesh_api_metrics *m);
void mesh_api_metrics_free(mesh_api_metrics *m);
/* Writes every family, in order of first appearance, into a new string
 * (caller frees) of *len bytes. NULL when out of memory. */
char *mesh_api_metrics_render(const mesh_api_metrics *m, size_t *len);

/* JSON renderings (new references; NULL when out of memory). */
json_t *mesh_api_json_self(const mesh_api_self *s);
json_t *mesh_api_json_member(const mesh_api_member *m);
/* Adds d to downloads, an object keyed by owner node ID, wrapped in its
 * status name. Returns 0 or -ENOMEM. */
int mesh_api_json_add_download(json_t *downloads, const mesh_api_download *d);
json_t *mesh_api_json_journal_entry(const mesh_api_journal_entry *e);
const char *mesh_api_member_state_name(mesh_api_member_state s);
const char *mesh_api_download_status_name(mesh_api_download_status s);

#endif
