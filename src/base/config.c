/*
 * The option table and the loading of flags, environment and INI file.
 *
 * Each source is applied with its precedence rank; an assignment from a
 * lower rank than the one that set the option already is ignored, so the
 * order in which sources are read does not decide the result. Flags and the
 * environment are read first only because they may say where the file is.
 */
#include "src/base/config.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum opt_type {
  T_STRING,   /* free text; empty means unset */
  T_PATH,     /* a file or directory name, never empty */
  T_ADDR,     /* multiaddr or host:port */
  T_API,      /* host:port or unix:PATH */
  T_URL,      /* http:// or https:// URL */
  T_LIST,     /* list of addresses */
  T_BOOL,     /* (no option uses it yet; kept for the parsers and tests) */
  T_INT,      /* int within [min, max] */
  T_DURATION, /* milliseconds within [min, max] */
  T_SIZE,     /* bytes within [min, max] */
  T_ENUM,     /* one of choices, stored as int */
} opt_type;

struct opt {
  const char *name;           /* flag without "--"; env and INI names derive from it */
  opt_type type;              /* how the value is parsed */
  size_t off;                 /* offset of the field in mesh_config */
  const char *def;            /* default text, parsed as a value; NULL = unset or derived */
  const char *def_doc;        /* how help shows a derived default (NULL: def) */
  uint64_t min, max;          /* bounds for T_INT, T_DURATION, T_SIZE */
  const char *const *choices; /* T_ENUM names, in enum order, NULL-terminated */
  const char *metavar;        /* placeholder in help */
  const char *help;           /* one sentence */
  bool no_file;               /* may not be set in the INI file */
};

static const char *const profile_names[] = {"lan", "thunderbolt", "wan", NULL};
static const char *const transport_names[] = {"auto", "tcp", "rdma", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const format_names[] = {"text", "json", NULL};

#define OFF(f) offsetof(mesh_config, f)
#define MS(x) ((uint64_t)(x))
#define SEC 1000ull
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)
#define SWIM_DOC "0 = from the profile"

