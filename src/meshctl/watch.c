/*
 * `meshctl watch`: a live view of the members and downloads, redrawn in
 * place (cursor home and clear, ANSI) every interval from GET /state.
 * q or Ctrl-C quits; --once draws one frame without the escape codes and
 * --count N draws N frames, for scripts and tests.
 */
#include "src/meshctl/meshctl.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t watch_stop;

static void on_sigint(int sig)
{
  watch_stop = 1;
}

static void render_downloads(FILE *f, json_t *downloads)
{
  static const char *const heads[] = {"NODE", "MODEL", "STATUS", "PROGRESS",
                                      "SIZE", "SPEED", "ETA",    "FROM"};
  mctl_table *t = mctl_table_new(8, heads);
  const char *node;
  json_t *list;
  size_t rows = 0;
  json_object_foreach(downloads, node, list)
  {
    size_t i;
    json_t *w;
    json_array_foreach(list, i, w)
    {
      const char *wrap;
      json_t *e;
      json_object_foreach(w, wrap, e)
      {
        char peer[MCTL_PEER_SHORT + 1], bar[40], prog[64], size[64] = "-", speed[32] = "-",
                                                           eta[16] = "-", status[64];
        mctl_fmt_peer(node, peer, sizeof(peer));
        uint64_t done = (uint64_t)json_integer_value(
            json_object_get(json_object_get(e, "downloaded"), "inBytes"));
        uint64_t total =
            (uint64_t)json_integer_value(json_object_get(json_object_get(e, "total"), "inBytes"));
        mctl_fmt_bar(done, total, 20, bar, sizeof(bar));
        int pct = total > 0 ? (int)((done > total ? total : done) * 100 / total) : 0;
        snprintf(prog, sizeof(prog), "%s %3d%%", bar, pct);
        if (total > 0) {
          char d[24], tt[24];
          mctl_fmt_size(done, d, sizeof(d));
          mctl_fmt_size(total, tt, sizeof(tt));
          snprintf(size, sizeof(size), "%s / %s", d, tt);
        }
        json_t *p = json_object_get(e, "downloadProgress");
        if (p != NULL) {
          char s[24];
          mctl_fmt_size((uint64_t)json_integer_value(json_object_get(p, "speed")), s, sizeof(s));
          snprintf(speed, sizeof(speed), "%s/s", s);
          if (json_is_integer(json_object_get(p, "etaMs")))
            mctl_fmt_age((uint64_t)json_integer_value(json_object_get(p, "etaMs")), eta,
                         sizeof(eta));
        }
        const char *word = strncmp(wrap, "Download", 8) == 0 ? wrap + 8 : wrap;
        snprintf(status, sizeof(status), "%s%s", word,
                 json_is_true(json_object_get(e, "abandoned")) ? " (abandoned)" : "");
        /* Where this node's own bytes come from: the Hub and/or peers. */
        char from[64] = "-";
        json_t *src = json_object_get(e, "sources");
        if (src != NULL) {
          json_int_t hub =
              json_integer_value(json_object_get(json_object_get(src, "hub"), "inBytes"));
          size_t npeers = json_array_size(json_object_get(src, "peerIds"));
          snprintf(from, sizeof(from), "%s%s%zu peer%s", hub > 0 ? "hub" : "",
                   hub > 0 && npeers > 0 ? " + " : "", npeers, npeers == 1 ? "" : "s");
          if (npeers == 0)
            snprintf(from, sizeof(from), "%s", hub > 0 ? "hub" : "-");
        }
        const char *model = json_string_value(json_object_get(e, "modelId"));
        const char *row[] = {peer, model != NULL ? model : "?", status, prog, size, speed, eta,
                             from};
        mctl_table_add(t, row);
        rows++;
      }
    }
  }
  if (rows > 0)
    mctl_table_print(t, f);
  else
    fprintf(f, "(no downloads)\n");
  mctl_table_free(t);
}

/* One frame into a memory stream; returns it (caller frees) or NULL. */
static char *render(mctl *c, json_t *state, size_t *len)
{
  char *buf = NULL;
  FILE *f = open_memstream(&buf, len);
  if (f == NULL)
    return NULL;
  time_t now = time(NULL);
  struct tm tm;
  char when[16] = "";
  if (localtime_r(&now, &tm) != NULL)
    strftime(when, sizeof(when), "%H:%M:%S", &tm);
  fprintf(f, "meshctl watch  %s  %s  (q quits)\n\n", c->api, when);
  if (state == NULL) {
    fprintf(f, "%s\n", c->errmsg);
  } else {
    json_t *self = json_object_get(state, "self");
    const char *id = json_string_value(json_object_get(self, "nodeId"));
    fprintf(f, "node %s  epoch %lld  view %zu nodes\n\nMEMBERS\n", id != NULL ? id : "?",
            (long long)json_integer_value(json_object_get(self, "epoch")),
            json_array_size(json_object_get(json_object_get(state, "topology"), "nodes")));
    mctl_print_members(f, json_object_get(state, "members"), true);
    fprintf(f, "\nDOWNLOADS\n");
    render_downloads(f, json_object_get(state, "downloads"));
  }
  if (fclose(f) != 0) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* Waits up to ms for a key; true when the watch should end. */
static bool wait_key(bool tty, int ms)
{
  struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
  int r = poll(&p, tty ? 1 : 0, ms);
  if (r <= 0)
    return watch_stop != 0;
  char ch = 0;
  ssize_t n = read(STDIN_FILENO, &ch, 1);
  return n <= 0 || ch == 'q' || ch == 'Q' || ch == 3 || watch_stop != 0;
}

int mctl_watch(mctl *c, int argc, char **argv)
{
  mctl_args a;
  int rc = mctl_parse_args(c, argc, argv, MCTL_OPT_WATCH, 0, &a);
  if (rc != MCTL_OK)
    return rc;
  double interval = a.interval > 0 ? a.interval : 1.0;
  long count = a.count;
  bool once = count == 1;
  bool tty = isatty(STDIN_FILENO) != 0;
  struct termios saved;
  bool raw = false;
  if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
    struct termios t = saved;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    raw = tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0;
  }
  struct sigaction sa = {.sa_handler = on_sigint}, old_sa;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_sa);
  watch_stop = 0;
  bool ansi = !once && !c->json;
  if (ansi)
    fputs("\x1b[?25l", c->out);
  c->quiet = true;
  rc = MCTL_OK;
  for (long frame = 0; count < 0 || frame < count; frame++) {
    if (frame > 0 && wait_key(raw, (int)(interval * 1000)))
      break;
    if (watch_stop)
      break;
    json_t *state = NULL;
    char *raw_json = NULL;
    rc = mctl_call(c, "GET", "/state", NULL, &state, &raw_json);
    if (c->json) {
      if (raw_json != NULL)
        fputs(raw_json, c->out);
      else
        fprintf(stderr, "meshctl: %s\n", c->errmsg);
    } else {
      size_t len = 0;
      char *text = render(c, state, &len);
      if (ansi)
        fputs("\x1b[H\x1b[2J", c->out);
      if (text != NULL)
        fwrite(text, 1, len, c->out);
      free(text);
    }
    fflush(c->out);
    json_decref(state);
    free(raw_json);
  }
  c->quiet = false;
  if (ansi)
    fputs("\x1b[?25h", c->out);
  fflush(c->out);
  sigaction(SIGINT, &old_sa, NULL);
  if (raw)
    tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  if (rc != MCTL_OK && !c->json)
    fprintf(stderr, "meshctl: %s\n", c->errmsg);
  return rc;
}
