/*
 * HTTP rules of the Hugging Face client: URLs, which answers are retried and
 * after how long, which redirects are followed, and what a refusal means.
 *
 * Pure functions (the caller passes the wall clock where a date is read), so
 * that every rule is unit-tested without a network.
 *
 * Retry policy: 429, 408 and 5xx answers, and transfers cut by the network,
 * are retried after a capped exponential backoff with jitter,
 *   delay(attempt) = uniform in [d/2, d], d = min(cap, base * 2^attempt),
 * or after the server's Retry-After when that is longer (itself capped, so a
 * server cannot park a download for a day). 401, 403 and 404 fail at once.
 *
 * Redirect policy: a redirect is followed only to an https URL or to the
 * endpoint's own origin (scheme, host and port); the bearer token is sent only
 * to the endpoint's origin, never to a CDN the Hub redirects to.
 */
#ifndef MESH_COORD_HF_HTTP_H
#define MESH_COORD_HF_HTTP_H

#include "src/base/rng.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MESH_HF_DEFAULT_ENDPOINT "https://huggingface.co"
/* Longest URL built or followed. */
#define MESH_HF_URL_MAX 4096

/* What to do with an HTTP status. */
typedef enum mesh_hf_status_class {
  MESH_HF_STATUS_OK = 0,       /* 200, 206 */
  MESH_HF_STATUS_REDIRECT = 1, /* 301, 302, 303, 307, 308 */
  MESH_HF_STATUS_RETRY = 2,    /* 408, 429, 5xx */
  MESH_HF_STATUS_FATAL = 3,    /* anything else */
} mesh_hf_status_class;

mesh_hf_status_class mesh_hf_status_classify(long status);

/*
 * The error code for a fatal status: 401 -> -EACCES, 403 -> -EPERM,
 * 404 -> -ENOENT, others -> -EPROTO.
 */
int mesh_hf_status_errno(long status);

/*
 * Explains a fatal status in out: which of "gated or private model and no
 * token", "token refused", "gated model: access not granted", "no such
 * repository", "no such revision", "no such file" it is. error_code is the
 * Hub's X-Error-Code header (may be NULL); what names the request ("file
 * list" or a path).
 */
void mesh_hf_status_message(long status, bool have_token, const char *error_code, const char *repo,
                            const char *revision, const char *what, char *out, size_t outlen);

/* d = min(cap, base * 2^attempt), drawn uniformly in [d/2, d] (d when rng is NULL). */
uint64_t mesh_hf_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t cap_ms, mesh_rng *rng);

/*
 * The wait before retry number attempt: the backoff, or retry_after_ms when it
 * is longer (pass UINT64_MAX when the server sent none), never more than
 * max_retry_after_ms.
 */
uint64_t mesh_hf_retry_delay_ms(unsigned attempt, uint64_t retry_after_ms, uint64_t base_ms,
                                uint64_t cap_ms, uint64_t max_retry_after_ms, mesh_rng *rng);

/*
 * Parses a Retry-After value: delta-seconds or an HTTP-date (now_wall_s is
 * the current Unix time; a date in the past means 0). Returns 0 or -EBADMSG.
 */
int mesh_hf_parse_retry_after(const char *value, int64_t now_wall_s, uint64_t *ms);

/* Checks a repository ID ("org/name" or "name"). 0 or -EINVAL. */
int mesh_hf_repo_check(const char *repo);
/*
 * The model directory name of a repository ID, as EXO lays models out under
 * its models folder: "org/name" -> "org--name", "name" -> "name". Returns 0,
 * -EINVAL (not a repository ID) or -EMSGSIZE.
 */
int mesh_hf_model_dirname(const char *repo, char *out, size_t outlen);
/* Checks a revision (branch, tag or commit). 0 or -EINVAL. */
int mesh_hf_revision_check(const char *revision);

/*
 * Builds {endpoint}/api/models/{repo}/tree/{revision}?recursive=true and
 * {endpoint}/{repo}/resolve/{revision}/{path}, percent-encoding the revision
 * and each path component. Returns 0 or -EMSGSIZE.
 */
int mesh_hf_url_tree(const char *endpoint, const char *repo, const char *revision, char *out,
                     size_t outlen);
int mesh_hf_url_resolve(const char *endpoint, const char *repo, const char *revision,
                        const char *path, char *out, size_t outlen);

/*
 * Whether a redirect (or a next-page link) from the endpoint to target may be
 * followed: target is https, or has the endpoint's scheme, host and port.
 * Returns true, or false with *why set (static text).
 */
bool mesh_hf_redirect_allowed(const char *endpoint, const char *target, const char **why);

/* Whether url has the endpoint's scheme, host and port (the token goes there only). */
bool mesh_hf_same_origin(const char *endpoint, const char *url);

#endif
