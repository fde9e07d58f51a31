/*
 * Internals of the Hub client shared by hf_download.c (the client, download
 * states, reports, progress), hf_list.c (the file list) and hf_job.c (file
 * jobs). Not a public header: the API is coord/hf_client.h.
 *
 * A download moves QUEUED -> LISTING -> FETCHING -> DEAD (hf_dl_set_state);
 * a file job WAIT -> (PREHASH) -> XFER <-> RETRY -> DONE. Everything runs on
 * the event loop's thread. DEAD downloads are freed by the kick event, never
 * inside a report, so that a callback may cancel the very download it is told
 * about; code that emits a report checks the state afterwards.
 */
#ifndef MESH_COORD_HF_INTERNAL_H
#define MESH_COORD_HF_INTERNAL_H

#include "coord/hf_client.h"
#include "coord/hf_xfer.h"
#include "src/base/clock.h"
#include "src/base/rng.h"

#include <event2/util.h>

#include <stdbool.h>
#include <stdint.h>

/* Bytes of a partial file hashed per loop turn when resuming. */
#define HF_PREHASH_SLICE (4u << 20)
/* Redirects followed for one request. */
#define HF_MAX_REDIRECTS 5
#define HF_MSG_MAX 1024
/* A failed try that brought this many bytes starts the attempt count over:
 * a long download survives any number of cuts as long as it moves. */
#define HF_PROGRESS_RESETS_ATTEMPTS (1u << 20)
/* Written bytes are handed to the disk in steps of this size (unless no_sync),
 * so that the sync before the rename has little left to do. */
#define HF_WRITEBACK_STEP (8u << 20)

typedef enum dl_state { DL_QUEUED, DL_LISTING, DL_FETCHING, DL_DEAD } dl_state;
typedef enum job_state { JOB_WAIT, JOB_PREHASH, JOB_XFER, JOB_RETRY, JOB_DONE } job_state;

typedef struct hf_dl hf_dl;

typedef struct hf_job {
  hf_dl *dl;
  const mesh_hf_file *f; /* in dl->tree */
  job_state state;
  int pfd;                             /* directory holding the file, or -1 */
  const char *leaf;                    /* last component of f->path */
  char partial[MESH_HF_NAME_MAX + 16]; /* leaf + ".partial" */
  int fd;                              /* the partial file, or -1 */
  uint64_t have;                       /* bytes in the partial file, all hashed */
  uint64_t prehash_to;                 /* PREHASH: bytes of the partial to hash */
  mesh_hf_hash hash;                   /* over the first `have` bytes */
  bool hash_live;                      /* hash initialised */
  hf_xfer x;                           /* the request */
  unsigned attempt;                    /* failed tries since the last progress */
  uint64_t have_at_request;            /* `have` when this try started */
  uint64_t writeback_from;             /* first byte not yet handed to the disk */
  unsigned redirects;                  /* redirects in this try */
  char url[MESH_HF_URL_MAX];           /* URL of this try */
  struct event *ev;                    /* retry timer and prehash turns */
  bool writing;                        /* the answer's body is file content */
  int io_err;                          /* errno of a failed write */
  bool overflow;                       /* more bytes than listed */
  bool range_mismatch;                 /* Content-Range not where asked */
} hf_job;

struct hf_dl {
  hf_dl *next;
  mesh_hf_client *c;
  uint64_t id;
  void *user;
  char *repo;
  char *revision;
  char *model_dir;
  uint64_t max_bytes;
  bool list_only;   /* a space check: ends after LISTED */
  bool dir_missing; /* list_only and the model directory does not exist: dirfd is its parent */
  dl_state state;
  int dirfd; /* the model directory, or -1 */

  hf_xfer lx;                     /* file list request */
  char list_url[MESH_HF_URL_MAX]; /* page being fetched */
  char page_url[MESH_HF_URL_MAX]; /* page before redirects, for retries */
  char *body;                     /* page body, bounded by max_list_page_bytes */
  size_t body_len;
  size_t body_cap;
  bool body_over;         /* the page grew past its bound */
  unsigned pages;         /* pages fetched */
  unsigned attempt;       /* failed tries of this page */
  unsigned redirects;     /* redirects of this try */
  struct event *retry_ev; /* list retry timer */
  mesh_hf_tree tree;

