/*
 * Model downloads from the Hugging Face Hub.
 *
 * A mesh_hf_client downloads models into model directories on libcurl's
 * multi interface, driven by the caller's libevent event_base, and does its
 * disk work on the caller's work pool (src/base/pool.h). The caller (the
 * coordinator, through the daemon) starts and cancels downloads; the client
 * reports back through one callback. It knows nothing of entries, owners or
 * epochs.
 *
 * Threads: every function here, libcurl and every callback run on the loop
 * thread, which never waits on the disk. File and directory calls (mkdir,
 * open, stat, statvfs, pwrite, pread, fdatasync, rename, unlink) and the
 * hashing of file data run as work items on the pool; each file has its own
 * strand, so its items run one at a time in order. Received bytes are copied
 * into at most MESH_HF_WRITE_BUFFERS buffers of MESH_HF_WRITE_BUFFER_BYTES per
 * file; when all are waiting for the disk, the file's transfer is paused
 * (libcurl's pause) and resumed when a write completes, so memory does not
 * grow when the disk is slow. Results come back in done functions on the
 * loop (hf_job.c has the whole model).
 *
 * One download, in order:
 *   1. List:   GET {endpoint}/api/models/{repo}/tree/{revision}?recursive=true,
 *              following Link rel="next" pages (hf_tree.h parses them).
 *              When the Hub cannot be reached after every retry, the peer
 *              sources may give a member's list instead (ops->list below).
 *   2. Report MESH_HF_REPORT_LISTED with the total size, before any file
 *      byte is fetched. The callback may cancel here. Then the size guard:
 *      over max_bytes fails with -EFBIG, more than the free space of the
 *      model directory's file system (less what is already on disk) fails
 *      with -ENOSPC; both messages say how big and how much is allowed/free.
 *   3. Fetch:  GET {endpoint}/{repo}/resolve/{revision}/{path} into
 *              {model_dir}/{path}.partial, files_at_once at a time. A partial
 *              file left by an earlier run is hashed first (in slices, one
 *              work item each) and resumed with Range: bytes=N-; a 200 answer to a
 *              range starts the file over. The hash is computed as bytes
 *              arrive, checked (hf_verify.h), the file synced (handed to the
 *              disk every 8 MiB as it comes, so the last sync is short) and
 *              renamed into place. A file already in place with the listed
 *              size is read through (in slices, like a partial) and taken as
 *              done only when its hash matches; one with other bytes is
 *              counted (in_place_mismatches) and fetched again into its
 *              partial, whose rename replaces it. Only verified files are
 *              ever renamed into place.
 *   4. Report MESH_HF_REPORT_COMPLETED, or MESH_HF_REPORT_FAILED with a
 *      negative errno and a message.
 * MESH_HF_REPORT_PROGRESS comes at most once per progress interval (1 s)
 * while a download runs and bytes move.
 *
 * A request with list_only set is a space check: it lists the files, reports
 * LISTED with the total size, the free space of the model directory's file
 * system (of its parent when the directory does not exist yet: nothing is
 * created) and the bytes already on disk, and then ends without a further
 * report. Its errors come as FAILED reports.
 *
 * Errors of a download (FAILED reports):
 *   -EACCES 401 (no token, or token refused)   -EPERM 403 (gated) or a
 *   -ENOENT 404 (repository, revision, file)          redirect refused
 *   -EBADMSG bad file list, hash mismatch, more bytes than listed
 *   -EMSGSIZE file list over its bounds        -EFBIG over max_bytes
 *   -ENOSPC no room (guard or a failed write)  -EIO network, after retries
 *                                              (or the disk)
 *   -ELOOP more than 5 redirects               -EEXIST a non-file in the way
 *   -EPROTO another HTTP status                other: the file system's errno
 * Retries (429, 408, 5xx, cut or stalled transfers) count per file since its
 * last progress of 1 MiB, up to max_attempts, with capped exponential
 * backoff and Retry-After; a refusal (401, 403, 404) is never retried.
 * A hash mismatch deletes that .partial file; every other failure, and a
 * cancel, keeps the partial files for a later resume (bytes already received
 * are still written out). A failed write (ENOSPC, EROFS, EIO, EFBIG...) fails
 * the download at once with a message naming the file and the error, and
 * counts in io_errors. A partial file deleted under a running download fails
 * it with -ENOENT ("... was removed while downloading", io_errors) at the
 * next write, or at the rename when no write is left: nothing half-written
 * is ever put in place, and bytes do not go on into an unlinked file.
 *
 * Callback rules: the callback runs on the event loop, never inside a libcurl
 * callback. It may call mesh_hf_start and mesh_hf_cancel (also on the
 * download being reported); it must not free the client. The report and its
 * message are valid during the call only.
 */
