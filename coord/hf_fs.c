/*
 * Component-by-component directory walks below a model directory.
 */
#include "coord/hf_fs.h"
#include "src/base/platform.h"
#include "coord/hf_tree.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mesh_hf_fs_open_model_dir(const char *path, bool create, int *fd)
{
  if (create && mkdir(path, 0755) != 0 && errno != EEXIST)
    return -errno;
  int d = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d < 0)
    return -errno;
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
