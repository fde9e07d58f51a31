/*
 * The disk executor: the only code that turns a model ID into a path and
 * touches the models directory for the coordinator.
 *
 * A model ID is validated (coord/model_id.h), on every node, whatever a peer
 * sends, before it becomes a path. The model's directory is one path
 * component directly under the models directory.
 *
 * Deletes are done relative to a descriptor of the models directory with
 * openat/unlinkat and O_NOFOLLOW: a symbolic link anywhere in the tree is
 * removed as a link, its target is never visited, and nothing outside the
 * models directory can be reached. A directory that is not there is a
 * success (deletes are idempotent). Work per delete call is bounded by a
 * budget of directory entries and by time (MESH_DISKEXEC_DEFAULT_SLICE_MS);
 * a call that runs out of either returns -EAGAIN and the next call continues
 * where it stopped (what was removed is gone), so one call is one short
 * slice of a big tree. Inspections go in slices the same way (a scan keeps
 * its place between calls).
 *
 * Ownership: a delete acts only on a directory meshd made. When the download
 * client creates a model directory it writes MESH_DISKEXEC_MARKER into it (a
 * regular file; mesh_diskexec_marker_text gives its content, which names the
 * node and the model); a directory that predates this rule is adopted when
 * the store's record says the node made it (mesh_diskexec_adopt). A delete
 * of a directory without the marker removes nothing and returns -EPERM; the
 * marker is the last thing a delete removes before the directory itself, so
 * a delete cut short in any slice still finds it.
 *
 * Threads: every call blocks on the file system, so the daemon makes them
 * from work items of its pool (src/base/pool.h), never on the event loop.
 * Calls on one mesh_diskexec may run on several workers at once: the only
 * shared state is the models directory descriptor (read-only) and the
 * settings, which are set before any work is submitted. Deletes and
 * inspections of the same model directory must not overlap; the caller
 * orders them. Nothing keeps state between calls.
 */
#ifndef MESH_COORD_DISKEXEC_H
#define MESH_COORD_DISKEXEC_H

#include "coord/model_id.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Directory entries visited per delete call before it yields. */
#define MESH_DISKEXEC_DEFAULT_BUDGET 4096
/* Time a delete call may take before it yields (a slice of a big tree
 * stays short enough that a worker is soon free for a download's writes). */
#define MESH_DISKEXEC_DEFAULT_SLICE_MS 50
/* The ownership marker's name inside a model directory. */
#define MESH_DISKEXEC_MARKER ".meshd-owned"
/* The first bytes of every marker; the rest is for the operator to read. */
#define MESH_DISKEXEC_MARKER_MAGIC "meshd-owned 1\n"
/* Room for a marker's text (magic, peer ID, model ID, revision). */
#define MESH_DISKEXEC_MARKER_MAX 512
/* Deepest directory nesting a delete descends into. */
#define MESH_DISKEXEC_MAX_DEPTH 32

typedef struct mesh_diskexec mesh_diskexec;

/* Called by delete after a directory's entries were removed and before the
 * directory itself is; tests use it to make a file appear mid-delete. */
typedef void (*mesh_diskexec_hook)(void *arg, int dirfd, const char *name);

/* Opens models_dir (creating it, mode 0755, when it does not exist). */
int mesh_diskexec_open(const char *models_dir, mesh_diskexec **out);
void mesh_diskexec_close(mesh_diskexec *d);
void mesh_diskexec_set_hook(mesh_diskexec *d, mesh_diskexec_hook hook, void *arg);
/* Entry budget per delete call or scan step (default
 * MESH_DISKEXEC_DEFAULT_BUDGET). */
void mesh_diskexec_set_budget(mesh_diskexec *d, uint32_t budget);
/* Time bound per delete call or scan step in ms (default
 * MESH_DISKEXEC_DEFAULT_SLICE_MS;
 * 0: entries only). */
