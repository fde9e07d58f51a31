/*
 * meshd: the mesh peer program.
 *
 *   meshd [run] [OPTIONS]     run the node (src/daemon/node.h)
 *   meshd id | epoch | keygen-psk | config-example | config-show
 *   meshd --help | --version
 *
 * Exit status: 0 on success, 1 on a failure, 2 on a usage error (unknown
 * command or option, bad option value). Errors are one line, "meshd: ...".
 */
#include "src/meshd/meshd.h"

#include "net/multiaddr.h"
#include "src/base/config.h"
#include "src/base/err.h"
#include "src/base/log.h"
#include "src/daemon/daemon.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#ifndef MESH_VERSION
#define MESH_VERSION "unknown"
#endif

extern char **environ;

static void print_usage(FILE *f)
{
  fputs("usage: meshd [run] [OPTIONS]\n"
        "       meshd id [--home DIR] [--key FILE] [--cid]\n"
        "       meshd epoch [--home DIR]\n"
        "       meshd keygen-psk [--home DIR] [--out FILE|-]\n"
        "       meshd config-example\n"
        "       meshd config-show [OPTIONS]\n"
        "       meshd --help | --version\n"
        "\n"
        "Commands:\n"
        "  run             Run the node (the default).\n"
        "  id              Print this node's peer ID, creating the key if needed;\n"
        "                  --key FILE prints the ID of a key file, --cid the CIDv1 form.\n"
        "  epoch           Print the current epoch without changing it.\n"
        "  keygen-psk      Write a new swarm key (default $MESH_HOME/swarm.key;\n"
        "                  --out - prints it). Copy it to every node of the cluster.\n"
        "  config-example  Print a documented meshd.conf with every option.\n"
        "  config-show     Print the configuration the options give, and where each\n"
        "                  value came from (flag, environment, file or default).\n"
        "\n",
        f);
  mesh_config_print_help(f);
}

/* Addresses are judged by the parser that will dial and bind them. */
static int check_addr(const char *s, const char **why)
{
  mesh_multiaddr a;
  return mesh_multiaddr_parse(s, &a, why);
}

/* Loads the configuration from argv, the environment and the file. Returns
 * -1 when it is loaded, or the exit status after printing the error. */
static int load_config(mesh_config *cfg, int argc, char **argv)
{
  char err[1024] = "";
  mesh_config_set_addr_check(check_addr);
  int rc = mesh_config_load(cfg, argc, argv, environ, err, sizeof err);
  if (rc == 0)
    return -1;
  meshd_error("%s", err[0] != '\0' ? err : mesh_strerror(rc));
  mesh_config_free(cfg);
  return rc == -EINVAL ? MESHD_EXIT_USAGE : MESHD_EXIT_FAIL;
}

static int cmd_config_show(int argc, char **argv)
{
  mesh_config cfg;
  int status = load_config(&cfg, argc, argv);
  if (status >= 0)
    return status;
  if (cfg.show_help || cfg.show_version) {
    meshd_error("config-show: --help and --version are not settings");
    mesh_config_free(&cfg);
    return MESHD_EXIT_USAGE;
  }
  mesh_config_print_effective(stdout, &cfg);
  mesh_config_free(&cfg);
  return fflush(stdout) == 0 ? MESHD_EXIT_OK : MESHD_EXIT_FAIL;
}

static int cmd_run(int argc, char **argv)
{
  mesh_config cfg;
  int rc;
  int status = load_config(&cfg, argc, argv);
  if (status >= 0)
    return status;
  if (cfg.show_help) {
    print_usage(stdout);
    mesh_config_free(&cfg);
    return MESHD_EXIT_OK;
  }
  if (cfg.show_version) {
    printf("meshd %s\n", MESH_VERSION);
    mesh_config_free(&cfg);
    return MESHD_EXIT_OK;
  }
  mesh_log_set_level(cfg.log_level);
  mesh_log_set_format(cfg.log_format);
  LOG_INFO("meshd", "meshd %s starting: home %s, config %s", MESH_VERSION, cfg.home,
           cfg.config_file != NULL ? cfg.config_file : "(none)");
  /* One run for the process's life: a node declared dead in its epoch
   * renews the epoch in place (src/daemon/renew.c), it never restarts. */
  char err[1024] = "";
  rc = mesh_daemon_run(&cfg, err, sizeof err);
  mesh_config_free(&cfg);
  if (rc != 0) {
    meshd_error("%s", err[0] != '\0' ? err : mesh_strerror(rc));
    return MESHD_EXIT_FAIL;
  }
  return MESHD_EXIT_OK;
}

int main(int argc, char **argv)
{
  if (argc < 2 || argv[1][0] == '-')
    return cmd_run(argc - 1, argv + 1);
  const char *cmd = argv[1];
  int sub_argc = argc - 2;
  char **sub_argv = argv + 2;
  if (strcmp(cmd, "run") == 0)
    return cmd_run(sub_argc, sub_argv);
  if (strcmp(cmd, "id") == 0)
    return meshd_cmd_id(sub_argc, sub_argv);
  if (strcmp(cmd, "epoch") == 0)
    return meshd_cmd_epoch(sub_argc, sub_argv);
  if (strcmp(cmd, "keygen-psk") == 0)
    return meshd_cmd_keygen_psk(sub_argc, sub_argv);
  if (strcmp(cmd, "config-example") == 0) {
    if (sub_argc != 0) {
      meshd_error("config-example takes no arguments");
      return MESHD_EXIT_USAGE;
    }
    mesh_config_print_example(stdout);
    return fflush(stdout) == 0 ? MESHD_EXIT_OK : MESHD_EXIT_FAIL;
  }
  if (strcmp(cmd, "config-show") == 0)
    return cmd_config_show(sub_argc, sub_argv);
  if (strcmp(cmd, "help") == 0) {
    print_usage(stdout);
    return MESHD_EXIT_OK;
  }
  meshd_error("unknown command \"%.60s\" (see meshd --help)", cmd);
  return MESHD_EXIT_USAGE;
}
