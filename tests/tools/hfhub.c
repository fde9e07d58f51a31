/*
 * hfhub: a stand-in for the Hugging Face Hub, serving real HTTP on loopback
 * for tests, the demo and benchmarks.
 *
 * It generates one model repository deterministically from a seed, at one
 * revision or more (--revision, repeated: the first is served with --seed,
 * the k-th other with seed + k, so each revision has the same file names
 * and sizes and other bytes):
 *   config.json, README.md, tokenizer/vocab.txt   small files (git blob oid)
 *   model-0000K-of-0000N.safetensors               LFS files (sha256 lfs.oid)
 *   extra/dNNN/fNNNNNN.txt                         --small-files N more small
 *                                                  files, 100 to a directory
 * and serves
 *   GET  /api/models/{repo}/tree/{rev}?recursive=true[&cursor=K]
 *        the file list, --page-size entries per page, Link rel="next"
 *   GET  /{repo}/resolve/{rev}/{path}      a file, with Range: bytes=A-[B]
 *   GET  /_cdn/{path}                      the same file (redirect target)
 *   POST /_faults     add fault rules (a JSON object or array, below)
 *   DELETE /_faults   drop every rule
 *   GET  /_stats      {"total": N, "requests": {"/path": N, ...},
 *                      "range_requests": N, "from_zero": N, "faults_applied": N}
 *                     (from_zero: file requests served from byte 0, so a
 *                     file fetched again from its start counts twice)
 *   POST /_reset      drop rules and zero the counts
 * With --token T, API and file requests need "Authorization: Bearer T":
 * none gives 401, another token 403 (X-Error-Code: GatedRepo).
 *
 * A fault rule applies to the next `count` requests (default 1, -1 for ever)
 * whose target matches `path`: "tree" (file list pages), "*" (anything), or a
 * repository file path. Kinds:
 *   {"kind":"status","code":500}              any status, empty body
 *   {"kind":"status","code":429,"retry_after":"1"}
 *   {"kind":"cut","after":N}       send N body bytes, then cut the connection
 *   {"kind":"corrupt","at":N}      flip the byte at file offset N
 *   {"kind":"slow","rate":B}       trickle B bytes per second
 *   {"kind":"redirect"}            302 to /_cdn/{path} on this host
 *   {"kind":"redirect","to":URL}   302 to URL (e.g. another plain-http host)
 *   {"kind":"norange"}             ignore Range: answer 200 with everything
 *   {"kind":"body","body":TEXT}    file list page replaced by TEXT
 *   {"kind":"link","to":URL}       file list page with Link: <URL>; rel="next"
 * Rules also come from --fault JSON on the command line.
 *
 * LFS content is computed on the fly (one splitmix64 word per 8 bytes), so a
 * model of many GiB costs no memory or disk. Its SHA-256 must be known
 * before the file list is served; hashing GiBs at every start takes
 * seconds, so with --cache DIR each digest is kept in DIR, one file per
 * weight named by everything that determines the content:
 *   sha256-v{FILL_VERSION}-{seed}-{index}-{size}-{sha256 of the first 64 KiB}
 * holding the 64 hex digits of the whole file's SHA-256. The prefix digest
 * makes a changed fill() miss the cache even if FILL_VERSION was not bumped.
 * A cache file that is unreadable or malformed is ignored and rewritten.
 *
 * When it listens it prints its port and a newline on stdout (bind port 0 to
 * let the system choose), then serves until SIGTERM or SIGINT.
 */
#include "coord/hf_verify.h"

#include <errno.h>
#include <fcntl.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Weight files at most (--weights). */
#define MAX_WEIGHTS 61
/* Extra small files at most (--small-files): enough for a model directory
 * of many entries, small enough for the tree listing to stay cheap. */
#define MAX_SMALL_FILES 100000
#define MAX_REVS 4
#define MAX_RULES 64
#define CHUNK (1u << 20)
#define SLOW_TICK_MS 100
/* Bump when fill() changes: cached digests of the old content are unusable. */
#define FILL_VERSION 1
#define CACHE_PREFIX_BYTES (64u << 10)

typedef struct hub_file {
  char path[128];
  uint64_t size;
  bool lfs;
  unsigned index; /* seeds the content */
  unsigned rev;   /* index into hub.revisions */
  uint64_t seed;  /* the revision's seed */
  char *small;    /* content of a small file; NULL for LFS */
  char oid[MESH_HF_HEX_MAX];
  char sha256[MESH_HF_HEX_MAX];
} hub_file;

typedef enum fault_kind {
  F_STATUS,
  F_CUT,
  F_CORRUPT,
  F_SLOW,
  F_REDIRECT,
  F_NORANGE,
  F_BODY,
  F_LINK
} fault_kind;

typedef struct fault {
  char path[256];
  int count; /* -1: for ever */
  fault_kind kind;
  int code;
  char retry_after[32];
  uint64_t n; /* after / at / rate */
  char *text; /* redirect target or body; owned */
} fault;

