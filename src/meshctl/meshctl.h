/*
 * meshctl, the membership debug shell: a client of meshd's control API
 * (src/daemon/api.h describes the endpoints).
 *
 * With a command it runs that command once and exits: 0 on success, 1 when
 * the API refused or could not be reached (its message is printed), 2 on a
 * usage error (bad arguments, an unknown or ambiguous peer-ID prefix). With
 * no command it is an interactive shell on libedit (shell.c); `watch` is a
 * live view (watch.c). Output is an aligned table for people, or the API's
 * JSON with --json.
 *
 * Everything here blocks: one request at a time, with timeouts.
 */
#ifndef MESH_MESHCTL_H
#define MESH_MESHCTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MCTL_OK 0
#define MCTL_API_ERROR 1
#define MCTL_USAGE 2

/* Largest answer read from the API. */
#define MCTL_MAX_RESPONSE (64u << 20)

typedef struct mctl {
  const char *api;   /* "HOST:PORT", "[V6]:PORT" or "unix:PATH"; borrowed */
  const char *token; /* bearer token or NULL; borrowed */
  /* Where the token came from ("--token", "MESH_API_TOKEN" or the token
   * file's path), or why none was read from the file: for the message of
   * a 401. */
  char token_from[600];
  const char *home;  /* $MESH_HOME, for the shell's history; borrowed */
  bool json;         /* --json: print the API's JSON as is */
  void *curl;        /* CURL handle, reused across requests; owned */
  FILE *out;         /* where results go (stdout) */
  bool quiet;        /* keep API errors off stderr (completion, watch) */
  char errmsg[512];  /* the last API error, also when quiet */
} mctl;

/* Records an API error in c->errmsg and prints it unless c->quiet. */
void mctl_error(mctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- client.c */

/* Sets up libcurl. Returns 0 or -ENOMEM. */
int mctl_client_init(mctl *c);
void mctl_client_close(mctl *c);
/*
 * One request. body may be NULL. On an answer, *status receives the HTTP
 * status and *resp the body (NUL-terminated, caller frees) and 0 is
 * returned. When no answer came (refused, timeout, too large), prints why
 * and returns -1.
 */
int mctl_http(mctl *c, const char *method, const char *path, const char *body, long *status,
              char **resp);
/*
 * A request whose answer must be 2xx JSON: *out receives it (caller
 * decrefs), *raw (may be NULL) the text. Prints the API's {"error"} message
 * otherwise. Returns MCTL_OK or MCTL_API_ERROR.
 */
int mctl_call(mctl *c, const char *method, const char *path, const char *body, json_t **out,
              char **raw);

/* ---- format.c */

/* "3s", "5m", "2h", "4d" (the largest whole unit). */
void mctl_fmt_age(uint64_t ms, char *buf, size_t len);
/* "512 B", "1.5 KB", "695.0 MB", "17.2 GB" (decimal units). */
void mctl_fmt_size(uint64_t bytes, char *buf, size_t len);
/* The first characters of a peer ID: a prefix that can be typed back. */
void mctl_fmt_peer(const char *id, char *buf, size_t len);
#define MCTL_PEER_SHORT 16
/* "[#######.....]" of width cells for done of total. */
void mctl_fmt_bar(uint64_t done, uint64_t total, int width, char *buf, size_t len);

/* An aligned table of text cells, printed with two spaces between columns. */
typedef struct mctl_table mctl_table;
mctl_table *mctl_table_new(size_t ncols, const char *const *heads);
/* Adds a row of ncols cells (copied). */
void mctl_table_add(mctl_table *t, const char *const *cells);
void mctl_table_print(const mctl_table *t, FILE *f);
void mctl_table_free(mctl_table *t);

/* Renders the human form of the members, downloads and journal answers;
 * brief members leave out incarnation and address (for watch). */
void mctl_print_members(FILE *f, json_t *members, bool brief);
void mctl_print_downloads(FILE *f, json_t *downloads);
void mctl_print_journal(FILE *f, json_t *entries);

/* ---- resolve.c */

/*
 * Turns a peer ID or a unique prefix of one into the full ID (out, len
 * bytes), looking at the API's /members. An exact match wins; an ambiguous
 * prefix prints the matches. A well-formed full-length ID that no member
 * has is passed through (the API then says what it thinks). Returns
 * MCTL_OK, MCTL_API_ERROR or MCTL_USAGE.
 */
int mctl_resolve_peer(mctl *c, const char *arg, char *out, size_t len);
/* The peer IDs the API knows (for completion): *ids receives a
 * NULL-terminated array (caller frees with mctl_free_strv). */
int mctl_peer_ids(mctl *c, char ***ids);
/* The model IDs of the mesh's download entries, each once (for completion). */
int mctl_model_ids(mctl *c, char ***ids);
void mctl_free_strv(char **v);

/* ---- commands.c */

typedef struct mctl_command {
  const char *name;
  const char *usage;                          /* arguments after the name */
  const char *help;                           /* one line */
  int (*run)(mctl *c, int argc, char **argv); /* argv[0] is the name */
} mctl_command;

/* Options a command takes (bits of `allowed` in mctl_parse_args). */
enum {
  MCTL_OPT_NODE = 1,  /* --node ID */
  MCTL_OPT_REV = 2,   /* --revision R */
  MCTL_OPT_N = 4,     /* -n N */
  MCTL_OPT_WATCH = 8, /* --interval S, --once, --count N */
};

typedef struct mctl_args {
  const char *node;     /* --node, or NULL */
  const char *revision; /* --revision, or NULL */
  long n;               /* -n, or -1 */
  double interval;      /* --interval seconds, or 0 */
  long count;           /* --count, or -1 (--once is 1) */
  const char *pos[4];   /* positional arguments */
  int npos;
} mctl_args;

/* Parses a command's arguments (argv[0] is its name); --json is taken
 * anywhere. Prints the problem and the usage; returns MCTL_OK or
 * MCTL_USAGE. */
int mctl_parse_args(mctl *c, int argc, char **argv, unsigned allowed, int max_pos, mctl_args *a);

/* The command table, ended by a NULL name. */
extern const mctl_command mctl_commands[];
const mctl_command *mctl_find_command(const char *name);
/* Runs argv[0] with its arguments; returns the exit status. */
int mctl_run(mctl *c, int argc, char **argv);
void mctl_print_usage(FILE *f);

/* ---- shell.c, watch.c */

int mctl_shell(mctl *c);
int mctl_watch(mctl *c, int argc, char **argv);

#endif
