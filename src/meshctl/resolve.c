/*
 * Peer IDs typed by people: any unique prefix of a member's ID stands for
 * it, since every Ed25519 peer ID starts with the same "12D3KooW" and the
 * rest is long.
 */
#include "src/meshctl/meshctl.h"

#include <stdlib.h>
#include <string.h>

void mctl_free_strv(char **v)
{
  if (v == NULL)
    return;
  for (size_t i = 0; v[i] != NULL; i++)
    free(v[i]);
  free(v);
}

int mctl_peer_ids(mctl *c, char ***ids)
{
  *ids = NULL;
  json_t *j = NULL;
  int rc = mctl_call(c, "GET", "/members", NULL, &j, NULL);
  if (rc != MCTL_OK)
    return rc;
  json_t *members = json_object_get(j, "members");
  size_t n = json_array_size(members);
  char **v = calloc(n + 1, sizeof(*v));
  if (v == NULL) {
    json_decref(j);
    return MCTL_API_ERROR;
  }
  size_t k = 0;
  size_t i;
  json_t *m;
  json_array_foreach(members, i, m)
  {
    const char *id = json_string_value(json_object_get(m, "nodeId"));
    if (id == NULL)
      continue;
    v[k] = strdup(id);
    if (v[k] != NULL)
      k++;
  }
  json_decref(j);
  *ids = v;
  return MCTL_OK;
}

int mctl_model_ids(mctl *c, char ***ids)
{
  *ids = NULL;
  json_t *j = NULL;
  int rc = mctl_call(c, "GET", "/downloads", NULL, &j, NULL);
  if (rc != MCTL_OK)
    return rc;
  /* First pass counts, second collects the distinct IDs. */
  size_t total = 0;
  const char *node;
  json_t *list;
  json_object_foreach(json_object_get(j, "downloads"), node, list)
  {
    total += json_array_size(list);
  }
  char **v = calloc(total + 1, sizeof(*v));
  if (v == NULL) {
    json_decref(j);
    return MCTL_API_ERROR;
  }
  size_t k = 0;
  json_object_foreach(json_object_get(j, "downloads"), node, list)
  {
    size_t i;
    json_t *wrapped;
    json_array_foreach(list, i, wrapped)
    {
      const char *wrap;
      json_t *e;
      json_object_foreach(wrapped, wrap, e)
      {
        const char *model = json_string_value(json_object_get(e, "modelId"));
        bool seen = model == NULL;
        for (size_t x = 0; x < k && !seen; x++)
          seen = strcmp(v[x], model) == 0;
        if (seen || k == total)
          continue;
        v[k] = strdup(model);
        if (v[k] != NULL)
          k++;
      }
    }
  }
  json_decref(j);
  *ids = v;
  return MCTL_OK;
}

/* A full-length peer ID in text: base58btc "12D3KooW..." is 52 characters,
 * the CIDv1 form longer. */
static bool looks_full(const char *s)
{
  size_t n = strlen(s);
  if (n < 46 || n > 70)
    return false;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')))
      return false;
  }
  return true;
}

int mctl_resolve_peer(mctl *c, const char *arg, char *out, size_t len)
{
  if (arg[0] == '\0') {
    fprintf(stderr, "meshctl: an empty peer ID\n");
    return MCTL_USAGE;
  }
  char **ids = NULL;
  int rc = mctl_peer_ids(c, &ids);
  if (rc != MCTL_OK)
    return rc;
  size_t plen = strlen(arg);
  size_t matches = 0;
  const char *match = NULL;
  for (size_t i = 0; ids[i] != NULL; i++) {
    if (strcmp(ids[i], arg) == 0) {
      matches = 1;
      match = ids[i];
      break;
    }
    if (strncmp(ids[i], arg, plen) == 0) {
      matches++;
      match = ids[i];
    }
  }
  if (matches == 1) {
    snprintf(out, len, "%s", match);
    mctl_free_strv(ids);
    return MCTL_OK;
  }
  if (matches > 1) {
    fprintf(stderr, "meshctl: ambiguous peer ID prefix '%s' matches %zu members:\n", arg, matches);
    for (size_t i = 0; ids[i] != NULL; i++) {
      if (strncmp(ids[i], arg, plen) == 0)
        fprintf(stderr, "  %s\n", ids[i]);
    }
    mctl_free_strv(ids);
    return MCTL_USAGE;
  }
  mctl_free_strv(ids);
  if (looks_full(arg)) {
    snprintf(out, len, "%s", arg);
    return MCTL_OK;
  }
  fprintf(stderr, "meshctl: no member's peer ID starts with '%s'\n", arg);
  return MCTL_USAGE;
}
