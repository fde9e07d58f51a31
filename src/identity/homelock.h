/*
 * One daemon per home: while a node runs, it holds an exclusive lock on
 * $MESH_HOME/meshd.lock, taken before the epoch is advanced and kept for the
 * process's whole life. A second meshd on the same home finds the lock held
 * and refuses to start, naming the lock file and the PID that holds it: two
 * daemons on one home would share one peer ID, one store and one models
 * folder under two epochs. Commands that only read the home (meshd id,
 * meshd epoch) do not take it.
 *
 *   meshd.lock
 *   OFFSET SIZE  FIELD
 *   0      1-10  the holder's PID in decimal
 *   n      1     '\n'
 *
 * The lock is flock(LOCK_EX | LOCK_NB) on a descriptor opened close-on-exec.
 * flock, not fcntl's record locks: those belong to the process and vanish
 * as soon as any descriptor of the file is closed in it, while an flock lock
 * belongs to the open file and lives until the holder closes it or exits,
 * however it exits. flock exists on Linux and macOS alike. The kernel drops
 * the lock with the process, so a file left by a crash never blocks a start;
 * the PID inside is written after the lock is taken and only serves the
 * message: the lock decides, not the file's content.
 *
 * Blocks on disk IO (open, write): call before the event loop runs.
 */
#ifndef MESH_IDENTITY_HOMELOCK_H
#define MESH_IDENTITY_HOMELOCK_H

#include <limits.h>
#include <stddef.h>

#define MESH_HOME_LOCK_FILE "meshd.lock"

typedef struct mesh_home_lock {
  int fd;              /* holds the lock; -1 when not held */
  char path[PATH_MAX]; /* the lock file */
} mesh_home_lock;

/*
 * Takes the lock of home (which must exist) and writes this process's PID
 * into it. -EBUSY when another process holds it: err says "home DIR is in
 * use by meshd PID N (lock FILE)". Other errors are those of open, flock or
 * write, with err naming the file.
 */
int mesh_home_lock_take(const char *home, mesh_home_lock *out, char *err, size_t errlen);
/* Releases the lock (the file stays). A lock not held is a no-op. */
void mesh_home_lock_release(mesh_home_lock *l);

#endif