void mesh_diskexec_set_slice_ms(mesh_diskexec *d, uint32_t ms);

/*
 * Deletes the model directory dir_name (one path component, as given by
 * mesh_model_dir_name; anything else is -EINVAL). 0 when it is gone
 * (including when it never existed), -EPERM when it has no ownership
 * marker (nothing is removed), -EAGAIN when the entry budget or the
 * slice's time ran out and a further call is needed, or the negative errno
 * of the operation that failed (-ENOTEMPTY, -EBUSY, -EACCES, -EROFS, ...;
 * a file system's EPERM is reported as -EACCES, so that -EPERM means only
 * "not meshd's"). A model directory that is a symbolic link (models kept
 * on another disk) is checked for the marker through the link and then
 * removed as a link: its target is left alone.
 */
int mesh_diskexec_delete(mesh_diskexec *d, const char *dir_name);

/* Writes the marker's text for this node (peer ID text) and model into buf
 * (cap bytes, at least MESH_DISKEXEC_MARKER_MAX): 0 or -ENAMETOOLONG. */
int mesh_diskexec_marker_text(const char *peer_text, const char *model_id, const char *revision,
                              char *buf, size_t cap);
/* Writes the marker (text, NUL-terminated) into the open model directory
 * dirfd unless one is there: 0 (written or already there) or a negative
 * errno. Never follows a symbolic link in the marker's place. */
int mesh_diskexec_mark_fd(int dirfd, const char *text);
/* Whether the open model directory dirfd holds a valid marker: 0 yes,
 * -EPERM no (none, not a regular file, or not a marker's content), or
 * another negative errno when it could not be read. */
int mesh_diskexec_owned_fd(int dirfd);
/*
 * Marks dir_name as this node's when it exists without a marker: for a
 * directory made by a version without markers, which the store's record
 * says this node made. 0 (marked, or already marked), -ENOENT when it is
 * not there, or a negative errno.
 */
int mesh_diskexec_adopt(mesh_diskexec *d, const char *dir_name, const char *text);

/*
 * Looks at a model directory in one call: *present is true when it exists
 * as a directory, *bytes the total size of the regular files in it, and
 * *partials the number of ".partial" files found. A model directory that
 * is a symbolic link to a directory is looked at through it; links below it
 * are not followed. The whole tree is visited, however many entries it has (no
 * time bound: for tests and tools; the daemon inspects in slices with a
 * scan).
 */
int mesh_diskexec_inspect(mesh_diskexec *d, const char *dir_name, bool *present, uint64_t *bytes,
                          uint32_t *partials);

/*
 * The same inspection in slices. scan_new looks at the model directory and
 * opens it (0 and *out, or a negative errno and nothing to free); each
 * scan_step visits entries within the entry budget and the slice time, as a
 * delete call does, and returns 0 when the tree is done, -EAGAIN when more
 * is left, or the errno of an entry that could not be looked at. The
 * directories being read stay open between steps (at most
 * MESH_DISKEXEC_MAX_DEPTH descriptors), so a caller keeps few scans open at
 * once. A scan is used by one thread at a time; it may pass between threads
 * between steps.
 */
typedef struct mesh_diskexec_scan mesh_diskexec_scan;
int mesh_diskexec_scan_new(mesh_diskexec *d, const char *dir_name, mesh_diskexec_scan **out);
int mesh_diskexec_scan_step(mesh_diskexec_scan *s);
/* What the scan has found so far (all of it once a step returned 0). */
void mesh_diskexec_scan_result(const mesh_diskexec_scan *s, bool *present, uint64_t *bytes,
                               uint32_t *partials);
void mesh_diskexec_scan_free(mesh_diskexec_scan *s);

/* Bytes available to an unprivileged user on the models directory's file
 * system (statvfs f_bavail * f_frsize). */
int mesh_diskexec_free_space(mesh_diskexec *d, uint64_t *free_bytes);

#endif