typedef struct stat_entry {
  char *path;
  uint64_t n;
} stat_entry;

static struct {
  struct event_base *base;
  char host[64];
  int port;
  char repo[128];
  char revisions[MAX_REVS][128];
  size_t nrevs;
  char *token;
  const char *cache_dir; /* --cache: where LFS digests are kept; NULL: none */
  uint64_t seed;
  size_t page_size;
  hub_file *files; /* owned: nfiles of them, room for files_cap */
  size_t files_cap;
  size_t rev_start[MAX_REVS]; /* each revision's files are contiguous */
  size_t rev_count[MAX_REVS];
  size_t nfiles;
  fault rules[MAX_RULES];
  size_t nrules;
  stat_entry *stats;
  size_t nstats;
  uint64_t total;
  uint64_t range_requests;
  uint64_t from_zero; /* file answers that start at byte 0 */
  uint64_t faults_applied;
} hub;

/* hfhub has one thread, so ThreadSanitizer has nothing to find in it; but in
 * that build it would check every byte it generates and every byte it hands
 * to writev, and serve at about 10 MB/s: the slowest part of every download
 * test. The generator is left uninstrumented, and the interceptors' checks
 * of buffers passed to system calls are off by default for this program
 * (TSAN_OPTIONS still overrides). */
#if defined(__SANITIZE_THREAD__)
#define HUB_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HUB_TSAN 1
#endif
#endif
#ifdef HUB_TSAN
#define HUB_NO_TSAN __attribute__((no_sanitize("thread")))
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
  return "ignore_interceptors_accesses=1";
}
#else
#define HUB_NO_TSAN
#endif

HUB_NO_TSAN static uint64_t splitmix(uint64_t x)
{
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/* Content of LFS file f at [off, off + len): one 64-bit word per 8 bytes. */
HUB_NO_TSAN static void fill(const hub_file *f, uint64_t off, unsigned char *out, size_t len)
{
  uint64_t key = f->seed * 0x100000001b3ULL + ((uint64_t)f->index << 48);
  size_t i = 0;
  while (i < len) {
    uint64_t pos = off + i;
    uint64_t w = splitmix(key + pos / 8);
    unsigned sh = (unsigned)(pos % 8);
    if (sh == 0 && len - i >= 8) {
      memcpy(out + i, &w, 8);
      i += 8;
      continue;
    }
    out[i++] = (unsigned char)(w >> (8 * sh));
  }
}

static void file_bytes(const hub_file *f, uint64_t off, unsigned char *out, size_t len)
{
  if (f->small != NULL)
    memcpy(out, f->small + off, len);
  else
    fill(f, off, out, len);
}

/* The next free file slot; the array was sized before the models were made. */
static hub_file *new_file(void)
{
  if (hub.nfiles == hub.files_cap) {
    fprintf(stderr, "hfhub: too many files\n");
    exit(1);
  }
  hub_file *f = &hub.files[hub.nfiles++];
  memset(f, 0, sizeof *f);
  return f;
}

static void add_small(const char *path, const char *text, unsigned rev, uint64_t seed)
{
  hub_file *f = new_file();
  f->rev = rev;
  f->seed = seed;
  snprintf(f->path, sizeof f->path, "%s", path);
  f->small = strdup(text);
  f->size = strlen(text);
  mesh_hf_git_blob_oid(f->small, f->size, f->oid);
}

/* Hashes [0, len) of LFS file f into hex. */
static void hash_range(const hub_file *f, uint64_t len, char hex[MESH_HF_HEX_MAX])
{
  mesh_hf_hash h;
  mesh_hf_hash_init(&h, MESH_HF_HASH_SHA256, len);
  unsigned char *buf = malloc(CHUNK);
  if (buf == NULL) {
    fprintf(stderr, "hfhub: out of memory\n");
    exit(1);
  }
  for (uint64_t off = 0; off < len; off += CHUNK) {
    size_t n = len - off < CHUNK ? (size_t)(len - off) : CHUNK;
    fill(f, off, buf, n);
    mesh_hf_hash_update(&h, buf, n);
  }
  free(buf);
  mesh_hf_hash_final_hex(&h, hex);
  mesh_hf_hash_free(&h);
}

/* The cache file's path for f into out; -ENAMETOOLONG when it does not fit. */
static int cache_path(const hub_file *f, char *out, size_t outlen)
{
  char prefix[MESH_HF_HEX_MAX];
  hash_range(f, f->size < CACHE_PREFIX_BYTES ? f->size : CACHE_PREFIX_BYTES, prefix);
  int n = snprintf(out, outlen, "%s/sha256-v%d-%" PRIu64 "-%u-%" PRIu64 "-%s", hub.cache_dir,
                   FILL_VERSION, f->seed, f->index, f->size, prefix);
  return n > 0 && (size_t)n < outlen ? 0 : -ENAMETOOLONG;
}

/* Reads a cached digest into hex; 0 when the file held exactly one. */
static int cache_read(const char *path, char hex[MESH_HF_HEX_MAX])
{
  FILE *fp = fopen(path, "r");
  if (fp == NULL)
    return -errno;
  char line[MESH_HF_HEX_MAX + 2];
  size_t n = fread(line, 1, sizeof line - 1, fp);
  fclose(fp);
  line[n] = '\0';
  if (n == MESH_HF_SHA256_HEX_LEN + 1 && line[MESH_HF_SHA256_HEX_LEN] == '\n')
    line[--n] = '\0';
  if (n != MESH_HF_SHA256_HEX_LEN || strspn(line, "0123456789abcdef") != n)
    return -EINVAL;
  memcpy(hex, line, n + 1);
  return 0;
}

/* Writes hex to path through a temporary file and a rename, so that two
 * hubs starting at once never read half a digest. Failure only costs the
 * next start a hash. */
static void cache_write(const char *path, const char *hex)
{
  char tmp[PATH_MAX];
  int n = snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
  if (n < 0 || (size_t)n >= sizeof tmp)
    return;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0)
    return;
  char line[MESH_HF_HEX_MAX + 1];
  int len = snprintf(line, sizeof line, "%s\n", hex);
  bool ok = len > 0 && write(fd, line, (size_t)len) == len;
  ok = close(fd) == 0 && ok;
  if (!ok || rename(tmp, path) != 0)
    unlink(tmp);
}