static const struct opt opts[] = {
    {"home", T_PATH, OFF(home), NULL, "$HOME/.meshd", 0, 0, NULL, "DIR",
     "Node directory: identity key, epoch, swarm key, store, models.", false},
    {"config", T_PATH, OFF(config_file), NULL, "$MESH_HOME/meshd.conf", 0, 0, NULL, "FILE",
     "INI file to read (must exist when given).", true},
    {"listen", T_ADDR, OFF(listen), "/ip4/0.0.0.0/tcp/52416", NULL, 0, 0, NULL, "ADDR",
     "Address peers connect to: a multiaddr or host:port.", false},
    {"join", T_LIST, OFF(join), NULL, "none", 0, 0, NULL, "ADDR",
     "Peer to join at start; repeat the flag (comma separated in env and file).", false},
    {"api", T_API, OFF(api), "127.0.0.1:52417", NULL, 0, 0, NULL, "ADDR",
     "Control API: host:port (loopback unless api-token is set) or unix:PATH.", false},
    {"api-token", T_STRING, OFF(api_token), NULL, "none", 0, 0, NULL, "TOKEN",
     "Bearer token the control API requires.", false},
    {"profile", T_ENUM, OFF(profile), "lan", NULL, 0, 0, profile_names, "NAME",
     "Membership timings: lan, thunderbolt or wan.", false},
    {"transport", T_ENUM, OFF(transport), "auto", NULL, 0, 0, transport_names, "NAME",
     "Datagram transport: auto (RDMA where it works, else TCP), tcp or rdma.", false},
    {"rdma-device", T_STRING, OFF(rdma_device), NULL, "first usable", 0, 0, NULL, "NAME",
     "RDMA verbs device to use.", false},
    {"swarm-key", T_PATH, OFF(swarm_key), NULL, "$MESH_HOME/swarm.key", 0, 0, NULL, "FILE",
     "Cluster pre-shared key (meshd keygen-psk makes one).", false},
    {"probe-interval", T_DURATION, OFF(probe_interval_ms), "0", SWIM_DOC, 0, HOUR, NULL, "DURATION",
     "Time between failure-detector probes.", false},
    {"probe-timeout", T_DURATION, OFF(probe_timeout_ms), "0", SWIM_DOC, 0, 10 * MIN, NULL,
     "DURATION", "Wait for a direct ack before indirect probes.", false},
    {"suspicion-mult", T_INT, OFF(suspicion_mult), "0", SWIM_DOC, 0, 100, NULL, "N",
     "Suspicion timeout multiplier (times log n probe intervals).", false},
    {"suspicion-max-mult", T_INT, OFF(suspicion_max_mult), "0", SWIM_DOC, 0, 100, NULL, "N",
     "Upper bound of the suspicion timeout, as a multiple of the lower.", false},
    {"indirect-checks", T_INT, OFF(indirect_checks), "0", SWIM_DOC, 0, 32, NULL, "N",
     "Peers asked to probe indirectly.", false},
    {"retransmit-mult", T_INT, OFF(retransmit_mult), "0", SWIM_DOC, 0, 100, NULL, "N",
     "Gossip retransmissions: mult times log(n+1).", false},
    {"gossip-interval", T_DURATION, OFF(gossip_interval_ms), "0", SWIM_DOC, 0, HOUR, NULL,
     "DURATION", "Time between gossip rounds.", false},
    {"gossip-nodes", T_INT, OFF(gossip_nodes), "0", SWIM_DOC, 0, 64, NULL, "N",
     "Peers gossiped to per round.", false},
    {"push-pull-interval", T_DURATION, OFF(push_pull_interval_ms), "0", SWIM_DOC, 0, DAY, NULL,
     "DURATION", "Time between full state syncs over TCP.", false},
    {"tombstone-ttl", T_DURATION, OFF(tombstone_ttl_ms), "24h", NULL, MIN, 365 * DAY, NULL,
     "DURATION", "How long a dead peer's (ID, epoch) is remembered.", false},
    {"gc-grace", T_DURATION, OFF(gc_grace_ms), "5m", NULL, 0, 30 * DAY, NULL, "DURATION",
     "Before entries of a departed owner are collected.", false},
    {"journal-max-records", T_INT, OFF(journal_max_records), "10000", NULL, 1, 100000000, NULL, "N",
     "Journal records kept at most.", false},
    {"journal-max-age", T_DURATION, OFF(journal_max_age_ms), "7d", NULL, MIN, 3650 * DAY, NULL,
     "DURATION", "Journal records older than this are dropped.", false},
    {"max-download-bytes", T_SIZE, OFF(max_download_bytes), "0", "0 = limited by free space", 0,
     UINT64_MAX, NULL, "SIZE", "Largest model download accepted.", false},
    {"models-dir", T_PATH, OFF(models_dir), NULL, "$MESH_HOME/models", 0, 0, NULL, "DIR",
     "Where models are stored.", false},
    {"hf-endpoint", T_URL, OFF(hf_endpoint), NULL, "$HF_ENDPOINT or https://huggingface.co", 0, 0,
     NULL, "URL", "Hugging Face endpoint.", false},
    {"hf-token", T_STRING, OFF(hf_token), NULL, "$HF_TOKEN", 0, 0, NULL, "TOKEN",
     "Hugging Face access token.", false},
    {"downloads-at-once", T_INT, OFF(downloads_at_once), "2", NULL, 1, 64, NULL, "N",
     "Models downloading at the same time.", false},
    {"files-at-once", T_INT, OFF(files_at_once), "4", NULL, 1, 64, NULL, "N",
     "Files of one model downloading at the same time.", false},
    {"max-connections", T_INT, OFF(max_connections), "256", NULL, 1, 65536, NULL, "N",
     "Peer connections held at once.", false},
    {"frame-max", T_SIZE, OFF(frame_max), "1MiB", NULL, 4096, 64ull << 20, NULL, "SIZE",
     "Largest frame accepted from a peer.", false},
    {"handshake-timeout", T_DURATION, OFF(handshake_timeout_ms), "5s", NULL, 100, 10 * MIN, NULL,
     "DURATION", "A handshake slower than this is dropped.", false},
    {"log-level", T_ENUM, OFF(log_level), "info", NULL, 0, 0, level_names, "LEVEL",
     "error, warn, info or debug.", false},
    {"log-format", T_ENUM, OFF(log_format), "text", NULL, 0, 0, format_names, "FORMAT",
     "text or json (one object per line).", false},
};

