/*
 * Files of a model directory, opened without following symlinks.
 *
 * Every path of a downloaded file comes from the Hub's file list. It is
 * checked there (mesh_hf_path_check) and is resolved here one component at a
 * time relative to the model directory's descriptor with O_NOFOLLOW, so that
 * a symlink planted inside the model directory cannot send a write elsewhere.
 * The model directory itself may be a symlink (models kept on another disk).
 *
 * These calls touch the local disk and may block (a slow or network disk);
 * they are bounded (one file or directory each) and run in work functions of
 * the pool (hf_work.c, hf_list.c), never on the event loop. They own nothing:
 * descriptors returned belong to the caller.
 */
#ifndef MESH_COORD_HF_FS_H
#define MESH_COORD_HF_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Opens (creating when asked, mode 0755) the model directory `path`; its
 * parent must exist. A directory this call creates gets the ownership
 * marker with text mark (coord/diskexec.h; NULL: no marker), so that only
 * what meshd made can later be deleted by it; an existing one gets it only
 * when adopt is set. Returns 0 with *fd set, or a negative errno (the
 * marker could not be written: nothing is opened).
 */
int mesh_hf_fs_open_model_dir(const char *path, bool create, const char *mark, bool adopt, int *fd);

/*
 * Opens the directory holding `relpath` (a checked repository path) below
 * dirfd, creating missing directories when create is set (else a missing one
 * gives -ENOENT), refusing symlinks and non-directories.
 * *parent gets a new descriptor (the caller closes it) and *leaf points into
 * relpath at the last component. Returns 0 or a negative errno.
 */
int mesh_hf_fs_open_parent(int dirfd, const char *relpath, bool create, int *parent,
                           const char **leaf);

/*
 * Starts writing back [off, off + len) of fd to disk without waiting for it
 * (src/base/platform.h), so that the fdatasync before a
 * file's rename finds little left to flush and holds a worker only briefly.
 */
void mesh_hf_fs_start_writeback(int fd, uint64_t off, uint64_t len);

#endif
