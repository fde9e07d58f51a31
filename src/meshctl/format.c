/*
 * meshctl's human output: ages, sizes, shortened peer IDs, progress bars and
 * aligned tables, and the tables of members, downloads and the journal.
 */
#include "src/meshctl/meshctl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void mctl_fmt_age(uint64_t ms, char *buf, size_t len)
{
  uint64_t s = ms / 1000;
  if (s < 60)
    snprintf(buf, len, "%llus", (unsigned long long)s);
  else if (s < 3600)
    snprintf(buf, len, "%llum", (unsigned long long)(s / 60));
  else if (s < 48 * 3600)
    snprintf(buf, len, "%lluh", (unsigned long long)(s / 3600));
  else
    snprintf(buf, len, "%llud", (unsigned long long)(s / 86400));
}

void mctl_fmt_size(uint64_t bytes, char *buf, size_t len)
{
  static const char *const units[] = {"KB", "MB", "GB", "TB", "PB"};
  if (bytes < 1000) {
    snprintf(buf, len, "%llu B", (unsigned long long)bytes);
    return;
  }
  double v = (double)bytes / 1000.0;
  size_t u = 0;
  while (v >= 999.95 && u + 1 < sizeof(units) / sizeof(units[0])) {
    v /= 1000.0;
    u++;
  }
  snprintf(buf, len, "%.1f %s", v, units[u]);
}

void mctl_fmt_peer(const char *id, char *buf, size_t len)
{
  if (id == NULL)
    id = "-";
  snprintf(buf, len, "%.*s", MCTL_PEER_SHORT, id);
}

void mctl_fmt_bar(uint64_t done, uint64_t total, int width, char *buf, size_t len)
{
  if (width < 1 || len < (size_t)width + 3) {
    if (len > 0)
      buf[0] = '\0';
    return;
  }
  int fill = 0;
  if (total > 0) {
    uint64_t d = done > total ? total : done;
    fill = (int)((d * (uint64_t)width) / total);
  }
  buf[0] = '[';
  for (int i = 0; i < width; i++)
    buf[1 + i] = i < fill ? '#' : '.';
  buf[1 + width] = ']';
  buf[2 + width] = '\0';
}

struct mctl_table {
  size_t ncols;
  char **cells; /* rows * ncols, row 0 the heads; each owned */
  size_t nrows;
  size_t cap; /* rows allocated */
};

mctl_table *mctl_table_new(size_t ncols, const char *const *heads)
{
  mctl_table *t = calloc(1, sizeof(*t));
  if (t == NULL)
    return NULL;
  t->ncols = ncols;
  mctl_table_add(t, heads);
  return t;
}

void mctl_table_add(mctl_table *t, const char *const *cells)
{
  if (t == NULL)
    return;
  if (t->nrows == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    char **c = realloc(t->cells, cap * t->ncols * sizeof(*c));
    if (c == NULL)
      return;
    t->cells = c;
    t->cap = cap;
  }
  for (size_t i = 0; i < t->ncols; i++)
    t->cells[t->nrows * t->ncols + i] = strdup(cells[i] != NULL ? cells[i] : "");
  t->nrows++;
}

void mctl_table_print(const mctl_table *t, FILE *f)
{
  if (t == NULL)
    return;
  size_t w[16] = {0};
  size_t nc = t->ncols < 16 ? t->ncols : 16;
  for (size_t r = 0; r < t->nrows; r++) {
    for (size_t i = 0; i < nc; i++) {
      const char *s = t->cells[r * t->ncols + i];
      size_t n = s != NULL ? strlen(s) : 0;
      if (n > w[i])
        w[i] = n;
    }
  }
  for (size_t r = 0; r < t->nrows; r++) {
    for (size_t i = 0; i < nc; i++) {
      const char *s = t->cells[r * t->ncols + i];
      if (s == NULL)
        s = "";
      if (i + 1 == nc)
        fprintf(f, "%s\n", s);
      else
        fprintf(f, "%-*s  ", (int)w[i], s);
    }
  }
}

