/*
 * Fuzzes model ID and revision validation and the directory name made from
 * a model ID and revision. Whatever passes must be a single safe path component pair: no
 * NUL, no "..", no '/' at the start, exactly one '/', and a directory name
 * with no '/' at all.
 */
#include "coord/diskexec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *s = (const char *)data;
  if (mesh_revision_validate(s, size) == 0) {
    /* A valid revision gives a directory name of one component. */
    char rev[MESH_REVISION_MAX + 1];
    memcpy(rev, s, size);
    rev[size] = '\0';
    char rdir[MESH_MODEL_DIR_MAX];
    if (mesh_model_dir_name("org/name", rev, rdir, sizeof rdir) != 0 || strchr(rdir, '/') != NULL)
      abort();
  }
  if (mesh_model_id_validate(s, size, NULL) != 0)
    return 0;
  if (size == 0 || size >= MESH_MODEL_ID_MAX || memchr(s, '\0', size) != NULL || s[0] == '/')
    abort();
  const char *slash = memchr(s, '/', size);
  if (slash == NULL || memchr(slash + 1, '/', size - (size_t)(slash - s) - 1) != NULL)
    abort();
  char id[MESH_MODEL_ID_MAX];
  memcpy(id, s, size);
  id[size] = '\0';
  /* ".." may appear inside a name ("a..b"), never as a whole part. */
  const char *name = strchr(id, '/') + 1;
  size_t org = (size_t)(name - 1 - id);
  if ((org == 1 && id[0] == '.') || (org == 2 && id[0] == '.' && id[1] == '.') ||
      strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || org == 0 || name[0] == '\0')
    abort();
  char dir[MESH_MODEL_DIR_MAX];
  if (mesh_model_dir_name(id, NULL, dir, sizeof dir) != 0)
    abort();
  if (strchr(dir, '/') != NULL || strcmp(dir, "..") == 0 || strcmp(dir, ".") == 0)
    abort();
  return 0;
}
