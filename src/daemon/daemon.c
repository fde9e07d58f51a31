#include "src/daemon/daemon_internal.h"

#include "src/base/config.h"
#include "src/base/err.h"
#include "src/base/log.h"

#include <stdio.h>
#include <string.h>

/* How long a graceful leave may take before the daemon stops anyway. */
#define LEAVE_DEADLINE_MS 3000

static void on_left(void *arg)
{
  mesh_daemon *d = arg;
  mesh_node_stop(d->node);
}

int mesh_daemon_leave(mesh_daemon *d)
{
  if (mesh_membership_leaving(d->mem))
    return -EALREADY;
  LOG_INFO("daemon", "leaving the mesh");
  int rc = mesh_membership_leave(d->mem, LEAVE_DEADLINE_MS, on_left, d);
  if (rc != 0 && rc != -EALREADY) {
    LOG_WARN("daemon", "leave failed (%s): stopping", mesh_strerror(rc));
    mesh_node_stop(d->node);
  }
  return rc;
}

/* SIGINT/SIGTERM: leave gracefully; a second signal stops at once. */
static void on_stop_signal(void *arg)
{
  mesh_daemon *d = arg;
  if (d->stopping) {
    LOG_INFO("daemon", "second stop signal: stopping now");
    mesh_node_stop(d->node);
    return;
  }
  d->stopping = true;
  if (mesh_daemon_leave(d) == -EALREADY)
    mesh_node_stop(d->node);
}

int mesh_daemon_run(const mesh_config *cfg, bool *restart)
{
  char err[512] = "";
  mesh_daemon d;
  memset(&d, 0, sizeof d);
  d.cfg = cfg;
  *restart = false;

  int rc = mesh_node_new(cfg, &d.node, err, sizeof err);
  if (rc != 0)
    goto fail;
  d.started_at = mesh_loop_now(mesh_node_loop(d.node));
  mesh_peer_id_to_text(&mesh_node_identity(d.node)->id, d.self_text, sizeof d.self_text);
  mesh_node_on_stop(d.node, on_stop_signal, &d);

  if ((rc = mesh_membership_new(d.node, cfg, &d.mem, err, sizeof err)) != 0)
    goto fail;
  if ((rc = mesh_downloads_new(d.node, d.mem, cfg, &d.dl, err, sizeof err)) != 0)
    goto fail;
  mesh_downloads_on_result(d.dl, mesh_daemon_command_result, &d);
  mesh_api_options ao = {.addr = cfg->api, .token = cfg->api_token};
  if ((rc = mesh_api_new(mesh_loop_base(mesh_node_loop(d.node)), &ao, &mesh_daemon_backend, &d,
                         &d.api, err, sizeof err)) != 0)
    goto fail;
  char api_addr[300];
  mesh_api_address(d.api, api_addr, sizeof api_addr);
  LOG_INFO("daemon", "node %s epoch %llu, control API on %s", d.self_text,
           (unsigned long long)mesh_node_epoch(d.node), api_addr);

  if ((rc = mesh_membership_start(d.mem)) != 0) {
    snprintf(err, sizeof err, "joining: %s", mesh_strerror(rc));
    goto fail;
  }
  rc = mesh_node_run_loop(d.node);
  if (rc != 0)
    LOG_ERROR("daemon", "event loop failed: %s", mesh_strerror(rc));
  *restart = mesh_membership_restart_wanted(d.mem);

  mesh_api_free(d.api);
  mesh_downloads_free(d.dl);
  mesh_membership_free(d.mem);
  mesh_node_free(d.node);
  LOG_INFO("daemon", "stopped%s", *restart ? ": starting again under a new epoch" : "");
  return rc;

fail:
  LOG_ERROR("daemon", "cannot start: %s", err[0] != '\0' ? err : mesh_strerror(rc));
  mesh_api_free(d.api);
  mesh_downloads_free(d.dl);
  mesh_membership_free(d.mem);
  mesh_node_free(d.node);
  return rc;
}
