/*
 * Collects the samples of GET /metrics and writes them in the Prometheus
 * text format (version 0.0.4): the samples of one family must be together,
 * after one "# HELP" and one "# TYPE" line, whatever order the backend adds
 * them in, so they are kept per family and written at the end. Counters and
 * gauges are one line a sample; a histogram is its cumulative _bucket lines
 * (le="+Inf" last), then _sum and _count.
 */
#include "src/daemon/api_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mesh_api_metrics_init(mesh_api_metrics *m)
{
  memset(m, 0, sizeof(*m));
}

void mesh_api_metrics_free(mesh_api_metrics *m)
{
  for (size_t i = 0; i < m->nfam; i++) {
    free(m->fam[i].name);
    free(m->fam[i].help);
    free(m->fam[i].text);
  }
  free(m->fam);
  memset(m, 0, sizeof(*m));
}

static bool valid_name(const char *s, bool colon)
{
  if (s == NULL || s[0] == '\0' || strlen(s) > 200)
    return false;
  for (size_t i = 0; s[i] != '\0'; i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok)
      return false;
  }
  return true;
}

/* Appends n bytes to f's text, within the collector's bounds. */
static int fam_append(mesh_api_metrics *m, mesh_api_family *f, const char *s, size_t n)
{
  if (m->total + n > MESH_API_METRICS_MAX_TEXT)
    return -EMSGSIZE;
  if (f->len + n + 1 > f->cap) {
    size_t cap = f->cap ? f->cap : 256;
    while (cap < f->len + n + 1)
      cap *= 2;
    char *t = realloc(f->text, cap);
    if (t == NULL)
      return -ENOMEM;
    f->text = t;
    f->cap = cap;
  }
  memcpy(f->text + f->len, s, n);
  f->len += n;
  f->text[f->len] = '\0';
  m->total += n;
  return 0;
}

/* Appends s escaped: backslash and newline always, '"' in label values. */
static int fam_append_escaped(mesh_api_metrics *m, mesh_api_family *f, const char *s, bool quote)
{
  for (size_t i = 0; s[i] != '\0'; i++) {
    int rc;
    if (s[i] == '\\')
      rc = fam_append(m, f, "\\\\", 2);
    else if (s[i] == '\n')
      rc = fam_append(m, f, "\\n", 2);
    else if (quote && s[i] == '"')
      rc = fam_append(m, f, "\\\"", 2);
    else
      rc = fam_append(m, f, &s[i], 1);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static char *escape_help(const char *help)
{
  size_t n = strlen(help);
  char *out = malloc(2 * n + 1);
  if (out == NULL)
    return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (help[i] == '\\') {
      out[o++] = '\\';
      out[o++] = '\\';
    } else if (help[i] == '\n') {
      out[o++] = '\\';
      out[o++] = 'n';
    } else {
      out[o++] = help[i];
    }
  }
  out[o] = '\0';
  return out;
}

static mesh_api_family *find_family(mesh_api_metrics *m, const char *name)
{
  for (size_t i = 0; i < m->nfam; i++) {
    if (strcmp(m->fam[i].name, name) == 0)
      return &m->fam[i];
  }
  return NULL;
}

static mesh_api_family *add_family(mesh_api_metrics *m, const char *name, mesh_api_metric_type type,
                                   const char *help)
{
  if (m->nfam == MESH_API_METRICS_MAX_FAMILIES)
    return NULL;
  if (m->nfam == m->capfam) {
    size_t cap = m->capfam ? m->capfam * 2 : 16;
    mesh_api_family *f = realloc(m->fam, cap * sizeof(*f));
    if (f == NULL)
      return NULL;
    m->fam = f;
    m->capfam = cap;
  }
  mesh_api_family *f = &m->fam[m->nfam];
  memset(f, 0, sizeof(*f));
  f->name = strdup(name);
  f->help = escape_help(help != NULL ? help : "");
  f->type = type;
  if (f->name == NULL || f->help == NULL) {
    free(f->name);
    free(f->help);
    return NULL;
  }
  m->nfam++;
  return f;
}

static void format_value(double v, char *buf, size_t len)
{
  if (isnan(v))
    snprintf(buf, len, "NaN");
  else if (isinf(v))
    snprintf(buf, len, "%s", v > 0 ? "+Inf" : "-Inf");
  else if (v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double)(long long)v)
    snprintf(buf, len, "%.0f", v);
  else
    snprintf(buf, len, "%.17g", v);
}

