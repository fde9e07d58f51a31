/*
 * meshctl's entry: global options (from the command line or MESH_API,
 * MESH_API_TOKEN, MESH_HOME), then one command, or the shell. The API's
 * token is --token, else $MESH_API_TOKEN, else the one meshd keeps in
 * HOME/api.token, so that meshctl works with no flags as meshd's user.
 */
#include "src/meshctl/meshctl.h"

#include "src/identity/apitoken.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* Reads the token meshd keeps in home into buf (cap bytes); c->token and
 * c->token_from say what was found. A missing file is fine: a Unix socket
 * needs no token, and a 401 then says where meshctl looked. */
static void token_from_home(mctl *c, const char *home, char *buf, size_t cap)
{
  char path[512];
  int n = snprintf(path, sizeof path, "%s/%s", home, MESH_APITOKEN_FILE);
  if (n < 0 || (size_t)n >= sizeof path) {
    snprintf(c->token_from, sizeof c->token_from, "the home path is too long to find %s",
             MESH_APITOKEN_FILE);
    return;
  }
  char why[400] = "";
  int rc = mesh_apitoken_read(path, buf, cap, why, sizeof why);
  if (rc == 0) {
    c->token = buf;
    snprintf(c->token_from, sizeof c->token_from, "%s", path);
  } else if (rc == -ENOENT) {
    snprintf(c->token_from, sizeof c->token_from, "no token file at %s", path);
  } else {
    snprintf(c->token_from, sizeof c->token_from, "%s", why);
  }
}

/* Takes "--name VALUE" or "--name=VALUE" at argv[*i]; NULL when absent. */
static const char *option_value(int argc, char **argv, int *i, const char *name, bool *missing)
{
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0)
    return NULL;
  if (argv[*i][n] == '=')
    return argv[*i] + n + 1;
  if (argv[*i][n] != '\0')
    return NULL;
  if (*i + 1 >= argc) {
    *missing = true;
    return NULL;
  }
  (*i)++;
  return argv[*i];
}

int main(int argc, char **argv)
{
  mctl c = {.out = stdout};
  const char *api = getenv("MESH_API");
  const char *token = getenv("MESH_API_TOKEN");
  const char *home = getenv("MESH_HOME");
  bool help = false;
  char **rest = calloc((size_t)argc + 1, sizeof(*rest));
  if (rest == NULL)
    return MCTL_API_ERROR;
  int nrest = 0;
  /* Global options may stand anywhere; what is left is the command. */
  for (int i = 1; i < argc; i++) {
    bool missing = false;
    const char *v = option_value(argc, argv, &i, "--api", &missing);
    if (v != NULL) {
      api = v;
      continue;
    }
    v = option_value(argc, argv, &i, "--token", &missing);
    if (v != NULL) {
      token = v;
      continue;
    }
    v = option_value(argc, argv, &i, "--home", &missing);
    if (v != NULL) {
      home = v;
      continue;
    }
    if (missing) {
      fprintf(stderr, "meshctl: %s needs a value\n", argv[i]);
      free(rest);
      return MCTL_USAGE;
    } else if (strcmp(argv[i], "--json") == 0) {
      c.json = true;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      help = true;
    } else if (strcmp(argv[i], "--version") == 0) {
      printf("meshctl 0.1.0\n");
      free(rest);
      return MCTL_OK;
    } else {
      rest[nrest++] = argv[i];
    }
  }
  if (help) {
    const mctl_command *cmd = nrest > 0 ? mctl_find_command(rest[0]) : NULL;
    if (cmd != NULL) {
      char *hargv[] = {"help", rest[0], NULL};
      free(rest);
      return mctl_find_command("help")->run(&c, 2, hargv);
    }
    mctl_print_usage(stdout);
    free(rest);
    return MCTL_OK;
  }
  c.api = api != NULL && api[0] != '\0' ? api : "127.0.0.1:52417";
  /* An address copied from a URL works too. */
  if (strncmp(c.api, "http://", 7) == 0)
    c.api += 7;
  char api_buf[512];
  size_t alen = strlen(c.api);
  if (alen > 0 && alen < sizeof(api_buf) && c.api[alen - 1] == '/') {
    snprintf(api_buf, sizeof(api_buf), "%.*s", (int)(alen - 1), c.api);
    c.api = api_buf;
  }
  c.token = token;
  if (token != NULL)
    snprintf(c.token_from, sizeof c.token_from, "%s",
             token == getenv("MESH_API_TOKEN") ? "MESH_API_TOKEN" : "--token");
  char *home_buf = NULL;
  if (home == NULL || home[0] == '\0') {
    const char *h = getenv("HOME");
    size_t n = strlen(h != NULL ? h : ".") + 8;
    home_buf = malloc(n);
    if (home_buf != NULL)
      snprintf(home_buf, n, "%s/.meshd", h != NULL ? h : ".");
    home = home_buf;
  }
  c.home = home;
  /* Owned here; wiped before exit. */
  static char file_token[MESH_APITOKEN_MAX + 1];
  if (c.token == NULL && home != NULL)
    token_from_home(&c, home, file_token, sizeof file_token);
  if (mctl_client_init(&c) < 0) {
    fprintf(stderr, "meshctl: cannot initialise libcurl\n");
    free(rest);
    free(home_buf);
    return MCTL_API_ERROR;
  }
  int rc = nrest == 0 ? mctl_shell(&c) : mctl_run(&c, nrest, rest);
  sodium_memzero(file_token, sizeof file_token);
  mctl_client_close(&c);
  free(rest);
  free(home_buf);
  return rc;
}