void mctl_table_free(mctl_table *t)
{
  if (t == NULL)
    return;
  for (size_t i = 0; i < t->nrows * t->ncols; i++)
    free(t->cells[i]);
  free(t->cells);
  free(t);
}

static uint64_t juint(json_t *o, const char *key)
{
  json_int_t v = json_integer_value(json_object_get(o, key));
  return v > 0 ? (uint64_t)v : 0;
}

static const char *jstr(json_t *o, const char *key)
{
  const char *s = json_string_value(json_object_get(o, key));
  return s != NULL ? s : "";
}

void mctl_print_members(FILE *f, json_t *members, bool brief)
{
  static const char *const heads[] = {"PEER",      "STATE", "EPOCH",  "FOR",
                                      "TRANSPORT", "INC",   "ADDRESS"};
  mctl_table *t = mctl_table_new(brief ? 5 : 7, heads);
  size_t i;
  json_t *m;
  json_array_foreach(members, i, m)
  {
    char peer[MCTL_PEER_SHORT + 4], epoch[24], inc[24], age[16];
    mctl_fmt_peer(jstr(m, "nodeId"), peer, sizeof(peer));
    if (json_is_true(json_object_get(m, "self")))
      snprintf(peer + strlen(peer), sizeof(peer) - strlen(peer), " *");
    snprintf(epoch, sizeof(epoch), "%llu", (unsigned long long)juint(m, "epoch"));
    snprintf(inc, sizeof(inc), "%llu", (unsigned long long)juint(m, "incarnation"));
    mctl_fmt_age(juint(m, "timeInStateMs"), age, sizeof(age));
    const char *tr = json_string_value(json_object_get(m, "transport"));
    json_t *addrs = json_object_get(m, "addresses");
    const char *addr = json_string_value(json_array_get(addrs, 0));
    const char *row[] = {peer, jstr(m, "state"),         epoch, age, tr != NULL ? tr : "-",
                         inc,  addr != NULL ? addr : "-"};
    mctl_table_add(t, row);
  }
  mctl_table_print(t, f);
  mctl_table_free(t);
}

/* The status word of a wrapped entry ("DownloadOngoing" -> "ongoing"). */
static const char *status_word(const char *wrap)
{
  if (strncmp(wrap, "Download", 8) == 0)
    wrap += 8;
  static char buf[32];
  size_t n = strlen(wrap);
  if (n >= sizeof(buf))
    n = sizeof(buf) - 1;
  for (size_t i = 0; i < n; i++)
    buf[i] = (char)(wrap[i] >= 'A' && wrap[i] <= 'Z' ? wrap[i] - 'A' + 'a' : wrap[i]);
  buf[n] = '\0';
  return buf;
}