#define NOPTS (sizeof opts / sizeof opts[0])
_Static_assert(sizeof opts / sizeof opts[0] <= MESH_CONFIG_MAX_OPTIONS, "option table too big");

/* Longest option name plus prefixes and NUL. */
#define NAME_MAX_LEN 64

static void env_name(const struct opt *o, char *buf, size_t len)
{
  size_t n = 0;
  const char *prefix = "MESH_";
  for (const char *p = prefix; *p && n + 1 < len; p++)
    buf[n++] = *p;
  for (const char *p = o->name; *p && n + 1 < len; p++)
    buf[n++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
  buf[n] = '\0';
}

static void ini_key(const struct opt *o, char *buf, size_t len)
{
  size_t n = 0;
  for (const char *p = o->name; *p && n + 1 < len; p++)
    buf[n++] = *p == '-' ? '_' : *p;
  buf[n] = '\0';
}

static void *field(mesh_config *cfg, const struct opt *o)
{
  return (char *)cfg + o->off;
}

static void strlist_clear(mesh_strlist *l)
{
  for (size_t i = 0; i < l->len; i++)
    free(l->items[i]);
  free(l->items);
  l->items = NULL;
  l->len = 0;
}

/* A printable copy of a value for messages: at most 60 characters. */
static void quote(const char *v, char *buf, size_t len)
{
  size_t n = 0;
  for (; *v && n + 4 < len && n < 60; v++)
    buf[n++] = (*v >= 0x20 && *v < 0x7f) ? *v : '?';
  if (*v && n + 4 < len) {
    memcpy(buf + n, "...", 3);
    n += 3;
  }
  buf[n] = '\0';
}

/* Where a value came from, for messages. */
struct origin {
  mesh_config_source src;
  const char *file; /* T_FILE: file name */
  unsigned line;    /* T_FILE: line number */
};

static void origin_text(const struct opt *o, const struct origin *at, char *buf, size_t len)
{
  char name[NAME_MAX_LEN];
  switch (at->src) {
  case MESH_CFG_FLAG:
    snprintf(buf, len, "--%s", o->name);
    break;
  case MESH_CFG_ENV:
    env_name(o, name, sizeof name);
    snprintf(buf, len, "%s (%s)", name, o->name);
    break;
  case MESH_CFG_FILE:
    ini_key(o, name, sizeof name);
    snprintf(buf, len, "%s:%u: %s", at->file, at->line, name);
    break;
  default:
    snprintf(buf, len, "default of %s", o->name);
    break;
  }
}

static int bad_value(const struct opt *o, const struct origin *at, const char *v, const char *why,
                     char *err, size_t errlen)
{
  char where[512];
  char q[80];
  origin_text(o, at, where, sizeof where);
  quote(v, q, sizeof q);
  snprintf(err, errlen, "%s: invalid value \"%s\": %s", where, q, why);
  return -EINVAL;
}

static int out_of_range(const struct opt *o, const struct origin *at, const char *v, char *err,
                        size_t errlen)
{
  char lo[32], hi[32], why[96];
  if (o->type == T_DURATION) {
    mesh_config_format_duration(o->min, lo, sizeof lo);
    mesh_config_format_duration(o->max, hi, sizeof hi);
  } else if (o->type == T_SIZE) {
    mesh_config_format_size(o->min, lo, sizeof lo);
    mesh_config_format_size(o->max, hi, sizeof hi);
  } else {
    snprintf(lo, sizeof lo, "%llu", (unsigned long long)o->min);
    snprintf(hi, sizeof hi, "%llu", (unsigned long long)o->max);
  }
  snprintf(why, sizeof why, "out of range (%s to %s)", lo, hi);
  return bad_value(o, at, v, why, err, errlen);
}

static int check_api(const char *v, const char **why)
{
  if (strncmp(v, "unix:", 5) == 0) {
    if (v[5] == '\0') {
      *why = "unix: needs a socket path";
      return -EINVAL;
    }
    return 0;
  }
  if (v[0] == '/') {
    *why = "expected host:port or unix:PATH";
    return -EINVAL;
  }
  return mesh_config_check_addr(v, why);
}

static int set_string(char **dst, const char *v, size_t len)
{
  char *s = strndup(v, len);
  if (s == NULL)
    return -ENOMEM;
  free(*dst);
  *dst = s;
  return 0;
}

/* Adds the comma-separated items of v to the list. */
static int list_append(const struct opt *o, const struct origin *at, mesh_strlist *l, const char *v,
                       char *err, size_t errlen)
{
  const char *p = v;
  while (*p != '\0') {
    size_t n = strcspn(p, ",");
    const char *s = p;
    size_t sl = n;
    while (sl > 0 && (*s == ' ' || *s == '\t')) {
      s++;
      sl--;
    }
    while (sl > 0 && (s[sl - 1] == ' ' || s[sl - 1] == '\t'))
      sl--;
    char item[512];
    if (sl == 0 || sl >= sizeof item)
      return bad_value(o, at, v, sl == 0 ? "empty list item" : "list item too long", err, errlen);
    memcpy(item, s, sl);
    item[sl] = '\0';
    const char *why = NULL;
    if (mesh_config_check_addr(item, &why) != 0)
      return bad_value(o, at, item, why, err, errlen);
    if (l->len >= 1024)
      return bad_value(o, at, item, "too many items (1024 at most)", err, errlen);
    char **items = realloc(l->items, (l->len + 1) * sizeof *items);
    if (items == NULL)
      return -ENOMEM;
    l->items = items;
    l->items[l->len] = strdup(item);
    if (l->items[l->len] == NULL)
      return -ENOMEM;
    l->len++;
    p += n;
    if (*p == ',') {
      p++;
      if (*p == '\0')
        return bad_value(o, at, v, "empty list item", err, errlen);
    }
  }
  return 0;
}

/*
 * Sets option o from text v at origin at, unless a higher-ranked source set
 * it already. The field is changed only when the value is valid.
 */
static int apply(mesh_config *cfg, const struct opt *o, const struct origin *at, const char *v,
                 char *err, size_t errlen)
{
  size_t idx = (size_t)(o - opts);
  if (cfg->source[idx] > at->src)
    return 0;
  const char *why = NULL;
  void *f = field(cfg, o);
  int rc = 0;
  switch (o->type) {
  case T_STRING:
    if (*v == '\0') {
      free(*(char **)f);
      *(char **)f = NULL;
    } else {
      rc = set_string(f, v, strlen(v));
    }
    break;
  case T_PATH:
    if (*v == '\0')
      return bad_value(o, at, v, "empty path", err, errlen);
    rc = set_string(f, v, strlen(v));
    break;
  case T_ADDR:
    if (mesh_config_check_addr(v, &why) != 0)
      return bad_value(o, at, v, why, err, errlen);
    rc = set_string(f, v, strlen(v));
    break;
  case T_API:
    if (check_api(v, &why) != 0)
      return bad_value(o, at, v, why, err, errlen);
    rc = set_string(f, v, strlen(v));
    break;
  case T_URL: {
    if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0)
      return bad_value(o, at, v, "expected an http:// or https:// URL", err, errlen);
    size_t n = strlen(v);
    while (n > 0 && v[n - 1] == '/')
      n--;
    rc = set_string(f, v, n);
    break;
  }
  case T_LIST: {
    /* Check every item before the list changes, so a bad value leaves the
     * option as it was. */
    mesh_strlist *l = f;
    mesh_strlist added = {0};
    rc = list_append(o, at, &added, v, err, errlen);
    if (rc == -EINVAL) {
      strlist_clear(&added);
      return rc;
    }
    if (rc == 0) {
      if (cfg->source[idx] < at->src)
        strlist_clear(l);
      char **items = realloc(l->items, (l->len + added.len + 1) * sizeof *items);
      if (items == NULL) {
        rc = -ENOMEM;
      } else {
        l->items = items;
        if (added.len > 0)
          memcpy(l->items + l->len, added.items, added.len * sizeof *items);
        l->len += added.len;
        free(added.items);
        added.items = NULL;
        added.len = 0;
      }
    }
    strlist_clear(&added);
    break;
  }
  case T_BOOL: {
    bool b;
    if (mesh_config_parse_bool(v, &b, &why) != 0)
      return bad_value(o, at, v, why, err, errlen);
    *(bool *)f = b;
    break;
  }
  case T_INT: {
    int64_t n;
    if (mesh_config_parse_int(v, &n, &why) != 0)
      return bad_value(o, at, v, why, err, errlen);
    if (n < 0 || (uint64_t)n < o->min || (uint64_t)n > o->max)
      return out_of_range(o, at, v, err, errlen);
    *(int *)f = (int)n;
    break;
  }
  case T_DURATION:
  case T_SIZE: {
    uint64_t n;
    int prc = o->type == T_DURATION ? mesh_config_parse_duration(v, &n, &why)
                                    : mesh_config_parse_size(v, &n, &why);
    if (prc != 0)
      return bad_value(o, at, v, why, err, errlen);
    if (n < o->min || n > o->max)
      return out_of_range(o, at, v, err, errlen);
    *(uint64_t *)f = n;
    break;
  }
  case T_ENUM: {
    int found = -1;
    for (int i = 0; o->choices[i] != NULL; i++) {
      if (strcmp(v, o->choices[i]) == 0)
        found = i;
    }
    if (found < 0) {
      char why_buf[128];
      size_t n = (size_t)snprintf(why_buf, sizeof why_buf, "expected one of");
      for (int i = 0; o->choices[i] != NULL && n < sizeof why_buf; i++)
        n +=
            (size_t)snprintf(why_buf + n, sizeof why_buf - n, "%s %s", i ? "," : "", o->choices[i]);
      return bad_value(o, at, v, why_buf, err, errlen);
    }
    *(int *)f = found;
    break;
  }
  }
  if (rc == -ENOMEM) {
    snprintf(err, errlen, "out of memory setting %s", o->name);
    return rc;
  }
  cfg->source[idx] = (unsigned char)at->src;
  return 0;
}

