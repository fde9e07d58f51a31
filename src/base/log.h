/*
 * Logging.
 *
 * One line per event on stderr: wall time, level, module, function and line,
 * then the message; or one JSON object per line with --log-format json.
 * Anything a remote peer can trigger is logged through MESH_LOG_RL, which
 * prints at most MESH_LOG_RL_BURST lines per call site per
 * MESH_LOG_RL_WINDOW_MS and, at the first line after the window, one summary
 * of how many were suppressed, so
 * that a hostile or broken peer cannot fill the disk through the log.
 *
 * Protocol cores (membership, coordinator) do not log: they report through
 * counters and events, and the daemon logs what they report.
 */
#ifndef MESH_BASE_LOG_H
#define MESH_BASE_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum mesh_log_level {
  MESH_LOG_ERROR = 0,
  MESH_LOG_WARN = 1,
  MESH_LOG_INFO = 2,
  MESH_LOG_DEBUG = 3,
} mesh_log_level;

typedef enum mesh_log_format {
  MESH_LOG_TEXT = 0,
  MESH_LOG_JSON = 1,
} mesh_log_format;

/* Per-call-site state of a rate-limited log line. */
typedef struct mesh_log_rl {
  bool started;             /* a window has begun */
  uint64_t window_start_ms; /* monotonic start of the current window */
  uint32_t printed;         /* lines printed in the current window */
  uint32_t suppressed;      /* lines dropped in the current window */
} mesh_log_rl;

#define MESH_LOG_RL_BURST 5
#define MESH_LOG_RL_WINDOW_MS 10000

void mesh_log_set_level(mesh_log_level level);
/* Where lines go (stderr when f is NULL). */
void mesh_log_set_output(FILE *f);
/* The clocks the log reads: now_ms (monotonic) for rate limiting, wall_ms for
 * time stamps. NULL restores mesh_clock_now_ms / mesh_clock_wall_ms. For
 * tests, which drive the rate limiter with a virtual clock. */
void mesh_log_set_clock(uint64_t (*now_ms)(void), uint64_t (*wall_ms)(void));
mesh_log_level mesh_log_get_level(void);
void mesh_log_set_format(mesh_log_format format);
/* Parses "error", "warn", "info", "debug". Returns 0 or -EINVAL. */
int mesh_log_parse_level(const char *s, mesh_log_level *out);
/* Parses "text", "json". Returns 0 or -EINVAL. */
int mesh_log_parse_format(const char *s, mesh_log_format *out);
/* Lines written since start, by level (for /metrics). */
uint64_t mesh_log_count(mesh_log_level level);

void mesh_log_write(mesh_log_level level, const char *module, const char *func, int line,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void mesh_log_write_rl(mesh_log_rl *rl, mesh_log_level level, const char *module, const char *func,
                       int line, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#define MESH_LOG(level, module, ...)                                                               \
  do {                                                                                             \
    if ((level) <= mesh_log_get_level())                                                           \
      mesh_log_write((level), (module), __func__, __LINE__, __VA_ARGS__);                          \
  } while (0)

#define MESH_LOG_RL(level, module, ...)                                                            \
  do {                                                                                             \
    static mesh_log_rl mesh_rl_site_;                                                              \
    if ((level) <= mesh_log_get_level())                                                           \
      mesh_log_write_rl(&mesh_rl_site_, (level), (module), __func__, __LINE__, __VA_ARGS__);       \
  } while (0)

#define LOG_ERROR(module, ...) MESH_LOG(MESH_LOG_ERROR, module, __VA_ARGS__)
#define LOG_WARN(module, ...) MESH_LOG(MESH_LOG_WARN, module, __VA_ARGS__)
#define LOG_INFO(module, ...) MESH_LOG(MESH_LOG_INFO, module, __VA_ARGS__)
#define LOG_DEBUG(module, ...) MESH_LOG(MESH_LOG_DEBUG, module, __VA_ARGS__)

#endif
