/*
 * The RDMA keepalive decoder (proto/rdma.proto RdmaKeepalive, the payload of
 * an authenticated keepalive frame): whatever comes, no crash, and what it
 * accepts is within its bounds and encodes again.
 */
#include "net/rdma.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  mesh_rdma_keepalive k;
  if (mesh_rdma_keepalive_decode(data, size, &k) != 0)
    return 0;
  if (k.qpn < 2 || k.qpn > 0xffffff || k.psn > 0xffffff)
    abort(); /* the bounds are the decoder's promise */
  uint8_t again[MESH_RDMA_KEEPALIVE_MAX];
  size_t len;
  if (mesh_rdma_keepalive_encode(&k, again, sizeof again, &len) != 0)
    abort();
  return 0;
}