/* The whole file's SHA-256 into f->sha256, from the cache when it has it. */
static void lfs_digest(hub_file *f)
{
  char path[PATH_MAX];
  bool cached = hub.cache_dir != NULL && cache_path(f, path, sizeof path) == 0;
  if (cached && cache_read(path, f->sha256) == 0)
    return;
  hash_range(f, f->size, f->sha256);
  if (cached)
    cache_write(path, f->sha256);
}

static void add_lfs(const char *path, uint64_t size, unsigned index, unsigned rev, uint64_t seed)
{
  hub_file *f = new_file();
  f->rev = rev;
  f->seed = seed;
  snprintf(f->path, sizeof f->path, "%s", path);
  f->size = size;
  f->lfs = true;
  f->index = index;
  lfs_digest(f);
  /* The git oid of an LFS file is that of its pointer file, as on the Hub. */
  char ptr[256];
  int n = snprintf(ptr, sizeof ptr,
                   "version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %" PRIu64 "\n",
                   f->sha256, size);
  mesh_hf_git_blob_oid(ptr, (size_t)n, f->oid);
}

static void make_model(unsigned weights, uint64_t weight_size, unsigned small_files, unsigned rev)
{
  uint64_t seed = hub.seed + rev;
  hub.rev_start[rev] = hub.nfiles;
  char text[512];
  snprintf(text, sizeof text,
           "{\"architectures\": [\"TinyForCausalLM\"], \"hidden_size\": 64, \"seed\": %" PRIu64
           "}\n",
           seed);
  add_small("config.json", text, rev, seed);
  snprintf(text, sizeof text, "# %s\n\nA small generated model for tests (seed %" PRIu64 ").\n",
           hub.repo, seed);
  add_small("README.md", text, rev, seed);
  add_small("tokenizer/vocab.txt", "<s>\n</s>\nhello\nworld\n", rev, seed);
  for (unsigned i = 0; i < weights; i++) {
    char name[128];
    snprintf(name, sizeof name, "model-%05u-of-%05u.safetensors", i + 1, weights);
    add_lfs(name, weight_size, i + 1, rev, seed);
  }
  /* Many small files, 100 to a directory, for trees of many entries. */
  for (unsigned i = 0; i < small_files; i++) {
    char name[128];
    snprintf(name, sizeof name, "extra/d%03u/f%06u.txt", i / 100, i);
    snprintf(text, sizeof text, "small file %u of %u (seed %" PRIu64 ")\n", i, small_files,
             seed);
    add_small(name, text, rev, seed);
  }
  hub.rev_count[rev] = hub.nfiles - hub.rev_start[rev];
}

/* ---- faults and counts -------------------------------------------------- */

