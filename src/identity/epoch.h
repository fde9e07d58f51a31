/*
 * Epochs: a 64-bit counter in $MESH_HOME/epoch that grows by one at every
 * start of the peer, made durable (write a temp file, fsync, rename, fsync the
 * directory) before the node says anything to anyone. The clock plays no
 * part, so epochs never go backward.
 *
 * File format: the decimal value followed by a newline ("42\n"). A missing
 * file means epoch 0 (the first start makes it 1). A file that is not exactly
 * that (empty, garbage, overflow) is corrupt: the start is refused with an
 * error naming the file, never silently reset, because reusing an epoch would
 * resurrect old state. A leftover temp file from a crash is removed.
 *
 * Both calls block on disk IO. Errors: -EBADMSG for a corrupt file (err
 * names the file and says why), -EOVERFLOW when the epoch cannot grow any
 * more, or the errno of the failed system call (err names the file). Two
 * processes advancing the same home at once take different epochs: advancing
 * holds a lock on $MESH_HOME/epoch.lock. When advance fails the file holds
 * either the old epoch or the new one, so an epoch is never handed out twice.
 */
#ifndef MESH_IDENTITY_EPOCH_H
#define MESH_IDENTITY_EPOCH_H

#include <stddef.h>
#include <stdint.h>

/* Reads the current epoch (0 when the file does not exist). */
int mesh_epoch_read(const char *home, uint64_t *out, char *err, size_t errlen);
/* Increments durably and returns the new epoch. The home directory must
 * exist. */
int mesh_epoch_advance(const char *home, uint64_t *out, char *err, size_t errlen);

#endif
