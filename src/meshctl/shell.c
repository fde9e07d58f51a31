/*
 * The interactive shell: libedit for line editing, history kept in
 * $MESH_HOME/meshctl_history (saved after every line, so a killed shell
 * loses nothing), tab completion of command names and of peer IDs (fetched
 * from /members at each completion, so they are current).
 */
#include "src/meshctl/meshctl.h"

#include <errno.h>
#include <histedit.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wchar.h>

static const char *prompt(EditLine *el)
{
  return "meshctl> ";
}

/* Candidates that start with word[0..wlen), into a NULL-terminated array
 * (caller frees the array, not the strings, which stay borrowed). */
static const char **filter(const char *const *all, const char *word, size_t wlen, size_t *n)
{
  size_t total = 0;
  while (all[total] != NULL)
    total++;
  const char **out = calloc(total + 1, sizeof(*out));
  *n = 0;
  if (out == NULL)
    return NULL;
  for (size_t i = 0; i < total; i++) {
    if (strncmp(all[i], word, wlen) == 0)
      out[(*n)++] = all[i];
  }
  return out;
}

static unsigned char complete(EditLine *el, int ch)
{
  mctl *c = NULL;
  el_get(el, EL_CLIENTDATA, &c);
  const LineInfo *li = el_line(el);
  const char *start = li->cursor;
  while (start > li->buffer && start[-1] != ' ')
    start--;
  size_t wlen = (size_t)(li->cursor - start);
  bool first = true;
  for (const char *p = li->buffer; p < start; p++) {
    if (*p != ' ')
      first = false;
  }
  /* The command word and the word before the cursor's. */
  char cmdword[32] = "", prev[32] = "";
  for (const char *p = li->buffer; p < start;) {
    while (p < start && *p == ' ')
      p++;
    const char *w = p;
    while (p < start && *p != ' ')
      p++;
    if (p > w) {
      snprintf(prev, sizeof(prev), "%.*s", (int)(p - w), w);
      if (cmdword[0] == '\0')
        snprintf(cmdword, sizeof(cmdword), "%s", prev);
    }
  }
  const mctl_command *cmd = mctl_find_command(cmdword);
  const char *names[64];
  char opts[8][16];
  char **ids = NULL;
  const char *const *all = names;
  size_t k = 0;
  if (first || (cmd != NULL && strcmp(cmd->name, "help") == 0)) {
    for (const mctl_command *cc = mctl_commands; cc->name != NULL && k < 60; cc++)
      names[k++] = cc->name;
    if (first)
      names[k++] = "quit";
  } else if (wlen > 0 && start[0] == '-') {
    /* The options the command's usage line names, and --json. */
    const char *u = cmd != NULL ? cmd->usage : "";
    while (*u != '\0' && k < 7) {
      size_t len = strcspn(u, " []");
      if (len > 1 && u[0] == '-' && len < sizeof(opts[0])) {
        snprintf(opts[k], sizeof(opts[k]), "%.*s", (int)len, u);
        names[k] = opts[k];
        k++;
      }
      u += len > 0 ? len : 1;
    }
    names[k++] = "--json";
  } else {
    /* After --node, or anything that looks like a peer ID: peer IDs; the
     * argument of download, delete and cancel: the models the mesh has. */
    bool models = strcmp(prev, "--node") != 0 && cmd != NULL &&
                  (strcmp(cmd->name, "download") == 0 || strcmp(cmd->name, "delete") == 0 ||
                   strcmp(cmd->name, "cancel") == 0) &&
                  !(wlen > 0 && start[0] >= '0' && start[0] <= '9');
    c->quiet = true;
    int rc = models ? mctl_model_ids(c, &ids) : mctl_peer_ids(c, &ids);
    c->quiet = false;
    if (rc != MCTL_OK)
      return CC_REFRESH_BEEP;
    all = (const char *const *)ids;
  }
  if (all == names)
    names[k] = NULL;
  size_t n = 0;
  const char **m = filter(all, start, wlen, &n);
  unsigned char ret = CC_REFRESH;
  if (m == NULL || n == 0) {
    ret = CC_REFRESH_BEEP;
  } else if (n == 1) {
    char buf[256];
    snprintf(buf, sizeof(buf), "%s ", m[0] + wlen);
    el_insertstr(el, buf);
  } else {
    size_t lcp = strlen(m[0]);
    for (size_t i = 1; i < n; i++) {
      size_t same = 0;
      while (same < lcp && m[i][same] == m[0][same])
        same++;
      lcp = same;
    }
    if (lcp > wlen) {
      char buf[256];
      snprintf(buf, sizeof(buf), "%.*s", (int)(lcp - wlen), m[0] + wlen);
      el_insertstr(el, buf);
    } else {
      fputc('\n', stdout);
      for (size_t i = 0; i < n; i++)
        fprintf(stdout, "%s\n", m[i]);
      ret = CC_REDISPLAY;
    }
  }
  free(m);
  mctl_free_strv(ids);
  return ret;
}