static int add_rule(json_t *r, char *err, size_t errlen)
{
  if (!json_is_object(r) || hub.nrules == MAX_RULES) {
    snprintf(err, errlen, "a rule is a JSON object (at most %d)", MAX_RULES);
    return -1;
  }
  fault *f = &hub.rules[hub.nrules];
  memset(f, 0, sizeof *f);
  const char *kind = json_string_value(json_object_get(r, "kind"));
  const char *path = json_string_value(json_object_get(r, "path"));
  json_t *count = json_object_get(r, "count");
  snprintf(f->path, sizeof f->path, "%s", path != NULL ? path : "*");
  f->count = json_is_integer(count) ? (int)json_integer_value(count) : 1;
  const char *ra = json_string_value(json_object_get(r, "retry_after"));
  if (ra != NULL)
    snprintf(f->retry_after, sizeof f->retry_after, "%s", ra);
  f->code = (int)json_integer_value(json_object_get(r, "code"));
  json_t *n = json_object_get(r, "after");
  if (n == NULL)
    n = json_object_get(r, "at");
  if (n == NULL)
    n = json_object_get(r, "rate");
  f->n = (uint64_t)json_integer_value(n);
  const char *text = json_string_value(json_object_get(r, "to"));
  if (text == NULL)
    text = json_string_value(json_object_get(r, "body"));
  if (kind == NULL) {
    snprintf(err, errlen, "rule without kind");
    return -1;
  }
  static const char *names[] = {"status",   "cut",     "corrupt", "slow",
                                "redirect", "norange", "body",    "link"};
  size_t k = 0;
  while (k < sizeof names / sizeof *names && strcmp(names[k], kind) != 0)
    k++;
  if (k == sizeof names / sizeof *names) {
    snprintf(err, errlen, "unknown kind %s", kind);
    return -1;
  }
  f->kind = (fault_kind)k;
  if (f->kind == F_STATUS && (f->code < 100 || f->code > 599)) {
    snprintf(err, errlen, "status rule needs code 100..599");
    return -1;
  }
  if (f->kind == F_SLOW && f->n == 0) {
    snprintf(err, errlen, "slow rule needs rate > 0");
    return -1;
  }
  f->text = text != NULL ? strdup(text) : NULL;
  hub.nrules++;
  return 0;
}

static int add_rules_json(const char *text, size_t len, char *err, size_t errlen)
{
  json_error_t je;
  json_t *root = json_loadb(text, len, 0, &je);
  if (root == NULL) {
    snprintf(err, errlen, "bad JSON: %s", je.text);
    return -1;
  }
  int rc = 0;
  if (json_is_array(root)) {
    for (size_t i = 0; i < json_array_size(root) && rc == 0; i++)
      rc = add_rule(json_array_get(root, i), err, errlen);
  } else {
    rc = add_rule(root, err, errlen);
  }
  json_decref(root);
  return rc;
}

static void clear_rules(void)
{
  for (size_t i = 0; i < hub.nrules; i++)
    free(hub.rules[i].text);
  hub.nrules = 0;
}

/* Takes the first live rule matching target ("tree" or a file path). */
static fault *take_fault(const char *target)
{
  for (size_t i = 0; i < hub.nrules; i++) {
    fault *f = &hub.rules[i];
    if (f->count == 0)
      continue;
    if (strcmp(f->path, "*") != 0 && strcmp(f->path, target) != 0)
      continue;
    if (f->count > 0)
      f->count--;
    hub.faults_applied++;
    return f;
  }
  return NULL;
}

static void count(const char *path)
{
  hub.total++;
  for (size_t i = 0; i < hub.nstats; i++) {
    if (strcmp(hub.stats[i].path, path) == 0) {
      hub.stats[i].n++;
      return;
    }
  }
  stat_entry *s = realloc(hub.stats, (hub.nstats + 1) * sizeof *s);
  if (s == NULL)
    return;
  hub.stats = s;
  hub.stats[hub.nstats].path = strdup(path);
  hub.stats[hub.nstats].n = 1;
  hub.nstats++;
}

/* ---- replies ------------------------------------------------------------ */

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *ctype,
                       const char *body)
{
  struct evbuffer *b = evbuffer_new();
  evbuffer_add(b, body, strlen(body));
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
  evhttp_send_reply(req, code, reason, b);
  evbuffer_free(b);
}

static void reply_status(struct evhttp_request *req, int code, const char *error_code,
                         const char *retry_after)
{
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  if (error_code != NULL)
    evhttp_add_header(h, "X-Error-Code", error_code);
  if (retry_after != NULL && retry_after[0] != '\0')
    evhttp_add_header(h, "Retry-After", retry_after);
  char body[128];
  snprintf(body, sizeof body, "{\"error\": \"status %d\"}", code);
  reply_text(req, code, "Fault", "application/json", body);
}

/* A file body being streamed. */
typedef struct stream {
  struct evhttp_request *req;
  struct evhttp_connection *conn;
  const hub_file *f;
  uint64_t off;        /* next file offset to send */
  uint64_t end;        /* one past the last */
  uint64_t sent;       /* body bytes sent */
  uint64_t cut_after;  /* UINT64_MAX: none */
  uint64_t corrupt_at; /* UINT64_MAX: none */
  uint64_t rate;       /* bytes per second; 0: full speed */
  struct event *tick;  /* slow trickle */
  bool cut;            /* the connection was cut */
  unsigned char *buf;  /* CHUNK bytes, owned; the chunk in flight points here */
  uint64_t last_n;     /* bytes of the chunk in flight */
} stream;

static void stream_free(stream *s)
{
  if (s->tick != NULL)
    event_free(s->tick);
  evhttp_connection_set_closecb(s->conn, NULL, NULL);
  free(s->buf);
  free(s);
}