#ifndef MESH_COORD_HF_CLIENT_H
#define MESH_COORD_HF_CLIENT_H

#include "coord/hf_tree.h"

#include <stdbool.h>
#include <stdint.h>

/* Write buffers per file and their size (the bound on buffered bytes: this
 * times files_at_once times downloads_at_once). */
#define MESH_HF_WRITE_BUFFERS 4
#define MESH_HF_WRITE_BUFFER_BYTES ((size_t)1 << 20)

struct event_base;
typedef struct mesh_pool mesh_pool;
typedef struct mesh_hf_client mesh_hf_client;

/* Settings; a zero field takes the default in brackets. */
typedef struct mesh_hf_options {
  const char *endpoint;          /* Hub base URL [https://huggingface.co]; copied */
  const char *token;             /* bearer token, NULL or "" for none; copied */
  int downloads_at_once;         /* models fetched concurrently [2]; more wait */
  int files_at_once;             /* files per model fetched concurrently [4] */
  uint64_t connect_timeout_ms;   /* TCP + TLS connect [10000] */
  uint64_t low_speed_bytes;      /* a transfer slower than this per second ... [1] */
  uint64_t low_speed_time_ms;    /* ... for this long is cut and retried [30000] */
  unsigned max_attempts;         /* tries per request before failing [6] */
  uint64_t backoff_base_ms;      /* first retry delay [500] */
  uint64_t backoff_cap_ms;       /* longest backoff [30000] */
  uint64_t max_retry_after_ms;   /* longest Retry-After honoured [120000] */
  uint64_t progress_interval_ms; /* between PROGRESS reports [1000] */
  size_t max_list_page_bytes;    /* one file list page [16 MiB] */
  unsigned max_list_pages;       /* pages of one list [1000] */
  mesh_hf_tree_limits tree_limits;
  bool no_sync; /* skip fdatasync before the rename (tests, benchmarks) */
  /* Called on the worker before each sync before a rename, with
   * before_sync_arg; NULL: nothing. A test slows the disk with it, as a slow
   * F_FULLFSYNC would (MESHD_TEST_SLOW_SYNC_MS, src/daemon/test_faults.h). */
  void (*before_sync)(void *arg);
  void *before_sync_arg;
  bool skip_space_check; /* leave the free-space check to the caller */
  /* A file of at least range_threshold bytes [64 MiB] is fetched in ranges
   * of range_bytes [16 MiB], several at once from different sources, each
   * written at its offset, and hashed whole once every range is in. */
  uint64_t range_threshold;
  uint64_t range_bytes;
  uint64_t seed; /* backoff jitter seed; 0 seeds from the OS */
} mesh_hf_options;

typedef enum mesh_hf_report_kind {
  MESH_HF_REPORT_LISTED = 0,    /* file list known: total, files, free and present bytes */
  MESH_HF_REPORT_PROGRESS = 1,  /* bytes moved */
  MESH_HF_REPORT_COMPLETED = 2, /* every file verified and in place; the download is gone */
  MESH_HF_REPORT_FAILED = 3,    /* err and message say why; the download is gone */
} mesh_hf_report_kind;

typedef struct mesh_hf_progress {
  uint64_t done_bytes;    /* verified files plus bytes in partial files */
  uint64_t session_bytes; /* received from the network by this client */
  uint64_t total_bytes;   /* sum of listed sizes */
  uint32_t files_done;    /* files verified and in place */
  uint32_t files_total;   /* files listed */
  uint64_t speed_bps;     /* bytes per second over the last interval */
  uint64_t eta_ms;        /* at that speed; UINT64_MAX when unknown */
  uint64_t hub_bytes;     /* of session_bytes, received from the Hub */
  uint64_t peer_bytes;    /* of session_bytes, received from peer sources */
} mesh_hf_progress;

typedef struct mesh_hf_report {
  mesh_hf_report_kind kind;
  uint64_t id;               /* from mesh_hf_start */
  void *user;                /* from the request */
  mesh_hf_progress progress; /* as of this report */
  uint64_t free_bytes;       /* LISTED: free space where the model goes */
  uint64_t present_bytes;    /* LISTED: bytes of the model already on disk */
  int err;                   /* FAILED: negative errno */
  const char *message;       /* FAILED: one line; NULL otherwise */
} mesh_hf_report;

