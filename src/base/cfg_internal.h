/*
 * The option table shared by the files of the configuration module:
 * cfg_table.c holds it, config.c loads values into a mesh_config through it,
 * cfg_doc.c prints help, the example file and the effective configuration
 * from it. Not part of the module's public interface (config.h).
 */
#ifndef MESH_BASE_CFG_INTERNAL_H
#define MESH_BASE_CFG_INTERNAL_H

#include "src/base/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum mesh_cfg_type {
  T_STRING,   /* free text; empty means unset */
  T_PATH,     /* a file or directory name, never empty */
  T_ADDR,     /* multiaddr or host:port */
  T_API,      /* host:port or unix:PATH */
  T_URL,      /* http:// or https:// URL */
  T_LIST,     /* list of addresses */
  T_BOOL,     /* true/false; a flag given alone is true */
  T_INT,      /* int within [min, max] */
  T_DURATION, /* milliseconds within [min, max] */
  T_SIZE,     /* bytes within [min, max] */
  T_ENUM,     /* one of choices, stored as int */
} mesh_cfg_type;

struct mesh_cfg_opt {
  const char *name;           /* flag without "--"; env and INI names derive from it */
  mesh_cfg_type type;         /* how the value is parsed */
  size_t off;                 /* offset of the field in mesh_config */
  const char *def;            /* default text, parsed as a value; NULL = unset or derived */
  const char *def_doc;        /* how help shows a derived default (NULL: def) */
  uint64_t min, max;          /* bounds for T_INT, T_DURATION, T_SIZE */
  const char *const *choices; /* T_ENUM names, in enum order, NULL-terminated */
  const char *metavar;        /* placeholder in help */
  const char *help;           /* one sentence */
  bool no_file;               /* may not be set in the INI file */
  bool secret;                /* never printed (tokens) */
  /* T_LIST: checks one item (0 or -EINVAL with why); NULL: an address. */
  int (*check_item)(const char *item, const char **why);
};

/* A --accept-commands-from item: "any-member", "none" or what may be a
 * peer ID (its letters and length; the daemon parses it). */
int mesh_cfg_check_accept_item(const char *item, const char **why);

/* The option table, in the order of mesh_config's source[] array. */
extern const struct mesh_cfg_opt mesh_cfg_opts[];
extern const size_t mesh_cfg_nopts;

/* Longest option name plus prefixes and NUL. */
#define MESH_CFG_NAME_MAX 64

/* "MESH_PROBE_INTERVAL" for "probe-interval". */
void mesh_cfg_env_name(const struct mesh_cfg_opt *o, char *buf, size_t len);
/* "probe_interval" for "probe-interval". */
void mesh_cfg_ini_key(const struct mesh_cfg_opt *o, char *buf, size_t len);

#endif
