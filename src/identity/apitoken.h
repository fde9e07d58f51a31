/*
 * The control API's token file, $MESH_HOME/api.token: one line, the bearer
 * token that a TCP listener of the API requires (see src/daemon/api.h). meshd
 * makes it on its first start (32 random bytes as 64 hex digits, mode 0600)
 * and reads it on every start; meshctl reads it so that it works with no
 * flags. Whoever can read the file can command the node, so meshd holds it to
 * the identity key's rule: a regular file (not a symlink) owned by the user
 * meshd runs as, readable by nobody else.
 *
 * An operator may write a token of their own into the file: one line of
 * MESH_APITOKEN_MIN to MESH_APITOKEN_MAX printable ASCII characters without
 * spaces (a trailing newline or CR is dropped).
 *
 * All calls block on disk IO (they run at start, before the event loop).
 * Errors are negative errno values with a one-line message in err.
 */
#ifndef MESH_IDENTITY_APITOKEN_H
#define MESH_IDENTITY_APITOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MESH_APITOKEN_FILE "api.token"
#define MESH_APITOKEN_MIN 16
#define MESH_APITOKEN_MAX 256

/*
 * meshd's side: reads the token at path into out (cap bytes, at least
 * MESH_APITOKEN_MAX + 1), making the file first when there is none
 * (*created is then true; two starts racing agree on one file). Refuses a
 * symlink (-ELOOP), anything but a regular file (-EINVAL), a file owned by
 * another user or readable or writable by group or others (-EACCES, the
 * message says how to fix it) and a malformed token (-EBADMSG).
 */
int mesh_apitoken_load_or_create(const char *path, char *out, size_t cap, bool *created, char *err,
                                 size_t errlen);

/*
 * A client's side: reads the token at path into out (cap bytes). -ENOENT
 * when there is no file, -EBADMSG when it holds no well-formed token, or the
 * errno of the failed call (-EACCES: someone else's home). Ownership and mode
 * are meshd's business: it refuses to start with a file others can read.
 */
int mesh_apitoken_read(const char *path, char *out, size_t cap, char *err, size_t errlen);
/* Decodes a token file's bytes (len of buf): one line of MESH_APITOKEN_MIN
 * to MESH_APITOKEN_MAX printable ASCII characters, no spaces, an end of
 * line allowed. The token goes to out (cap bytes, NUL-terminated). path
 * only names the file in err. 0, or -EBADMSG. */
int mesh_apitoken_parse(const char *path, const uint8_t *buf, size_t len, char *out, size_t cap,
                        char *err, size_t errlen);

#endif