typedef void (*mesh_hf_report_fn)(const mesh_hf_report *r, void *ctx);

typedef struct mesh_hf_request {
  const char *repo;       /* "org/name"; copied */
  const char *revision;   /* branch, tag or commit; NULL: "main"; copied */
  const char *model_dir;  /* created if missing (its parent must exist); copied */
  uint64_t max_bytes;     /* refuse a model larger than this; 0: no limit */
  bool list_only;         /* a space check: end with the LISTED report */
  const char *owner_mark; /* ownership marker text (coord/diskexec.h) written into the model
                             directory when this download creates it; NULL: none; copied */
  bool adopt;             /* also mark the directory when it exists without a marker (the
                             store says this node made it, with a version that wrote none) */
  void *user;             /* handed back in every report */
} mesh_hf_request;

/* What the client did, for /metrics and for tests. */
typedef struct mesh_hf_counters {
  uint64_t requests;            /* HTTP requests started */
  uint64_t retries;             /* requests repeated after 429/5xx or a cut */
  uint64_t redirects;           /* redirects followed */
  uint64_t redirects_refused;   /* redirects refused by the policy */
  uint64_t bytes_received;      /* file bytes received (then written) */
  uint64_t files_verified;      /* files whose hash matched */
  uint64_t hash_mismatches;     /* files deleted for a wrong hash */
  uint64_t in_place_mismatches; /* files in place of the listed size, wrong hash: fetched again */
  uint64_t restarts;            /* ranges ignored by the server (200 instead of 206) */
  uint64_t list_errors;         /* file lists refused by the parser */
  uint64_t completed;           /* downloads completed */
  uint64_t failed;              /* downloads failed */
  uint64_t write_pauses;        /* transfers paused because every write buffer was busy */
  uint64_t io_errors;           /* downloads failed by a file system error of a work item */
  uint64_t buffered_bytes;      /* received bytes waiting in buffers for the disk, now */
  uint64_t buffered_peak;       /* the most buffered_bytes has been */
  uint64_t peer_bytes;          /* file bytes received from peer sources (not in bytes_received) */
  uint64_t peer_transfers;      /* file transfers begun from a peer source */
  uint64_t peer_failovers;      /* peer transfers that ended early: the file went on elsewhere */
  uint64_t peer_mismatches; /* files with bytes from peers whose hash was wrong: fetched again */
  uint64_t ranged_files;    /* files fetched in ranges from several sources at once */
  uint64_t ranges_done;     /* ranges of such files written whole */
  uint64_t ranges_resumed;  /* ranges found done in a sidecar left by an earlier run */
} mesh_hf_counters;

/*
 * Creates a client on base whose disk work runs on pool (borrowed: it must
 * outlive the client, and its done functions must run on base's thread).
 * opt may be NULL (all defaults). fn receives every report with ctx. Returns
 * 0 with *out set, -EINVAL (bad endpoint or no pool) or -ENOMEM.
 */
int mesh_hf_client_new(struct event_base *base, mesh_pool *pool, const mesh_hf_options *opt,
                       mesh_hf_report_fn fn, void *ctx, mesh_hf_client **out);
/* Stops every download (keeping partial files, without reports), waits for
 * its work items (mesh_pool_flush: buffered bytes are written out) and frees
 * c. */
void mesh_hf_client_free(mesh_hf_client *c);

/*
 * Queues a download and returns its id in *id (never 0). Returns 0, -EINVAL
 * (bad repo or revision: nothing is started) or -ENOMEM. Errors met later,
 * including an unusable model directory, come as a FAILED report.
 */
int mesh_hf_start(mesh_hf_client *c, const mesh_hf_request *req, uint64_t *id);

/*
 * Stops download id at once: transfers are dropped, partial files kept, no
 * further report comes for it. Returns 0 or -ENOENT (unknown or finished).
 */
int mesh_hf_cancel(mesh_hf_client *c, uint64_t id);

void mesh_hf_get_counters(const mesh_hf_client *c, mesh_hf_counters *out);

