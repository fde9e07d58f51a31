/*
 * One HTTP request of the Hub client on a libcurl multi handle driven by a
 * libevent event_base (internal to coord/hf_*.c).
 *
 * The multi handle tells libevent which sockets to watch and when its timer
 * is due (CURLMOPT_SOCKETFUNCTION, CURLMOPT_TIMERFUNCTION); libevent calls
 * back into curl_multi_socket_action. Redirects are not followed by libcurl:
 * the owner sees the 3xx with its target and decides (hf_http.h's policy).
 *
 * An hf_xfer is owned by its caller (embedded in a download or file job).
 * on_headers and on_body run inside libcurl callbacks: they must not start,
 * stop or report anything, only return a verdict (a file job's on_body may
 * hand a filled buffer to the work pool, and return CURL_WRITEFUNC_PAUSE when
 * none is free; its owner resumes it with curl_easy_pause from the loop,
 * outside libcurl's callbacks). on_done runs from the
 * multi's completion loop after the easy handle is released, so it may start
 * the next request or stop others.
 */
#ifndef MESH_COORD_HF_XFER_H
#define MESH_COORD_HF_XFER_H

#include "coord/hf_http.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct event;

typedef struct hf_multi {
  struct event_base *base; /* not owned */
  CURLM *multi;            /* owned */
  struct event *timer;     /* curl's timeout; owned */
  uint64_t started;        /* requests started, for counters */
} hf_multi;

typedef struct hf_xfer hf_xfer;

struct hf_xfer {
  CURL *easy;  /* NULL when idle */
  hf_multi *m; /* the multi it runs on */
  void *owner; /* the download or file job */
  /* After the headers of the final answer; return false to abort. */
  bool (*on_headers)(hf_xfer *x);
  /* Body bytes; return n to go on, anything else aborts the transfer. */
  size_t (*on_body)(hf_xfer *x, const char *p, size_t n);
  /* The request ended (rc from libcurl); the easy handle is already gone. */
  void (*on_done)(hf_xfer *x, CURLcode rc);

  long status;                      /* HTTP status of the final answer */
  char retry_after[64];             /* Retry-After header, "" if none */
  char error_code[64];              /* X-Error-Code header, "" if none */
  char content_range[128];          /* Content-Range header, "" if none */
  char link[MESH_HF_URL_MAX + 256]; /* Link header, "" if none */
  bool link_truncated;              /* the Link header did not fit */
  char redirect[MESH_HF_URL_MAX];   /* target of a 3xx, "" if none */
  char errbuf[CURL_ERROR_SIZE];     /* libcurl's message for rc */
  struct curl_slist *req_headers;   /* owned while running */
};

/* Parameters of one request. */
typedef struct hf_xfer_params {
  const char *token;   /* sent as a bearer token when non-NULL */
  uint64_t range_from; /* 0: whole body; else Range: bytes=N- */
  uint64_t connect_timeout_ms;
  uint64_t low_speed_bytes;
  uint64_t low_speed_time_ms;
} hf_xfer_params;

int hf_multi_init(hf_multi *m, struct event_base *base);
/* Every transfer must have been stopped first. */
void hf_multi_close(hf_multi *m);

/* Starts x (idle, callbacks and owner set) on url. 0 or -ENOMEM/-EINVAL. */
int hf_xfer_start(hf_multi *m, hf_xfer *x, const char *url, const hf_xfer_params *p);
/* Drops a running transfer without calling on_done; idle x is left alone. */
void hf_xfer_stop(hf_xfer *x);

#endif
