/*
 * Internals of the Hub client shared by hf_download.c (the client, download
 * states, reports, progress), hf_list.c (the file list) and the file jobs:
 * hf_job.c (their states), hf_job_fetch.c (their transfers) and hf_work.c
 * (their items' work on the pool). Not a public header: the API is
 * coord/hf_client.h.
 *
 * A download moves QUEUED -> LISTING -> FETCHING -> DEAD (hf_dl_set_state);
 * a file job WAIT -> OPEN -> (PREHASH) -> XFER <-> RETRY -> VERIFY -> DONE.
 *
 * Threads and ownership. hf_dl, hf_job and the client are the loop thread's:
 * libcurl, timers, reports and every count run there. Disk work runs on the
 * pool (c->pool) as items embedded in these structs: a download's hf_dop
 * (model directory, survey) and a job's hf_op and hf_wbuf items, on the job's
 * strand. While an item is submitted (its w.busy) the item, and for a job's
 * items the job's hf_disk, belong to the worker running it; the loop does not
 * touch them and reads the results in the done function. Workers read, and
 * never write, the loop's immutable fields (the tree's files, leaf and
 * partial names, buffer capacity, options).
 *
 * DEAD downloads are freed by the kick event, never inside a report, so that
 * a callback may cancel the very download it is told about (code that emits
 * a report checks the state afterwards), and only when none of their items is
 * on the pool (hf_dl_idle); the done function of each item of a dead download
 * kicks again.
 */
#ifndef MESH_COORD_HF_INTERNAL_H
#define MESH_COORD_HF_INTERNAL_H

#include "coord/hf_client.h"
#include "coord/hf_xfer.h"
#include "src/base/clock.h"
#include "src/base/pool.h"
#include "coord/hf_ranges.h"
#include "coord/hf_verify.h"
#include "src/base/rng.h"

#include <event2/util.h>

#include <stdbool.h>
#include <stdint.h>

/* Bytes of a partial file hashed by one prehash item (a slice: the item reads
 * it through a write buffer, so it holds a worker for tens of milliseconds,
 * not minutes, and other files' writes get their turn in between). */
#define HF_PREHASH_SLICE (16u << 20)
/* Redirects followed for one request. */
#define HF_MAX_REDIRECTS 5
#define HF_MSG_MAX 1024
/* A failed try that brought this many bytes starts the attempt count over:
 * a long download survives any number of cuts as long as it moves. */
#define HF_PROGRESS_RESETS_ATTEMPTS (1u << 20)
/* Written bytes are handed to the disk in steps of this size (unless no_sync),
 * so that the sync before the rename has little left to do. */
#define HF_WRITEBACK_STEP (8u << 20)
/* Files of the model directory looked at by one survey item (bytes already
 * present), so that a model of thousands of files is a series of short items. */
#define HF_SURVEY_SLICE 256u
/* A peer source's label (a peer ID in text) and how many a file or a
 * download remembers; a file with bytes of more peers than that names the
 * last ones. */
#define HF_LABEL_MAX 64
#define HF_USED_MAX 4
#define HF_DL_SOURCES_MAX 8
/* A job whose sources are all busy asks again after this long. */
#define HF_SOURCE_BUSY_MS 200
/* A ranged file fetched from the Hub asks the peer sources again this often. */
#define HF_SOURCE_RETRY_MS 1000

typedef enum dl_state { DL_QUEUED, DL_LISTING, DL_FETCHING, DL_DEAD } dl_state;
typedef enum job_state {
  JOB_WAIT,    /* not begun */
  JOB_OPEN,    /* the open item is on the strand */
  JOB_PREHASH, /* prehash slices of a resumed partial file are on the strand */
  JOB_XFER,    /* a request runs; its bytes go to the strand as write items */
  JOB_RETRY,   /* waiting for the retry timer */
  JOB_VERIFY,  /* the verify item (hash, sync, rename) is on the strand */
  JOB_DONE,    /* in place (or stopped) */
} job_state;

typedef struct hf_dl hf_dl;
typedef struct hf_job hf_job;
typedef struct hf_lane hf_lane;

/* What a peer transfer feeds (the `job` handed to the source ops): a whole
 * file job, or one lane of a file fetched in ranges. First field of both. */
typedef enum hf_sink { HF_SINK_JOB = 0, HF_SINK_LANE = 1 } hf_sink;
/* Transfers one file fetched in ranges runs at once (the per-source bound
 * of the sources applies on top), and write buffers per lane. */
