/*
 * Strict parsing of the Hub's tree listing, path checks and Link headers.
 */
#include "coord/hf_tree.h"

#include "coord/diskexec.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

_Static_assert(MESH_HF_PATH_DEPTH_MAX <= MESH_DISKEXEC_MAX_DEPTH,
               "files listed by the Hub client must be reachable by scans and deletes");

#define DEFAULT_MAX_ENTRIES 100000
#define DEFAULT_MAX_FILE_SIZE (UINT64_C(4) << 40)
#define DEFAULT_MAX_TOTAL (UINT64_C(64) << 40)

void mesh_hf_tree_init(mesh_hf_tree *t)
{
  memset(t, 0, sizeof *t);
}

void mesh_hf_tree_free(mesh_hf_tree *t)
{
  for (size_t i = 0; i < t->len; i++)
    free(t->files[i].path);
  free(t->files);
  memset(t, 0, sizeof *t);
}

static int fail(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(int rc, char *err, size_t errlen, const char *fmt, ...)
{
  if (err != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return rc;
}

int mesh_hf_path_check(const char *path, size_t len, const char **why)
{
  const char *w = NULL;
  if (len == 0)
    w = "empty path";
  else if (len > MESH_HF_PATH_MAX)
    w = "path too long";
  else if (path[0] == '/')
    w = "absolute path";
  else if (path[len - 1] == '/')
    w = "path ends with '/'";
  if (w != NULL)
    goto bad;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)path[i];
    if (c == '\0') {
      w = "NUL in path";
      goto bad;
    }
    if (c < 0x20 || c == 0x7f) {
      w = "control character in path";
      goto bad;
    }
    if (c == '\\') {
      w = "backslash in path";
      goto bad;
    }
  }
  size_t start = 0;
  size_t depth = 0;
  while (start <= len) {
    if (++depth > MESH_HF_PATH_DEPTH_MAX) {
      w = "path nested too deep";
      goto bad;
    }
    const char *slash = memchr(path + start, '/', len - start);
    size_t end = slash != NULL ? (size_t)(slash - path) : len;
    size_t n = end - start;
    if (n == 0)
      w = "empty path component";
    else if (n == 1 && path[start] == '.')
      w = "'.' path component";
    else if (n == 2 && path[start] == '.' && path[start + 1] == '.')
      w = "'..' path component";
    else if (n > MESH_HF_NAME_MAX)
      w = "path component too long";
    if (w != NULL)
      goto bad;
    start = end + 1;
  }
  size_t sl = strlen(MESH_HF_PARTIAL_SUFFIX);
  if (len >= sl && memcmp(path + len - sl, MESH_HF_PARTIAL_SUFFIX, sl) == 0) {
    w = "path ends in " MESH_HF_PARTIAL_SUFFIX;
    goto bad;
  }
  return 0;
bad:
  if (why != NULL)
    *why = w;
  return -EBADMSG;
}

