/*
 * Sequenced bulk's receiving side (net/rdma_bulk.h): a stream of frames
 * and TCP messages as a peer could send them (headers and fields all taken
 * from the input), fed to one receiver: whatever comes, no crash, nothing
 * delivered that is not whole, and sequence numbers only move forward.
 */
#include "net/rdma_bulk.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  mesh_rbulk_rx rx;
  mesh_rbulk_rx_init(&rx, 4096);
  /* Records: 1 byte path, then a TCP header (9 bytes) or a frame header
   * (12 bytes), a 2-byte total and a 1-byte length of bytes that follow. */
  while (size > 0) {
    uint8_t path = data[0];
    data++;
    size--;
    uint64_t before = rx.next;
    if (path & 1) {
      uint8_t kind;
      uint64_t seq;
      if (size < MESH_RBULK_TCP_HDR)
        break;
      if (mesh_rbulk_get_tcp_hdr(data, size, &kind, &seq) == 0 && kind == MESH_RBULK_DATA) {
        mesh_rbulk_verdict v = mesh_rbulk_rx_tcp(&rx, seq);
        if (v == MESH_RBULK_DELIVER && rx.next != before + 1)
          abort();
      }
      data += MESH_RBULK_TCP_HDR;
      size -= MESH_RBULK_TCP_HDR;
    } else {
      if (size < MESH_RBULK_FRAME_HDR + 3)
        break;
      uint64_t seq;
      uint32_t off;
      mesh_rbulk_get_frame_hdr(data, &seq, &off);
      size_t total = (size_t)data[12] << 8 | data[13];
      size_t len = data[14];
      data += MESH_RBULK_FRAME_HDR + 3;
      size -= MESH_RBULK_FRAME_HDR + 3;
      if (len > size)
        len = size;
      const uint8_t *msg;
      size_t mlen;
      mesh_rbulk_verdict v = mesh_rbulk_rx_frame(&rx, seq, off, total, data, len, &msg, &mlen);
      if (v == MESH_RBULK_DELIVER && (mlen != total || rx.next != before + 1 || mlen > 4096))
        abort();
      if (v != MESH_RBULK_DELIVER && rx.next != before)
        abort();
      data += len;
      size -= len;
    }
    uint64_t nack;
    if (mesh_rbulk_rx_take_nack(&rx, &nack) && nack != rx.next)
      abort();
  }
  mesh_rbulk_rx_clear(&rx);
  return 0;
}