static const struct opt *find_flag(const char *name, size_t len)
{
  for (size_t i = 0; i < NOPTS; i++) {
    if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
      return &opts[i];
  }
  return NULL;
}

static const struct opt *find_ini(const char *key)
{
  for (size_t i = 0; i < NOPTS; i++) {
    char k[NAME_MAX_LEN];
    ini_key(&opts[i], k, sizeof k);
    if (strcmp(k, key) == 0 || strcmp(opts[i].name, key) == 0)
      return &opts[i];
  }
  return NULL;
}

void mesh_config_init(mesh_config *cfg)
{
  memset(cfg, 0, sizeof *cfg);
  char err[256];
  struct origin def = {MESH_CFG_DEFAULT, NULL, 0};
  for (size_t i = 0; i < NOPTS; i++) {
    if (opts[i].def != NULL) {
      int rc = apply(cfg, &opts[i], &def, opts[i].def, err, sizeof err);
      (void)rc; /* the table's defaults are valid: test_config checks each */
    }
  }
}

void mesh_config_free(mesh_config *cfg)
{
  for (size_t i = 0; i < NOPTS; i++) {
    switch (opts[i].type) {
    case T_STRING:
    case T_PATH:
    case T_ADDR:
    case T_API:
    case T_URL: {
      char **s = field(cfg, &opts[i]);
      free(*s);
      *s = NULL;
      break;
    }
    case T_LIST:
      strlist_clear(field(cfg, &opts[i]));
      break;
    default:
      break;
    }
  }
}

