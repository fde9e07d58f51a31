/* Log lines to stderr or the journal, with levels and a rate limit (src/base/log.h). */
#include "src/base/log.h"

#include "src/base/clock.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static mesh_log_level g_level = MESH_LOG_INFO;
static mesh_log_format g_format = MESH_LOG_TEXT;
static uint64_t g_counts[MESH_LOG_DEBUG + 1];

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static FILE *g_out;                                      /* NULL: stderr */
static uint64_t (*g_now_ms)(void) = mesh_clock_now_ms;   /* rate limiter's clock */
static uint64_t (*g_wall_ms)(void) = mesh_clock_wall_ms; /* time stamps */

void mesh_log_set_output(FILE *f)
{
  g_out = f;
}

void mesh_log_set_clock(uint64_t (*now_ms)(void), uint64_t (*wall_ms)(void))
{
  g_now_ms = now_ms != NULL ? now_ms : mesh_clock_now_ms;
  g_wall_ms = wall_ms != NULL ? wall_ms : mesh_clock_wall_ms;
}

void mesh_log_set_level(mesh_log_level level)
{
  g_level = level;
}

mesh_log_level mesh_log_get_level(void)
{
  return g_level;
}

void mesh_log_set_format(mesh_log_format format)
{
  g_format = format;
}

int mesh_log_parse_level(const char *s, mesh_log_level *out)
{
  for (int i = 0; i <= MESH_LOG_DEBUG; i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (mesh_log_level)i;
      return 0;
    }
  }
  return -EINVAL;
}

int mesh_log_parse_format(const char *s, mesh_log_format *out)
{
  if (strcmp(s, "text") == 0)
    *out = MESH_LOG_TEXT;
  else if (strcmp(s, "json") == 0)
    *out = MESH_LOG_JSON;
  else
    return -EINVAL;
  return 0;
}

uint64_t mesh_log_count(mesh_log_level level)
{
  return level <= MESH_LOG_DEBUG ? g_counts[level] : 0;
}

/* Writes s as the body of a JSON string (quotes not included). */
static void json_escape(FILE *f, const char *s)
{
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c == '\n')
      fputs("\\n", f);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
}

static FILE *out(void)
{
  return g_out != NULL ? g_out : stderr;
}

/* Writes one formatted line; msg is the finished message text. */
static void log_emit(mesh_log_level level, const char *module, const char *func, int line,
                     const char *msg)
{
  uint64_t wall = g_wall_ms();
  time_t secs = (time_t)(wall / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char ts[32];
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);

  FILE *f = out();
  g_counts[level]++;
  if (g_format == MESH_LOG_JSON) {
    fprintf(f, "{\"time\":\"%s.%03uZ\",\"level\":\"%s\",\"module\":\"", ts, (unsigned)(wall % 1000),
            level_names[level]);
    json_escape(f, module);
    fputs("\",\"func\":\"", f);
    json_escape(f, func);
    fprintf(f, "\",\"line\":%d,\"msg\":\"", line);
    json_escape(f, msg);
    fputs("\"}\n", f);
  } else {
    fprintf(f, "%s.%03uZ %-5s %s %s:%d %s\n", ts, (unsigned)(wall % 1000), level_names[level],
            module, func, line, msg);
  }
}

__attribute__((format(printf, 5, 0))) static void log_vwrite(mesh_log_level level,
                                                             const char *module, const char *func,
                                                             int line, const char *fmt, va_list ap)
{
  char msg[1024];
  vsnprintf(msg, sizeof msg, fmt, ap);
  log_emit(level, module, func, line, msg);
}

void mesh_log_write(mesh_log_level level, const char *module, const char *func, int line,
                    const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  log_vwrite(level, module, func, line, fmt, ap);
  va_end(ap);
}

void mesh_log_write_rl(mesh_log_rl *rl, mesh_log_level level, const char *module, const char *func,
                       int line, const char *fmt, ...)
{
  uint64_t now = g_now_ms();
  /* A new window starts at the first line after the old one ended; the
   * summary of what the old window dropped is written then. */
  if (!rl->started || now - rl->window_start_ms >= MESH_LOG_RL_WINDOW_MS) {
    if (rl->suppressed > 0) {
      char msg[64];
      snprintf(msg, sizeof msg, "%u similar lines suppressed", (unsigned)rl->suppressed);
      log_emit(level, module, func, line, msg);
    }
    rl->started = true;
    rl->window_start_ms = now;
    rl->printed = 0;
    rl->suppressed = 0;
  }
  if (rl->printed >= MESH_LOG_RL_BURST) {
    rl->suppressed++;
    return;
  }
  rl->printed++;
  va_list ap;
  va_start(ap, fmt);
  log_vwrite(level, module, func, line, fmt, ap);
  va_end(ap);
}
