/*
 * The limit on open files, raised at start to what the configuration
 * needs. A job started by launchd gets 256 by default, a shell often 1024:
 * below what max-connections and the control API's cap can hold, and
 * running out makes every accept and every file open fail.
 */
#include "src/daemon/daemon_internal.h"

#include "src/base/config.h"
#include "src/base/err.h"
#include "src/base/log.h"
#include "src/base/platform.h"

/* Descriptors the node holds besides connections: stdio, the listeners,
 * the store and its journal, the loop's and the pool's wake-up pipes, DNS
 * lookups, the log. */
#define FIXED_FILES 64

uint64_t mesh_daemon_files_needed(const mesh_config *cfg)
{
  /* Each file downloading holds its file and an HTTPS connection. */
  uint64_t downloads = 2ull * (uint64_t)cfg->downloads_at_once * (uint64_t)cfg->files_at_once;
  return (uint64_t)cfg->max_connections + (uint64_t)cfg->api_max_connections + downloads +
         FIXED_FILES;
}

void mesh_daemon_raise_file_limit(const mesh_config *cfg, mesh_nofile *out)
{
  uint64_t need = mesh_daemon_files_needed(cfg);
  int rc = mesh_nofile_raise(out);
  if (rc != 0) {
    LOG_WARN("daemon", "cannot read the limit on open files: %s", mesh_strerror(rc));
    *out = (mesh_nofile){0};
    return;
  }
  if (out->soft != out->before)
    LOG_INFO(
        "daemon", "limit on open files raised from %llu to %llu (the configuration needs %llu)",
        (unsigned long long)out->before, (unsigned long long)out->soft, (unsigned long long)need);
  if (out->soft < need)
    LOG_WARN("daemon",
             "the limit on open files is %llu (hard limit %llu), below the %llu the configuration "
             "needs (max-connections %d + api-max-connections %d + %llu for downloads + %d for "
             "the store, listeners and the loop): raise the hard limit (ulimit -Hn, LimitNOFILE "
             "in the systemd unit, NumberOfFiles in the launchd plist) or lower those options; "
             "until then connections beyond the limit are refused",
             (unsigned long long)out->soft, (unsigned long long)out->hard, (unsigned long long)need,
             cfg->max_connections, cfg->api_max_connections,
             (unsigned long long)(need - (uint64_t)cfg->max_connections -
                                  (uint64_t)cfg->api_max_connections - FIXED_FILES),
             FIXED_FILES);
}
