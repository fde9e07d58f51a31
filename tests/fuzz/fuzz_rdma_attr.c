/*
 * The RDMA attribute decoder (a peer's handshake extension) and, with what
 * it accepts, the replay window of RDMA frames fed the rest of the input.
 *
 * Input: the first byte is the attribute length n; then n bytes of
 * attributes; the rest is split into frames at each 0xfe 0xfe marker and
 * opened one after the other on one link.
 */
#include "net/rdma.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static int ready;
  if (!ready) {
    if (sodium_init() < 0)
      abort();
    ready = 1;
  }
  if (size < 1)
    return 0;
  size_t n = data[0];
  if (n > size - 1)
    n = size - 1;
  mesh_rdma_attr a;
  if (mesh_rdma_attr_decode(data + 1, n, &a) == 0) {
    if (a.qpn < 2 || a.qpn > 0xffffff || a.buf_size < MESH_RDMA_BUF_MIN ||
        a.buf_size > MESH_RDMA_BUF_MAX || a.depth < 1 || a.depth > MESH_RDMA_DEPTH_MAX)
      abort(); /* the bounds are the decoder's promise */
    uint8_t again[MESH_RDMA_ATTR_MAX];
    size_t len;
    if (mesh_rdma_attr_encode(&a, again, sizeof again, &len) != 0)
      abort();
  }
  /* Frames against a fixed link: whatever comes, no crash and no frame
   * accepted twice. */
  mesh_psk psk;
  memset(psk.key, 5, sizeof psk.key);
  uint8_t pk[32], sk[32], peer[32];
  memset(sk, 1, sizeof sk);
  crypto_scalarmult_base(pk, sk);
  memset(peer, 9, sizeof peer);
  mesh_rdma_link l;
  if (mesh_rdma_link_init(&l, true, &psk, sk, pk, peer, data, 1, data, 1) != 0)
    return 0;
  const uint8_t *p = data + 1 + n, *end = data + size;
  uint8_t buf[4096];
  while (p < end) {
    const uint8_t *q = p;
    while (q + 1 < end && !(q[0] == 0xfe && q[1] == 0xfe))
      q++;
    if (q + 1 >= end)
      q = end;
    size_t len = (size_t)(q - p);
    if (len > sizeof buf)
      len = sizeof buf;
    memcpy(buf, p, len);
    mesh_frame f;
    (void)mesh_rdma_link_open(&l, buf, len, &f);
    if (end - q < 2)
      break;
    p = q + 2;
  }
  mesh_rdma_link_clear(&l);
  return 0;
}