void mctl_print_downloads(FILE *f, json_t *downloads)
{
  static const char *const heads[] = {"NODE",     "MODEL", "REV", "STATUS",
                                      "PROGRESS", "SPEED", "ETA", "NOTE"};
  mctl_table *t = mctl_table_new(8, heads);
  const char *node;
  json_t *list;
  json_object_foreach(downloads, node, list)
  {
    size_t i;
    json_t *wrapped;
    json_array_foreach(list, i, wrapped)
    {
      const char *wrap;
      json_t *e;
      json_object_foreach(wrapped, wrap, e)
      {
        char peer[MCTL_PEER_SHORT + 1], prog[64] = "-", speed[32] = "-", eta[32] = "-";
        char note[512] = "";
        mctl_fmt_peer(node, peer, sizeof(peer));
        uint64_t done = juint(json_object_get(e, "downloaded"), "inBytes");
        uint64_t total = juint(json_object_get(e, "total"), "inBytes");
        if (total > 0) {
          char d[24], tt[24];
          mctl_fmt_size(done, d, sizeof(d));
          mctl_fmt_size(total, tt, sizeof(tt));
          snprintf(prog, sizeof(prog), "%s / %s (%d%%)", d, tt,
                   (int)((done > total ? total : done) * 100 / total));
        }
        json_t *p = json_object_get(e, "downloadProgress");
        if (p != NULL) {
          mctl_fmt_size(juint(p, "speed"), speed, sizeof(speed) - 2);
          snprintf(speed + strlen(speed), sizeof(speed) - strlen(speed), "/s");
          json_t *etaj = json_object_get(p, "etaMs");
          if (json_is_integer(etaj))
            mctl_fmt_age((uint64_t)json_integer_value(etaj), eta, sizeof(eta));
        }
        const char *msg = json_string_value(json_object_get(e, "errorMessage"));
        if (msg != NULL)
          snprintf(note, sizeof(note), "%s", msg);
        json_t *src = json_object_get(e, "sources");
        if (src != NULL) {
          /* Where the bytes came from: "from hub 1.2 GiB, peers 3.4 GiB (ab12..., cd34...)". */
          char hb[24], pb[24];
          mctl_fmt_size(juint(json_object_get(src, "hub"), "inBytes"), hb, sizeof(hb));
          mctl_fmt_size(juint(json_object_get(src, "peers"), "inBytes"), pb, sizeof(pb));
          size_t n = strlen(note);
          snprintf(note + n, sizeof(note) - n, "%sfrom hub %s, peers %s", n ? "; " : "", hb, pb);
          size_t k;
          json_t *id;
          json_t *ids = json_object_get(src, "peerIds");
          json_array_foreach(ids, k, id)
          {
            char shortid[MCTL_PEER_SHORT + 1];
            mctl_fmt_peer(json_string_value(id), shortid, sizeof(shortid));
            n = strlen(note);
            snprintf(note + n, sizeof(note) - n, "%s%s", k == 0 ? " (" : ", ", shortid);
          }
          n = strlen(note);
          if (json_array_size(ids) > 0)
            snprintf(note + n, sizeof(note) - n, ")");
        }
        const char *list_src = json_string_value(json_object_get(e, "fileListSource"));
        if (list_src != NULL && strcmp(list_src, "hub") != 0) {
          /* The Hub was unreachable: the file list is a member's, signed by it. */
          char shortid[MCTL_PEER_SHORT + 1];
          mctl_fmt_peer(list_src, shortid, sizeof(shortid));
          size_t n = strlen(note);
          snprintf(note + n, sizeof(note) - n, "%sfile list from member %s", n ? "; " : "",
                   shortid);
        }
        if (json_is_true(json_object_get(e, "abandoned"))) {
          char in[16];
          mctl_fmt_age(juint(e, "abandonedCollectInMs"), in, sizeof(in));
          size_t n = strlen(note);
          snprintf(note + n, sizeof(note) - n, "%sabandoned, collected in %s", n ? "; " : "", in);
        }
        const char *row[] = {
            peer, jstr(e, "modelId"), jstr(e, "revision"), status_word(wrap), prog, speed, eta,
            note};
        mctl_table_add(t, row);
      }
    }
  }
  mctl_table_print(t, f);
  mctl_table_free(t);
}

void mctl_print_journal(FILE *f, json_t *entries)
{
  static const char *const heads[] = {"TIME (UTC)", "KIND", "NODE", "MODEL", "MESSAGE"};
  mctl_table *t = mctl_table_new(5, heads);
  size_t i;
  json_t *e;
  json_array_foreach(entries, i, e)
  {
    char when[32] = "-", peer[MCTL_PEER_SHORT + 1] = "-";
    time_t secs = (time_t)(json_integer_value(json_object_get(e, "time")) / 1000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) != NULL)
      strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
    const char *node = json_string_value(json_object_get(e, "nodeId"));
    if (node != NULL)
      mctl_fmt_peer(node, peer, sizeof(peer));
    const char *model = json_string_value(json_object_get(e, "modelId"));
    const char *row[] = {when, jstr(e, "kind"), peer, model != NULL ? model : "-",
                         jstr(e, "message")};
    mctl_table_add(t, row);
  }
  mctl_table_print(t, f);
  mctl_table_free(t);
}
