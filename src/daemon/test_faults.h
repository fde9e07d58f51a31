/*
 * Test-only switches: the one place that reads them, and the hooks that
 * carry them into the node and the download part.
 *
 * The integration tests make a node misbehave on purpose (a slow disk, a
 * corrupt upload, lost view events, ...) through environment variables.
 * mesh_test_faults_read reads every one of them once, at start, before the
 * node exists; a value that is not what its switch takes stops meshd with a
 * message naming the variable. Nothing else in meshd reads a MESHD_TEST_
 * variable or tests a test flag: the node and the download part call
 * through hook tables (mesh_node_hooks, mesh_downloads_hooks) that are the
 * identity in production, and this module fills them only when some switch
 * is set. A node with any switch set logs a warning for each and shows
 * meshd_test_faults_active 1 in /metrics.
 *
 * The switches (unset or empty: off):
 *
 *   variable                      value          what it does
 *   MESHD_TEST_FAULTS             a fault spec   delays (and may drop) outgoing messages: a
 *                                 (net/fault.h)  delay line wrapped around the transports;
 *                                                SIGHUP then re-reads <home>/test-faults
 *   MESHD_TEST_RDMA_BULK_DROP     0..2^32-1      every N-th RDMA bulk frame is not posted,
 *                                                as if lost on the way (0: none)
 *   MESHD_TEST_STORE_FAIL         1..2^31-1      the store's N-th statement step from start
 *                                                fails as a disk error would
 *   MESHD_TEST_SLOW_STORE_MS      1..600000      each store transaction first waits N ms
 *   MESHD_TEST_SLOW_SYNC_MS       1..600000      each sync of a downloaded file before its
 *                                                rename first waits N ms (a slow F_FULLFSYNC)
 *   MESHD_TEST_LOSE_VIEW_EVENTS   1..2^31-1      the first N view events are withheld from
 *                                                the coordinator (it must find the gap)
 *   MESHD_TEST_RANGE_KIB          1..2^20        files of 2N KiB and more are fetched in
 *                                                ranges of N KiB (production: 16 MiB from
 *                                                64 MiB), so that small files have several
 *                                                sources
 *   MESHD_TEST_TAMPER_FILE_LISTS  1              a byte of every file list served is changed
 *                                                after it was signed
 *   MESHD_TEST_CORRUPT_UPLOADS    1              a byte of every model file chunk served is
 *                                                flipped
 *   MESHD_TEST_SLOW_UPLOADS_MS    1..600000      each chunk served is read N ms late
 *
 * Threads: read and attached on the loop thread at start. The hooks that
 * run on workers (store, sync, chunk reads, file lists) only read what was
 * set at start; the view-event count is the loop's.
 */
#ifndef MESH_DAEMON_TEST_FAULTS_H
#define MESH_DAEMON_TEST_FAULTS_H

#include "src/daemon/downloads.h"
#include "src/daemon/node.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct mesh_test_faults mesh_test_faults;
struct mesh_fault_line;

/* Reads every switch from the environment. *out is NULL when none is set
 * (a production node), else a new set the caller frees with
 * mesh_test_faults_free after the node. 0, -EINVAL with err naming the
 * variable and what it takes, or -ENOMEM. */
int mesh_test_faults_read(mesh_test_faults **out, char *err, size_t errlen);
void mesh_test_faults_free(mesh_test_faults *tf);

/* The hooks for mesh_node_new and mesh_downloads_new: NULL (the identity)
 * when tf is NULL. Valid while tf lives. */
const mesh_node_hooks *mesh_test_faults_node_hooks(mesh_test_faults *tf);
const mesh_downloads_hooks *mesh_test_faults_downloads_hooks(mesh_test_faults *tf);

/* Whether any switch is set (meshd_test_faults_active); false for NULL. */
bool mesh_test_faults_active(const mesh_test_faults *tf);
/* The delay line of MESHD_TEST_FAULTS once the node wrapped its net, or
 * NULL. */
const struct mesh_fault_line *mesh_test_faults_line(const mesh_test_faults *tf);

#endif