/* The connection is going: nothing will be written from s->buf again. */
static void on_conn_close(struct evhttp_connection *conn, void *arg)
{
  stream *s = arg;
  if (s->tick != NULL)
    event_free(s->tick);
  free(s->buf);
  free(s);
}

static void stream_next(stream *s);

static void on_chunk_sent(struct evhttp_connection *conn, void *arg)
{
  stream *s = arg;
  if (s->sent == s->cut_after) {
    /* Cut the connection mid-body: the client sees a short transfer. */
    struct bufferevent *bev = evhttp_connection_get_bufferevent(conn);
    shutdown(bufferevent_getfd(bev), SHUT_RDWR);
    s->cut = true;
    return;
  }
  if (s->off == s->end) {
    struct evhttp_request *req = s->req;
    stream_free(s); /* before the end: it may free the connection */
    evhttp_send_reply_end(req);
    return;
  }
  if (s->rate != 0) {
    /* The chunk just sent took its share of a second at the rate. */
    uint64_t us = s->last_n * 1000000 / s->rate;
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    evtimer_add(s->tick, &tv);
    return;
  }
  stream_next(s);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
  stream_next(arg);
}

static void stream_next(stream *s)
{
  uint64_t n = s->end - s->off;
  /* A chunk never exceeds the stream's buffer; slowly, it is what the rate
   * allows in a tick (the pause after it keeps the rate above a chunk per
   * tick too). */
  uint64_t limit = CHUNK;
  if (s->rate != 0 && s->rate * SLOW_TICK_MS / 1000 < limit)
    limit = s->rate * SLOW_TICK_MS / 1000 > 0 ? s->rate * SLOW_TICK_MS / 1000 : 1;
  if (s->cut_after != UINT64_MAX && s->cut_after - s->sent < limit)
    limit = s->cut_after - s->sent;
  if (n > limit)
    n = limit;
  /* One chunk is in flight at a time (the next is made when this one has
   * been written out), so the stream's one buffer is lent to libevent by
   * reference: no allocation or copy per chunk. */
  unsigned char *p = s->buf;
  file_bytes(s->f, s->off, p, (size_t)n);
  if (s->corrupt_at >= s->off && s->corrupt_at < s->off + n)
    p[s->corrupt_at - s->off] ^= 0x5a;
  struct evbuffer *b = evbuffer_new();
  evbuffer_add_reference(b, p, (size_t)n, NULL, NULL);
  s->off += n;
  s->sent += n;
  s->last_n = n;
  evhttp_send_reply_chunk_with_cb(s->req, b, on_chunk_sent, s);
  evbuffer_free(b);
}

static const hub_file *find_file(unsigned rev, const char *path)
{
  for (size_t i = 0; i < hub.nfiles; i++)
    if (hub.files[i].rev == rev && strcmp(hub.files[i].path, path) == 0)
      return &hub.files[i];
  return NULL;
}

/* The k-th file of revision rev, or NULL. */
static const hub_file *rev_file(unsigned rev, size_t k)
{
  if (rev >= hub.nrevs || k >= hub.rev_count[rev])
    return NULL;
  return &hub.files[hub.rev_start[rev] + k];
}

static void serve_file(struct evhttp_request *req, const hub_file *f, fault *ft)
{
  uint64_t start = 0, end = f->size;
  bool ranged = false;
  const char *range = evhttp_find_header(evhttp_request_get_input_headers(req), "Range");
  if (range != NULL) {
    hub.range_requests++;
    unsigned long long a = 0, b = 0;
    int got = sscanf(range, "bytes=%llu-%llu", &a, &b);
    if (got >= 1 && (ft == NULL || ft->kind != F_NORANGE)) {
      if (a >= f->size) {
        char cr[64];
        snprintf(cr, sizeof cr, "bytes */%" PRIu64, f->size);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Range", cr);
        reply_status(req, 416, NULL, NULL);
        return;
      }
      start = a;
      if (got == 2 && b + 1 < end)
        end = b + 1;
      ranged = true;
    }
  }
  stream *s = calloc(1, sizeof *s);
  if (s != NULL)
    s->buf = malloc(CHUNK);
  if (s == NULL || s->buf == NULL) {
    free(s);
    reply_status(req, 503, NULL, NULL);
    return;
  }
  if (start == 0)
    hub.from_zero++;
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  char v[128];
  snprintf(v, sizeof v, "%" PRIu64, end - start);
  evhttp_add_header(h, "Content-Length", v);
  evhttp_add_header(h, "Content-Type", "application/octet-stream");
  snprintf(v, sizeof v, "\"%s\"", f->lfs ? f->sha256 : f->oid);
  evhttp_add_header(h, "ETag", v);
  if (ranged) {
    snprintf(v, sizeof v, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, start, end - 1, f->size);
    evhttp_add_header(h, "Content-Range", v);
  }
  s->req = req;
  s->conn = evhttp_request_get_connection(req);
  s->f = f;
  s->off = start;
  s->end = end;
  s->cut_after = UINT64_MAX;
  s->corrupt_at = UINT64_MAX;
  if (ft != NULL && ft->kind == F_CUT)
    s->cut_after = ft->n;
  if (ft != NULL && ft->kind == F_CORRUPT)
    s->corrupt_at = ft->n;
  if (ft != NULL && ft->kind == F_SLOW) {
    s->rate = ft->n;
    s->tick = evtimer_new(hub.base, on_tick, s);
  }
  evhttp_connection_set_closecb(s->conn, on_conn_close, s);
  evhttp_send_reply_start(req, ranged ? 206 : 200, ranged ? "Partial Content" : "OK");
  if (end == start) {
    stream_free(s);
    evhttp_send_reply_end(req);
    return;
  }
  stream_next(s);
}