#define HF_LANES 4
#define HF_LANE_BUFS 2

/*
 * One write buffer of a file job. The job owns the buffer and its data; while
 * the item is submitted (w.busy) the strand owns both, and the loop reads
 * the result fields only in the done function.
 */
typedef struct hf_wbuf {
  mesh_work w;         /* on the job's strand */
  hf_job *j;           /* the job (immutable while submitted) */
  unsigned char *data; /* cap bytes, malloc'ed on first use, freed with the job */
  size_t len;          /* bytes filled */
  uint64_t off;        /* file offset of data[0] */
  bool restart;        /* truncate the file and reset the hash before writing */
  hf_lane *lane;       /* the lane it belongs to (a ranged file), NULL: the job's */
  int err;             /* result: errno of the write, 0 */
} hf_wbuf;

/*
 * A set of write buffers filled in file order and written on the job's
 * strand: the job's own (a file fetched in order) or a lane's (one range
 * after another). Loop thread; its buffers as hf_wbuf says.
 */
typedef struct hf_wset {
  hf_wbuf *bufs;     /* the owner's array */
  int n;             /* its length */
  int cur;           /* buffer being filled, or -1 */
  int in_flight;     /* its buffers submitted */
  bool restart_next; /* the next buffer starts the file over (the job's set) */
  hf_lane *lane;     /* the lane it belongs to, NULL: the job's */
  mesh_work_fn work; /* writes one buffer, on the strand */
  mesh_done_fn done; /* then, on the loop */
} hf_wset;

typedef enum hf_op_kind {
  HF_OP_OPEN,    /* open the file's directory, stat, open the partial, start the hash */
  HF_OP_PREHASH, /* hash a slice of the partial file left by an earlier run */
  HF_OP_VERIFY,  /* finish the hash, compare; sync and rename, or unlink */
  HF_OP_CHECK,   /* finish the hash of a file already in place, compare; close */
  HF_OP_CLOSE,   /* close what the job holds (a stopped job) */
  HF_OP_RANGES,  /* ranged file: write the sidecar (temporary name, rename) */
  HF_OP_HASH,    /* ranged file: hash a slice of the complete partial file */
} hf_op_kind;

/* A non-write item of a file job. Inputs are set by the loop before submit,
 * results by the worker; the loop reads results only in done. */
typedef struct hf_op {
  mesh_work w;
  hf_job *j;
  hf_op_kind kind;
  int dirfd;                      /* OPEN: the model directory (the download's) */
  bool sync;                      /* VERIFY: fdatasync before the rename */
  void (*before_sync)(void *arg); /* VERIFY: called before the sync (mesh_hf_options) */
  void *before_sync_arg;
  uint64_t from, to;         /* PREHASH: byte range of the partial to hash */
  bool replace;              /* OPEN: a file in place is not taken (its hash was wrong) */
  int err;                   /* result: negative errno, 0 */
  const char *step;          /* result: what failed ("open", "sync", ...); static */
  uint64_t n;                /* result: OPEN bytes in the partial; PREHASH bytes hashed */
  bool in_place;             /* result of OPEN: a file of the listed size is in place (opened
                                to be hashed; taken only when CHECK finds its hash right) */
  bool not_regular;          /* result of OPEN: a non-file in the way */
  bool mismatch;             /* result of VERIFY: wrong hash, partial deleted; of CHECK: the
                                file in place has a wrong hash (left for the rename) */
  char got[MESH_HF_HEX_MAX]; /* result of VERIFY and CHECK: the digest */
  bool ranged;               /* OPEN: read the sidecar into the job's table (which the
                                worker owns until done), or start one; VERIFY: remove it */
  uint32_t resumed;          /* result of OPEN (ranged): ranges found done */
} hf_op;

/*
 * One transfer of a file fetched in ranges: it claims a MISSING range, takes
 * its bytes in order from a peer source (or the Hub, which goes on into the
 * next missing ranges in the same request), writes them at their offsets
 * through its own buffers on the job's strand, and marks each range DONE
 * once its last byte is written. Loop thread; its buffers as hf_wbuf says.
 */
typedef enum hf_lane_state {
  LANE_IDLE,  /* no range */
  LANE_RUN,   /* a transfer runs for ranges [first, last] */
  LANE_DRAIN, /* the transfer ended: its buffers are being written */
} hf_lane_state;

