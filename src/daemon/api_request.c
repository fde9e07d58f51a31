/*
 * Parsing of what a client sends the control API: the JSON bodies of the
 * commands, the path of DELETE /download/{nodeId}/{modelId}, and the journal
 * query. Pure functions of their input (no IO, no libevent), so that
 * tests/fuzz/fuzz_api_request.c can run them on anything.
 */
#include "src/daemon/api.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static bool is_alnum(unsigned char c)
{
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool mesh_api_valid_node_id(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n >= MESH_API_NODE_ID_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    if (!is_alnum((unsigned char)s[i]))
      return false;
  }
  return true;
}

/* A path part of [A-Za-z0-9._-], not empty, not "." or "..". */
static bool valid_part(const char *s, size_t n, bool allow_slash)
{
  if (n == 0)
    return false;
  size_t start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || (allow_slash && s[i] == '/')) {
      size_t plen = i - start;
      if (plen == 0)
        return false;
      if (plen == 1 && s[start] == '.')
        return false;
      if (plen == 2 && s[start] == '.' && s[start + 1] == '.')
        return false;
      start = i + 1;
      continue;
    }
    unsigned char c = (unsigned char)s[i];
    if (!is_alnum(c) && c != '.' && c != '_' && c != '-')
      return false;
  }
  return true;
}

bool mesh_api_valid_model_id(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n >= MESH_API_MODEL_ID_MAX)
    return false;
  const char *slash = memchr(s, '/', n);
  if (slash == NULL)
    return valid_part(s, n, false);
  size_t org = (size_t)(slash - s);
  return valid_part(s, org, false) && valid_part(slash + 1, n - org - 1, false);
}