static int parse_flags(mesh_config *cfg, int nargs, char *const args[], char *err, size_t errlen)
{
  struct origin at = {MESH_CFG_FLAG, NULL, 0};
  for (int i = 0; i < nargs; i++) {
    const char *a = args[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      cfg->show_help = true;
      continue;
    }
    if (strcmp(a, "--version") == 0) {
      cfg->show_version = true;
      continue;
    }
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
      snprintf(err, errlen, "unexpected argument \"%.60s\" (see meshd --help)", a);
      return -EINVAL;
    }
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t nl = eq != NULL ? (size_t)(eq - name) : strlen(name);
    const struct opt *o = find_flag(name, nl);
    if (o == NULL) {
      snprintf(err, errlen, "unknown option --%.*s (see meshd --help)", (int)(nl > 60 ? 60 : nl),
               name);
      return -EINVAL;
    }
    const char *v;
    if (eq != NULL) {
      v = eq + 1;
    } else if (o->type == T_BOOL) {
      v = "true";
    } else if (i + 1 < nargs) {
      v = args[++i];
    } else {
      snprintf(err, errlen, "--%s needs a value (%s)", o->name, o->metavar);
      return -EINVAL;
    }
    int rc = apply(cfg, o, &at, v, err, errlen);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static const char *env_get(char *const envp[], const char *name)
{
  if (envp == NULL)
    return NULL;
  size_t nl = strlen(name);
  for (size_t i = 0; envp[i] != NULL; i++) {
    if (strncmp(envp[i], name, nl) == 0 && envp[i][nl] == '=')
      return envp[i] + nl + 1;
  }
  return NULL;
}

static int parse_env(mesh_config *cfg, char *const envp[], char *err, size_t errlen)
{
  struct origin at = {MESH_CFG_ENV, NULL, 0};
  for (size_t i = 0; i < NOPTS; i++) {
    char name[NAME_MAX_LEN];
    env_name(&opts[i], name, sizeof name);
    const char *v = env_get(envp, name);
    if (v == NULL)
      continue;
    int rc = apply(cfg, &opts[i], &at, v, err, errlen);
    if (rc != 0)
      return rc;
  }
  return 0;
}

/* The INI text being parsed, handed out line by line so that errors from
 * the handler can name their line. */
struct ini_ctx {
  mesh_config *cfg;
  const char *name; /* file name for messages */
  const char *buf;  /* the text */
  size_t len, pos;  /* its length and the read position */
  unsigned line;    /* number of the line last handed to inih */
  bool too_long;    /* a line did not fit inih's buffer */
  int rc;           /* first error */
  char *err;
  size_t errlen;
};

static char *ini_read_line(char *str, int num, void *stream)
{
  struct ini_ctx *c = stream;
  if (c->pos >= c->len || c->rc != 0 || num < 2)
    return NULL;
  const char *start = c->buf + c->pos;
  size_t rest = c->len - c->pos;
  const char *nl = memchr(start, '\n', rest);
  size_t n = nl != NULL ? (size_t)(nl - start) + 1 : rest;
  c->line++;
  if (n > (size_t)num - 1 || memchr(start, '\0', n) != NULL) {
    c->too_long = memchr(start, '\0', n) == NULL;
    c->rc = -EINVAL;
    snprintf(c->err, c->errlen, "%s:%u: %s", c->name, c->line,
             c->too_long ? "line too long (split a list over several keys)" : "NUL byte in file");
    return NULL;
  }
  memcpy(str, start, n);
  str[n] = '\0';
  c->pos += n;
  return str;
}

static int ini_handler_fn(void *user, const char *section, const char *name, const char *value)
{
  struct ini_ctx *c = user;
  if (c->rc != 0)
    return 0;
  if (value == NULL) {
    snprintf(c->err, c->errlen, "%s:%u: %.60s needs a value", c->name, c->line, name);
    c->rc = -EINVAL;
    return 0;
  }
  if (section[0] != '\0' && strcmp(section, "meshd") != 0) {
    snprintf(c->err, c->errlen, "%s:%u: unknown section [%.60s] (keys go at the top or in [meshd])",
             c->name, c->line, section);
    c->rc = -EINVAL;
    return 0;
  }
  const struct opt *o = find_ini(name);
  if (o == NULL) {
    snprintf(c->err, c->errlen, "%s:%u: unknown key \"%.60s\" (see meshd config-example)", c->name,
             c->line, name);
    c->rc = -EINVAL;
    return 0;
  }
  if (o->no_file) {
    snprintf(c->err, c->errlen, "%s:%u: %s cannot be set in the file", c->name, c->line, name);
    c->rc = -EINVAL;
    return 0;
  }
  struct origin at = {MESH_CFG_FILE, c->name, c->line};
  int rc = apply(c->cfg, o, &at, value, c->err, c->errlen);
  if (rc != 0) {
    c->rc = rc;
    return 0;
  }
  return 1;
}

int mesh_config_apply_ini(mesh_config *cfg, const char *name, const char *buf, size_t len,
                          char *err, size_t errlen)
{
  struct ini_ctx c = {cfg, name, buf, len, 0, 0, false, 0, err, errlen};
  int line = ini_parse_stream(ini_read_line, &c, ini_handler_fn, &c);
  if (c.rc != 0)
    return c.rc;
  if (line > 0) {
    snprintf(err, errlen, "%s:%d: syntax error (expected key = value or [section])", name, line);
    return -EINVAL;
  }
  if (line < 0) {
    snprintf(err, errlen, "%s: cannot parse (out of memory)", name);
    return -ENOMEM;
  }
  return 0;
}

/* Files bigger than this are not configuration. */
#define CONFIG_FILE_MAX (256u * 1024)

static int read_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(e));
    return -e;
  }
  char *buf = malloc(CONFIG_FILE_MAX + 1);
  if (buf == NULL) {
    close(fd);
    return -ENOMEM;
  }
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf + n, CONFIG_FILE_MAX + 1 - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      int e = errno;
      snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(e));
      free(buf);
      close(fd);
      return -e;
    }
    if (r == 0)
      break;
    n += (size_t)r;
    if (n > CONFIG_FILE_MAX) {
      snprintf(err, errlen, "config file %s is larger than %u bytes", path, CONFIG_FILE_MAX);
      free(buf);
      close(fd);
      return -EFBIG;
    }
  }
  close(fd);
  *out = buf;
  *outlen = n;
  return 0;
}

