/* Model IDs, revisions and the directory names made of them: the rules every node applies. */
#include "coord/model_id.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

static bool safe_char(char c, bool slash_ok)
{
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return true;
  if (c == '.' || c == '_' || c == '-')
    return true;
  return slash_ok && c == '/';
}

static int check_part(const char *p, size_t n, const char **reason)
{
  if (n == 0) {
    *reason = "empty part";
    return -EINVAL;
  }
  if (n > MESH_MODEL_PART_MAX) {
    *reason = "part longer than 96 characters";
    return -EINVAL;
  }
  if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) {
    *reason = "'.' or '..' as a part";
    return -EINVAL;
  }
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\0') {
      *reason = "NUL character";
      return -EINVAL;
    }
    if (!safe_char(p[i], false)) {
      *reason = "character outside [A-Za-z0-9._-]";
      return -EINVAL;
    }
  }
  /* "a--b/c" would give the directory of "a/-b--c"-like IDs ambiguous names;
   * a "--" inside a part is refused so that the mapping is one to one. */
  for (size_t i = 0; i + 1 < n; i++) {
    if (p[i] == '-' && p[i + 1] == '-') {
      *reason = "'--' inside a part";
      return -EINVAL;
    }
  }
  return 0;
}

int mesh_model_id_validate(const char *id, size_t len, const char **reason)
{
  const char *why = NULL;
  int rc = 0;
  if (reason == NULL)
    reason = &why;
  if (id == NULL || len == 0) {
    *reason = "empty model ID";
    return -EINVAL;
  }
  if (len > MESH_MODEL_ID_MAX - 1) {
    *reason = "model ID too long";
    return -EINVAL;
  }
  if (id[0] == '/') {
    *reason = "absolute path";
    return -EINVAL;
  }
  const char *slash = memchr(id, '/', len);
  if (slash == NULL) {
    *reason = "not of the form org/name";
    return -EINVAL;
  }
  size_t org = (size_t)(slash - id);
  if (memchr(slash + 1, '/', len - org - 1) != NULL) {
    *reason = "more than two parts";
    return -EINVAL;
  }
  rc = check_part(id, org, reason);
  if (rc == 0)
    rc = check_part(slash + 1, len - org - 1, reason);
  return rc;
}

int mesh_revision_validate(const char *rev, size_t len)
{
  if (rev == NULL || len == 0 || len > MESH_REVISION_MAX || rev[0] == '/')
    return -EINVAL;
  for (size_t i = 0; i < len; i++) {
    if (!safe_char(rev[i], true))
      return -EINVAL;
    if (rev[i] == '.' && i + 1 < len && rev[i + 1] == '.')
      return -EINVAL;
  }
  return 0;
}

int mesh_model_dir_name(const char *id, const char *rev, char *buf, size_t cap)
{
  size_t len = strnlen(id, MESH_MODEL_ID_MAX);
  if (mesh_model_id_validate(id, len, NULL) != 0)
    return -EINVAL;
  /* "main" keeps the suffix-less name that every install before revisions
   * had their own directory used, so those directories stay where they are. */
  bool suffix = rev != NULL && strcmp(rev, "main") != 0;
  size_t rlen = suffix ? strnlen(rev, MESH_REVISION_MAX + 1) : 0;
  if (suffix && mesh_revision_validate(rev, rlen) != 0)
    return -EINVAL;
  const char *slash = strchr(id, '/');
  size_t org = (size_t)(slash - id);
  size_t name = len - org - 1;
  size_t need = org + 2 + name;
  if (suffix) {
    need += 1 + rlen;
    for (size_t i = 0; i < rlen; i++)
      need += rev[i] == '/' ? 2 : 0; /* "/" becomes "%2F" */
  }
  if (need + 1 > cap || need + 1 > MESH_MODEL_DIR_MAX)
    return -ENAMETOOLONG;
  size_t at = 0;
  memcpy(buf, id, org);
  at += org;
  memcpy(buf + at, "--", 2);
  at += 2;
  memcpy(buf + at, slash + 1, name);
  at += name;
  if (suffix) {
    /* Model IDs never hold '@' and revisions never hold '%', so the name is
     * one to one with (model, revision) and stays one path component. */
    buf[at++] = '@';
    for (size_t i = 0; i < rlen; i++) {
      if (rev[i] == '/') {
        memcpy(buf + at, "%2F", 3);
        at += 3;
      } else {
        buf[at++] = rev[i];
      }
    }
  }
  buf[at] = '\0';
  return 0;
}

int mesh_model_dir_name_check(const char *name)
{
  size_t n = strnlen(name, MESH_MODEL_DIR_MAX);
  if (n == 0 || n >= MESH_MODEL_DIR_MAX)
    return -EINVAL;
  if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return -EINVAL;
  for (size_t i = 0; i < n; i++) {
    if (!safe_char(name[i], false) && name[i] != '@' && name[i] != '%')
      return -EINVAL;
  }
  return 0;
}