  hf_job *jobs;        /* one per file of tree */
  size_t next_job;     /* first job never begun */
  int active_jobs;     /* begun and not done */
  uint32_t files_done; /* verified and in place */
  uint64_t done_bytes; /* in place plus in partial files */
  uint64_t net_bytes;  /* received in this run */

  struct event *progress_ev;
  uint64_t last_net;    /* net_bytes at the last report */
  uint64_t last_done;   /* done_bytes at the last report */
  mesh_time_ms last_ms; /* time of the last report */
};

struct mesh_hf_client {
  struct event_base *base;
  hf_multi multi;
  mesh_hf_options opt; /* defaults filled in */
  char *endpoint;      /* owned */
  char *token;         /* owned, NULL when none */
  mesh_hf_report_fn fn;
  void *ctx;
  mesh_rng rng;
  hf_dl *dls; /* every download not yet freed */
  uint64_t next_id;
  int running;            /* downloads LISTING or FETCHING */
  struct event *kick;     /* starts queued downloads, frees dead ones */
  unsigned char *scratch; /* HF_PREHASH_SLICE bytes for hashing partial files */
  mesh_hf_counters counters;
};

/* Reports r to the caller. The callback may cancel dl: check dl->state after. */
void hf_emit(hf_dl *dl, mesh_hf_report_kind kind, const mesh_hf_progress *p, int err,
             const char *msg);
mesh_hf_progress hf_progress_of(const hf_dl *dl);
void hf_dl_set_state(hf_dl *dl, dl_state s);
/* Stops everything of dl, keeps partial files, marks it DEAD (freed by kick). */
void hf_dl_stop(hf_dl *dl);
/* Stops dl and reports FAILED with err and the formatted message. */
void hf_dl_fail(hf_dl *dl, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Stops dl and reports COMPLETED. */
void hf_dl_complete(hf_dl *dl);
/* What to do after a finished request (hf_judge). */
typedef enum hf_next {
  HF_NEXT_OK,     /* a 2xx answer: use it */
  HF_NEXT_RETRY,  /* transport error, 429 or 5xx: retry later; why says what */
  HF_NEXT_FOLLOW, /* an allowed redirect: url now holds its target */
  HF_NEXT_FAIL,   /* refused redirect, too many, or a fatal status: *err and why */
} hf_next;
/*
 * Judges request x (curl's result rc) the same way for file lists and file
 * bodies: follows redirects the policy allows, at most HF_MAX_REDIRECTS per
 * try (*redirects counts them; url, url_cap receive the target), counts them,
 * and words the failure. label names what was asked for in messages ("file
 * list of acme/tiny", "config.json"); what is the object of the fatal status
 * message ("file list" or the file's path).
 */
hf_next hf_judge(hf_dl *dl, const hf_xfer *x, CURLcode rc, const char *label, const char *what,
                 unsigned *redirects, char *url, size_t url_cap, int *err, char *why,
                 size_t why_cap);
/* Schedules the kick: free DEAD downloads, start QUEUED ones. */
void hf_kick(mesh_hf_client *c);
/* Request parameters for url (the token only for the endpoint's origin). */
hf_xfer_params hf_params_for(mesh_hf_client *c, const char *url, uint64_t range_from);
/* The wait before retry number attempt + 1 after answer x. */
uint64_t hf_retry_delay(mesh_hf_client *c, unsigned attempt, const hf_xfer *x);
/* Arms a one-shot timer event for ms milliseconds. */
void hf_arm(struct event *ev, uint64_t ms);
/* The progress timer's callback (arg: the download). */
void hf_on_progress(evutil_socket_t fd, short what, void *arg);

/* hf_list.c: opens the model directory and fetches the file list. */
void hf_dl_begin(hf_dl *dl);

/* hf_job.c: begins file jobs up to files_at_once; completes dl when all are done. */
void hf_fill_jobs(hf_dl *dl);
/* Closes what a job holds; its partial file stays on disk. */
void hf_job_stop(hf_job *j);

#endif
