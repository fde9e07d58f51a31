/*
 * Parsers and formatters for configuration values: durations, sizes, bools,
 * integers and addresses. Pure functions of their text; no allocation.
 * Every arithmetic step is checked, so no input can overflow silently.
 */
#include "src/base/cfg_values.h"

#include "src/base/config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static void set_why(const char **why, const char *msg)
{
  if (why != NULL)
    *why = msg;
}

static bool is_digit(char c)
{
  return c >= '0' && c <= '9';
}

/* Reads a run of decimal digits at *p into *out; advances *p. */
static int read_u64(const char **p, uint64_t *out, const char **why)
{
  const char *s = *p;
  if (!is_digit(*s)) {
    set_why(why, "expected a number");
    return -EINVAL;
  }
  uint64_t v = 0;
  for (; is_digit(*s); s++) {
    uint64_t d = (uint64_t)(*s - '0');
    if (v > (UINT64_MAX - d) / 10) {
      set_why(why, "number too large");
      return -ERANGE;
    }
    v = v * 10 + d;
  }
  *p = s;
  *out = v;
  return 0;
}

static int mul_add(uint64_t *acc, uint64_t n, uint64_t unit, const char **why)
{
  if (unit != 0 && n > UINT64_MAX / unit) {
    set_why(why, "value too large");
    return -ERANGE;
  }
  uint64_t v = n * unit;
  if (*acc > UINT64_MAX - v) {
    set_why(why, "value too large");
    return -ERANGE;
  }
  *acc += v;
  return 0;
}

struct unit {
  const char *name;
  uint64_t factor;
};

/* From smallest to largest; the longest matching name wins, so "ms" is not
 * read as "m" followed by junk. */
static const struct unit duration_units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
};

int mesh_config_parse_duration(const char *s, uint64_t *ms, const char **why)
{
  if (s == NULL || *s == '\0') {
    set_why(why, "empty duration");
    return -EINVAL;
  }
  if (strcmp(s, "0") == 0) {
    *ms = 0;
    return 0;
  }
  uint64_t total = 0;
  const char *p = s;
  unsigned last_unit = 0; /* units must go from larger to smaller: 1h30m, not 30m1h */
  while (*p != '\0') {
    uint64_t n;
    int rc = read_u64(&p, &n, why);
    if (rc != 0)
      return rc;
    size_t best = 0;
    unsigned idx = 0;
    for (unsigned i = 0; i < sizeof duration_units / sizeof duration_units[0]; i++) {
      size_t ul = strlen(duration_units[i].name);
      if (strncmp(p, duration_units[i].name, ul) == 0 && ul > best) {
        best = ul;
        idx = i;
      }
    }
    if (best == 0) {
      set_why(why, *p == '\0' ? "missing unit (use ms, s, m, h or d)"
                              : "unknown unit (use ms, s, m, h or d)");
      return -EINVAL;
    }
    unsigned rank = 5 - idx; /* d=1 ... ms=5 */
    if (rank <= last_unit) {
      set_why(why, "units must go from largest to smallest, each once (1h30m)");
      return -EINVAL;
    }
    last_unit = rank;
    rc = mul_add(&total, n, duration_units[idx].factor, why);
    if (rc != 0)
      return rc;
    p += best;
  }
  *ms = total;
  return 0;
}

static const struct unit size_units[] = {
    {"B", 1ull},
    {"kB", 1000ull},
    {"KB", 1000ull},
    {"MB", 1000ull * 1000},
    {"GB", 1000ull * 1000 * 1000},
    {"TB", 1000ull * 1000 * 1000 * 1000},
    {"KiB", 1024ull},
    {"MiB", 1024ull * 1024},
    {"GiB", 1024ull * 1024 * 1024},
    {"TiB", 1024ull * 1024 * 1024 * 1024},
};

int mesh_config_parse_size(const char *s, uint64_t *bytes, const char **why)
{
  if (s == NULL || *s == '\0') {
    set_why(why, "empty size");
    return -EINVAL;
  }
  const char *p = s;
  uint64_t n;
  int rc = read_u64(&p, &n, why);
  if (rc != 0)
    return rc;
  uint64_t factor = 1;
  if (*p != '\0') {
    factor = 0;
    for (unsigned i = 0; i < sizeof size_units / sizeof size_units[0]; i++) {
      if (strcmp(p, size_units[i].name) == 0) {
        factor = size_units[i].factor;
        break;
      }
    }
    if (factor == 0) {
      set_why(why, "unknown unit (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)");
      return -EINVAL;
    }
  }
  uint64_t total = 0;
  rc = mul_add(&total, n, factor, why);
  if (rc != 0)
    return rc;
  *bytes = total;
  return 0;
}

int mesh_config_parse_bool(const char *s, bool *out, const char **why)
{
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  for (unsigned i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = true;
      return 0;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *out = false;
      return 0;
    }
  }
  set_why(why, "expected true or false");
  return -EINVAL;
}

int mesh_config_parse_int(const char *s, int64_t *out, const char **why)
{
  const char *p = s;
  bool neg = false;
  if (*p == '-') {
    neg = true;
    p++;
  }
  uint64_t v;
  int rc = read_u64(&p, &v, why);
  if (rc != 0)
    return rc;
  if (*p != '\0') {
    set_why(why, "expected a whole number");
    return -EINVAL;
  }
  if ((!neg && v > (uint64_t)INT64_MAX) || (neg && v > (uint64_t)INT64_MAX + 1)) {
    set_why(why, "number too large");
    return -ERANGE;
  }
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}

