/* A loopback nameserver for tests, that never answers or says "no such name". */
#include "support_dns.h"

#include "src/base/platform.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

int dns_test_server(char *text, size_t cap)
{
  int fd = mesh_socket_nb(AF_INET, SOCK_DGRAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  socklen_t sl = sizeof sa;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
  snprintf(text, cap, "127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
  return fd;
}

int dns_test_answer_nxdomain(int fd)
{
  int n = 0;
  for (;;) {
    uint8_t q[512];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t k = recvfrom(fd, q, sizeof q, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
    if (k < 0)
      return n;
    if (k < 12)
      continue; /* not a DNS message */
    /* The question: labels up to the root label, then QTYPE and QCLASS. */
    size_t end = 12;
    while (end < (size_t)k && q[end] != 0)
      end += 1u + q[end];
    end += 5;
    if (end > (size_t)k)
      continue;
    q[2] = (uint8_t)(0x80 | (q[2] & 0x79)); /* a response; same opcode and RD */
    q[3] = 0x80 | 3;                        /* RA; RCODE 3, no such name */
    memset(q + 6, 0, 6);                    /* no answer, authority or extra records */
    sendto(fd, q, end, 0, (struct sockaddr *)&from, fl);
    n++;
  }
}
