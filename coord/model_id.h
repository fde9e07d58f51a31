/*
 * Model IDs, revisions and the directory names made of them.
 *
 * A model ID is "org/name": exactly two non-empty parts, each of at most
 * MESH_MODEL_PART_MAX characters from [A-Za-z0-9._-], neither "." nor "..",
 * no "--" inside a part, no leading '/', no NUL. Every node checks what a
 * peer sends with these rules before it becomes a path. Pure functions: the
 * coordinator core and the executors share them.
 */
#ifndef MESH_COORD_MODEL_ID_H
#define MESH_COORD_MODEL_ID_H

#include <stddef.h>

#define MESH_MODEL_PART_MAX 96
/* "org/name" at most, plus NUL. */
#define MESH_MODEL_ID_MAX (2 * MESH_MODEL_PART_MAX + 2)
/* A model directory's name plus NUL: one path component, so at most
 * NAME_MAX (255) bytes on every supported system. */
#define MESH_MODEL_DIR_MAX 256
/* Revisions are branch names, tags or commit hashes. */
#define MESH_REVISION_MAX 64

/*
 * Checks a model ID of len bytes (not necessarily NUL-terminated; a NUL
 * inside is refused). 0 when valid, -EINVAL otherwise; reason (may be NULL)
 * receives a static description of what is wrong.
 */
int mesh_model_id_validate(const char *id, size_t len, const char **reason);
/* Checks a revision: 1..MESH_REVISION_MAX characters of [A-Za-z0-9._/-],
 * no "..", no leading '/'. 0 or -EINVAL. */
int mesh_revision_validate(const char *rev, size_t len);
/*
 * Writes the directory name of (model ID, revision) into buf: "{org}--{name}"
 * for revision "main" (or NULL), "{org}--{name}@{revision}" for any other,
 * with each '/' of the revision written as "%2F" ("refs/pr/1" gives
 * "org--name@refs%2Fpr%2F1"). 0, -EINVAL (invalid model ID or revision) or
 * -ENAMETOOLONG (longer than cap, or than one path component may be:
 * MESH_MODEL_DIR_MAX - 1 bytes).
 */
int mesh_model_dir_name(const char *id, const char *rev, char *buf, size_t cap);

/* A directory name as handed to delete or inspect: one path component of
 * the shape mesh_model_dir_name produces. 0 or -EINVAL. */
int mesh_model_dir_name_check(const char *name);

#endif
