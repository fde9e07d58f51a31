/*
 * URLs, retry timing, redirect policy and status messages of the Hub client.
 */
#include "coord/hf_http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

mesh_hf_status_class mesh_hf_status_classify(long status)
{
  if (status == 200 || status == 206)
    return MESH_HF_STATUS_OK;
  if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308)
    return MESH_HF_STATUS_REDIRECT;
  if (status == 408 || status == 429 || (status >= 500 && status <= 599))
    return MESH_HF_STATUS_RETRY;
  return MESH_HF_STATUS_FATAL;
}

int mesh_hf_status_errno(long status)
{
  switch (status) {
  case 401:
    return -EACCES;
  case 403:
    return -EPERM;
  case 404:
    return -ENOENT;
  default:
    return -EPROTO;
  }
}

void mesh_hf_status_message(long status, bool have_token, const char *error_code, const char *repo,
                            const char *revision, const char *what, char *out, size_t outlen)
{
  const char *ec = error_code != NULL ? error_code : "";
  switch (status) {
  case 401:
    /* The Hub answers 401 RepoNotFound for a repository it will not admit
     * exists to an anonymous or unauthorised caller. */
    if (strcasecmp(ec, "RepoNotFound") == 0)
      snprintf(out, outlen,
               "HTTP 401 for %s: no such repository '%s', or it is private or gated and %s", what,
               repo, have_token ? "the token has no access" : "no token was given (set HF_TOKEN)");
    else if (have_token)
      snprintf(out, outlen, "HTTP 401 for %s of %s: the token was refused (invalid or expired)",
               what, repo);
    else
      snprintf(out, outlen,
               "HTTP 401 for %s of %s: gated or private model and no token (set HF_TOKEN)", what,
               repo);
    break;
  case 403:
    snprintf(out, outlen, "HTTP 403 for %s of %s: gated model, access not granted to this token%s",
             what, repo, have_token ? "" : " (no token given: set HF_TOKEN)");
    break;
  case 404:
    if (strcasecmp(ec, "RevisionNotFound") == 0)
      snprintf(out, outlen, "HTTP 404 for %s of %s: no such revision '%s'", what, repo, revision);
    else if (strcasecmp(ec, "EntryNotFound") == 0)
      snprintf(out, outlen, "HTTP 404 for %s of %s@%s: no such file", what, repo, revision);
    else if (strcasecmp(ec, "RepoNotFound") == 0)
      snprintf(out, outlen, "HTTP 404 for %s: no such repository '%s'", what, repo);
    else
      snprintf(out, outlen, "HTTP 404 for %s: no such repository '%s' or revision '%s'", what, repo,
               revision);
    break;
  default:
    snprintf(out, outlen, "HTTP %ld for %s of %s@%s", status, what, repo, revision);
    break;
  }
}

uint64_t mesh_hf_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms, mesh_rng *rng)
{
  uint64_t d = base_ms;
  for (unsigned i = 0; i < attempt && d < cap_ms; i++)
    d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
  if (d > cap_ms)
    d = cap_ms;
  if (rng == NULL || d < 2)
    return d;
  return d / 2 + mesh_rng_below(rng, d - d / 2 + 1);
}

uint64_t mesh_hf_retry_delay_ms(unsigned attempt, uint64_t retry_after_ms, uint64_t base_ms,
                                uint64_t cap_ms, uint64_t max_retry_after_ms, mesh_rng *rng)
{
  uint64_t d = mesh_hf_backoff_ms(attempt, base_ms, cap_ms, rng);
  if (retry_after_ms != UINT64_MAX && retry_after_ms > d)
    d = retry_after_ms;
  return d > max_retry_after_ms ? max_retry_after_ms : d;
}

int mesh_hf_parse_retry_after(const char *value, int64_t now_wall_s, uint64_t *ms)
{
  while (*value == ' ' || *value == '\t')
    value++;
  if (*value >= '0' && *value <= '9') {
    uint64_t s = 0;
    const char *p = value;
    for (; *p >= '0' && *p <= '9'; p++) {
      if (s > UINT64_MAX / 10000)
        return -EBADMSG;
      s = s * 10 + (uint64_t)(*p - '0');
    }
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
      p++;
    if (*p != '\0')
      return -EBADMSG;
    *ms = s * 1000;
    return 0;
  }
  time_t t = curl_getdate(value, NULL);
  if (t == -1)
    return -EBADMSG;
  *ms = (int64_t)t > now_wall_s ? (uint64_t)((int64_t)t - now_wall_s) * 1000 : 0;
  return 0;
}

static bool name_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

int mesh_hf_repo_check(const char *repo)
{
  size_t len = strlen(repo);
  if (len == 0 || len > 200)
    return -EINVAL;
  int slashes = 0;
  size_t comp = 0;
  for (size_t i = 0; i <= len; i++) {
    char c = repo[i];
    if (c == '/' || c == '\0') {
      /* Each side of the slash is a name, never "." or "..". */
      if (comp == 0 || (comp <= 2 && repo[i - 1] == '.' && (comp == 1 || repo[i - 2] == '.')))
        return -EINVAL;
      comp = 0;
      if (c == '/' && ++slashes > 1)
        return -EINVAL;
      continue;
    }
    if (!name_char(c))
      return -EINVAL;
    comp++;
  }
  return 0;
}

