/*
 * Component-by-component directory walks below a model directory.
 */
#include "coord/hf_fs.h"
#include "coord/diskexec.h"
#include "src/base/platform.h"
#include "coord/hf_tree.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mesh_hf_fs_open_model_dir(const char *path, bool create, const char *mark, bool adopt, int *fd)
{
  bool made = false;
  if (create) {
    if (mkdir(path, 0755) == 0)
      made = true;
    else if (errno != EEXIST)
      return -errno;
  }
  int d = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d < 0)
    return -errno;
  /* Only a directory made here (or one the store says this node made) is
   * marked: one the operator or another tool made stays theirs, and a
   * delete will leave it alone. */
  if (mark != NULL && (made || adopt)) {
    int rc = mesh_diskexec_mark_fd(d, mark);
    if (rc != 0) {
      close(d);
      /* Made here and still empty: gone again, so that the next attempt
       * makes (and marks) it afresh instead of finding it unmarked. */
      if (made)
        rmdir(path);
      return rc;
    }
  }
  *fd = d;
  return 0;
}

int mesh_hf_fs_open_parent(int dirfd, const char *relpath, bool create, int *parent,
                           const char **leaf)
{
  int cur = dup(dirfd);
  if (cur < 0)
    return -errno;
  const char *p = relpath;
  for (;;) {
    const char *slash = strchr(p, '/');
    if (slash == NULL)
      break;
    size_t n = (size_t)(slash - p);
    char name[MESH_HF_NAME_MAX + 1];
    if (n == 0 || n > MESH_HF_NAME_MAX) {
      close(cur);
      return -EINVAL;
    }
    memcpy(name, p, n);
    name[n] = '\0';
    if (create && mkdirat(cur, name, 0755) != 0 && errno != EEXIST) {
      int e = -errno;
      close(cur);
      return e;
    }
    /* O_NOFOLLOW: a symlink in place of a directory is refused (ELOOP or ENOTDIR). */
    int next = openat(cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = -errno;
    close(cur);
    if (next < 0)
      return e;
    cur = next;
    p = slash + 1;
  }
  *parent = cur;
  *leaf = p;
  return 0;
}

void mesh_hf_fs_start_writeback(int fd, uint64_t off, uint64_t len)
{
  mesh_start_writeback(fd, off, len);
}
