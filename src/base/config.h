/*
 * meshd's configuration.
 *
 * Every option is one row of a single table (config.c): its name, type,
 * default, bounds, help text, environment variable (MESH_<NAME_UPPER_SNAKE>)
 * and INI key (the name with '-' turned into '_'). Parsing of flags, the
 * environment and the INI file, `meshd --help` and `meshd config-example`
 * are all generated from that table, so they cannot disagree.
 *
 * Precedence, highest first:
 *   1. command-line flags        --probe-interval 500ms, --join A --join B
 *   2. environment variables     MESH_PROBE_INTERVAL=500ms, MESH_JOIN=A,B
 *   3. the INI file              probe_interval = 500ms (--config FILE, or
 *                                $MESH_HOME/meshd.conf when it exists)
 *   4. the built-in defaults
 * A list option set at one level replaces the whole list of the levels
 * below it; repeated flags (or repeated INI keys) at one level append.
 *
 * A bad value is an error that names the option and where the value came
 * from (the flag, the environment variable, or FILE:LINE). Unknown flags and
 * unknown INI keys are errors. Unknown MESH_* environment variables are not:
 * the environment is shared with other programs and scripts.
 *
 * Values are written:
 *   duration  200ms, 5s, 10m, 24h, 7d, or sums such as 1m30s; "0" alone
 *   size      1024, 500MB, 2GiB (B, kB/KB, MB, GB, TB decimal; KiB, MiB,
 *             GiB, TiB binary)
 *   bool      true/false, yes/no, on/off, 1/0
 *   list      comma separated in the environment and the file
 *
 * The mesh_config struct owns every string it holds; mesh_config_free
 * releases them. Nothing here blocks except reading the INI file.
 */
#ifndef MESH_BASE_CONFIG_H
#define MESH_BASE_CONFIG_H

#include "src/base/cfg_values.h"
#include "src/base/log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Named sets of membership timings (net/ fills in the numbers). */
typedef enum mesh_profile {
  MESH_PROFILE_LAN = 0,
  MESH_PROFILE_THUNDERBOLT = 1,
  MESH_PROFILE_WAN = 2,
} mesh_profile;

/* Which transport carries datagrams: auto uses RDMA where it works. */
typedef enum mesh_transport_kind {
  MESH_TRANSPORT_AUTO = 0,
  MESH_TRANSPORT_TCP = 1,
  MESH_TRANSPORT_RDMA = 2,
} mesh_transport_kind;

/* Which frame cipher a node offers (--frame-cipher; net/frame_cipher.h
 * maps it to an offer). Same order as mesh_frame_cipher_pref. */
typedef enum mesh_frame_cipher_kind {
  MESH_FRAME_CIPHER_AUTO = 0, /* the faster here first (measured at start), the other accepted */
  MESH_FRAME_CIPHER_CHACHA = 1,
  MESH_FRAME_CIPHER_AES = 2,
} mesh_frame_cipher_kind;
/* Whether datagrams may take UDP where RDMA does not carry them (--udp). */
typedef enum mesh_udp_mode {
  MESH_UDP_ON = 0,
  MESH_UDP_OFF = 1,
} mesh_udp_mode;

/* A list of strings (for example the --join addresses). */
typedef struct mesh_strlist {
  char **items; /* owned; each item owned */
  size_t len;   /* number of items */
} mesh_strlist;

/* Where the value of an option came from; higher wins. */
typedef enum mesh_config_source {
  MESH_CFG_DEFAULT = 0,
  MESH_CFG_FILE = 1,
  MESH_CFG_ENV = 2,
  MESH_CFG_FLAG = 3,
} mesh_config_source;

/* Upper bound on the number of rows of the option table. */
#define MESH_CONFIG_MAX_OPTIONS 64

/* Durations are milliseconds; sizes are bytes. 0 in a membership timing
 * means "take it from the profile". */