struct hf_lane {
  hf_sink sink; /* HF_SINK_LANE: first field (see hf_sink) */
  hf_job *j;
  hf_lane_state state;
  uint32_t first;   /* first claimed range not yet DONE */
  uint32_t last;    /* last claimed range (the Hub's lane may claim several) */
  uint64_t next;    /* next byte expected */
  uint64_t written; /* bytes before this offset are written (strand order) */
  bool hub;         /* the transfer is the job's Hub request (j->x) */
  void *src;        /* the peer transfer, or NULL */
  char src_label[HF_LABEL_MAX];
  hf_wbuf bufs[HF_LANE_BUFS];
  hf_wset ws;  /* over bufs */
  bool paused; /* its transfer waits for a buffer */
  bool cut;    /* the Hub's lane stopped its request on purpose (nothing left to claim) */
  int failed;  /* the transfer ended early: a negative errno, 0 */
};

/*
 * What a file job holds on disk. Owned by the job's strand: only work
 * functions of the job's items touch it, one at a time and in order, and the
 * loop never does (the items hand it from one worker to the next through the
 * pool's lock). It is freed by the last item (VERIFY or CLOSE).
 */
typedef struct hf_disk {
  int pfd;                 /* directory holding the file, or -1 */
  int fd;                  /* the partial file (the file in place while it is checked), or -1 */
  mesh_hf_hash hash;       /* over the bytes written so far */
  bool hash_live;          /* hash initialised */
  uint64_t writeback_from; /* first byte not yet handed to the disk */
  int err;                 /* first failed write (errno): later writes are skipped */
} hf_disk;

/* Write buffers per file job and their size: see hf_job.c's top comment. */
#define HF_WBUFS MESH_HF_WRITE_BUFFERS
#define HF_WBUF_BYTES MESH_HF_WRITE_BUFFER_BYTES

struct hf_job {
  hf_sink sink; /* HF_SINK_JOB: first field (see hf_sink) */
  hf_dl *dl;
  const mesh_hf_file *f; /* in dl->tree */
  job_state state;
  const char *leaf;                     /* last component of f->path */
  char partial[MESH_HF_NAME_MAX + 16];  /* leaf + ".partial" */
  mesh_strand *strand;                  /* orders every disk item of this file */
  hf_disk disk;                         /* the strand's (see above) */
  hf_op op;                             /* OPEN, PREHASH or VERIFY, one at a time */
  hf_op fin;                            /* CLOSE of a stopped job */
  bool holds;                           /* OPEN submitted and no VERIFY/CLOSE yet */
  hf_wbuf bufs[HF_WBUFS];               /* write buffers */
  size_t buf_cap;                       /* bytes per buffer: min(HF_WBUF_BYTES, size) */
  hf_wset ws;                           /* over bufs */
  int in_flight;                        /* buffers submitted, the lanes' too */
  bool paused;                          /* the transfer is paused for want of a buffer */
  uint64_t have;                        /* bytes accepted (in the file or in buffers) */
  uint64_t prehash_to;                  /* PREHASH: bytes of the partial to hash */
  bool checking;                        /* PREHASH hashes the file in place, not a partial */
  hf_xfer x;                            /* the request */
  unsigned attempt;                     /* failed tries since the last progress */
  uint64_t have_at_request;             /* `have` when this try started */
  unsigned redirects;                   /* redirects in this try */
  char url[MESH_HF_URL_MAX];            /* URL of this try */
  struct event *ev;                     /* retry timer */
  bool writing;                         /* the answer's body is file content */
  int io_err;                           /* errno of a failed write: stops the download */
  bool overflow;                        /* more bytes than listed */
  bool range_mismatch;                  /* Content-Range not where asked */
  bool too_big;                         /* a body chunk larger than every buffer together */
  void *src;                            /* the peer sources' transfer running, or NULL */
  char src_label[HF_LABEL_MAX];         /* its source */
  char used[HF_USED_MAX][HF_LABEL_MAX]; /* peers whose bytes the file holds since it began */
  int n_used;
  /* A file fetched in ranges (hf_ranged.c). */
  bool ranged;             /* size >= range_threshold */
  mesh_hf_ranges rt;       /* which ranges are in; the OPEN item's while it runs */
  hf_lane lanes[HF_LANES]; /* its transfers */
  hf_lane *hub_lane;       /* the lane using the Hub request, or NULL */
  hf_op rop;               /* the sidecar write, at most one submitted */
  char *rtext;             /* its text (MESH_HF_RANGES_TEXT_MAX), malloc'ed */
  bool rdirty;             /* a range finished while rop was submitted */
  uint32_t rnext;          /* where the next claim starts looking */
  bool hashing;            /* the whole-file HASH slices are running */
};

