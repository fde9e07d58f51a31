/*
 * meshd id, meshd epoch and meshd keygen-psk: small commands that read or
 * create the files of a node's home directory without starting the node.
 *
 * Their home directory is --home, else $MESH_HOME, else $HOME/.meshd (the
 * same rule as the node's). They do not read meshd.conf: what they touch is
 * always inside the home directory unless a flag names another file.
 */
#include "src/meshd/meshd.h"

#include "src/base/err.h"
#include "src/base/fileperm.h"
#include "src/identity/epoch.h"
#include "src/identity/identity.h"
#include "src/identity/psk.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void meshd_error(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("meshd: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

/* The flags a command accepts; each takes a value unless is_switch. */
struct flag {
  const char *name;   /* with the leading "--" */
  bool is_switch;     /* takes no value */
  const char **value; /* receives the value (or "1" for a switch) */
};

/* Parses "--name value", "--name=value" and switches. Returns 0 or prints a
 * usage error and returns MESHD_EXIT_USAGE. */
static int parse_flags(const char *cmd, int argc, char **argv, struct flag *flags, size_t n)
{
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *eq = strchr(a, '=');
    size_t nl = eq != NULL ? (size_t)(eq - a) : strlen(a);
    struct flag *f = NULL;
    for (size_t k = 0; k < n; k++) {
      if (strlen(flags[k].name) == nl && strncmp(flags[k].name, a, nl) == 0)
        f = &flags[k];
    }
    if (f == NULL) {
      meshd_error("%s: unknown argument \"%.60s\" (see meshd --help)", cmd, a);
      return MESHD_EXIT_USAGE;
    }
    if (f->is_switch) {
      if (eq != NULL) {
        meshd_error("%s: %s takes no value", cmd, f->name);
        return MESHD_EXIT_USAGE;
      }
      *f->value = "1";
    } else if (eq != NULL) {
      *f->value = eq + 1;
    } else if (i + 1 < argc) {
      *f->value = argv[++i];
    } else {
      meshd_error("%s: %s needs a value", cmd, f->name);
      return MESHD_EXIT_USAGE;
    }
    if (!f->is_switch && **f->value == '\0') {
      meshd_error("%s: %s needs a non-empty value", cmd, f->name);
      return MESHD_EXIT_USAGE;
    }
  }
  return 0;
}

/* --home, else $MESH_HOME, else $HOME/.meshd, into buf. */
static int resolve_home(const char *flag, char *buf, size_t len)
{
  const char *home = flag;
  if (home == NULL) {
    const char *env = getenv("MESH_HOME");
    if (env != NULL && *env != '\0')
      home = env;
  }
  int n;
  if (home != NULL) {
    n = snprintf(buf, len, "%s", home);
  } else {
    const char *h = getenv("HOME");
    if (h == NULL || *h == '\0') {
      meshd_error("no home directory: set --home or MESH_HOME");
      return -EINVAL;
    }
    n = snprintf(buf, len, "%s/.meshd", h);
  }
  if (n < 0 || (size_t)n >= len) {
    meshd_error("home directory path too long");
    return -ENAMETOOLONG;
  }
  return 0;
}

/* Creates the home directory (mode 0700) when it does not exist yet, and
 * refuses one that another user owns or may write, as the node does. */
static int ensure_dir(const char *dir)
{
  char err[512] = "";
  int rc = mesh_home_prepare(dir, err, sizeof err);
  if (rc != 0)
    meshd_error("%s", err);
  return rc;
}

static int path_in(char *buf, size_t len, const char *dir, const char *leaf)
{
  int n = snprintf(buf, len, "%s/%s", dir, leaf);
  if (n < 0 || (size_t)n >= len) {
    meshd_error("path too long: %s/%s", dir, leaf);
    return -ENAMETOOLONG;
  }
  return 0;
}

