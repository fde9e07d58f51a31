/*
 * The cluster's pre-shared key, in the libp2p private-network file format:
 *
 *   /key/swarm/psk/1.0.0/
 *   /base16/            (or /base64/ or /bin/)
 *   <the key: 64 hex digits, base64 of 32 bytes, or 32 raw bytes>
 *
 * CRLF line ends are accepted. Anything but exactly 32 bytes of key is
 * refused with a message that says what was wrong.
 */
#ifndef MESH_IDENTITY_PSK_H
#define MESH_IDENTITY_PSK_H

#include <stddef.h>
#include <stdint.h>

#define MESH_PSK_LEN 32

typedef struct mesh_psk {
  uint8_t key[MESH_PSK_LEN];
} mesh_psk;

int mesh_psk_parse(const uint8_t *buf, size_t len, mesh_psk *out, char *err, size_t errlen);
/* Loads a swarm key file under the identity key's rule (src/base/fileperm.h):
 * -ELOOP for a symbolic link, -EINVAL for a non-regular file, -EACCES when
 * another user owns it or group or others have any access, -EBADMSG for bad
 * content; err names the file and the fix. */
int mesh_psk_load(const char *path, mesh_psk *out, char *err, size_t errlen);
/* Writes a new random key in the /base16/ encoding, mode 0600. Refuses to
 * overwrite an existing file (-EEXIST). */
int mesh_psk_generate_file(const char *path, char *err, size_t errlen);
/* The file text of a key in the /base16/ encoding; buf of at least 128 bytes. */
int mesh_psk_format(const mesh_psk *psk, char *buf, size_t len);

#endif