/* A non-file item of a download (model directory, survey of what is on disk).
 * At most one is submitted at a time; results are read in done. */
typedef enum hf_dop_kind {
  HF_DOP_OPENDIR,
  HF_DOP_SURVEY,
  HF_DOP_MANIFEST, /* write the verified-files manifest (hf_manifest.h) */
} hf_dop_kind;
typedef struct hf_dop {
  mesh_work w;
  hf_dl *dl;
  hf_dop_kind kind;
  char *path;       /* OPENDIR: the model directory (the download's copy) */
  bool create;      /* OPENDIR: create it when missing */
  const char *mark; /* OPENDIR: the download's marker text (NULL: none) */
  bool adopt;       /* OPENDIR: mark an existing directory without one */
  bool list_only;   /* OPENDIR: measure the parent when it is missing */
  int dirfd;        /* SURVEY input; OPENDIR result, or -1 */
  bool dir_missing; /* OPENDIR result: dirfd is the parent */
  size_t from, to;  /* SURVEY: files [from, to) of the tree (immutable while listing) */
  bool last;        /* SURVEY: also measure the free space */
  int err;          /* result: negative errno, 0 */
  uint64_t present; /* SURVEY result: bytes of these files on disk */
  uint64_t avail;   /* SURVEY result (last): free bytes */
  bool sync;        /* MANIFEST: fdatasync it before the rename */
} hf_dop;

struct hf_dl {
  hf_dl *next;
  mesh_hf_client *c;
  uint64_t id;
  void *user;
  char *repo;
  char *revision;
  char *model_dir;
  char *mark; /* ownership marker text, NULL: none (owned) */
  bool adopt; /* mark an existing model directory too */
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
  bool list_wait;         /* the Hub is unreachable: a member's list is asked for */
  mesh_hf_tree tree;

