/*
 * Fuzz target for the configuration parsers: the value parsers (duration,
 * size, bool, integer, address), the INI path (inih plus the option
 * table), and the flag and environment paths of mesh_config_load (lines of
 * the input as arguments or as NAME=value entries). The first byte picks the
 * parser; the rest is its input.
 *
 * Besides "no crash, no leak", it checks two properties: a duration or size
 * that parses formats back to text that parses to the same value, and a
 * parser that fails leaves its output untouched.
 */
#include "src/base/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Longer inputs add nothing but time: the parsers are linear. */
#define FUZZ_MAX_INPUT 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_duration(const char *s)
{
  uint64_t v = 0xdeadbeef;
  const char *why = NULL;
  if (mesh_config_parse_duration(s, &v, &why) != 0) {
    if (v != 0xdeadbeef || why == NULL)
      abort();
    return;
  }
  char buf[64];
  uint64_t back = 0;
  mesh_config_format_duration(v, buf, sizeof buf);
  if (mesh_config_parse_duration(buf, &back, NULL) != 0 || back != v)
    abort();
}

static void check_size(const char *s)
{
  uint64_t v = 0xdeadbeef;
  const char *why = NULL;
  if (mesh_config_parse_size(s, &v, &why) != 0) {
    if (v != 0xdeadbeef || why == NULL)
      abort();
    return;
  }
  char buf[64];
  uint64_t back = 0;
  mesh_config_format_size(v, buf, sizeof buf);
  if (mesh_config_parse_size(buf, &back, NULL) != 0 || back != v)
    abort();
}

/* Splits s at newlines into at most max NULL-terminated pieces. */
static size_t split_lines(char *s, char **out, size_t max)
{
  size_t n = 0;
  while (n + 1 < max) {
    out[n++] = s;
    char *nl = strchr(s, '\n');
    if (nl == NULL)
      break;
    *nl = '\0';
    s = nl + 1;
  }
  out[n] = NULL;
  return n;
}

/* Loads a configuration from arguments or environment entries. The home
 * directory does not exist, so no file is read; inputs naming a config file
 * are skipped, since that file could be anything on the machine. */
static void check_load(char *s, bool as_env)
{
  if (strstr(s, "config") != NULL || strstr(s, "CONFIG") != NULL || strstr(s, "HOME") != NULL ||
      strstr(s, "home") != NULL)
    return;
  char *lines[33];
  size_t n = split_lines(s, lines, 32);
  char *const no_args[] = {NULL};
  char home[] = "HOME=/nonexistent/meshd-fuzz";
  char *env[35];
  env[0] = home;
  size_t ne = 1;
  for (size_t i = 0; as_env && i < n; i++)
    env[ne++] = lines[i];
  env[ne] = NULL;
  mesh_config cfg;
  char err[512];
  if (as_env)
    (void)mesh_config_load(&cfg, 0, no_args, env, err, sizeof err);
  else
    (void)mesh_config_load(&cfg, (int)n, lines, env, err, sizeof err);
  mesh_config_free(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1 || size > FUZZ_MAX_INPUT)
    return 0;
  uint8_t mode = data[0];
  data++;
  size--;
  char *s = malloc(size + 1);
  if (s == NULL)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  switch (mode % 7) {
  case 0:
    check_duration(s);
    break;
  case 1:
    check_size(s);
    break;
  case 2: {
    int64_t n;
    bool b;
    (void)mesh_config_parse_int(s, &n, NULL);
    (void)mesh_config_parse_bool(s, &b, NULL);
    break;
  }
  case 3:
    (void)mesh_config_check_addr(s, NULL);
    break;
  case 5:
    check_load(s, false);
    break;
  case 6:
    check_load(s, true);
    break;
  default: {
    /* The INI text is given with its length: embedded NULs must be refused,
     * not read past. */
    mesh_config cfg;
    char err[512];
    mesh_config_init(&cfg);
    (void)mesh_config_apply_ini(&cfg, "fuzz.conf", (const char *)data, size, err, sizeof err);
    mesh_config_free(&cfg);
    break;
  }
  }
  free(s);
  return 0;
}
