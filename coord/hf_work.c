/*
 * The work functions of a file job's items, run on the work pool's threads:
 * they touch only the item and the job's hf_disk (see hf_job.c).
 */
#include "coord/hf_internal.h"
#include "src/base/platform.h"
#include "coord/hf_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- work functions (worker threads: they touch the item and j->disk) ---- */

static void disk_close(hf_disk *d)
{
  if (d->fd >= 0)
    close(d->fd);
  if (d->pfd >= 0)
    close(d->pfd);
  d->fd = d->pfd = -1;
  if (d->hash_live)
    mesh_hf_hash_free(&d->hash);
  d->hash_live = false;
}

static void op_fail(hf_op *o, const char *step, int err)
{
  o->step = step;
  o->err = err != 0 ? err : -EIO;
}

static void work_open(hf_op *o)
{
  hf_job *j = o->j;
  hf_disk *d = &j->disk;
  const mesh_hf_file *f = j->f;
  const char *leaf = NULL;
  int rc = mesh_hf_fs_open_parent(o->dirfd, f->path, true, &d->pfd, &leaf);
  if (rc != 0) {
    op_fail(o, "cannot open its directory", rc);
    return;
  }
  struct stat st;
  if (fstatat(d->pfd, j->leaf, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISREG(st.st_mode)) {
      o->not_regular = true;
      op_fail(o, "exists and is not a regular file", -EEXIST);
      return;
    }
    if ((uint64_t)st.st_size == f->size && !o->replace) {
      /* A size proves nothing (another revision's file, a file cut and
       * refilled): it is taken only when its hash matches the list. */
      d->fd = openat(d->pfd, j->leaf, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (d->fd < 0) {
        op_fail(o, "cannot open the file in place", -errno);
        return;
      }
      rc = mesh_hf_hash_init(&d->hash, f->lfs ? MESH_HF_HASH_SHA256 : MESH_HF_HASH_GIT_BLOB,
                             f->size);
      if (rc != 0) {
        op_fail(o, "cannot start hash", rc);
        return;
      }
      d->hash_live = true;
      o->in_place = true;
      return;
    }
  }
  d->fd = openat(d->pfd, j->partial, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (d->fd < 0 || fstat(d->fd, &st) != 0) {
    op_fail(o, "cannot open the partial file", -errno);
    return;
  }
  if (!S_ISREG(st.st_mode)) {
    o->not_regular = true;
    op_fail(o, "the partial file is not a regular file", -EEXIST);
    return;
  }
  uint64_t have = (uint64_t)st.st_size;
  if (have > f->size) {
    if (ftruncate(d->fd, 0) != 0) {
      op_fail(o, "truncate", -errno);
      return;
    }
    have = 0;
  }
  rc = mesh_hf_hash_init(&d->hash, f->lfs ? MESH_HF_HASH_SHA256 : MESH_HF_HASH_GIT_BLOB, f->size);
  if (rc != 0) {
    op_fail(o, "cannot start hash", rc);
    return;
  }
  d->hash_live = true;
  d->writeback_from = have;
  o->n = have;
  if (o->ranged)
    hf_ranged_work_open(o, have);
}

/* Reads [from, to) through the job's first buffer (no write is in flight
 * while a job prehashes) and hashes it; o->n says how far it got (short when
 * the file shrank under us). */
void hf_work_prehash(hf_op *o)
{
  hf_job *j = o->j;
  hf_disk *d = &j->disk;
  unsigned char *buf = j->bufs[0].data;
  uint64_t at = o->from;
  while (at < o->to) {
    uint64_t want = o->to - at;
    size_t n = want < j->buf_cap ? (size_t)want : j->buf_cap;
    ssize_t r = pread(d->fd, buf, n, (off_t)at);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      op_fail(o, "reading the partial file", -errno);
      break;
    }
    if (r == 0)
      break;
    mesh_hf_hash_update(&d->hash, buf, (size_t)r);
    at += (uint64_t)r;
  }
  o->n = at - o->from;
}

/* Removes a ranged file's sidecar: the file is in place, or started over. */
static void ranges_unlink(hf_op *o)
{
  char name[MESH_HF_NAME_MAX + 32];
  if (!o->ranged)
    return;
  snprintf(name, sizeof name, "%s%s", o->j->partial, MESH_HF_RANGES_SUFFIX);
  unlinkat(o->j->disk.pfd, name, 0);
}

static void work_verify(hf_op *o)
{
  hf_job *j = o->j;
  hf_disk *d = &j->disk;
  const mesh_hf_file *f = j->f;
  if (d->err != 0) {
    op_fail(o, "writing", -d->err);
    goto out;
  }
  if (mesh_hf_hash_final_hex(&d->hash, o->got) != 0) {
    op_fail(o, "hashing failed", -EIO);
    goto out;
  }
  const char *want = f->lfs ? f->sha256 : f->oid;
  if (!mesh_hf_hex_equal(want, o->got)) {
    o->mismatch = true;
    unlinkat(d->pfd, j->partial, 0);
    ranges_unlink(o);
    goto out;
  }
  if (o->sync) {
    o->before_sync(o->before_sync_arg);
    int rc = mesh_fdatasync(d->fd);
    if (rc != 0) {
      op_fail(o, "sync", rc);
      goto out;
    }
  }
  if (renameat(d->pfd, j->partial, d->pfd, j->leaf) != 0)
    op_fail(o, "rename into place", -errno);
  else
    ranges_unlink(o);
out:
  disk_close(d);
}

/* The file in place was read through by PREHASH: compare its hash. It stays
 * where it is either way (a mismatch is replaced by the rename of the new
 * download). */
static void work_check(hf_op *o)
{
  hf_job *j = o->j;
  hf_disk *d = &j->disk;
  const mesh_hf_file *f = j->f;
  if (mesh_hf_hash_final_hex(&d->hash, o->got) != 0) {
    op_fail(o, "hashing failed", -EIO);
  } else {
    const char *want = f->lfs ? f->sha256 : f->oid;
    o->mismatch = !mesh_hf_hex_equal(want, o->got);
  }
  disk_close(d);
}

void hf_work_op(mesh_work *w)
{
  hf_op *o = (hf_op *)((char *)w - offsetof(hf_op, w));
  switch (o->kind) {
  case HF_OP_OPEN:
    work_open(o);
    break;
  case HF_OP_PREHASH:
    hf_work_prehash(o);
    break;
  case HF_OP_HASH:
    /* A ranged file is hashed from its first byte once it is whole. */
    if (o->from == 0 && mesh_hf_hash_reset(&o->j->disk.hash, o->j->f->size) != 0) {
      op_fail(o, "cannot start hash", -EIO);
      break;
    }
    hf_work_prehash(o);
    break;
  case HF_OP_RANGES:
    hf_ranged_work_save(o);
    break;
  case HF_OP_VERIFY:
    work_verify(o);
    break;
  case HF_OP_CHECK:
    work_check(o);
    break;
  case HF_OP_CLOSE:
    disk_close(&o->j->disk);
    break;
  }
}

bool hf_wbuf_write(hf_job *j, hf_wbuf *b)
{
  hf_disk *d = &j->disk;
  size_t off = 0;
  while (off < b->len) {
    ssize_t n = pwrite(d->fd, b->data + off, b->len - off, (off_t)(b->off + off));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      d->err = b->err = n < 0 ? errno : ENOSPC;
      return false;
    }
    off += (size_t)n;
  }
  /* A partial file removed under the download would take every further
   * byte into an inode nobody can reach (and keep its space in use until
   * the download ends): stop at the first write after the removal. */
  struct stat st;
  if (fstat(d->fd, &st) == 0 && st.st_nlink == 0) {
    d->err = b->err = ENOENT;
    return false;
  }
  return true;
}

void hf_work_write(mesh_work *w)
{
  hf_wbuf *b = (hf_wbuf *)((char *)w - offsetof(hf_wbuf, w));
  hf_job *j = b->j;
  hf_disk *d = &j->disk;
  b->err = 0;
  if (d->err != 0 || d->fd < 0)
    return; /* an earlier write failed (or the open did): the download is failing */
  if (b->restart) {
    if (ftruncate(d->fd, 0) != 0 || mesh_hf_hash_reset(&d->hash, j->f->size) != 0) {
      d->err = b->err = errno != 0 ? errno : EIO;
      return;
    }
    d->writeback_from = 0;
  }
  if (!hf_wbuf_write(j, b))
    return;
  mesh_hf_hash_update(&d->hash, b->data, b->len);
  uint64_t end = b->off + b->len;
  if (j->dl->c->opt.no_sync)
    return;
  if (end - d->writeback_from >= HF_WRITEBACK_STEP) {
    mesh_hf_fs_start_writeback(d->fd, d->writeback_from, end - d->writeback_from);
    d->writeback_from = end;
  }
}
