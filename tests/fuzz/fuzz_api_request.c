/*
 * Fuzz target for what a client sends the control API: the JSON bodies of
 * POST /download/start and /download/cancel, the path of DELETE
 * /download/{nodeId}/{modelId}, the journal query, and the Host, Origin and
 * Content-Type values the web-page checks look at. The first byte picks
 * the parser; the rest is its input. Whatever the input, a parser returns 0
 * with fields that pass the field checks, or -EBADMSG; a header check
 * answers without reading past the value, and a Host it calls loopback
 * holds no name but localhost and no address outside loopback.
 */
#include "src/daemon/api.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size == 0)
    return 0;
  uint8_t which = data[0] % 9;
  const char *in = (const char *)data + 1;
  size_t len = size - 1;
  mesh_api_cmd cmd;
  char err[256];
  int rc;
  switch (which) {
  case 0:
  case 1:
    rc = mesh_api_parse_command(in, len, which == 0, &cmd, err, sizeof(err));
    if (rc == 0) {
      if (!mesh_api_valid_node_id(cmd.node) || !mesh_api_valid_model_id(cmd.model))
        abort();
      if (which == 0 && !mesh_api_valid_revision(cmd.revision))
        abort();
    } else if (rc != -EBADMSG) {
      abort();
    }
    break;
  case 2:
    rc = mesh_api_parse_delete_path(in, len, &cmd, err, sizeof(err));
    if (rc == 0 && (!mesh_api_valid_node_id(cmd.node) || !mesh_api_valid_model_id(cmd.model)))
      abort();
    if (rc != 0 && rc != -EBADMSG)
      abort();
    break;
  case 8: {
    char *q = malloc(len + 1);
    if (q == NULL)
      return 0;
    memcpy(q, in, len);
    q[len] = '\0';
    char rev[MESH_API_REVISION_MAX];
    rc = mesh_api_parse_revision_query(q, rev, sizeof(rev), err, sizeof(err));
    free(q);
    if (rc == 0 && !mesh_api_valid_revision(rev))
      abort();
    if (rc != 0 && rc != -EBADMSG)
      abort();
    break;
  }
  case 4:
  case 5:
  case 6: {
    /* Header values are C strings: stop at the first NUL. */
    char *v = malloc(len + 1);
    if (v == NULL)
      return 0;
    memcpy(v, in, len);
    v[len] = '\0';
    if (which == 4) {
      /* Loopback is a short value: a name or address and a port. */
      if (mesh_api_host_is_loopback(v) && (strlen(v) > 64 + 6 || strchr(v, '/') != NULL))
        abort();
    } else if (which == 5) {
      if (mesh_api_origin_is_own(v, 52417) && strncasecmp(v, "http://", 7) != 0)
        abort();
    } else if (mesh_api_content_type_is_json(v) && strcasestr(v, "application/json") == NULL) {
      abort();
    }
    free(v);
    break;
  }
  default: {
    /* The query is a C string: stop at the first NUL. */
    char *q = malloc(len + 1);
    if (q == NULL)
      return 0;
    memcpy(q, in, len);
    q[len] = '\0';
    size_t limit = 0;
    rc = mesh_api_parse_journal_limit(q, &limit, err, sizeof(err));
    if (rc == 0 && (limit == 0 || limit > MESH_API_JOURNAL_MAX))
      abort();
    free(q);
    break;
  }
  }
  return 0;
}
