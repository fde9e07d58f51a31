/* The running daemon: builds a node and wires membership, downloads and the API onto it. */
#include "src/daemon/daemon_internal.h"

#include "src/base/config.h"
#include "src/base/err.h"
#include "src/base/log.h"
#include "src/identity/apitoken.h"

#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
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

/*
 * The token the API requires: --api-token when given (on any listener, as
 * the operator asked), else the contents of $MESH_HOME/api.token, made on
 * the first start, on a TCP listener. A Unix socket without --api-token
 * takes none: it is made 0600, so only meshd's user (and root)
 * can connect, the same people who can read the token file. The file is
 * made in either case so that moving the API to TCP later needs no step.
 * token (cap bytes) receives the file's token; *use is what to hand the API
 * (NULL: no token).
 */
static int api_token(const mesh_config *cfg, char *token, size_t cap, const char **use, char *err,
                     size_t errlen)
{
  *use = NULL;
  if (cfg->api_token != NULL && cfg->api_token[0] != '\0') {
    *use = cfg->api_token;
    return 0;
  }
  char path[4096];
  int n = snprintf(path, sizeof path, "%s/%s", cfg->home, MESH_APITOKEN_FILE);
  if (n < 0 || (size_t)n >= sizeof path) {
    snprintf(err, errlen, "home path too long for %s", MESH_APITOKEN_FILE);
    return -ENAMETOOLONG;
  }
  bool created = false;
  int rc = mesh_apitoken_load_or_create(path, token, cap, &created, err, errlen);
  if (rc != 0)
    return rc;
  if (created)
    LOG_INFO("daemon", "made the control API's token file %s (meshctl reads it)", path);
  bool unix_socket = cfg->api != NULL && strncmp(cfg->api, "unix:", 5) == 0;
  if (!unix_socket)
    *use = token;
  return 0;
}

/* Who keeps a connection slot before strangers (net/transport.h,
 * "Connection slots"): the members of the view, alive or suspect. */
static bool is_member(void *arg, const mesh_peer_id *peer)
{
  mesh_daemon *d = arg;
  mesh_swim_member_info mi;
  if (mesh_swim_member_find(mesh_membership_core(d->mem), peer, &mi) != 0)
    return false;
  return mi.state == MESH_SWIM_ALIVE || mi.state == MESH_SWIM_SUSPECT;
}

/* Membership is freed before the node: the net asks it nothing after. */
static void free_membership(mesh_daemon *d)
{
  if (d->node != NULL)
    mesh_net_set_member_check(mesh_node_net(d->node), NULL, NULL);
  mesh_membership_free(d->mem);
  d->mem = NULL;
}

int mesh_daemon_run(const mesh_config *cfg, char *err, size_t errlen)
{
  mesh_daemon d;
  memset(&d, 0, sizeof d);
  d.cfg = cfg;
  err[0] = '\0';

  /* Before any socket or file is opened. */
  mesh_daemon_raise_file_limit(cfg, &d.nofile);
  int rc = mesh_test_faults_read(&d.faults, err, errlen);
  if (rc != 0)
    goto fail;
  if ((rc = mesh_node_new(cfg, mesh_test_faults_node_hooks(d.faults), &d.node, err, errlen)) != 0)
    goto fail;
  d.started_at = mesh_loop_now(mesh_node_loop(d.node));
  mesh_peer_id_to_text(&mesh_node_identity(d.node)->id, d.self_text, sizeof d.self_text);
  mesh_node_on_stop(d.node, on_stop_signal, &d);

  if ((rc = mesh_membership_new(d.node, cfg, &d.mem, err, errlen)) != 0)
    goto fail;
  mesh_membership_on_epoch_over(d.mem, mesh_daemon_epoch_over, &d);
  mesh_net_set_member_check(mesh_node_net(d.node), is_member, &d);
  if ((rc = mesh_downloads_new(d.node, d.mem, cfg, mesh_test_faults_downloads_hooks(d.faults),
                               &d.dl, err, errlen)) != 0)
    goto fail;
  mesh_downloads_on_result(d.dl, mesh_daemon_command_result, &d);
  /* The API keeps only a hash of the token; this copy goes at once. */
  char token[MESH_APITOKEN_MAX + 1] = "";
  const char *use_token = NULL;
  if ((rc = api_token(cfg, token, sizeof token, &use_token, err, errlen)) != 0)
    goto fail;
  mesh_api_options ao = {.addr = cfg->api,
                         .token = use_token,
                         .max_connections = (size_t)cfg->api_max_connections,
                         .pool = mesh_node_pool(d.node)};
  rc = mesh_api_new(mesh_loop_base(mesh_node_loop(d.node)), &ao, &mesh_daemon_backend, &d, &d.api,
                    err, errlen);
  sodium_memzero(token, sizeof token);
  if (rc != 0)
    goto fail;
  char api_addr[300];
  mesh_api_address(d.api, api_addr, sizeof api_addr);
  LOG_INFO("daemon", "node %s epoch %llu, control API on %s", d.self_text,
           (unsigned long long)mesh_node_epoch(d.node), api_addr);

  if ((rc = mesh_membership_start(d.mem)) != 0) {
    snprintf(err, errlen, "joining: %s", mesh_strerror(rc));
    goto fail;
  }
  rc = mesh_node_run_loop(d.node);
  if (rc != 0) {
    LOG_ERROR("daemon", "event loop failed: %s", mesh_strerror(rc));
    snprintf(err, errlen, "event loop failed: %s", mesh_strerror(rc));
  }
  d.shutting_down = true;
  /* A renewal still on the pool completes before the parts it would touch
   * are freed (its done sees shutting_down and announces nothing). */
  if (d.renewal.busy)
    mesh_pool_flush(mesh_node_pool(d.node));
  if (rc == 0 && d.exit_rc != 0) {
    rc = d.exit_rc;
    snprintf(err, errlen, "%s", d.exit_err);
  }
  mesh_api_free(d.api);
  mesh_downloads_free(d.dl);
  free_membership(&d);
  mesh_node_free(d.node);
  mesh_test_faults_free(d.faults);
  LOG_INFO("daemon", "stopped%s", rc != 0 ? " with an error" : "");
  return rc;

fail:
  LOG_ERROR("daemon", "cannot start: %s", err[0] != '\0' ? err : mesh_strerror(rc));
  if (err[0] == '\0')
    snprintf(err, errlen, "cannot start: %s", mesh_strerror(rc));
  d.shutting_down = true;
  if (d.node != NULL && d.renewal.busy)
    mesh_pool_flush(mesh_node_pool(d.node));
  mesh_api_free(d.api);
  mesh_downloads_free(d.dl);
  free_membership(&d);
  mesh_node_free(d.node);
  mesh_test_faults_free(d.faults);
  return rc;
}