/* Checks a decimal port number of length len at s. */
static int check_port(const char *s, size_t len, const char **why)
{
  if (len == 0 || len > 5) {
    set_why(why, "bad port");
    return -EINVAL;
  }
  unsigned v = 0;
  for (size_t i = 0; i < len; i++) {
    if (!is_digit(s[i])) {
      set_why(why, "bad port");
      return -EINVAL;
    }
    v = v * 10 + (unsigned)(s[i] - '0');
  }
  if (v > 65535) {
    set_why(why, "port out of range (0-65535)");
    return -EINVAL;
  }
  return 0;
}

static bool host_char_ok(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '.' ||
         c == ':' || c == '_';
}

static int check_host(const char *s, size_t len, const char **why)
{
  if (len == 0 || len > 253) {
    set_why(why, "bad host");
    return -EINVAL;
  }
  for (size_t i = 0; i < len; i++) {
    if (!host_char_ok(s[i])) {
      set_why(why, "bad character in host");
      return -EINVAL;
    }
  }
  return 0;
}

/* Splits the next "/component" of a multiaddr; returns its length. */
static size_t ma_next(const char **p, const char **comp)
{
  *comp = *p;
  if (**p != '/')
    return 0;
  (*p)++;
  *comp = *p;
  size_t n = strcspn(*p, "/");
  *p += n;
  return n;
}

static int check_multiaddr(const char *s, const char **why)
{
  const char *p = s;
  const char *proto;
  size_t pl = ma_next(&p, &proto);
  const char *host;
  size_t hl = ma_next(&p, &host);
  if (pl == 0 || hl == 0) {
    set_why(why, "expected /ip4/ADDR/tcp/PORT");
    return -EINVAL;
  }
  if (!((pl == 3 && strncmp(proto, "ip4", 3) == 0) || (pl == 3 && strncmp(proto, "ip6", 3) == 0) ||
        (pl == 3 && strncmp(proto, "dns", 3) == 0) || (pl == 4 && strncmp(proto, "dns4", 4) == 0) ||
        (pl == 4 && strncmp(proto, "dns6", 4) == 0))) {
    set_why(why, "multiaddr must start with /ip4, /ip6, /dns, /dns4 or /dns6");
    return -EINVAL;
  }
  int rc = check_host(host, hl, why);
  if (rc != 0)
    return rc;
  const char *tcp;
  size_t tl = ma_next(&p, &tcp);
  if (tl != 3 || strncmp(tcp, "tcp", 3) != 0) {
    set_why(why, "multiaddr needs /tcp/PORT");
    return -EINVAL;
  }
  const char *port;
  size_t portl = ma_next(&p, &port);
  rc = check_port(port, portl, why);
  if (rc != 0)
    return rc;
  if (*p == '\0' || (p[0] == '/' && p[strspn(p, "/")] == '\0'))
    return 0;
  const char *p2p;
  size_t p2l = ma_next(&p, &p2p);
  const char *id;
  size_t idl = ma_next(&p, &id);
  if (p2l != 3 || strncmp(p2p, "p2p", 3) != 0 || idl == 0 || *p != '\0') {
    set_why(why, "after /tcp/PORT only /p2p/PEER_ID may follow");
    return -EINVAL;
  }
  return 0;
}

static mesh_config_addr_check_fn addr_check;

void mesh_config_set_addr_check(mesh_config_addr_check_fn fn)
{
  addr_check = fn;
}

int mesh_config_check_addr(const char *s, const char **why)
{
  if (s == NULL || *s == '\0') {
    set_why(why, "empty address");
    return -EINVAL;
  }
  if (addr_check != NULL) {
    const char *w = NULL;
    if (addr_check(s, &w) != 0) {
      set_why(why, w != NULL ? w : "malformed address");
      return -EINVAL;
    }
    return 0;
  }
  if (s[0] == '/')
    return check_multiaddr(s, why);
  const char *colon = strrchr(s, ':');
  if (colon == NULL) {
    set_why(why, "expected host:port or a multiaddr");
    return -EINVAL;
  }
  const char *host = s;
  size_t hl = (size_t)(colon - s);
  if (s[0] == '[') {
    if (hl < 2 || s[hl - 1] != ']') {
      set_why(why, "expected [v6-address]:port");
      return -EINVAL;
    }
    host = s + 1;
    hl -= 2;
  } else if (memchr(s, ':', hl) != NULL) {
    set_why(why, "IPv6 addresses need brackets: [::1]:port");
    return -EINVAL;
  }
  int rc = check_host(host, hl, why);
  if (rc != 0)
    return rc;
  return check_port(colon + 1, strlen(colon + 1), why);
}

void mesh_config_format_duration(uint64_t ms, char *buf, size_t len)
{
  if (ms == 0) {
    snprintf(buf, len, "0");
    return;
  }
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 4; i >= 0 && ms > 0; i--) {
    uint64_t f = duration_units[i].factor;
    if (ms >= f) {
      int n = snprintf(buf + used, len - used, "%llu%s", (unsigned long long)(ms / f),
                       duration_units[i].name);
      if (n < 0 || (size_t)n >= len - used)
        return;
      used += (size_t)n;
      ms %= f;
    }
  }
}

void mesh_config_format_size(uint64_t bytes, char *buf, size_t len)
{
  static const char *const names[] = {"TiB", "GiB", "MiB", "KiB"};
  static const int shifts[] = {40, 30, 20, 10};
  for (int i = 0; i < 4; i++) {
    uint64_t f = 1ull << shifts[i];
    if (bytes != 0 && bytes % f == 0) {
      snprintf(buf, len, "%llu%s", (unsigned long long)(bytes / f), names[i]);
      return;
    }
  }
  snprintf(buf, len, "%llu", (unsigned long long)bytes);
}