/* Applies faults common to every request; true when the reply is sent. */
static bool common_fault(struct evhttp_request *req, fault *ft, const char *cdn_path)
{
  if (ft == NULL)
    return false;
  if (ft->kind == F_STATUS) {
    reply_status(req, ft->code, ft->code == 404 ? "EntryNotFound" : NULL, ft->retry_after);
    return true;
  }
  if (ft->kind == F_REDIRECT) {
    char to[1024];
    if (ft->text != NULL)
      snprintf(to, sizeof to, "%s", ft->text);
    else
      snprintf(to, sizeof to, "http://%s:%d/_cdn/%s", hub.host, hub.port, cdn_path);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location", to);
    reply_text(req, 302, "Found", "text/plain", "redirect\n");
    return true;
  }
  return false;
}

static void serve_tree(struct evhttp_request *req, const char *query, fault *ft, unsigned rev)
{
  if (ft != NULL && ft->kind == F_BODY) {
    reply_text(req, 200, "OK", "application/json", ft->text != NULL ? ft->text : "");
    return;
  }
  size_t cursor = 0;
  struct evkeyvalq q;
  if (query != NULL && evhttp_parse_query_str(query, &q) == 0) {
    const char *c = evhttp_find_header(&q, "cursor");
    if (c != NULL)
      cursor = strtoul(c, NULL, 10);
    evhttp_clear_headers(&q);
  }
  /* Entries: the tokenizer directory first, then every file. */
  size_t nfiles = 0;
  while (rev_file(rev, nfiles) != NULL)
    nfiles++;
  size_t nentries = nfiles + 1;
  json_t *arr = json_array();
  for (size_t i = cursor; i < nentries && i < cursor + hub.page_size; i++) {
    json_t *e;
    if (i == 0) {
      e = json_pack("{s:s, s:s, s:i, s:s}", "type", "directory", "oid",
                    "0000000000000000000000000000000000000000", "size", 0, "path", "tokenizer");
    } else {
      const hub_file *f = rev_file(rev, i - 1);
      e = json_pack("{s:s, s:s, s:I, s:s}", "type", "file", "oid", f->oid, "size",
                    (json_int_t)f->size, "path", f->path);
      if (f->lfs)
        json_object_set_new(e, "lfs",
                            json_pack("{s:s, s:I, s:I}", "oid", f->sha256, "size",
                                      (json_int_t)f->size, "pointerSize", (json_int_t)134));
    }
    json_array_append_new(arr, e);
  }
  if (ft != NULL && ft->kind == F_LINK && ft->text != NULL) {
    char link[1100];
    snprintf(link, sizeof link, "<%s>; rel=\"next\"", ft->text);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Link", link);
  } else if (cursor + hub.page_size < nentries) {
    char link[1024];
    snprintf(link, sizeof link,
             "<http://%s:%d/api/models/%s/tree/%s?recursive=true&cursor=%zu>; rel=\"next\"",
             hub.host, hub.port, hub.repo, hub.revisions[rev], cursor + hub.page_size);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Link", link);
  }
  char *text = json_dumps(arr, JSON_COMPACT);
  reply_text(req, 200, "OK", "application/json", text);
  free(text);
  json_decref(arr);
}

static void serve_stats(struct evhttp_request *req)
{
  json_t *reqs = json_object();
  for (size_t i = 0; i < hub.nstats; i++)
    json_object_set_new(reqs, hub.stats[i].path, json_integer((json_int_t)hub.stats[i].n));
  json_t *o =
      json_pack("{s:I, s:o, s:I, s:I, s:I}", "total", (json_int_t)hub.total, "requests", reqs,
                "range_requests", (json_int_t)hub.range_requests, "from_zero",
                (json_int_t)hub.from_zero, "faults_applied", (json_int_t)hub.faults_applied);
  char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
  reply_text(req, 200, "OK", "application/json", text);
  free(text);
  json_decref(o);
}

