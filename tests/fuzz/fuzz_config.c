/*
 * Fuzz target for the configuration parsers: the value parsers (duration,
 * size, bool, integer, address) and the INI path (inih plus the option
 * table). The first byte picks the parser; the rest is its input.
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
  switch (mode % 5) {
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