int meshd_cmd_id(int argc, char **argv)
{
  const char *home_flag = NULL, *key_flag = NULL, *cid = NULL;
  struct flag flags[] = {
      {"--home", false, &home_flag}, {"--key", false, &key_flag}, {"--cid", true, &cid}};
  int rc = parse_flags("id", argc, argv, flags, sizeof flags / sizeof flags[0]);
  if (rc != 0)
    return rc;

  mesh_identity id;
  char err[512] = "";
  if (key_flag != NULL) {
    rc = mesh_identity_load(key_flag, &id, err, sizeof err);
  } else {
    char home[4096], path[4200];
    if (resolve_home(home_flag, home, sizeof home) != 0 || ensure_dir(home) != 0 ||
        path_in(path, sizeof path, home, "identity.key") != 0)
      return MESHD_EXIT_FAIL;
    rc = mesh_identity_load_or_create(path, &id, err, sizeof err);
  }
  if (rc != 0) {
    meshd_error("%s", err[0] != '\0' ? err : mesh_strerror(rc));
    return MESHD_EXIT_FAIL;
  }
  char text[MESH_PEER_ID_TEXT_MAX];
  if (cid != NULL)
    mesh_peer_id_to_cid(&id.id, text, sizeof text);
  else
    mesh_peer_id_to_text(&id.id, text, sizeof text);
  sodium_memzero(&id, sizeof id);
  printf("%s\n", text);
  return MESHD_EXIT_OK;
}

int meshd_cmd_epoch(int argc, char **argv)
{
  const char *home_flag = NULL;
  struct flag flags[] = {{"--home", false, &home_flag}};
  int rc = parse_flags("epoch", argc, argv, flags, 1);
  if (rc != 0)
    return rc;
  char home[4096];
  if (resolve_home(home_flag, home, sizeof home) != 0)
    return MESHD_EXIT_FAIL;
  uint64_t epoch = 0;
  char err[512] = "";
  rc = mesh_epoch_read(home, &epoch, err, sizeof err);
  if (rc != 0) {
    meshd_error("%s", err[0] != '\0' ? err : mesh_strerror(rc));
    return MESHD_EXIT_FAIL;
  }
  printf("%" PRIu64 "\n", epoch);
  return MESHD_EXIT_OK;
}

int meshd_cmd_keygen_psk(int argc, char **argv)
{
  const char *home_flag = NULL, *out = NULL;
  struct flag flags[] = {{"--home", false, &home_flag}, {"--out", false, &out}};
  int rc = parse_flags("keygen-psk", argc, argv, flags, 2);
  if (rc != 0)
    return rc;
  char err[512] = "";
  if (out != NULL && strcmp(out, "-") == 0) {
    if (sodium_init() < 0) {
      meshd_error("libsodium failed to initialise");
      return MESHD_EXIT_FAIL;
    }
    mesh_psk psk;
    char text[160];
    randombytes_buf(psk.key, sizeof psk.key);
    rc = mesh_psk_format(&psk, text, sizeof text);
    sodium_memzero(&psk, sizeof psk);
    if (rc != 0) {
      meshd_error("cannot format the swarm key: %s", mesh_strerror(rc));
      return MESHD_EXIT_FAIL;
    }
    fputs(text, stdout);
    sodium_memzero(text, sizeof text);
    return fflush(stdout) == 0 ? MESHD_EXIT_OK : MESHD_EXIT_FAIL;
  }
  char path[4200];
  if (out == NULL) {
    char home[4096];
    if (resolve_home(home_flag, home, sizeof home) != 0 || ensure_dir(home) != 0 ||
        path_in(path, sizeof path, home, "swarm.key") != 0)
      return MESHD_EXIT_FAIL;
  } else {
    snprintf(path, sizeof path, "%s", out);
  }
  rc = mesh_psk_generate_file(path, err, sizeof err);
  if (rc != 0) {
    if (err[0] != '\0')
      meshd_error("%s", err);
    else if (rc == -EEXIST)
      meshd_error("%s exists already; remove it first to make a new key", path);
    else
      meshd_error("cannot write %s: %s", path, mesh_strerror(rc));
    return MESHD_EXIT_FAIL;
  }
  printf("%s\n", path);
  return MESHD_EXIT_OK;
}