  hf_dop dop;                 /* the directory item, at most one submitted */
  uint64_t present;           /* survey: bytes on disk so far */
  bool finishing;             /* every file is in: the manifest item runs, then COMPLETED */
  hf_job *jobs;               /* one per file of tree */
  size_t next_job;            /* first job never begun */
  int active_jobs;            /* begun and not done */
  uint32_t files_done;        /* verified and in place */
  uint64_t done_bytes;        /* in place plus in partial files */
  uint64_t net_bytes;         /* received in this run */
  uint64_t hub_bytes;         /* of net_bytes, from the Hub */
  uint64_t peer_bytes;        /* of net_bytes, from peer sources */
  mesh_time_ms started_ms;    /* when this run started */
  mesh_time_ms first_byte_ms; /* when its first byte came (0: none yet) */
  mesh_time_ms last_byte_ms;  /* when its latest byte came */
  char sources[HF_DL_SOURCES_MAX][HF_LABEL_MAX]; /* peer sources bytes came from */
  int n_sources;

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
  int running;        /* downloads LISTING or FETCHING */
  struct event *kick; /* starts queued downloads, frees dead idle ones */
  mesh_pool *pool;    /* borrowed: disk work of every download */
  mesh_hf_counters counters;
  const mesh_hf_source_ops *src_ops; /* peer sources, NULL: the Hub only */
  void *src_ctx;
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
/* hf_list.c: every file is verified: writes the manifest, then completes. */
void hf_dl_finish(hf_dl *dl);

/* hf_job.c: begins file jobs up to files_at_once; completes dl when all are done. */
void hf_fill_jobs(hf_dl *dl);
/* Stops a job's request and timer and hands what it holds on disk to a CLOSE
 * item (after its buffered bytes are written); its partial file stays. */
/* Sets up job j (zeroed) for file f of dl. */
void hf_job_init(hf_job *j, hf_dl *dl, const mesh_hf_file *f);
void hf_job_stop(hf_job *j);
/* Frees the job's buffers and strand; only when hf_job_idle. */
void hf_job_free(hf_job *j);
/* True when nothing of the job is on the pool. */
bool hf_job_idle(const hf_job *j);
/* True when nothing of dl is on the pool (it may be freed once DEAD). */
bool hf_dl_idle(const hf_dl *dl);

/* hf_job.c, hf_job_fetch.c and hf_work.c, for hf_ranged.c */
void hf_job_submit(hf_job *j, hf_op *o, hf_op_kind kind, mesh_done_fn done);
bool hf_job_dead(hf_job *j);
void hf_job_io_fail(hf_job *j, int err, const char *step);
void hf_job_verify(hf_job *j);
void hf_job_note_source(hf_job *j, const char *label);
void hf_job_retry(hf_job *j, const char *why);
/* A transfer of j ended by a write error, an oversized chunk or more bytes
 * than listed: fails the download and says true. */
bool hf_job_transfer_broke(hf_job *j);
/* Whether an answer's Content-Range (206 only; other statuses pass) starts
 * at from of a file of size bytes. */
bool hf_range_answers(const hf_xfer *x, uint64_t from, uint64_t size);
/* Counts n bytes taken into the job's or a lane's buffers. */
void hf_job_took(hf_job *j, size_t n);
/* The worker's side of a buffer: writes it whole at its offset; false (with
 * b->err and the disk's err set) on failure or when the partial file was
 * removed under the download. */
bool hf_wbuf_write(hf_job *j, hf_wbuf *b);

/* hf_wset.c: the loop's side of a write set. */
void hf_wset_init(hf_wset *s, hf_wbuf *bufs, int n, hf_lane *lane, mesh_work_fn work,
                  mesh_done_fn done);
/* Bytes the set can take now without waiting for the disk. */
size_t hf_wset_room(const hf_job *j, const hf_wset *s);
/* Hands the buffer being filled to the strand. */
void hf_wset_flush(hf_job *j, hf_wset *s);
/* Copies n bytes for file offset at (they fit: hf_wset_room), handing every
 * full buffer to the strand, and the last one too when nothing of the set
 * is being written. False when a buffer cannot be had (out of memory). */
bool hf_wset_fill(hf_job *j, hf_wset *s, uint64_t at, const void *p, size_t n);
/* A buffer of the set was written: counts it out. */
void hf_wset_written(hf_job *j, hf_wset *s, const hf_wbuf *b);
/* hf_work.c: the work functions of a ranged file's items run there too. */
void hf_work_prehash(hf_op *o);

/* hf_job.c, for hf_job_fetch.c: a job's state changes in this one function,
 * which logs the transition. */
void hf_job_set_state(hf_job *j, job_state s);
/* Hands the buffer being filled to the strand. */
void hf_job_flush(hf_job *j);
/* hf_job_fetch.c: asks a peer source, or else the Hub, for the rest of the
 * file. */
void hf_job_request(hf_job *j);
/* hf_job_fetch.c: the callbacks of a job's own transfer (hf_xfer's
 * on_headers, on_body and on_done, on the loop). */
bool hf_job_on_headers(hf_xfer *x);
size_t hf_job_on_body(hf_xfer *x, const char *p, size_t n);
void hf_job_on_done(hf_xfer *x, CURLcode rc);
/* hf_work.c: the work function of a job's hf_op items and that of its write
 * buffers (worker threads). */
void hf_work_op(mesh_work *w);
void hf_work_write(mesh_work *w);

/* hf_ranged.c: a file fetched in ranges from several sources at once. */
/* True when f is fetched in ranges with the client's options. */
bool hf_ranged_wanted(const mesh_hf_client *c, const mesh_hf_file *f);
/* The range size for f (larger than the option for a file that would have
 * more than MESH_HF_RANGES_MAX ranges). */
uint64_t hf_ranged_range_bytes(const mesh_hf_client *c, const mesh_hf_file *f);
/* Worker side of OPEN for a ranged file: reads or starts the sidecar. */
void hf_ranged_work_open(hf_op *o, uint64_t partial_size);
/* Worker side of HF_OP_RANGES. */
void hf_ranged_work_save(hf_op *o);
/* OPEN is done (loop): start the lanes. */
void hf_ranged_begin(hf_job *j);
/* A write of a lane's buffer is done (loop). */
void hf_ranged_write_done(hf_lane *l, hf_wbuf *b);
/* Retry timer of a ranged file. */
void hf_ranged_on_timer(hf_job *j);
/* Peer bytes and ends for a lane (mesh_hf_source_data/end). */
int hf_ranged_source_data(hf_lane *l, uint64_t off, const uint8_t *p, size_t n);
void hf_ranged_source_end(hf_lane *l, int err, const char *why);
/* Stops every lane's transfer (the job stops). */
void hf_ranged_stop(hf_job *j);
/* Frees what the ranged part of j holds (buffers, table). */
void hf_ranged_free(hf_job *j);
/* A verify of the whole file found a wrong hash: the table starts over. */
int hf_ranged_reset(hf_job *j);

#endif
