/*
 * meshctl's HTTP client: libcurl's easy interface, one request at a time,
 * over TCP or the API's Unix socket.
 */
#include "src/meshctl/meshctl.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct mctl_buf {
  char *data;
  size_t len;
  size_t cap;
  bool too_big; /* the answer passed MCTL_MAX_RESPONSE */
} mctl_buf;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *arg)
{
  mctl_buf *b = arg;
  size_t n = size * nmemb;
  if (b->len + n + 1 > MCTL_MAX_RESPONSE) {
    b->too_big = true;
    return 0; /* makes curl stop with CURLE_WRITE_ERROR */
  }
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL)
      return 0;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, ptr, n);
  b->len += n;
  b->data[b->len] = '\0';
  return n;
}

void mctl_error(mctl *c, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
  va_end(ap);
  if (!c->quiet)
    fprintf(stderr, "meshctl: %s\n", c->errmsg);
}

int mctl_client_init(mctl *c)
{
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return -ENOMEM;
  c->curl = curl_easy_init();
  return c->curl != NULL ? 0 : -ENOMEM;
}

void mctl_client_close(mctl *c)
{
  if (c->curl != NULL)
    curl_easy_cleanup(c->curl);
  c->curl = NULL;
  curl_global_cleanup();
}

int mctl_http(mctl *c, const char *method, const char *path, const char *body, long *status,
              char **resp)
{
  CURL *h = c->curl;
  curl_easy_reset(h);
  char url[512];
  if (strncmp(c->api, "unix:", 5) == 0) {
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->api + 5);
    snprintf(url, sizeof(url), "http://localhost%s", path);
  } else {
    snprintf(url, sizeof(url), "http://%s%s", c->api, path);
  }
  mctl_buf b = {0};
  struct curl_slist *hdrs = NULL;
  char auth[1024];
  if (c->token != NULL && c->token[0] != '\0') {
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
    hdrs = curl_slist_append(hdrs, auth);
  }
  /* meshd refuses a change of state with any other body type: forms and
   * text/plain are what a web page may send it without asking first. */
  if (strcmp(method, "GET") != 0)
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
  if (body != NULL) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  } else if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
  }
  /* A body this small needs no "Expect: 100-continue" round trip. */
  hdrs = curl_slist_append(hdrs, "Expect:");
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 15000L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PROXY, "");
  curl_easy_setopt(h, CURLOPT_USERAGENT, "meshctl/0.1.0");
  CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(hdrs);
  if (rc != CURLE_OK) {
    if (b.too_big)
      mctl_error(c, "the API's answer is larger than %u bytes", MCTL_MAX_RESPONSE);
    else
      mctl_error(c, "cannot reach the API at %s: %s", c->api, curl_easy_strerror(rc));
    free(b.data);
    return -1;
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
  if (b.data == NULL)
    b.data = strdup("");
  *resp = b.data;
  return *resp != NULL ? 0 : -1;
}

int mctl_call(mctl *c, const char *method, const char *path, const char *body, json_t **out,
              char **raw)
{
  long status = 0;
  char *resp = NULL;
  *out = NULL;
  if (raw != NULL)
    *raw = NULL;
  if (mctl_http(c, method, path, body, &status, &resp) < 0)
    return MCTL_API_ERROR;
  json_t *j = json_loads(resp, 0, NULL);
  if (status < 200 || status > 299) {
    const char *msg = json_string_value(json_object_get(j, "error"));
    if (status == 401 && msg != NULL)
      mctl_error(c,
                 "%s (HTTP %ld); meshctl sent %s %s (give --token or MESH_API_TOKEN, or --home "
                 "for the home whose api.token meshd uses)",
                 msg, status, c->token != NULL ? "the token from" : "no token:",
                 c->token_from[0] != '\0' ? c->token_from : "none was given");
    else if (msg != NULL)
      mctl_error(c, "%s (HTTP %ld)", msg, status);
    else
      mctl_error(c, "the API answered HTTP %ld", status);
    json_decref(j);
    free(resp);
    return MCTL_API_ERROR;
  }
  if (j == NULL) {
    mctl_error(c, "the API's answer to %s is not JSON", path);
    free(resp);
    return MCTL_API_ERROR;
  }
  *out = j;
  if (raw != NULL)
    *raw = resp;
  else
    free(resp);
  return MCTL_OK;
}
