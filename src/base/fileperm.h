/*
 * Who may have written the files and folders meshd trusts, and the modes of
 * those it creates.
 *
 * A file that tells meshd who it is or whom to trust is used only when
 * nobody but the user running meshd could have put it there or read it, as
 * ssh does with its keys:
 *
 *   RULE      FILES                      REGULAR  NO LINK  OWNER        MODE
 *   secret    identity.key, swarm.key    yes      yes      meshd's uid  no group/other bits
 *   settings  meshd.conf (or --config)   yes      yes      meshd's uid  no group/other write
 *                                                          or root
 *
 * meshd.conf may be root's and readable by others because a packaged
 * service reads /etc/meshd/meshd.conf, installed by root, as its own user;
 * a config that sets api_token must still not be readable by others
 * (mesh_config_load checks that).
 *
 * The home holds the secrets and the epoch: it must be a folder owned by
 * meshd's user and writable by nobody else (a group- or world-writable home
 * lets another user swap the files checked above).
 *
 * Files and folders meshd creates in the home are 0600 and 0700 whatever
 * the umask: the mode is set on the descriptor after creation. Model
 * directories are the exception (see docs/operations.md, "Files").
 *
 * Every refusal comes with a one-line message naming the path and the
 * command that fixes it ("run: chmod 700 DIR"). All calls block on one or
 * two system calls. Errors are negative errno values:
 *   -ELOOP   the path is a symbolic link
 *   -EINVAL  not a regular file (-ENOTDIR: a home that is not a folder)
 *   -EACCES  another owner, or a mode that is too open
 *   the errno of a failed system call otherwise (-ENOENT when missing).
 */
#ifndef MESH_BASE_FILEPERM_H
#define MESH_BASE_FILEPERM_H

#include <stddef.h>
#include <sys/stat.h>

typedef enum mesh_file_rule {
  MESH_FILE_SECRET = 1,   /* owner-only key material */
  MESH_FILE_SETTINGS = 2, /* configuration: nobody else may write it */
} mesh_file_rule;

/*
 * Opens path read-only without following a final symbolic link and checks
 * it under rule. On success *fd (the caller's to close) and *st are set.
 * what names the file in messages ("key file", "swarm key", "config file").
 * err (may be NULL) receives the message on failure.
 */
int mesh_file_open_checked(const char *path, mesh_file_rule rule, const char *what, int *fd,
                           struct stat *st, char *err, size_t errlen);

/* Checks st (of a file opened as above) under rule. */
int mesh_file_check(const struct stat *st, const char *path, mesh_file_rule rule, const char *what,
                    char *err, size_t errlen);

/*
 * Makes the home folder when it is missing (mode exactly 0700) and checks
 * it: a folder (symbolic links to one are followed: the target is what is
 * checked), owned by meshd's user, not writable by group or others.
 */
int mesh_home_prepare(const char *home, char *err, size_t errlen);

/* Checks an existing home as mesh_home_prepare does, without creating it. */
int mesh_home_check(const char *home, char *err, size_t errlen);

/*
 * Sets the mode of a file meshd created (or owns already) to exactly mode,
 * umask or not: fchmod when fd >= 0, else chmod of path without following
 * a final link (path is then only used when it is not a link).
 */
int mesh_file_set_mode(int fd, const char *path, mode_t mode);

#endif
