/*
 * meshctl's commands: each one is one or two API requests and a table (or
 * the API's JSON with --json). The same table serves the one-shot form,
 * the shell and `help`.
 */
#include "src/meshctl/meshctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void usage_of(FILE *f, const mctl_command *cmd)
{
  fprintf(f, "usage: meshctl %s%s%s\n  %s\n", cmd->name, cmd->usage[0] ? " " : "", cmd->usage,
          cmd->help);
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
    return false;
  *out = v;
  return true;
}

int mctl_parse_args(mctl *c, int argc, char **argv, unsigned allowed, int max_pos, mctl_args *a)
{
  memset(a, 0, sizeof(*a));
  a->n = -1;
  a->count = -1;
  const mctl_command *cmd = mctl_find_command(argv[0]);
  const char *bad = NULL;
  const char *why = "unknown option";
  for (int i = 1; i < argc && bad == NULL; i++) {
    const char *arg = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(arg, "--json") == 0) {
      c->json = true;
    } else if ((allowed & MCTL_OPT_NODE) && strcmp(arg, "--node") == 0) {
      if (val == NULL) {
        bad = arg;
        why = "a value is missing after";
      } else {
        a->node = val;
        i++;
      }
    } else if ((allowed & MCTL_OPT_REV) && strcmp(arg, "--revision") == 0) {
      if (val == NULL) {
        bad = arg;
        why = "a value is missing after";
      } else {
        a->revision = val;
        i++;
      }
    } else if ((allowed & MCTL_OPT_N) && strcmp(arg, "-n") == 0) {
      if (val == NULL || !parse_long(val, 1, 10000, &a->n)) {
        bad = arg;
        why = "a number 1..10000 must follow";
      } else {
        i++;
      }
    } else if ((allowed & MCTL_OPT_WATCH) && strcmp(arg, "--once") == 0) {
      a->count = 1;
    } else if ((allowed & MCTL_OPT_WATCH) && strcmp(arg, "--count") == 0) {
      if (val == NULL || !parse_long(val, 1, 1000000, &a->count)) {
        bad = arg;
        why = "a number must follow";
      } else {
        i++;
      }
    } else if ((allowed & MCTL_OPT_WATCH) && strcmp(arg, "--interval") == 0) {
      char *end = NULL;
      double v = val != NULL ? strtod(val, &end) : 0;
      if (val == NULL || end == val || *end != '\0' || !(v >= 0.05 && v <= 3600)) {
        bad = arg;
        why = "seconds (0.05..3600) must follow";
      } else {
        a->interval = v;
        i++;
      }
    } else if (arg[0] == '-' && arg[1] != '\0') {
      bad = arg;
    } else if (a->npos < max_pos && a->npos < 4) {
      a->pos[a->npos++] = arg;
    } else {
      bad = arg;
      why = "unexpected argument";
    }
  }
  if (bad != NULL) {
    fprintf(stderr, "meshctl %s: %s '%s'\n", argv[0], why, bad);
    if (cmd != NULL)
      usage_of(stderr, cmd);
    return MCTL_USAGE;
  }
  return MCTL_OK;
}

/* How a command shows the API's answer when --json is not given; done is
 * the command's own line, when it has one. */
typedef void (*human_fn)(mctl *c, json_t *answer, const char *done);

/* One request (body may be NULL); prints the API's JSON as it came with
 * --json, else hands the answer to human. */
static int call_show(mctl *c, const char *method, const char *path, const char *body,
                     human_fn human, const char *done)
{
  json_t *j = NULL;
  char *raw = NULL;
  int rc = mctl_call(c, method, path, body, &j, &raw);
  if (rc != MCTL_OK)
    return rc;
  if (c->json)
    fputs(raw, c->out);
  else
    human(c, j, done);
  json_decref(j);
  free(raw);
  return MCTL_OK;
}

static const char *jstr(json_t *o, const char *key)
{
  const char *s = json_string_value(json_object_get(o, key));
  return s != NULL ? s : "?";
}

static void show_done(mctl *c, json_t *j, const char *done)
{
  fprintf(c->out, "%s\n", done);
}

static void show_id(mctl *c, json_t *j, const char *done)
{
  fprintf(c->out, "%s\n", jstr(j, "nodeId"));
}

static void show_members(mctl *c, json_t *j, const char *done)
{
  mctl_print_members(c->out, json_object_get(j, "members"), false);
}