bool mesh_api_valid_revision(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n >= MESH_API_REVISION_MAX)
    return false;
  return valid_part(s, n, true);
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int mesh_api_percent_decode(const char *in, size_t len, char *out, size_t cap)
{
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    char c = in[i];
    if (c == '%') {
      if (len - i < 3)
        return -EBADMSG;
      int hi = hexval(in[i + 1]);
      int lo = hexval(in[i + 2]);
      if (hi < 0 || lo < 0)
        return -EBADMSG;
      c = (char)(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0')
      return -EBADMSG;
    if (o + 1 >= cap)
      return -EMSGSIZE;
    out[o++] = c;
  }
  if (cap == 0)
    return -EMSGSIZE;
  out[o] = '\0';
  return 0;
}

/* Copies the string member `key` of obj into out. Missing: -ENOENT. */
static int get_string(json_t *obj, const char *key, char *out, size_t cap, char *err, size_t errlen)
{
  json_t *v = json_object_get(obj, key);
  if (v == NULL)
    return -ENOENT;
  if (!json_is_string(v)) {
    snprintf(err, errlen, "\"%s\" must be a string", key);
    return -EBADMSG;
  }
  size_t n = json_string_length(v);
  const char *s = json_string_value(v);
  if (n >= cap || memchr(s, '\0', n) != NULL) {
    snprintf(err, errlen, "\"%s\" is too long or holds a NUL", key);
    return -EBADMSG;
  }
  memcpy(out, s, n + 1);
  return 0;
}

int mesh_api_parse_command(const char *body, size_t len, bool with_revision, mesh_api_cmd *out,
                           char *err, size_t errlen)
{
  memset(out, 0, sizeof(*out));
  if (len == 0) {
    snprintf(err, errlen, "a JSON object body is required");
    return -EBADMSG;
  }
  json_error_t jerr;
  json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
  if (root == NULL) {
    snprintf(err, errlen, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
             jerr.text);
    return -EBADMSG;
  }
  int rc = -EBADMSG;
  if (!json_is_object(root)) {
    snprintf(err, errlen, "the body must be a JSON object");
    goto out;
  }
  int r = get_string(root, "targetNodeId", out->node, sizeof(out->node), err, errlen);
  if (r == -ENOENT) {
    snprintf(err, errlen, "\"targetNodeId\" is required");
    goto out;
  }
  if (r < 0)
    goto out;
  if (!mesh_api_valid_node_id(out->node)) {
    snprintf(err, errlen, "\"targetNodeId\" is not a peer ID");
    goto out;
  }
  r = get_string(root, "modelId", out->model, sizeof(out->model), err, errlen);
  if (r == -ENOENT) {
    snprintf(err, errlen, "\"modelId\" is required");
    goto out;
  }
  if (r < 0)
    goto out;
  if (!mesh_api_valid_model_id(out->model)) {
    snprintf(err, errlen, "\"modelId\" must be \"org/name\" of letters, digits, '.', '_', '-'");
    goto out;
  }
  if (with_revision) {
    r = get_string(root, "revision", out->revision, sizeof(out->revision), err, errlen);
    if (r == -ENOENT || (r == 0 && out->revision[0] == '\0')) {
      snprintf(out->revision, sizeof(out->revision), "main");
      r = 0;
    }
    if (r < 0)
      goto out;
    if (!mesh_api_valid_revision(out->revision)) {
      snprintf(err, errlen, "\"revision\" is not a valid revision");
      goto out;
    }
  }
  rc = 0;
out:
  json_decref(root);
  return rc;
}

int mesh_api_parse_delete_path(const char *rest, size_t len, mesh_api_cmd *out, char *err,
                               size_t errlen)
{
  memset(out, 0, sizeof(*out));
  const char *slash = memchr(rest, '/', len);
  if (slash == NULL || slash == rest) {
    snprintf(err, errlen, "the path must be /download/{nodeId}/{modelId}");
    return -EBADMSG;
  }
  size_t nlen = (size_t)(slash - rest);
  if (mesh_api_percent_decode(rest, nlen, out->node, sizeof(out->node)) < 0 ||
      !mesh_api_valid_node_id(out->node)) {
    snprintf(err, errlen, "the node ID in the path is not a peer ID");
    return -EBADMSG;
  }
  size_t mlen = len - nlen - 1;
  if (mesh_api_percent_decode(slash + 1, mlen, out->model, sizeof(out->model)) < 0 ||
      !mesh_api_valid_model_id(out->model)) {
    snprintf(err, errlen, "the model ID in the path must be org/name (the slash may be %%2F)");
    return -EBADMSG;
  }
  snprintf(out->revision, sizeof(out->revision), "main");
  return 0;
}

int mesh_api_parse_revision_query(const char *query, char *revision, size_t cap, char *err,
                                  size_t errlen)
{
  if (cap == 0)
    return -EBADMSG;
  if (query == NULL || query[0] == '\0') {
    snprintf(revision, cap, "main");
    return 0;
  }
  size_t n = strlen(query);
  if (n <= 9 || memcmp(query, "revision=", 9) != 0 || memchr(query, '&', n) != NULL) {
    snprintf(err, errlen, "the only query parameter is revision=R");
    return -EBADMSG;
  }
  if (mesh_api_percent_decode(query + 9, n - 9, revision, cap) < 0 ||
      !mesh_api_valid_revision(revision)) {
    snprintf(err, errlen, "\"revision\" is not a valid revision");
    return -EBADMSG;
  }
  return 0;
}

int mesh_api_parse_journal_limit(const char *query, size_t *limit, char *err, size_t errlen)
{
  *limit = MESH_API_JOURNAL_DEFAULT;
  if (query == NULL || query[0] == '\0')
    return 0;
  const char *p = query;
  while (*p != '\0') {
    const char *amp = strchr(p, '&');
    size_t n = amp != NULL ? (size_t)(amp - p) : strlen(p);
    if (n > 6 && memcmp(p, "limit=", 6) == 0) {
      size_t v = 0;
      if (n - 6 > 6) {
        snprintf(err, errlen, "limit must be 1..%d", MESH_API_JOURNAL_MAX);
        return -EBADMSG;
      }
      for (size_t i = 6; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
          snprintf(err, errlen, "limit must be a number");
          return -EBADMSG;
        }
        v = v * 10 + (size_t)(p[i] - '0');
      }
      if (v == 0 || v > MESH_API_JOURNAL_MAX) {
        snprintf(err, errlen, "limit must be 1..%d", MESH_API_JOURNAL_MAX);
        return -EBADMSG;
      }
      *limit = v;
    } else if (n == 5 && memcmp(p, "limit", 5) == 0) {
      snprintf(err, errlen, "limit needs a value");
      return -EBADMSG;
    } else if (n >= 6 && memcmp(p, "limit=", 6) == 0) {
      snprintf(err, errlen, "limit needs a value");
      return -EBADMSG;
    }
    if (amp == NULL)
      break;
    p = amp + 1;
  }
  return 0;
}