/*
 * Peer sources. A file's bytes may come from other members instead of the
 * Hub: the file list and the hashes still come from the Hub (or, when it
 * cannot be reached and the sources allow it, from a member's signed list:
 * ops->list), and every file is verified the same way whoever sent it.
 * Before each request of a file (its first, and after every failure) the job
 * asks the sources; only when they have nothing for it does it go to the
 * Hub. Bytes must come in order from the offset asked for; a transfer that
 * ends early or fails resumes from where the file is (from another source,
 * or the Hub), without starting the file over. A file whose hash is wrong
 * and that holds bytes of peers is fetched again from the start, and each of
 * those peers is named to bad() first so the sources leave it out. All on
 * the loop thread.
 *
 * A file of range_threshold bytes and more runs several transfers at once,
 * each for [from, size) of one range (size is then the range's end, not the
 * file's), and hashes the file whole when every range is in (hf_ranged.c).
 */
typedef struct mesh_hf_source_req {
  uint64_t dl_id;       /* the download (mesh_hf_start's id) */
  void *user;           /* its request's user */
  const char *repo;     /* "org/name" */
  const char *revision; /* as asked */
  const char *path;     /* the file, as the Hub lists it */
  uint64_t from;        /* first byte wanted */
  uint64_t size;        /* end of the bytes wanted, [from, size): the listed size, or the
                           end of a range of a file fetched in ranges */
} mesh_hf_source_req;

typedef struct mesh_hf_source_ops {
  /* Starts a transfer of req (borrowed for the call) for job (handed back in
   * mesh_hf_source_data/end): 0 with *xfer (the sources' own handle) and a
   * label naming the source (at most label_cap bytes with its NUL);
   * -ENOENT when no source has the file (the Hub is asked); -EBUSY when
   * sources have it but none takes more now (asked again shortly). */
  int (*start)(void *ctx, const mesh_hf_source_req *req, void *job, void **xfer, char *label,
               size_t label_cap);
  /* The job wants no more bytes of xfer; no call for it comes after. */
  void (*stop)(void *ctx, void *xfer);
  /* The job has room again after mesh_hf_source_data said -EAGAIN. */
  void (*resume)(void *ctx, void *xfer);
  /* The source named label sent bytes of a file whose hash was wrong. */
  void (*bad)(void *ctx, uint64_t dl_id, const char *label);
  /* Download dl_id is gone (completed, failed, cancelled). */
  void (*finished)(void *ctx, uint64_t dl_id);
  /* The Hub could not be reached for the file list of req (repo, revision;
   * path, from and size unused) after every retry. May be NULL. 0: a
   * member is asked for its signed list, and the answer comes through
   * mesh_hf_source_list_done; otherwise a negative errno and why (at most
   * why_cap bytes with its NUL: for the failure's message, which says the
   * Hub is unreachable first), and the download fails with -EIO. */
  int (*list)(void *ctx, const mesh_hf_source_req *req, char *why, size_t why_cap);
} mesh_hf_source_ops;

/* Sets the peer sources (ops static or outliving c; NULL: the Hub only). */
void mesh_hf_set_sources(mesh_hf_client *c, const mesh_hf_source_ops *ops, void *ctx);
/* Bytes [off, off + n) of job's file from its source (p borrowed). 0 taken;
 * -EAGAIN no room now (keep them: resume() says when); -EBADMSG not at the
 * offset expected or past the listed size (end the transfer); -ESTALE the
 * job no longer takes bytes from this transfer. */
int mesh_hf_source_data(mesh_hf_client *c, void *job, uint64_t off, const uint8_t *p, size_t n);
/* job's transfer ended: err 0 when every byte asked for was given, else a
 * negative errno and why (borrowed). The job goes on from where the file is.
 * No call for the transfer may follow. */
void mesh_hf_source_end(mesh_hf_client *c, void *job, int err, const char *why);
/* The answer to ops->list for download id: err 0 and the list in *t (its
 * files taken over: t is left empty), checked and finished (sorted, without
 * duplicates), from the source named label; or a negative errno and why
 * (borrowed), and the download fails. Its files are then verified against
 * that list exactly as against the Hub's. 0, or -ENOENT when the download
 * no longer waits for a list (t is left to the caller). */
int mesh_hf_source_list_done(mesh_hf_client *c, uint64_t id, int err, mesh_hf_tree *t,
                             const char *label, const char *why);
/* The labels of the peer sources download id has taken bytes from so far,
 * comma-separated, into buf (cap bytes): 0 or -ENOENT. */
int mesh_hf_sources_of(const mesh_hf_client *c, uint64_t id, char *buf, size_t cap);

#endif