/* Checks a label list (NULL, or name, value pairs ending in NULL); *nl
 * receives its length. */
static bool valid_labels(const char *const *labels, size_t *nl)
{
  size_t n = 0;
  if (labels != NULL) {
    while (labels[n] != NULL)
      n++;
    if (n % 2 != 0)
      return false;
    for (size_t i = 0; i < n; i += 2)
      if (!valid_name(labels[i], false) || labels[i + 1] == NULL)
        return false;
  }
  *nl = n;
  return true;
}

/* The family name is for, made when it is new; NULL (counted) when the
 * type disagrees or there is no room. */
static mesh_api_family *family_for(mesh_api_metrics *m, const char *name, mesh_api_metric_type type,
                                   const char *help, int *rc)
{
  mesh_api_family *f = find_family(m, name);
  if (f != NULL && f->type != type) {
    *rc = -EINVAL;
    return NULL;
  }
  if (f == NULL) {
    f = add_family(m, name, type, help);
    if (f == NULL)
      *rc = -EMSGSIZE;
  }
  return f;
}

/*
 * Appends one sample line: name + suffix, the labels (nl entries) and one
 * more label (extra, extra_value) when extra is not NULL, then value. On
 * failure the caller rolls back to its mark.
 */
static int append_sample(mesh_api_metrics *m, mesh_api_family *f, const char *name,
                         const char *suffix, const char *const *labels, size_t nl,
                         const char *extra, const char *extra_value, double value)
{
  int rc = fam_append(m, f, name, strlen(name));
  if (rc == 0 && suffix != NULL)
    rc = fam_append(m, f, suffix, strlen(suffix));
  if (rc == 0 && (nl > 0 || extra != NULL)) {
    rc = fam_append(m, f, "{", 1);
    for (size_t i = 0; rc == 0 && i < nl + 2; i += 2) {
      const char *k = i < nl ? labels[i] : extra;
      const char *v = i < nl ? labels[i + 1] : extra_value;
      if (k == NULL)
        break;
      if (i > 0)
        rc = fam_append(m, f, ",", 1);
      if (rc == 0)
        rc = fam_append(m, f, k, strlen(k));
      if (rc == 0)
        rc = fam_append(m, f, "=\"", 2);
      if (rc == 0)
        rc = fam_append_escaped(m, f, v, true);
      if (rc == 0)
        rc = fam_append(m, f, "\"", 1);
    }
    if (rc == 0)
      rc = fam_append(m, f, "}", 1);
  }
  char num[64];
  format_value(value, num, sizeof(num));
  if (rc == 0)
    rc = fam_append(m, f, " ", 1);
  if (rc == 0)
    rc = fam_append(m, f, num, strlen(num));
  if (rc == 0)
    rc = fam_append(m, f, "\n", 1);
  return rc;
}

/* Undoes what was appended to f since the marks, and counts the drop. */
static int roll_back(mesh_api_metrics *m, mesh_api_family *f, size_t mark, size_t total_mark,
                     int rc)
{
  f->len = mark;
  if (f->text != NULL)
    f->text[mark] = '\0';
  m->total = total_mark;
  m->dropped++;
  return rc == -ENOMEM ? -ENOMEM : -EMSGSIZE;
}

/* A bucket bound in its shortest exact form ("0.005", not
 * "0.0050000000000000001"), as scrapers compare them as text. */
static void format_bound(double v, char *buf, size_t len)
{
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, len, "%.*g", prec, v);
    if (strtod(buf, NULL) == v)
      return;
  }
}