static void show_downloads(mctl *c, json_t *j, const char *done)
{
  mctl_print_downloads(c->out, json_object_get(j, "downloads"));
}

static void show_journal(mctl *c, json_t *j, const char *done)
{
  mctl_print_journal(c->out, json_object_get(j, "entries"));
}

static void show_gc(mctl *c, json_t *j, const char *done)
{
  fprintf(c->out, "collected %lld entries\n",
          (long long)json_integer_value(json_object_get(j, "collected")));
}

static void show_state(mctl *c, json_t *j, const char *done)
{
  json_t *self = json_object_get(j, "self");
  fprintf(c->out, "node %s  epoch %lld  %s\n", jstr(self, "nodeId"),
          (long long)json_integer_value(json_object_get(self, "epoch")), jstr(self, "agent"));
  fprintf(c->out, "view: %zu nodes\n\nMEMBERS\n",
          json_array_size(json_object_get(json_object_get(j, "topology"), "nodes")));
  mctl_print_members(c->out, json_object_get(j, "members"), false);
  fprintf(c->out, "\nDOWNLOADS\n");
  mctl_print_downloads(c->out, json_object_get(j, "downloads"));
}

/* A command without arguments that shows one GET or POST. */
static int simple(mctl *c, int argc, char **argv, const char *method, const char *path,
                  human_fn human, const char *done)
{
  mctl_args a;
  int rc = mctl_parse_args(c, argc, argv, 0, 0, &a);
  return rc != MCTL_OK ? rc : call_show(c, method, path, NULL, human, done);
}

static int cmd_id(mctl *c, int argc, char **argv)
{
  return simple(c, argc, argv, "GET", "/node_id", show_id, NULL);
}

static int cmd_members(mctl *c, int argc, char **argv)
{
  return simple(c, argc, argv, "GET", "/members", show_members, NULL);
}

static int cmd_downloads(mctl *c, int argc, char **argv)
{
  return simple(c, argc, argv, "GET", "/downloads", show_downloads, NULL);
}

static int cmd_state(mctl *c, int argc, char **argv)
{
  return simple(c, argc, argv, "GET", "/state", show_state, NULL);
}

static int cmd_gc(mctl *c, int argc, char **argv)
{
  return simple(c, argc, argv, "POST", "/gc", show_gc, NULL);
}

static int cmd_leave(mctl *c, int argc, char **argv)
{
  return simple(c, argc, argv, "POST", "/leave", show_done, "leaving the mesh");
}

/* The Prometheus text as it comes (it is not JSON, so --json changes
 * nothing). */
static int cmd_metrics(mctl *c, int argc, char **argv)
{
  mctl_args a;
  int rc = mctl_parse_args(c, argc, argv, 0, 0, &a);
  if (rc != MCTL_OK)
    return rc;
  long status = 0;
  char *text = NULL;
  if (mctl_http(c, "GET", "/metrics", NULL, &status, &text) < 0)
    return MCTL_API_ERROR;
  if (status != 200) {
    json_t *j = json_loads(text, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "error"));
    mctl_error(c, "%s (HTTP %ld)", msg != NULL ? msg : "the API refused", status);
    json_decref(j);
    free(text);
    return MCTL_API_ERROR;
  }
  fputs(text, c->out);
  free(text);
  return MCTL_OK;
}

static int cmd_journal(mctl *c, int argc, char **argv)
{
  mctl_args a;
  int rc = mctl_parse_args(c, argc, argv, MCTL_OPT_N, 0, &a);
  if (rc != MCTL_OK)
    return rc;
  char path[64];
  snprintf(path, sizeof(path), "/journal?limit=%ld", a.n > 0 ? a.n : 20);
  return call_show(c, "GET", path, NULL, show_journal, NULL);
}

/* The target of a command: --node (resolved), or the node itself. */
static int target_node(mctl *c, const mctl_args *a, char *out, size_t len)
{
  if (a->node != NULL)
    return mctl_resolve_peer(c, a->node, out, len);
  json_t *j = NULL;
  int rc = mctl_call(c, "GET", "/node_id", NULL, &j, NULL);
  if (rc != MCTL_OK)
    return rc;
  const char *id = json_string_value(json_object_get(j, "nodeId"));
  snprintf(out, len, "%s", id != NULL ? id : "");
  json_decref(j);
  return MCTL_OK;
}

/* Sends a command whose body is j (taken over); NULL from a failed
 * json_pack means an argument was not UTF-8. */