static int join_path(char **out, const char *dir, const char *leaf)
{
  size_t n = strlen(dir) + strlen(leaf) + 2;
  char *s = malloc(n);
  if (s == NULL)
    return -ENOMEM;
  snprintf(s, n, "%s/%s", dir, leaf);
  free(*out);
  *out = s;
  return 0;
}

int mesh_config_load(mesh_config *cfg, int nargs, char *const args[], char *const envp[], char *err,
                     size_t errlen)
{
  mesh_config_init(cfg);
  int rc = parse_flags(cfg, nargs, args, err, errlen);
  if (rc == 0)
    rc = parse_env(cfg, envp, err, errlen);
  if (rc != 0 || cfg->show_help || cfg->show_version)
    return rc;

  if (cfg->home == NULL) {
    const char *h = env_get(envp, "HOME");
    if (h == NULL || *h == '\0') {
      snprintf(err, errlen, "no home directory: set --home or MESH_HOME");
      return -EINVAL;
    }
    rc = join_path(&cfg->home, h, ".meshd");
    if (rc != 0)
      return rc;
  }

  bool must_exist = cfg->config_file != NULL;
  if (cfg->config_file == NULL) {
    rc = join_path(&cfg->config_file, cfg->home, "meshd.conf");
    if (rc != 0)
      return rc;
  }
  char *text = NULL;
  size_t len = 0;
  rc = read_file(cfg->config_file, &text, &len, err, errlen);
  if (rc == -ENOENT && !must_exist) {
    free(cfg->config_file);
    cfg->config_file = NULL;
    err[0] = '\0';
  } else if (rc != 0) {
    return rc;
  } else {
    rc = mesh_config_apply_ini(cfg, cfg->config_file, text, len, err, errlen);
    free(text);
    if (rc != 0)
      return rc;
  }

  if (cfg->swarm_key == NULL && (rc = join_path(&cfg->swarm_key, cfg->home, "swarm.key")) != 0)
    return rc;
  if (cfg->models_dir == NULL && (rc = join_path(&cfg->models_dir, cfg->home, "models")) != 0)
    return rc;
  struct origin derived = {MESH_CFG_DEFAULT, NULL, 0};
  if (cfg->hf_endpoint == NULL) {
    const char *e = env_get(envp, "HF_ENDPOINT");
    const struct opt *o = find_flag("hf-endpoint", strlen("hf-endpoint"));
    if (e != NULL && *e != '\0') {
      rc = apply(cfg, o, &derived, e, err, errlen);
      if (rc != 0) {
        snprintf(err, errlen, "HF_ENDPOINT: invalid value: expected an http:// or https:// URL");
        return rc;
      }
    } else {
      rc = apply(cfg, o, &derived, "https://huggingface.co", err, errlen);
      if (rc != 0)
        return rc;
    }
  }
  if (cfg->hf_token == NULL) {
    const char *t = env_get(envp, "HF_TOKEN");
    if (t != NULL && *t != '\0' && set_string(&cfg->hf_token, t, strlen(t)) != 0)
      return -ENOMEM;
  }
  return 0;
}

