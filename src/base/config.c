/*
 * Loading the configuration: flags, environment and INI file, through the
 * option table (cfg_table.c).
 *
 * Each source is applied with its precedence rank; an assignment from a
 * lower rank than the one that set the option already is ignored, so the
 * order in which sources are read does not decide the result. Flags and the
 * environment are read first only because they may say where the file is.
 */
#include "src/base/cfg_internal.h"
#include "src/base/fileperm.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void *field(mesh_config *cfg, const struct mesh_cfg_opt *o)
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

static void origin_text(const struct mesh_cfg_opt *o, const struct origin *at, char *buf,
                        size_t len)
{
  char name[MESH_CFG_NAME_MAX];
  switch (at->src) {
  case MESH_CFG_FLAG:
    snprintf(buf, len, "--%s", o->name);
    break;
  case MESH_CFG_ENV:
    mesh_cfg_env_name(o, name, sizeof name);
    snprintf(buf, len, "%s (%s)", name, o->name);
    break;
  case MESH_CFG_FILE:
    mesh_cfg_ini_key(o, name, sizeof name);
    snprintf(buf, len, "%s:%u: %s", at->file, at->line, name);
    break;
  default:
    snprintf(buf, len, "default of %s", o->name);
    break;
  }
}

static int bad_value(const struct mesh_cfg_opt *o, const struct origin *at, const char *v,
                     const char *why, char *err, size_t errlen)
{
  char where[512];
  char q[80];
  origin_text(o, at, where, sizeof where);
  quote(v, q, sizeof q);
  snprintf(err, errlen, "%s: invalid value \"%s\": %s", where, q, why);
  return -EINVAL;
}