static int command(mctl *c, const char *path, json_t *j, const char *done)
{
  char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (text == NULL) {
    fprintf(stderr, "meshctl: the arguments must be UTF-8 text\n");
    return MCTL_USAGE;
  }
  int rc = call_show(c, "POST", path, text, show_done, done);
  free(text);
  return rc;
}

static int need_model(const mctl_args *a, char **argv)
{
  if (a->npos == 1)
    return MCTL_OK;
  fprintf(stderr, "meshctl %s: a model ID (org/name) is required\n", argv[0]);
  usage_of(stderr, mctl_find_command(argv[0]));
  return MCTL_USAGE;
}

/* The arguments of a command about one model on one node (download,
 * cancel, delete): the model ID, --node (or this node) and --revision. */
static int model_on_node(mctl *c, int argc, char **argv, mctl_args *a, char *node, size_t cap)
{
  int rc = mctl_parse_args(c, argc, argv, MCTL_OPT_NODE | MCTL_OPT_REV, 1, a);
  if (rc == MCTL_OK)
    rc = need_model(a, argv);
  if (rc == MCTL_OK)
    rc = target_node(c, a, node, cap);
  return rc;
}

/* download and cancel: one model of a node, a request to the API that
 * names them, and what was done in words (`verb`). */
static int download_command(mctl *c, int argc, char **argv, const char *path, const char *verb)
{
  mctl_args a;
  char node[128];
  int rc = model_on_node(c, argc, argv, &a, node, sizeof(node));
  if (rc != MCTL_OK)
    return rc;
  const char *rev = a.revision != NULL ? a.revision : "main";
  char done[512];
  snprintf(done, sizeof(done), "download of %s (%s) %s on %s", a.pos[0], rev, verb, node);
  return command(
      c, path,
      json_pack("{s:s, s:s, s:s}", "targetNodeId", node, "modelId", a.pos[0], "revision", rev),
      done);
}

static int cmd_download(mctl *c, int argc, char **argv)
{
  return download_command(c, argc, argv, "/download/start", "requested");
}

static int cmd_cancel(mctl *c, int argc, char **argv)
{
  return download_command(c, argc, argv, "/download/cancel", "cancelled");
}

/* Percent-encodes everything but RFC 3986's unreserved characters, so the
 * slash of org/name travels as %2F. */
static void url_encode(const char *s, char *out, size_t len)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (; *s != '\0' && o + 4 < len; s++) {
    unsigned char ch = (unsigned char)*s;
    bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '.' || ch == '_' || ch == '~';
    if (plain) {
      out[o++] = (char)ch;
    } else {
      out[o++] = '%';
      out[o++] = hex[ch >> 4];
      out[o++] = hex[ch & 15];
    }
  }
  out[o] = '\0';
}

static int cmd_delete(mctl *c, int argc, char **argv)
{
  mctl_args a;
  char node[128];
  int rc = model_on_node(c, argc, argv, &a, node, sizeof(node));
  if (rc != MCTL_OK)
    return rc;
  /* Only the named revision's entry and directory go; others stay. */
  const char *rev = a.revision != NULL ? a.revision : "main";
  char enode[400], emodel[800], erev[400], path[1700], done[512];
  url_encode(node, enode, sizeof(enode));
  url_encode(a.pos[0], emodel, sizeof(emodel));
  url_encode(rev, erev, sizeof(erev));
  snprintf(path, sizeof(path), "/download/%s/%s?revision=%s", enode, emodel, erev);
  snprintf(done, sizeof(done), "delete of %s (%s) requested on %s", a.pos[0], rev, node);
  return call_show(c, "DELETE", path, NULL, show_done, done);
}

static void show_reset(mctl *c, json_t *j, const char *done)
{
  fprintf(c->out, "RDMA queue pair to %s destroyed: its datagrams take TCP, RDMA is retried\n",
          jstr(j, "targetNodeId"));
}

static int cmd_transport(mctl *c, int argc, char **argv)
{
  mctl_args a;
  int rc = mctl_parse_args(c, argc, argv, 0, 2, &a);
  if (rc != MCTL_OK)
    return rc;
  if (a.npos != 2 || strcmp(a.pos[0], "reset") != 0) {
    fprintf(stderr, "meshctl transport: reset PEER is the only subcommand\n");
    usage_of(stderr, mctl_find_command(argv[0]));
    return MCTL_USAGE;
  }
  char node[128];
  rc = mctl_resolve_peer(c, a.pos[1], node, sizeof(node));
  if (rc != MCTL_OK)
    return rc;
  char enode[400], path[450];
  url_encode(node, enode, sizeof(enode));
  snprintf(path, sizeof(path), "/transport/reset/%s", enode);
  return call_show(c, "POST", path, NULL, show_reset, NULL);
}

