/*
 * Error convention of meshd.
 *
 * Every function that can fail returns 0 on success or a negative errno value,
 * and hands results out through pointers (libuv's convention). Libraries with
 * other conventions (libibverbs, SQLite, libcurl) are wrapped so that callers
 * only ever see this one. mesh_strerror() turns a code into a message.
 *
 * errno values carry meshd's meanings as follows, so that a caller can branch
 * on them without a second enum:
 *   -EBADMSG      malformed input (bad encoding, bad length, bad field)
 *   -MESH_EAUTH   a signature or authentication tag did not verify
 *   -ESTALE       a record of an old epoch, or an older version
 *   -EMSGSIZE     input larger than its bound
 *   -EPERM        a peer tried to speak for another
 *   -EACCES       a file's permissions are unsafe, or access is refused
 */
#ifndef MESH_BASE_ERR_H
#define MESH_BASE_ERR_H

#include <errno.h>

/* The code for "a signature or authentication tag did not verify": Linux's
 * EKEYREJECTED, or on macOS, which has no such errno, BSD's EAUTH
 * ("authentication error"). Tested by the errno macro itself, so that the
 * choice follows the C library rather than a list of platforms. */
#ifdef EKEYREJECTED
#define MESH_EAUTH EKEYREJECTED
#else
#define MESH_EAUTH EAUTH
#endif

/* A message for a code as returned by any mesh_ function (negative errno). */
const char *mesh_strerror(int err);

#endif