int mesh_hf_model_dirname(const char *repo, char *out, size_t outlen)
{
  if (mesh_hf_repo_check(repo) != 0)
    return -EINVAL;
  const char *slash = strchr(repo, '/');
  int n = slash != NULL ? snprintf(out, outlen, "%.*s--%s", (int)(slash - repo), repo, slash + 1)
                        : snprintf(out, outlen, "%s", repo);
  return n < 0 || (size_t)n >= outlen ? -EMSGSIZE : 0;
}

int mesh_hf_revision_check(const char *revision)
{
  size_t len = strlen(revision);
  if (len == 0 || len > 255)
    return -EINVAL;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)revision[i];
    if (c <= 0x20 || c == 0x7f)
      return -EINVAL;
  }
  return 0;
}

/* Appends s (n bytes) to out at *pos, percent-encoding all but unreserved
 * characters and, when keep_slash, '/'. */
static int append_enc(char *out, size_t outlen, size_t *pos, const char *s, size_t n,
                      bool keep_slash)
{
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    bool plain = name_char((char)c) || c == '~' || (keep_slash && c == '/');
    size_t need = plain ? 1 : 3;
    if (*pos + need >= outlen)
      return -EMSGSIZE;
    if (plain) {
      out[(*pos)++] = (char)c;
    } else {
      out[(*pos)++] = '%';
      out[(*pos)++] = hex[c >> 4];
      out[(*pos)++] = hex[c & 15];
    }
  }
  out[*pos] = '\0';
  return 0;
}

static int append_raw(char *out, size_t outlen, size_t *pos, const char *s)
{
  size_t n = strlen(s);
  if (*pos + n >= outlen)
    return -EMSGSIZE;
  memcpy(out + *pos, s, n + 1);
  *pos += n;
  return 0;
}

/* The endpoint without its trailing slashes. */
static int append_endpoint(char *out, size_t outlen, size_t *pos, const char *endpoint)
{
  size_t n = strlen(endpoint);
  while (n > 0 && endpoint[n - 1] == '/')
    n--;
  if (n >= outlen)
    return -EMSGSIZE;
  memcpy(out, endpoint, n);
  out[n] = '\0';
  *pos = n;
  return 0;
}

int mesh_hf_url_tree(const char *endpoint, const char *repo, const char *revision, char *out,
                     size_t outlen)
{
  size_t pos = 0;
  int rc = append_endpoint(out, outlen, &pos, endpoint);
  if (rc == 0)
    rc = append_raw(out, outlen, &pos, "/api/models/");
  if (rc == 0)
    rc = append_enc(out, outlen, &pos, repo, strlen(repo), true);
  if (rc == 0)
    rc = append_raw(out, outlen, &pos, "/tree/");
  if (rc == 0)
    rc = append_enc(out, outlen, &pos, revision, strlen(revision), false);
  if (rc == 0)
    rc = append_raw(out, outlen, &pos, "?recursive=true");
  return rc;
}

int mesh_hf_url_resolve(const char *endpoint, const char *repo, const char *revision,
                        const char *path, char *out, size_t outlen)
{
  size_t pos = 0;
  int rc = append_endpoint(out, outlen, &pos, endpoint);
  if (rc == 0)
    rc = append_raw(out, outlen, &pos, "/");
  if (rc == 0)
    rc = append_enc(out, outlen, &pos, repo, strlen(repo), true);
  if (rc == 0)
    rc = append_raw(out, outlen, &pos, "/resolve/");
  if (rc == 0)
    rc = append_enc(out, outlen, &pos, revision, strlen(revision), false);
  if (rc == 0)
    rc = append_raw(out, outlen, &pos, "/");
  if (rc == 0)
    rc = append_enc(out, outlen, &pos, path, strlen(path), true);
  return rc;
}

/* Splits url into scheme, host and port (owned by the caller, curl_free). */
typedef struct origin {
  char *scheme;
  char *host;
  char *port;
} origin;

static int origin_of(const char *url, origin *o)
{
  memset(o, 0, sizeof *o);
  CURLU *u = curl_url();
  if (u == NULL)
    return -ENOMEM;
  int rc = -EINVAL;
  if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_SCHEME, &o->scheme, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &o->host, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_PORT, &o->port, CURLU_DEFAULT_PORT) == CURLUE_OK)
    rc = 0;
  curl_url_cleanup(u);
  return rc;
}

static void origin_free(origin *o)
{
  curl_free(o->scheme);
  curl_free(o->host);
  curl_free(o->port);
}

static bool origin_equal(const origin *a, const origin *b)
{
  return strcasecmp(a->scheme, b->scheme) == 0 && strcasecmp(a->host, b->host) == 0 &&
         strcmp(a->port, b->port) == 0;
}

bool mesh_hf_redirect_allowed(const char *endpoint, const char *target, const char **why)
{
  origin e, t;
  bool ok = false;
  const char *w = "unparsable URL";
  if (origin_of(target, &t) != 0) {
    origin_free(&t);
    goto out;
  }
  if (strcasecmp(t.scheme, "https") == 0) {
    ok = true;
  } else if (origin_of(endpoint, &e) == 0) {
    ok = origin_equal(&e, &t);
    w = "only https or the endpoint's own host is followed";
    origin_free(&e);
  } else {
    origin_free(&e);
  }
  origin_free(&t);
out:
  if (!ok && why != NULL)
    *why = w;
  return ok;
}

bool mesh_hf_same_origin(const char *endpoint, const char *url)
{
  origin e, u;
  bool ok = false;
  if (origin_of(endpoint, &e) == 0 && origin_of(url, &u) == 0)
    ok = origin_equal(&e, &u);
  else
    memset(&u, 0, sizeof u);
  origin_free(&e);
  origin_free(&u);
  return ok;
}