static int out_of_range(const struct mesh_cfg_opt *o, const struct origin *at, const char *v,
                        char *err, size_t errlen)
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
static int list_append(const struct mesh_cfg_opt *o, const struct origin *at, mesh_strlist *l,
                       const char *v, char *err, size_t errlen)
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
    int (*check)(const char *, const char **) =
        o->check_item != NULL ? o->check_item : mesh_config_check_addr;
    if (check(item, &why) != 0)
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
static int apply(mesh_config *cfg, const struct mesh_cfg_opt *o, const struct origin *at,
                 const char *v, char *err, size_t errlen)
{
  size_t idx = (size_t)(o - mesh_cfg_opts);
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

static const struct mesh_cfg_opt *find_flag(const char *name, size_t len)
{
  for (size_t i = 0; i < mesh_cfg_nopts; i++) {
    if (strlen(mesh_cfg_opts[i].name) == len && strncmp(mesh_cfg_opts[i].name, name, len) == 0)
      return &mesh_cfg_opts[i];
  }
  return NULL;
}

static const struct mesh_cfg_opt *find_ini(const char *key)
{
  for (size_t i = 0; i < mesh_cfg_nopts; i++) {
    char k[MESH_CFG_NAME_MAX];
    mesh_cfg_ini_key(&mesh_cfg_opts[i], k, sizeof k);
    if (strcmp(k, key) == 0 || strcmp(mesh_cfg_opts[i].name, key) == 0)
      return &mesh_cfg_opts[i];
  }
  return NULL;
}

void mesh_config_init(mesh_config *cfg)
{
  memset(cfg, 0, sizeof *cfg);
  char err[256];
  struct origin def = {MESH_CFG_DEFAULT, NULL, 0};
  for (size_t i = 0; i < mesh_cfg_nopts; i++) {
    if (mesh_cfg_opts[i].def != NULL) {
      int rc = apply(cfg, &mesh_cfg_opts[i], &def, mesh_cfg_opts[i].def, err, sizeof err);
      (void)rc; /* the table's defaults are valid: test_config checks each */
    }
  }
}

void mesh_config_free(mesh_config *cfg)
{
  for (size_t i = 0; i < mesh_cfg_nopts; i++) {
    switch (mesh_cfg_opts[i].type) {
    case T_STRING:
    case T_PATH:
    case T_ADDR:
    case T_API:
    case T_URL: {
      char **s = field(cfg, &mesh_cfg_opts[i]);
      free(*s);
      *s = NULL;
      break;
    }
    case T_LIST:
      strlist_clear(field(cfg, &mesh_cfg_opts[i]));
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
    const struct mesh_cfg_opt *o = find_flag(name, nl);
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
  for (size_t i = 0; i < mesh_cfg_nopts; i++) {
    char name[MESH_CFG_NAME_MAX];
    mesh_cfg_env_name(&mesh_cfg_opts[i], name, sizeof name);
    const char *v = env_get(envp, name);
    if (v == NULL)
      continue;
    int rc = apply(cfg, &mesh_cfg_opts[i], &at, v, err, errlen);
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
  const struct mesh_cfg_opt *o = find_ini(name);
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

/* Reads the config file into *out (malloc'd, the caller's). Settings rule
 * (src/base/fileperm.h): not a link, this user's or root's, writable by
 * nobody else; *st receives its status. */
static int read_file(const char *path, char **out, size_t *outlen, struct stat *st, char *err,
                     size_t errlen)
{
  int fd;
  int rc = mesh_file_open_checked(path, MESH_FILE_SETTINGS, "config file", &fd, st, err, errlen);
  if (rc != 0)
    return rc;
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

/* True when host:port names a loopback host. */
static bool api_is_loopback(const char *api)
{
  if (strncmp(api, "unix:", 5) == 0)
    return true;
  const char *colon = strrchr(api, ':');
  size_t hl = colon != NULL ? (size_t)(colon - api) : strlen(api);
  if (hl >= 4 && strncmp(api, "127.", 4) == 0)
    return strspn(api, "0123456789.") == hl; /* an IPv4 literal, not a name like 127.x.com */
  return (hl == 9 && strncmp(api, "localhost", 9) == 0) ||
         (hl == 5 && strncmp(api, "[::1]", 5) == 0);
}

/* A config file that holds a token must be kept from other users: readable
 * by root's packaging is fine, by everyone is not. */
static int check_file_secrets(const mesh_config *cfg, const struct stat *st, char *err,
                              size_t errlen)
{
  static const char *const secrets[] = {"api-token", "hf-token"};
  if ((st->st_mode & 007) == 0)
    return 0;
  for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
    const struct mesh_cfg_opt *o = find_flag(secrets[i], strlen(secrets[i]));
    if (o == NULL || cfg->source[o - mesh_cfg_opts] != MESH_CFG_FILE)
      continue;
    snprintf(err, errlen,
             "config file %s sets %s but others can read it (mode %04o); run: chmod o-rwx %s",
             cfg->config_file, o->name, (unsigned)(st->st_mode & 07777), cfg->config_file);
    return -EACCES;
  }
  return 0;
}

/* The control API stays on this machine unless a token guards it. */
static int check_api_exposure(const mesh_config *cfg, char *err, size_t errlen)
{
  if (cfg->api == NULL || cfg->api_token != NULL || api_is_loopback(cfg->api))
    return 0;
  const struct mesh_cfg_opt *o = find_flag("api", 3);
  size_t idx = (size_t)(o - mesh_cfg_opts);
  static const char *const from[] = {"default", "the config file", "MESH_API", "--api"};
  snprintf(err, errlen,
           "api: %.200s (from %s) is not a loopback address: set api-token too to serve the "
           "control API beyond this machine",
           cfg->api, from[cfg->source[idx] <= MESH_CFG_FLAG ? cfg->source[idx] : 0]);
  return -EINVAL;
}

int mesh_config_load(mesh_config *cfg, int nargs, char *const args[], char *const envp[], char *err,
                     size_t errlen)
{
  mesh_config_init(cfg);
  int rc = parse_flags(cfg, nargs, args, err, errlen);
  /* --help and --version answer even when the environment or file is bad. */
  if (rc != 0 || cfg->show_help || cfg->show_version)
    return rc;
  rc = parse_env(cfg, envp, err, errlen);
  if (rc != 0)
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
  struct stat st;
  rc = read_file(cfg->config_file, &text, &len, &st, err, errlen);
  if (rc == -ENOENT && !must_exist) {
    free(cfg->config_file);
    cfg->config_file = NULL;
    err[0] = '\0';
  } else if (rc != 0) {
    return rc;
  } else {
    rc = mesh_config_apply_ini(cfg, cfg->config_file, text, len, err, errlen);
    free(text);
    if (rc == 0)
      rc = check_file_secrets(cfg, &st, err, errlen);
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
    const struct mesh_cfg_opt *o = find_flag("hf-endpoint", strlen("hf-endpoint"));
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
  return check_api_exposure(cfg, err, errlen);
}