static void serve_control(struct evhttp_request *req, const char *path)
{
  enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
  if (strcmp(path, "/_stats") == 0) {
    serve_stats(req);
  } else if (strcmp(path, "/_faults") == 0 && cmd == EVHTTP_REQ_POST) {
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char *body = (char *)evbuffer_pullup(in, (ev_ssize_t)len);
    char err[256];
    if (add_rules_json(body != NULL ? body : "", len, err, sizeof err) != 0)
      reply_text(req, 400, "Bad Request", "text/plain", err);
    else
      reply_text(req, 200, "OK", "application/json", "{\"ok\": true}");
  } else if (strcmp(path, "/_faults") == 0 && cmd == EVHTTP_REQ_DELETE) {
    clear_rules();
    reply_text(req, 200, "OK", "application/json", "{\"ok\": true}");
  } else if (strcmp(path, "/_reset") == 0 && cmd == EVHTTP_REQ_POST) {
    clear_rules();
    for (size_t i = 0; i < hub.nstats; i++)
      free(hub.stats[i].path);
    hub.nstats = 0;
    hub.total = hub.range_requests = hub.from_zero = hub.faults_applied = 0;
    reply_text(req, 200, "OK", "application/json", "{\"ok\": true}");
  } else {
    reply_status(req, 404, NULL, NULL);
  }
}

/* 401 without the token, 403 with another one; true when refused. */
static bool refuse_auth(struct evhttp_request *req)
{
  if (hub.token == NULL)
    return false;
  const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
  if (a == NULL) {
    reply_status(req, 401, "GatedRepo", NULL);
    return true;
  }
  if (strncmp(a, "Bearer ", 7) != 0 || strcmp(a + 7, hub.token) != 0) {
    reply_status(req, 403, "GatedRepo", NULL);
    return true;
  }
  return false;
}

/* The revision that text names: all of it (whole), or its start up to a '/'
 * with *rest set past that '/'. The index, or -1. */
static int revision_of(const char *text, bool whole, const char **rest)
{
  for (size_t r = 0; r < hub.nrevs; r++) {
    size_t n = strlen(hub.revisions[r]);
    if (strncmp(text, hub.revisions[r], n) != 0)
      continue;
    if (whole && text[n] == '\0')
      return (int)r;
    if (!whole && text[n] == '/') {
      *rest = text + n + 1;
      return (int)r;
    }
  }
  return -1;
}

static void on_request(struct evhttp_request *req, void *arg)
{
  const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
  const char *raw = evhttp_uri_get_path(uri);
  char *path = evhttp_uridecode(raw != NULL ? raw : "/", 0, NULL);
  const char *query = evhttp_uri_get_query(uri);
  if (strncmp(path, "/_", 2) == 0 && strncmp(path, "/_cdn/", 6) != 0) {
    serve_control(req, path);
    free(path);
    return;
  }
  count(path);
  char tree_prefix[512], resolve_prefix[512];
  snprintf(tree_prefix, sizeof tree_prefix, "/api/models/%s/tree/", hub.repo);
  snprintf(resolve_prefix, sizeof resolve_prefix, "/%s/resolve/", hub.repo);
  size_t tl = strlen(tree_prefix), rl = strlen(resolve_prefix);

  if (strncmp(path, "/_cdn/", 6) == 0) {
    const hub_file *f = find_file(0, path + 6);
    fault *ft = take_fault(path + 6);
    if (f == NULL)
      reply_status(req, 404, "EntryNotFound", NULL);
    else if (!common_fault(req, ft, f->path))
      serve_file(req, f, ft);
  } else if (strncmp(path, "/api/models/", 12) == 0) {
    if (refuse_auth(req)) {
    } else if (strncmp(path, tree_prefix, tl) != 0) {
      reply_status(req, 404, "RepoNotFound", NULL);
    } else if (revision_of(path + tl, true, NULL) < 0) {
      reply_status(req, 404, "RevisionNotFound", NULL);
    } else {
      fault *ft = take_fault("tree");
      if (!common_fault(req, ft, "tree"))
        serve_tree(req, query, ft, (unsigned)revision_of(path + tl, true, NULL));
    }
  } else if (strncmp(path, resolve_prefix, rl) == 0) {
    const char *rest = path + rl;
    const char *fp = NULL;
    int rev = revision_of(rest, false, &fp);
    if (refuse_auth(req)) {
    } else if (rev < 0) {
      reply_status(req, 404, "RevisionNotFound", NULL);
    } else {
      const hub_file *f = find_file((unsigned)rev, fp);
      fault *ft = take_fault(fp);
      if (f == NULL)
        reply_status(req, 404, "EntryNotFound", NULL);
      else if (!common_fault(req, ft, f->path))
        serve_file(req, f, ft);
    }
  } else {
    reply_status(req, 404, "RepoNotFound", NULL);
  }
  free(path);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
  event_base_loopexit(hub.base, NULL);
}

static void usage(FILE *f)
{
  fprintf(f, "usage: hfhub [--host 127.0.0.1] [--port 0] [--repo ORG/NAME] [--revision REV]...\n"
             "             [--weights N] [--weight-size BYTES] [--page-size N] [--seed N]\n"
             "             [--small-files N] [--token T] [--fault JSON]... [--cache DIR]\n");
}

