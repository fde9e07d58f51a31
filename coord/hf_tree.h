/*
 * The file list of a Hugging Face model repository, and its pagination.
 *
 * The Hub answers GET {endpoint}/api/models/{repo}/tree/{revision}?recursive=true
 * with a JSON array, one object per entry, and a `Link: <URL>; rel="next"`
 * header while more pages follow. Fields read (others are ignored):
 *
 *   FIELD      TYPE     FOR         MEANING
 *   type       string   all         "file" or "directory"
 *   path       string   all         relative path inside the repository
 *   size       integer  file        content bytes (directories: ignored)
 *   oid        string   file        git blob id, 40 hex digits
 *   lfs        object   LFS files   { "oid": 64 hex digits (SHA-256),
 *                                     "size": integer equal to `size` }
 *
 * The parser is strict, because a path from this list becomes a file name on
 * disk: a wrong type, a missing field, a negative or absurd size, a path that
 * is absolute, holds "..", "." or an empty component, a NUL or a control
 * character, or ends in ".partial" (the suffix of files being downloaded),
 * refuses the whole list with -EBADMSG and a message naming the entry. A list
 * longer than its bounds gives -EMSGSIZE. Directories are checked and dropped:
 * the downloader creates them from the file paths.
 *
 * Pure functions over memory: no IO, no clock, no logging.
 */
#ifndef MESH_COORD_HF_TREE_H
#define MESH_COORD_HF_TREE_H

#include "coord/hf_verify.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest path accepted, and longest path component (NAME_MAX). */
#define MESH_HF_PATH_MAX 1024
#define MESH_HF_NAME_MAX 255
/* Path components at most: the model directory's inspection and delete
 * (coord/diskexec.c) descend MESH_DISKEXEC_MAX_DEPTH - 1 directory levels, so
 * a deeper file would be downloaded and then never counted (the model would
 * look incomplete at every start) nor deleted. */
#define MESH_HF_PATH_DEPTH_MAX 32
/* Suffix of a file being downloaded; no repository file may end with it. */
#define MESH_HF_PARTIAL_SUFFIX ".partial"

/* One file of the repository. */
typedef struct mesh_hf_file {
  char *path;                   /* owned; checked by mesh_hf_path_check */
  uint64_t size;                /* content bytes */
  bool lfs;                     /* true: checked by SHA-256, else by git blob id */
  char oid[MESH_HF_HEX_MAX];    /* git blob id (lower-case hex) */
  char sha256[MESH_HF_HEX_MAX]; /* lfs.oid (lower-case hex); "" when !lfs */
} mesh_hf_file;

/* Bounds on what a list may hold; 0 in a field takes the default. */
typedef struct mesh_hf_tree_limits {
  size_t max_entries;     /* files + directories over all pages (default 100000) */
  uint64_t max_file_size; /* one file (default 4 TiB) */
  uint64_t max_total;     /* all files together (default 64 TiB) */
} mesh_hf_tree_limits;

/* The files gathered over the pages of one list. */
typedef struct mesh_hf_tree {
  mesh_hf_file *files;  /* owned array of len */
  size_t len;           /* files */
  size_t cap;           /* allocated */
  size_t entries;       /* files and directories seen, for max_entries */
  uint64_t total_bytes; /* sum of file sizes */
} mesh_hf_tree;

void mesh_hf_tree_init(mesh_hf_tree *t);
void mesh_hf_tree_free(mesh_hf_tree *t);

/*
 * Parses one page (json, len bytes; need not be NUL-terminated) and appends
 * its files to t. Returns 0, -EBADMSG (malformed: err says which entry and
 * why), -EMSGSIZE (a bound crossed) or -ENOMEM. After an error t holds what
 * earlier pages added and should be freed.
 */
int mesh_hf_tree_parse_page(mesh_hf_tree *t, const char *json, size_t len,
                            const mesh_hf_tree_limits *lim, char *err, size_t errlen);

/*
 * Appends one file of a list that is not the Hub's (a member's manifest,
 * coord/hf_manifest.h): path of plen bytes, checked as a Hub path is; hex of
 * hex_len lower-case digits, a SHA-256 (64: checked as an LFS file) or a
 * git blob id (40). The same bounds as a page. 0, -EBADMSG, -EMSGSIZE or
 * -ENOMEM (err says why).
 */
int mesh_hf_tree_add(mesh_hf_tree *t, const char *path, size_t plen, uint64_t size, const char *hex,
                     size_t hex_len, const mesh_hf_tree_limits *lim, char *err, size_t errlen);

/*
 * Ends a list: sorts the files by path and refuses duplicates (-EBADMSG).
 */
int mesh_hf_tree_finish(mesh_hf_tree *t, char *err, size_t errlen);

/*
 * Checks a repository path of len bytes (which may hold a NUL, refused).
 * Returns 0 or -EBADMSG with *why (static text) saying what is wrong.
 */
int mesh_hf_path_check(const char *path, size_t len, const char **why);

/*
 * Finds the target of rel="next" in a Link header value (RFC 8288:
 * `<url>; rel="next", <url2>; rel="prev"`) and copies it into out.
 * Returns 0, -ENOENT (no next link), -EBADMSG (malformed) or -EMSGSIZE (the
 * URL does not fit in outlen).
 */
int mesh_hf_link_next(const char *value, char *out, size_t outlen);

#endif