/* $MESH_HOME/meshctl_history; the folder is made (0700) when missing. */
static char *history_path(const mctl *c)
{
  if (c->home == NULL)
    return NULL;
  if (mkdir(c->home, 0700) < 0 && errno != EEXIST)
    return NULL;
  size_t n = strlen(c->home) + sizeof("/meshctl_history");
  char *p = malloc(n);
  if (p != NULL)
    snprintf(p, n, "%s/meshctl_history", c->home);
  return p;
}

int mctl_shell(mctl *c)
{
  EditLine *el = el_init("meshctl", stdin, stdout, stderr);
  History *hist = history_init();
  Tokenizer *tok = tok_init(NULL);
  if (el == NULL || hist == NULL || tok == NULL) {
    fprintf(stderr, "meshctl: cannot start the line editor\n");
    if (el != NULL)
      el_end(el);
    if (hist != NULL)
      history_end(hist);
    if (tok != NULL)
      tok_end(tok);
    return MCTL_API_ERROR;
  }
  HistEvent ev;
  history(hist, &ev, H_SETSIZE, 1000);
  history(hist, &ev, H_SETUNIQUE, 1);
  char *hpath = history_path(c);
  if (hpath != NULL)
    history(hist, &ev, H_LOAD, hpath);
  el_set(el, EL_EDITOR, "emacs");
  el_set(el, EL_PROMPT, prompt);
  el_set(el, EL_HIST, history, hist);
  el_set(el, EL_CLIENTDATA, c);
  /* The wide form: the narrow one copies the name and help and never
   * frees them. */
  el_wset(el, EL_ADDFN, L"meshctl-complete", L"complete a command or a peer ID", complete);
  el_set(el, EL_BIND, "^I", "meshctl-complete", NULL);
  bool json = c->json;
  for (;;) {
    int count = 0;
    const char *line = el_gets(el, &count);
    if (line == NULL || count <= 0) {
      fputc('\n', stdout);
      break;
    }
    int targc = 0;
    const char **targv = NULL;
    tok_reset(tok);
    if (tok_str(tok, line, &targc, &targv) != 0) {
      fprintf(stderr, "meshctl: unbalanced quotes\n");
      continue;
    }
    if (targc == 0)
      continue;
    /* History holds the line as typed, without its newline. */
    char *entry = strdup(line);
    if (entry != NULL) {
      size_t n = strlen(entry);
      while (n > 0 && (entry[n - 1] == '\n' || entry[n - 1] == ' '))
        entry[--n] = '\0';
      history(hist, &ev, H_ENTER, entry);
      free(entry);
    }
    if (hpath != NULL && history(hist, &ev, H_SAVE, hpath) >= 0)
      chmod(hpath, 0600);
    if (strcmp(targv[0], "quit") == 0 || strcmp(targv[0], "exit") == 0)
      break;
    char **args = calloc((size_t)targc + 1, sizeof(*args));
    if (args == NULL)
      break;
    for (int i = 0; i < targc; i++)
      args[i] = (char *)targv[i];
    c->json = json;
    mctl_run(c, targc, args);
    fflush(c->out);
    free(args);
  }
  free(hpath);
  tok_end(tok);
  history_end(hist);
  el_end(el);
  return MCTL_OK;
}