int main(int argc, char **argv)
{
  snprintf(hub.host, sizeof hub.host, "127.0.0.1");
  snprintf(hub.repo, sizeof hub.repo, "meshd-test/tiny-model");
  snprintf(hub.revisions[0], sizeof hub.revisions[0], "main");
  hub.nrevs = 1;
  bool rev_given = false;
  hub.seed = 1;
  hub.page_size = 100;
  unsigned weights = 2;
  unsigned long small_files = 0;
  uint64_t weight_size = 1 << 20;
  int port = 0;
  char *faults[MAX_RULES];
  size_t nfaults = 0;
  static const struct option opts[] = {{"host", required_argument, NULL, 'H'},
                                       {"port", required_argument, NULL, 'p'},
                                       {"repo", required_argument, NULL, 'r'},
                                       {"revision", required_argument, NULL, 'v'},
                                       {"weights", required_argument, NULL, 'w'},
                                       {"weight-size", required_argument, NULL, 's'},
                                       {"page-size", required_argument, NULL, 'P'},
                                       {"seed", required_argument, NULL, 'S'},
                                       {"token", required_argument, NULL, 't'},
                                       {"fault", required_argument, NULL, 'f'},
                                       {"cache", required_argument, NULL, 'c'},
                                       {"small-files", required_argument, NULL, 'n'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'H':
      snprintf(hub.host, sizeof hub.host, "%s", optarg);
      break;
    case 'p':
      port = (int)strtol(optarg, NULL, 10);
      break;
    case 'r':
      snprintf(hub.repo, sizeof hub.repo, "%s", optarg);
      break;
    case 'v':
      /* The first replaces "main"; later ones are served as well. */
      if (!rev_given) {
        rev_given = true;
        snprintf(hub.revisions[0], sizeof hub.revisions[0], "%s", optarg);
      } else if (hub.nrevs < MAX_REVS) {
        snprintf(hub.revisions[hub.nrevs], sizeof hub.revisions[0], "%s", optarg);
        hub.nrevs++;
      } else {
        usage(stderr);
        return 2;
      }
      break;
    case 'n':
      small_files = strtoul(optarg, NULL, 10);
      break;
    case 'w':
      weights = (unsigned)strtoul(optarg, NULL, 10);
      break;
    case 's':
      weight_size = strtoull(optarg, NULL, 10);
      break;
    case 'P':
      hub.page_size = strtoul(optarg, NULL, 10);
      break;
    case 'S':
      hub.seed = strtoull(optarg, NULL, 10);
      break;
    case 't':
      hub.token = optarg;
      break;
    case 'c':
      hub.cache_dir = optarg;
      break;
    case 'f':
      if (nfaults < MAX_RULES)
        faults[nfaults++] = optarg;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (hub.page_size == 0 || weights > MAX_WEIGHTS || small_files > MAX_SMALL_FILES) {
    usage(stderr);
    return 2;
  }
  for (size_t i = 0; i < nfaults; i++) {
    char err[256];
    if (add_rules_json(faults[i], strlen(faults[i]), err, sizeof err) != 0) {
      fprintf(stderr, "hfhub: --fault: %s\n", err);
      return 2;
    }
  }
  if (hub.cache_dir != NULL && mkdir(hub.cache_dir, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "hfhub: --cache %s: %s\n", hub.cache_dir, strerror(errno));
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  hub.files_cap = hub.nrevs * (3 + (size_t)weights + small_files);
  hub.files = calloc(hub.files_cap, sizeof *hub.files);
  if (hub.files == NULL) {
    fprintf(stderr, "hfhub: out of memory\n");
    return 1;
  }
  for (unsigned r = 0; r < hub.nrevs; r++)
    make_model(weights, weight_size, (unsigned)small_files, r);
  hub.base = event_base_new();
  struct evhttp *http = evhttp_new(hub.base);
  evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE |
                                       EVHTTP_REQ_HEAD);
  evhttp_set_gencb(http, on_request, NULL);
  struct evhttp_bound_socket *bs =
      evhttp_bind_socket_with_handle(http, hub.host, (ev_uint16_t)port);
  if (bs == NULL) {
    fprintf(stderr, "hfhub: cannot listen on %s:%d: %s\n", hub.host, port, strerror(errno));
    return 1;
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl);
  hub.port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
  struct event *sigterm = evsignal_new(hub.base, SIGTERM, on_signal, NULL);
  struct event *sigint = evsignal_new(hub.base, SIGINT, on_signal, NULL);
  evsignal_add(sigterm, NULL);
  evsignal_add(sigint, NULL);
  printf("%d\n", hub.port);
  fflush(stdout);
  event_base_dispatch(hub.base);
  event_free(sigterm);
  event_free(sigint);
  evhttp_free(http);
  event_base_free(hub.base);
  clear_rules();
  for (size_t i = 0; i < hub.nfiles; i++)
    free(hub.files[i].small);
  free(hub.files);
  for (size_t i = 0; i < hub.nstats; i++)
    free(hub.stats[i].path);
  free(hub.stats);
  return 0;
}
