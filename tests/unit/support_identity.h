/*
 * Helpers for the identity tests (peer IDs, key files, epochs, swarm keys,
 * signed records): hex literals, scratch directories and small files.
 * Every helper fails the running test on error instead of returning it.
 */
#ifndef MESH_TESTS_SUPPORT_IDENTITY_H
#define MESH_TESTS_SUPPORT_IDENTITY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Decodes hex into out (cap bytes); returns the byte count. */
size_t ident_test_hex(const char *hex, uint8_t *out, size_t cap);

/* Makes a fresh directory under $MESH_TEST_TMP (or /tmp) and writes its
 * path into dir (cap bytes). */
void ident_test_mkdtemp(char *dir, size_t cap);
/* Removes dir and everything in it (one level of files, as the tests make). */
void ident_test_rmdir(const char *dir);

/* Joins dir and name into out. */
void ident_test_path(char *out, size_t cap, const char *dir, const char *name);

/* Writes len bytes to path with the given mode (replacing the file). */
void ident_test_write(const char *path, const void *data, size_t len, mode_t mode);
/* Reads path into buf (NUL-terminated, cap - 1 bytes at most); returns the
 * length, or -1 when the file does not exist. */
long ident_test_read(const char *path, char *buf, size_t cap);
/* Counts the entries of dir whose names start with prefix. */
int ident_test_count(const char *dir, const char *prefix);

#endif
