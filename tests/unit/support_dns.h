/*
 * A nameserver for tests, on loopback: a UDP socket the test owns, that
 * either never answers (a dead server) or answers every query with "no
 * such name". Tests point resolvers at it so that no query leaves the
 * machine. Every helper fails the running test on error.
 */
#ifndef MESH_TESTS_SUPPORT_DNS_H
#define MESH_TESTS_SUPPORT_DNS_H

#include <stddef.h>

/* Opens a non-blocking UDP socket on 127.0.0.1 and writes "127.0.0.1:PORT"
 * into text (cap bytes). Returns the socket. */
int dns_test_server(char *text, size_t cap);
/* Answers every query waiting on fd with NXDOMAIN (the question echoed, no
 * records); returns how many were answered. Never blocks. */
int dns_test_answer_nxdomain(int fd);

#endif
