/*
 * The subcommands of the meshd program other than running the node
 * (commands.c). Each takes the arguments after its name, prints its result
 * on stdout and a one-line "meshd: ..." error on stderr, and returns the
 * exit status: 0 on success, 1 on failure, 2 on a usage error.
 */
#ifndef MESH_MESHD_MESHD_H
#define MESH_MESHD_MESHD_H

#define MESHD_EXIT_OK 0
#define MESHD_EXIT_FAIL 1
#define MESHD_EXIT_USAGE 2

int meshd_cmd_id(int argc, char **argv);
int meshd_cmd_epoch(int argc, char **argv);
int meshd_cmd_keygen_psk(int argc, char **argv);

/* Prints "meshd: <message>\n" on stderr. */
void meshd_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