int mesh_api_metric(mesh_api_metrics *m, const char *name, mesh_api_metric_type type,
                    const char *help, const char *const *labels, double value)
{
  size_t nl = 0;
  if (!valid_name(name, true) || (type != MESH_API_COUNTER && type != MESH_API_GAUGE) ||
      !valid_labels(labels, &nl)) {
    m->dropped++;
    return -EINVAL;
  }
  int rc = 0;
  mesh_api_family *f = family_for(m, name, type, help, &rc);
  if (f == NULL) {
    m->dropped++;
    return rc;
  }
  /* Written in full or not at all: a failed append rolls back. */
  size_t mark = f->len;
  size_t total_mark = m->total;
  rc = append_sample(m, f, name, NULL, labels, nl, NULL, NULL, value);
  if (rc < 0)
    return roll_back(m, f, mark, total_mark, rc);
  return 0;
}

int mesh_api_histogram(mesh_api_metrics *m, const char *name, const char *help,
                       const char *const *labels, const double *bounds, const uint64_t *counts,
                       size_t n, double sum, uint64_t count)
{
  size_t nl = 0;
  bool ok = valid_name(name, true) && valid_labels(labels, &nl) && n > 0 &&
            n <= MESH_API_HISTOGRAM_MAX_BUCKETS && bounds != NULL && counts != NULL &&
            strlen(name) <= 190;
  uint64_t cum = 0;
  for (size_t i = 0; ok && i < n; i++) {
    ok = isfinite(bounds[i]) && (i == 0 || bounds[i] > bounds[i - 1]) && counts[i] <= count - cum;
    if (ok)
      cum += counts[i];
  }
  /* "le" is the histogram's own label. */
  for (size_t i = 0; ok && i < nl; i += 2)
    ok = strcmp(labels[i], "le") != 0;
  if (!ok) {
    m->dropped++;
    return -EINVAL;
  }
  int rc = 0;
  mesh_api_family *f = family_for(m, name, MESH_API_HISTOGRAM, help, &rc);
  if (f == NULL) {
    m->dropped++;
    return rc;
  }
  size_t mark = f->len;
  size_t total_mark = m->total;
  cum = 0;
  char le[64];
  for (size_t i = 0; rc == 0 && i < n; i++) {
    cum += counts[i];
    format_bound(bounds[i], le, sizeof le);
    rc = append_sample(m, f, name, "_bucket", labels, nl, "le", le, (double)cum);
  }
  if (rc == 0)
    rc = append_sample(m, f, name, "_bucket", labels, nl, "le", "+Inf", (double)count);
  if (rc == 0)
    rc = append_sample(m, f, name, "_sum", labels, nl, NULL, NULL, sum);
  if (rc == 0)
    rc = append_sample(m, f, name, "_count", labels, nl, NULL, NULL, (double)count);
  if (rc < 0)
    return roll_back(m, f, mark, total_mark, rc);
  return 0;
}

char *mesh_api_metrics_render(const mesh_api_metrics *m, size_t *len)
{
  size_t need = 1;
  for (size_t i = 0; i < m->nfam; i++)
    need += m->fam[i].len + 2 * strlen(m->fam[i].name) + strlen(m->fam[i].help) + 32;
  char *out = malloc(need);
  if (out == NULL)
    return NULL;
  size_t o = 0;
  for (size_t i = 0; i < m->nfam; i++) {
    const mesh_api_family *f = &m->fam[i];
    const char *type = f->type == MESH_API_COUNTER ? "counter"
                       : f->type == MESH_API_GAUGE ? "gauge"
                                                   : "histogram";
    int n = snprintf(out + o, need - o, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                     type);
    if (n < 0 || (size_t)n >= need - o) {
      free(out);
      return NULL;
    }
    o += (size_t)n;
    if (f->len > 0) {
      memcpy(out + o, f->text, f->len);
      o += f->len;
    }
  }
  out[o] = '\0';
  *len = o;
  return out;
}