static const char *type_doc(const struct opt *o)
{
  switch (o->type) {
  case T_DURATION:
    return "duration (200ms, 5s, 10m, 24h, 7d, 1m30s)";
  case T_SIZE:
    return "size (1024, 500MB, 2GiB)";
  case T_INT:
    return "whole number";
  case T_LIST:
    return "list, comma separated";
  case T_ENUM:
    return "one of the names above";
  case T_BOOL:
    return "true or false";
  default:
    return NULL;
  }
}

static void default_text(const struct opt *o, char *buf, size_t len)
{
  if (o->def_doc != NULL)
    snprintf(buf, len, "%s", o->def_doc);
  else
    snprintf(buf, len, "%s", o->def != NULL ? o->def : "");
}

void mesh_config_print_help(FILE *f)
{
  fprintf(f, "Options (flag, then MESH_* environment variable, then meshd.conf key):\n");
  for (size_t i = 0; i < NOPTS; i++) {
    const struct opt *o = &opts[i];
    char env[NAME_MAX_LEN], key[NAME_MAX_LEN], def[96], flag[NAME_MAX_LEN * 2];
    env_name(o, env, sizeof env);
    ini_key(o, key, sizeof key);
    default_text(o, def, sizeof def);
    snprintf(flag, sizeof flag, "--%s %s", o->name, o->metavar);
    fprintf(f, "  %-32s %s\n", flag, o->help);
    fprintf(f, "  %-32s default: %s; env %s", "", def, env);
    if (o->no_file)
      fprintf(f, "\n");
    else
      fprintf(f, "; file %s\n", key);
  }
  fprintf(f, "  %-32s %s\n", "-h, --help", "Print this help.");
  fprintf(f, "  %-32s %s\n", "--version", "Print the version.");
}

