/*
 * libcurl multi interface on libevent: the socket and timer callbacks, the
 * completion loop, and the set-up of each easy handle.
 */
#include "coord/hf_xfer.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Large receive buffers: fewer callbacks and writes per byte. */
#define HF_RECV_BUFFER (512 * 1024)

static void check_done(hf_multi *m)
{
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    CURL *easy = msg->easy_handle;
    CURLcode rc = msg->data.result;
    hf_xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    x->status = status;
    x->redirect[0] = '\0';
    char *loc = NULL;
    if (curl_easy_getinfo(easy, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc != NULL)
      snprintf(x->redirect, sizeof x->redirect, "%s", loc);
    curl_multi_remove_handle(m->multi, easy);
    curl_easy_cleanup(easy);
    curl_slist_free_all(x->req_headers);
    x->req_headers = NULL;
    x->easy = NULL;
    x->on_done(x, rc);
  }
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
  hf_multi *m = arg;
  int action =
      ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
  int running = 0;
  curl_multi_socket_action(m->multi, fd, action, &running);
  check_done(m);
}

static void on_timer_event(evutil_socket_t fd, short what, void *arg)
{
  hf_multi *m = arg;
  int running = 0;
  curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(m);
}

/* CURLMOPT_SOCKETFUNCTION: keep one persistent event per socket. */
static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
  hf_multi *m = userp;
  struct event *ev = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (ev != NULL) {
      event_free(ev);
      curl_multi_assign(m->multi, s, NULL);
    }
    return 0;
  }
  short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
                       ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
  if (ev == NULL) {
    ev = event_new(m->base, s, kind, on_socket_event, m);
    if (ev == NULL)
      return -1;
    curl_multi_assign(m->multi, s, ev);
  } else {
    event_del(ev);
    event_assign(ev, m->base, s, kind, on_socket_event, m);
  }
  event_add(ev, NULL);
  return 0;
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer, else (re)arms it. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
  hf_multi *m = userp;
  if (timeout_ms < 0) {
    evtimer_del(m->timer);
    return 0;
  }
  struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
  evtimer_add(m->timer, &tv);
  return 0;
}

int hf_multi_init(hf_multi *m, struct event_base *base)
{
  memset(m, 0, sizeof *m);
  m->base = base;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return -ENOMEM;
  m->multi = curl_multi_init();
  if (m->multi == NULL)
    return -ENOMEM;
  m->timer = evtimer_new(base, on_timer_event, m);
  if (m->timer == NULL) {
    curl_multi_cleanup(m->multi);
    return -ENOMEM;
  }
  curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
  curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
  curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
  curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
  return 0;
}

void hf_multi_close(hf_multi *m)
{
  if (m->multi != NULL)
    curl_multi_cleanup(m->multi);
  if (m->timer != NULL)
    event_free(m->timer);
  m->multi = NULL;
  m->timer = NULL;
}

/* Copies the value of header line h (len bytes) named name into out, trimmed. */
static bool header_value(const char *h, size_t len, const char *name, char *out, size_t outlen,
                         bool *truncated)
{
  size_t nl = strlen(name);
  if (len <= nl || h[nl] != ':' || strncasecmp(h, name, nl) != 0)
    return false;
  const char *v = h + nl + 1;
  const char *end = h + len;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
    end--;
  size_t n = (size_t)(end - v);
  if (truncated != NULL)
    *truncated = n >= outlen;
  if (n >= outlen)
    n = outlen - 1;
  memcpy(out, v, n);
  out[n] = '\0';
  return true;
}

static size_t header_cb(char *h, size_t size, size_t nitems, void *userp)
{
  hf_xfer *x = userp;
  size_t len = size * nitems;
  if (len >= 5 && memcmp(h, "HTTP/", 5) == 0) {
    /* A new answer starts (after a 1xx): forget the previous one's headers. */
    x->retry_after[0] = x->error_code[0] = x->content_range[0] = x->link[0] = '\0';
    x->link_truncated = false;
    return len;
  }
  if (len <= 2 && (h[0] == '\r' || h[0] == '\n')) {
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 100 && status < 200)
      return len;
    x->status = status;
    return x->on_headers(x) ? len : 0;
  }
  if (!header_value(h, len, "Retry-After", x->retry_after, sizeof x->retry_after, NULL) &&
      !header_value(h, len, "X-Error-Code", x->error_code, sizeof x->error_code, NULL) &&
      !header_value(h, len, "Content-Range", x->content_range, sizeof x->content_range, NULL))
    header_value(h, len, "Link", x->link, sizeof x->link, &x->link_truncated);
  return len;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *userp)
{
  hf_xfer *x = userp;
  return x->on_body(x, p, size * nmemb);
}

int hf_xfer_start(hf_multi *m, hf_xfer *x, const char *url, const hf_xfer_params *p)
{
  x->m = m;
  x->status = 0;
  x->errbuf[0] = x->redirect[0] = '\0';
  x->retry_after[0] = x->error_code[0] = x->content_range[0] = x->link[0] = '\0';
  x->link_truncated = false;
  CURL *e = curl_easy_init();
  if (e == NULL)
    return -ENOMEM;
  x->easy = e;
  struct curl_slist *hl = NULL;
  char line[MESH_HF_URL_MAX];
  bool ok = true;
  if (p->token != NULL) {
    snprintf(line, sizeof line, "Authorization: Bearer %s", p->token);
    struct curl_slist *n = curl_slist_append(hl, line);
    ok = n != NULL;
    hl = ok ? n : hl;
  }
  if (ok && p->range_from > 0) {
    snprintf(line, sizeof line, "Range: bytes=%llu-", (unsigned long long)p->range_from);
    struct curl_slist *n = curl_slist_append(hl, line);
    ok = n != NULL;
    hl = ok ? n : hl;
  }
  if (!ok) {
    curl_slist_free_all(hl);
    curl_easy_cleanup(e);
    x->easy = NULL;
    return -ENOMEM;
  }
  x->req_headers = hl;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "meshd/0.1 (hf-client)");
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, (long)HF_RECV_BUFFER);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)p->connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, (long)p->low_speed_bytes);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)((p->low_speed_time_ms + 999) / 1000));
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "identity");
  m->started++;
  if (curl_multi_add_handle(m->multi, e) != CURLM_OK) {
    curl_slist_free_all(hl);
    x->req_headers = NULL;
    curl_easy_cleanup(e);
    x->easy = NULL;
    return -ENOMEM;
  }
  return 0;
}

void hf_xfer_stop(hf_xfer *x)
{
  if (x->easy == NULL)
    return;
  curl_multi_remove_handle(x->m->multi, x->easy);
  curl_easy_cleanup(x->easy);
  curl_slist_free_all(x->req_headers);
  x->req_headers = NULL;
  x->easy = NULL;
}
