/*
 * Values as meshd's settings spell them (durations, sizes, bools,
 * integers), for the option table and for any part that reads such values
 * from elsewhere (a test fault spec) without depending on the option table.
 */
#ifndef MESH_BASE_CFG_VALUES_H
#define MESH_BASE_CFG_VALUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Value parsers, shared with callers that take values elsewhere. Each
 * returns 0 or -EINVAL (junk) / -ERANGE (overflow), and why (may be NULL)
 * receives a short static reason. */
int mesh_config_parse_duration(const char *s, uint64_t *ms, const char **why);
int mesh_config_parse_size(const char *s, uint64_t *bytes, const char **why);
int mesh_config_parse_bool(const char *s, bool *out, const char **why);
int mesh_config_parse_int(const char *s, int64_t *out, const char **why);
/* Formats ms as the shortest duration text ("1m30s", "0"); buf >= 32. */
void mesh_config_format_duration(uint64_t ms, char *buf, size_t len);
/* Formats bytes with the largest binary unit that divides it exactly. */
void mesh_config_format_size(uint64_t bytes, char *buf, size_t len);

#endif