void mesh_config_print_example(FILE *f)
{
  fprintf(f, "# meshd.conf: configuration of one meshd node.\n"
             "#\n"
             "# meshd reads $MESH_HOME/meshd.conf (or the file named by --config).\n"
             "# Flags override MESH_* environment variables, which override this file,\n"
             "# which overrides the built-in defaults. Every option is listed below at\n"
             "# its default, commented out; remove the '#' to change one.\n"
             "# Durations: 200ms, 5s, 10m, 24h, 7d, 1m30s. Sizes: 1024, 500MB, 2GiB.\n"
             "# Lists are comma separated; a repeated list key adds to the list.\n"
             "\n[meshd]\n");
  for (size_t i = 0; i < NOPTS; i++) {
    const struct opt *o = &opts[i];
    if (o->no_file)
      continue;
    char env[NAME_MAX_LEN], key[NAME_MAX_LEN], def[96];
    env_name(o, env, sizeof env);
    ini_key(o, key, sizeof key);
    default_text(o, def, sizeof def);
    fprintf(f, "\n# %s\n", o->help);
    if (o->type == T_ENUM) {
      fprintf(f, "# One of:");
      for (int c = 0; o->choices[c] != NULL; c++)
        fprintf(f, " %s", o->choices[c]);
      fprintf(f, ".\n");
    }
    const char *t = type_doc(o);
    if (t != NULL && o->type != T_ENUM)
      fprintf(f, "# Type: %s.", t);
    else
      fprintf(f, "#");
    if (o->type == T_INT) {
      fprintf(f, " Range %llu to %llu.", (unsigned long long)o->min, (unsigned long long)o->max);
    } else if (o->type == T_DURATION || o->type == T_SIZE) {
      char lo[32], hi[32];
      if (o->type == T_DURATION) {
        mesh_config_format_duration(o->min, lo, sizeof lo);
        mesh_config_format_duration(o->max, hi, sizeof hi);
        fprintf(f, " Range %s to %s.", lo, hi);
      } else if (o->max != UINT64_MAX) {
        mesh_config_format_size(o->min, lo, sizeof lo);
        mesh_config_format_size(o->max, hi, sizeof hi);
        fprintf(f, " Range %s to %s.", lo, hi);
      }
    }
    fprintf(f, " Flag --%s, environment %s.\n", o->name, env);
    if (o->def != NULL && o->def_doc != NULL)
      fprintf(f, "# Default: %s.\n#%s = %s\n", o->def_doc, key, o->def);
    else if (o->def != NULL)
      fprintf(f, "#%s = %s\n", key, o->def);
    else
      fprintf(f, "# Default: %s.\n#%s =\n", def, key);
  }
}