/* Copies a JSON string field into a lower-case hex digest of n digits. */
static int get_hex(json_t *obj, const char *key, size_t n, char *out)
{
  json_t *v = json_object_get(obj, key);
  if (!json_is_string(v) || json_string_length(v) != n)
    return -EBADMSG;
  const char *s = json_string_value(v);
  if (!mesh_hf_is_hex(s, n))
    return -EBADMSG;
  for (size_t i = 0; i <= n; i++)
    out[i] = (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a' : s[i]);
  return 0;
}

/* Reads a JSON integer field into a size within [0, max]. */
static int get_size(json_t *obj, const char *key, uint64_t max, uint64_t *out)
{
  json_t *v = json_object_get(obj, key);
  if (!json_is_integer(v))
    return -EBADMSG;
  json_int_t n = json_integer_value(v);
  if (n < 0 || (uint64_t)n > max)
    return -ERANGE;
  *out = (uint64_t)n;
  return 0;
}

static int push_file(mesh_hf_tree *t, const mesh_hf_file *f)
{
  if (t->len == t->cap) {
    size_t cap = t->cap != 0 ? t->cap * 2 : 16;
    mesh_hf_file *n = realloc(t->files, cap * sizeof *n);
    if (n == NULL)
      return -ENOMEM;
    t->files = n;
    t->cap = cap;
  }
  t->files[t->len++] = *f;
  return 0;
}

/* Parses entry i of a page into t. */
static int parse_entry(mesh_hf_tree *t, json_t *e, size_t i, const mesh_hf_tree_limits *lim,
                       char *err, size_t errlen)
{
  if (!json_is_object(e))
    return fail(-EBADMSG, err, errlen, "file list entry %zu is not an object", i);
  json_t *type = json_object_get(e, "type");
  json_t *path = json_object_get(e, "path");
  if (!json_is_string(type))
    return fail(-EBADMSG, err, errlen, "file list entry %zu: 'type' missing or not a string", i);
  if (!json_is_string(path))
    return fail(-EBADMSG, err, errlen, "file list entry %zu: 'path' missing or not a string", i);
  const char *p = json_string_value(path);
  size_t plen = json_string_length(path);
  const char *why = NULL;
  if (mesh_hf_path_check(p, plen, &why) != 0)
    return fail(-EBADMSG, err, errlen, "file list entry %zu: bad path: %s", i, why);

  const char *ty = json_string_value(type);
  if (strcmp(ty, "directory") == 0)
    return 0;
  if (strcmp(ty, "file") != 0)
    return fail(-EBADMSG, err, errlen, "file list entry %zu (%s): unknown type '%.32s'", i, p, ty);

  mesh_hf_file f = {0};
  int rc = get_size(e, "size", lim->max_file_size, &f.size);
  if (rc == -ERANGE)
    return fail(-EBADMSG, err, errlen, "file list entry %zu (%s): size out of range", i, p);
  if (rc != 0)
    return fail(-EBADMSG, err, errlen, "file list entry %zu (%s): 'size' missing or not an integer",
                i, p);
  if (get_hex(e, "oid", MESH_HF_SHA1_HEX_LEN, f.oid) != 0)
    return fail(-EBADMSG, err, errlen,
                "file list entry %zu (%s): 'oid' missing or not 40 hex digits", i, p);
  json_t *lfs = json_object_get(e, "lfs");
  if (lfs != NULL && !json_is_null(lfs)) {
    if (!json_is_object(lfs))
      return fail(-EBADMSG, err, errlen, "file list entry %zu (%s): 'lfs' is not an object", i, p);
    if (get_hex(lfs, "oid", MESH_HF_SHA256_HEX_LEN, f.sha256) != 0)
      return fail(-EBADMSG, err, errlen,
                  "file list entry %zu (%s): 'lfs.oid' missing or not 64 hex digits", i, p);
    uint64_t lsize = 0;
    if (get_size(lfs, "size", lim->max_file_size, &lsize) != 0)
      return fail(-EBADMSG, err, errlen,
                  "file list entry %zu (%s): 'lfs.size' missing, not an integer or out of range", i,
                  p);
    if (lsize != f.size)
      return fail(-EBADMSG, err, errlen,
                  "file list entry %zu (%s): lfs.size %llu differs from size %llu", i, p,
                  (unsigned long long)lsize, (unsigned long long)f.size);
    f.lfs = true;
  }
  if (f.size > lim->max_total - t->total_bytes)
    return fail(-EMSGSIZE, err, errlen, "file list: total size over %llu bytes",
                (unsigned long long)lim->max_total);
  f.path = strndup(p, plen);
  if (f.path == NULL)
    return -ENOMEM;
  rc = push_file(t, &f);
  if (rc != 0) {
    free(f.path);
    return rc;
  }
  t->total_bytes += f.size;
  return 0;
}

/* The limits with defaults filled in. */
static mesh_hf_tree_limits limits_of(const mesh_hf_tree_limits *limits)
{
  mesh_hf_tree_limits lim = {0};
  if (limits != NULL)
    lim = *limits;
  if (lim.max_entries == 0)
    lim.max_entries = DEFAULT_MAX_ENTRIES;
  if (lim.max_file_size == 0)
    lim.max_file_size = DEFAULT_MAX_FILE_SIZE;
  if (lim.max_total == 0)
    lim.max_total = DEFAULT_MAX_TOTAL;
  return lim;
}

int mesh_hf_tree_add(mesh_hf_tree *t, const char *path, size_t plen, uint64_t size, const char *hex,
                     size_t hex_len, const mesh_hf_tree_limits *limits, char *err, size_t errlen)
{
  mesh_hf_tree_limits lim = limits_of(limits);
  const char *why = NULL;
  if (t->entries >= lim.max_entries)
    return fail(-EMSGSIZE, err, errlen, "file list: more than %zu entries", lim.max_entries);
  if (mesh_hf_path_check(path, plen, &why) != 0)
    return fail(-EBADMSG, err, errlen, "file %zu: bad path: %s", t->entries, why);
  if (size > lim.max_file_size)
    return fail(-EBADMSG, err, errlen, "file %zu: size out of range", t->entries);
  if (size > lim.max_total - t->total_bytes)
    return fail(-EMSGSIZE, err, errlen, "file list: total size over %llu bytes",
                (unsigned long long)lim.max_total);
  mesh_hf_file f = {0};
  f.size = size;
  if (hex_len != MESH_HF_SHA256_HEX_LEN && hex_len != MESH_HF_SHA1_HEX_LEN)
    return fail(-EBADMSG, err, errlen, "file %zu: a hash of neither 40 nor 64 hex digits",
                t->entries);
  f.lfs = hex_len == MESH_HF_SHA256_HEX_LEN;
  char *dst = f.lfs ? f.sha256 : f.oid;
  for (size_t i = 0; i < hex_len; i++) {
    char c = hex[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return fail(-EBADMSG, err, errlen, "file %zu: a hash that is not lower-case hex", t->entries);
    dst[i] = c;
  }
  dst[hex_len] = '\0';
  f.path = strndup(path, plen);
  if (f.path == NULL)
    return -ENOMEM;
  int rc = push_file(t, &f);
  if (rc != 0) {
    free(f.path);
    return rc;
  }
  t->entries++;
  t->total_bytes += size;
  return 0;
}

int mesh_hf_tree_parse_page(mesh_hf_tree *t, const char *json, size_t len,
                            const mesh_hf_tree_limits *limits, char *err, size_t errlen)
{
  mesh_hf_tree_limits lim = limits_of(limits);

  json_error_t jerr;
  /* Duplicate keys would let two readers see two different entries. */
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
  if (root == NULL)
    return fail(-EBADMSG, err, errlen, "file list is not JSON: %s (line %d)", jerr.text, jerr.line);
  int rc = 0;
  if (!json_is_array(root)) {
    rc = fail(-EBADMSG, err, errlen, "file list is not a JSON array");
    goto out;
  }
  size_t n = json_array_size(root);
  if (n > lim.max_entries - t->entries) {
    rc = fail(-EMSGSIZE, err, errlen, "file list: more than %zu entries", lim.max_entries);
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    rc = parse_entry(t, json_array_get(root, i), t->entries + i, &lim, err, errlen);
    if (rc != 0)
      goto out;
  }
  t->entries += n;
out:
  json_decref(root);
  return rc;
}

static int cmp_path(const void *a, const void *b)
{
  return strcmp(((const mesh_hf_file *)a)->path, ((const mesh_hf_file *)b)->path);
}

int mesh_hf_tree_finish(mesh_hf_tree *t, char *err, size_t errlen)
{
  if (t->len > 1)
    qsort(t->files, t->len, sizeof *t->files, cmp_path);
  for (size_t i = 1; i < t->len; i++)
    if (strcmp(t->files[i - 1].path, t->files[i].path) == 0)
      return fail(-EBADMSG, err, errlen, "file list: '%s' listed twice", t->files[i].path);
  return 0;
}

static const char *skip_ws(const char *s)
{
  while (*s == ' ' || *s == '\t')
    s++;
  return s;
}

/* True when the rel value (v, n bytes, unquoted) lists "next". */
static bool rel_has_next(const char *v, size_t n)
{
  size_t i = 0;
  while (i < n) {
    while (i < n && v[i] == ' ')
      i++;
    size_t s = i;
    while (i < n && v[i] != ' ')
      i++;
    if (i - s == 4 && strncasecmp(v + s, "next", 4) == 0)
      return true;
  }
  return false;
}

int mesh_hf_link_next(const char *value, char *out, size_t outlen)
{
  const char *s = value;
  for (;;) {
    s = skip_ws(s);
    while (*s == ',')
      s = skip_ws(s + 1);
    if (*s == '\0')
      return -ENOENT;
    if (*s != '<')
      return -EBADMSG;
    const char *url = s + 1;
    const char *gt = strchr(url, '>');
    if (gt == NULL)
      return -EBADMSG;
    size_t ulen = (size_t)(gt - url);
    bool next = false;
    s = gt + 1;
    /* Parameters: ; name [= value | = "quoted value"] */
    for (;;) {
      s = skip_ws(s);
      if (*s != ';')
        break;
      s = skip_ws(s + 1);
      const char *name = s;
      while (*s != '\0' && *s != '=' && *s != ';' && *s != ',' && *s != ' ')
        s++;
      size_t nlen = (size_t)(s - name);
      s = skip_ws(s);
      const char *v = s;
      size_t vlen = 0;
      if (*s == '=') {
        s = skip_ws(s + 1);
        if (*s == '"') {
          v = s + 1;
          const char *q = strchr(v, '"');
          if (q == NULL)
            return -EBADMSG;
          vlen = (size_t)(q - v);
          s = q + 1;
        } else {
          v = s;
          while (*s != '\0' && *s != ';' && *s != ',' && *s != ' ')
            s++;
          vlen = (size_t)(s - v);
        }
      }
      if (nlen == 3 && strncasecmp(name, "rel", 3) == 0 && rel_has_next(v, vlen))
        next = true;
    }
    if (*s != '\0' && *s != ',')
      return -EBADMSG;
    if (next) {
      if (ulen == 0)
        return -EBADMSG;
      if (ulen >= outlen)
        return -EMSGSIZE;
      memcpy(out, url, ulen);
      out[ulen] = '\0';
      return 0;
    }
  }
}
