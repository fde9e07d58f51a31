/*
 * Small files that must survive a crash: the key file, the epoch, the swarm
 * key. A write goes to a temp file in the same directory, which is fsynced,
 * then moved over the real name (rename) or linked to it when the real name
 * must not be overwritten (link fails with EEXIST), and finally the directory
 * is fsynced so the new name itself is durable. A crash at any point leaves
 * either the old file or the new one, never a mix; at worst a temp file is
 * left behind.
 *
 * Reads are bounded: a file larger than the caller's buffer is refused
 * before any of it is trusted.
 *
 * All calls block on disk IO. Errors are negative errno values.
 */
#ifndef MESH_IDENTITY_DURABLE_H
#define MESH_IDENTITY_DURABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/*
 * Writes data durably to path with exactly the given mode. tmp names the
 * temp file (an old one left by a crash is replaced); NULL makes a unique one
 * next to path. replace = false refuses to overwrite an existing path
 * (-EEXIST) and is atomic against a concurrent writer. On failure the temp
 * file is removed and path is unchanged.
 */
int mesh_durable_write(const char *path, const char *tmp, const void *data, size_t len, mode_t mode,
                       bool replace);

/*
 * Reads the whole regular file at path into buf. *st receives its status.
 * -EFBIG when it holds more than cap bytes, -EINVAL when it is not a regular
 * file, or the errno of the failed call (-ENOENT when missing).
 */
int mesh_durable_read(const char *path, uint8_t *buf, size_t cap, size_t *len, struct stat *st);
/* As above from an open descriptor (borrowed, not closed), whose checks the
 * caller has made (src/base/fileperm.h). */
int mesh_durable_read_fd(int fd, uint8_t *buf, size_t cap, size_t *len);

/* Formats a one-line message into err when err is not NULL (the err/errlen
 * pair every identity function that talks to users takes). */
void mesh_identity_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* fsyncs the directory that holds path. */
int mesh_durable_sync_dir(const char *path);

/*
 * Fault injection for tests, after SQLite's: the next call of the named step
 * (counting down from `after` successful ones) fails with err instead of
 * running. MESH_DURABLE_STEP_NONE switches it off.
 */
typedef enum mesh_durable_step {
  MESH_DURABLE_STEP_NONE = 0,
  MESH_DURABLE_STEP_WRITE,
  MESH_DURABLE_STEP_FSYNC,
  MESH_DURABLE_STEP_RENAME,
  MESH_DURABLE_STEP_SYNC_DIR,
} mesh_durable_step;

void mesh_durable_inject_fault(mesh_durable_step step, unsigned after, int err);

#endif