static int cmd_help(mctl *c, int argc, char **argv)
{
  if (argc > 2) {
    fprintf(stderr, "usage: meshctl help [COMMAND]\n");
    return MCTL_USAGE;
  }
  if (argc == 2) {
    const mctl_command *cmd = mctl_find_command(argv[1]);
    if (cmd == NULL) {
      fprintf(stderr, "meshctl: no command '%s'\n", argv[1]);
      return MCTL_USAGE;
    }
    usage_of(c->out, cmd);
    return MCTL_OK;
  }
  mctl_print_usage(c->out);
  return MCTL_OK;
}

const mctl_command mctl_commands[] = {
    {"members", "", "the members this node knows: state, epoch, incarnation, time in state",
     cmd_members},
    {"downloads", "", "every download entry, by owner node, with progress", cmd_downloads},
    {"journal", "[-n N]", "the newest N (default 20) records of the coordinator's journal",
     cmd_journal},
    {"state", "", "the whole state: this node, members and downloads", cmd_state},
    {"download", "MODEL [--node ID] [--revision R]",
     "start downloading MODEL (org/name) on a node (default: this one)", cmd_download},
    {"delete", "MODEL [--node ID] [--revision R]",
     "delete one revision of MODEL (default main) on a node (default: this one)", cmd_delete},
    {"cancel", "MODEL [--node ID] [--revision R]",
     "cancel a pending or ongoing download of one revision (default main)", cmd_cancel},
    {"gc", "", "run a collection pass of abandoned entries now", cmd_gc},
    {"leave", "", "make the node leave the mesh gracefully", cmd_leave},
    {"transport", "reset PEER",
     "destroy the RDMA queue pair to PEER: it falls back to TCP, RDMA is retried later",
     cmd_transport},
    {"id", "", "this node's peer ID", cmd_id},
    {"metrics", "", "the node's metrics, in Prometheus text format", cmd_metrics},
    {"watch", "[--interval S] [--once] [--count N]",
     "live view of members and downloads; q or Ctrl-C quits", mctl_watch},
    {"help", "[COMMAND]", "list the commands, or describe one", cmd_help},
    {NULL, NULL, NULL, NULL},
};

const mctl_command *mctl_find_command(const char *name)
{
  for (const mctl_command *cmd = mctl_commands; cmd->name != NULL; cmd++) {
    if (strcmp(cmd->name, name) == 0)
      return cmd;
  }
  return NULL;
}

int mctl_run(mctl *c, int argc, char **argv)
{
  const mctl_command *cmd = mctl_find_command(argv[0]);
  if (cmd == NULL) {
    fprintf(stderr, "meshctl: unknown command '%s' (meshctl help lists them)\n", argv[0]);
    return MCTL_USAGE;
  }
  return cmd->run(c, argc, argv);
}

void mctl_print_usage(FILE *f)
{
  fprintf(f, "usage: meshctl [--api ADDR] [--token TOKEN] [--json] [--home DIR] [COMMAND [ARGS]]\n"
             "\n"
             "The membership debug shell of meshd. With no command, an interactive shell\n"
             "(history, completion of commands and peer-ID prefixes). A peer ID may be\n"
             "given by any unique prefix.\n"
             "\n"
             "options:\n"
             "  --api ADDR     the control API: HOST:PORT or unix:PATH\n"
             "                 (default $MESH_API, else 127.0.0.1:52417)\n"
             "  --token TOKEN  bearer token for the API (default $MESH_API_TOKEN, else\n"
             "                 the one meshd keeps in HOME/api.token)\n"
             "  --json         print the API's JSON instead of tables\n"
             "  --home DIR     meshd's home: the API token and the shell's history\n"
             "                 (default $MESH_HOME, else ~/.meshd)\n"
             "  -h, --help     this text;  --version  the version\n"
             "\n"
             "commands:\n");
  for (const mctl_command *cmd = mctl_commands; cmd->name != NULL; cmd++) {
    char head[96];
    snprintf(head, sizeof(head), "%s %s", cmd->name, cmd->usage);
    fprintf(f, "  %-44s %s\n", head, cmd->help);
  }
  fprintf(f, "\nexit status: 0 success, 1 the API refused or is unreachable, 2 usage error\n");
}