typedef struct mesh_config {
  char *home;              /* $MESH_HOME: key, epoch, swarm key, store, models */
  char *config_file;       /* the INI file read, or NULL when there was none */
  char *listen;            /* multiaddr or host:port to listen on */
  mesh_strlist join;       /* peers to join at start (multiaddr or host:port) */
  mesh_strlist advertise;  /* addresses peers should dial; empty: derived from listen */
  char *api;               /* control API: host:port or unix:PATH */
  char *api_token;         /* bearer token for the API; NULL when not set */
  int api_max_connections; /* control API connections open at once */
  mesh_profile profile;
  mesh_transport_kind transport;
  mesh_frame_cipher_kind frame_cipher;
  char *rdma_device;            /* verbs device name; NULL picks the first usable one */
  uint64_t rdma_poll_ms;        /* busy-poll completions this long after traffic */
  uint64_t rdma_poll_budget_ms; /* busy-polling per second at most */
  int rdma_bulk;                /* 1: model bytes to peers over RDMA where it works, 0: TCP */
  mesh_udp_mode udp;            /* datagrams over UDP where RDMA does not carry them */
  uint64_t udp_payload_max;     /* largest datagram sent over UDP; bigger ones take TCP */
  char *swarm_key;              /* path of the cluster's pre-shared key */

  /* SWIM / Lifeguard; 0 = from the profile. */
  uint64_t probe_interval_ms;
  uint64_t probe_timeout_ms;
  int suspicion_mult;
  int suspicion_max_mult;
  int indirect_checks;
  int retransmit_mult;
  uint64_t gossip_interval_ms;
  int gossip_nodes;
  uint64_t push_pull_interval_ms;
  int max_members;       /* members the view may hold, tombstones included */
  int max_introductions; /* new members one push-pull may introduce */

  uint64_t dead_member_ttl_ms; /* membership keeps a dead/left member; 0 = profile */
  uint64_t ended_epoch_ttl_ms; /* the coordinator remembers an ended (peer, epoch) */
  uint64_t gc_grace_ms;        /* before a departed owner's entries are collected */
  uint64_t docs_budget;        /* bytes of others' documents held at most */
  int docs_budget_entries;     /* entries of others' documents held at most */
  int journal_max_records;     /* journal bound by count */
  uint64_t journal_max_age_ms; /* journal bound by age */

  uint64_t max_download_bytes;       /* 0 = limited only by free space */
  char *models_dir;                  /* where models are stored */
  char *hf_endpoint;                 /* Hugging Face API base URL, no trailing slash */
  char *hf_token;                    /* NULL when not set */
  int downloads_at_once;             /* models downloading concurrently */
  int files_at_once;                 /* files per model downloading concurrently */
  int io_threads;                    /* work pool threads; 0 = sized for the machine */
  int serve_models;                  /* 1: serve completed model files to members, 0: not */
  int max_uploads;                   /* model file transfers served at once */
  bool file_lists_from_members;      /* Hub unreachable: take a member's signed file list */
  mesh_strlist accept_commands_from; /* peer IDs, "any-member" or "none" */
  int command_quota;                 /* own entries one other node's commands may make */

  int max_connections;            /* peer connections held at once */
  int member_reserve;             /* percent of max_connections kept for members of the view */
  int max_connections_per_source; /* inbound non-member connections from one address */
  uint64_t unjoined_grace_ms;     /* an authenticated peer's time to join the view */
  uint64_t frame_max;             /* largest frame accepted from a peer, bytes */
  uint64_t handshake_timeout_ms;  /* a handshake slower than this is dropped */

  mesh_log_level log_level;
  mesh_log_format log_format;

  bool show_help;    /* --help / -h was given */
  bool show_version; /* --version was given */

  /* Where each option's value came from, indexed like the option table. */
  unsigned char source[MESH_CONFIG_MAX_OPTIONS];
} mesh_config;

/* Fills cfg with the built-in defaults (no environment is read). */
void mesh_config_init(mesh_config *cfg);
void mesh_config_free(mesh_config *cfg);

/*
 * Builds the configuration from flags, environment and file, in that order
 * of precedence, over the defaults. args holds only options (no program name
 * or subcommand), nargs of them. envp is a NULL-terminated "NAME=value" array
 * (environ in meshd, a fixed array in tests); it also supplies HOME,
 * HF_ENDPOINT and HF_TOKEN. On error returns -EINVAL (bad option or value),
 * -ENOENT (--config file missing) or another negative errno from reading the
 * file, and err receives one line naming the option and the source.
 * cfg is initialised here; call mesh_config_free in every case.
 */
int mesh_config_load(mesh_config *cfg, int nargs, char *const args[], char *const envp[], char *err,
                     size_t errlen);

/*
 * Applies the INI text in buf (len bytes) at file precedence, naming it
 * `name` in messages. Used by mesh_config_load and by the fuzz target.
 * Returns 0 or -EINVAL with err set to "name:LINE: ...".
 */
int mesh_config_apply_ini(mesh_config *cfg, const char *name, const char *buf, size_t len,
                          char *err, size_t errlen);

/* Writes the option list of `meshd --help`. */
void mesh_config_print_help(FILE *f);
/* Writes a documented meshd.conf with every option at its default. */
void mesh_config_print_example(FILE *f);
/* Writes the effective configuration as INI text, each line followed by
 * where its value came from. Tokens are not printed, only whether they are
 * set. */
void mesh_config_print_effective(FILE *f, const mesh_config *cfg);

/* A listen or peer address: a multiaddr (/ip4|/ip6|/dns|/dns4|/dns6 ...
 * /tcp/PORT [/p2p/ID]) or host:port ([v6]:port). */
int mesh_config_check_addr(const char *s, const char **why);
/*
 * Replaces the address check used while the configuration is read. The
 * built-in one checks the syntax only; meshd installs the network layer's
 * multiaddr parser (net/multiaddr.h), so a value is judged at start by the
 * same code that will dial or bind it, and a bad one stops meshd with a
 * message naming the option. fn returns 0 or a negative errno with *why
 * set; NULL restores the built-in check.
 */
typedef int (*mesh_config_addr_check_fn)(const char *s, const char **why);
void mesh_config_set_addr_check(mesh_config_addr_check_fn fn);

#endif
