/*
 * The verbs layer of net/rdma.h for builds without libibverbs: every call
 * says that RDMA is not available, so the node runs on TCP alone.
 */
#ifndef HAVE_IBVERBS
#include "net/rdma.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void mesh_rdma_dev_options_default(mesh_rdma_dev_options *o)
{
  memset(o, 0, sizeof *o);
  o->buf_size = MESH_RDMA_BUF_DEFAULT;
  o->depth = MESH_RDMA_DEPTH_DEFAULT;
  o->send_depth = MESH_RDMA_SEND_DEPTH;
  o->max_qps = MESH_RDMA_MAX_QPS;
}

int mesh_rdma_dev_open(const mesh_rdma_dev_options *o, mesh_rdma_dev **out, char *why,
                       size_t whylen)
{
  *out = NULL;
  mesh_rdma_dev_options def;
  if (o == NULL) {
    mesh_rdma_dev_options_default(&def);
    o = &def;
  }
  int rc = mesh_rdma_dev_options_check(o, why, whylen);
  if (rc != 0)
    return rc;
  if (why != NULL && whylen > 0)
    snprintf(why, whylen, "this meshd was built without libibverbs");
  return -ENOSYS;
}

void mesh_rdma_dev_close(mesh_rdma_dev *d)
{
  (void)d;
}

int mesh_rdma_dev_fd(const mesh_rdma_dev *d)
{
  (void)d;
  return -1;
}

int mesh_rdma_dev_async_fd(const mesh_rdma_dev *d)
{
  (void)d;
  return -1;
}

const char *mesh_rdma_dev_name(const mesh_rdma_dev *d)
{
  (void)d;
  return "none";
}

int mesh_rdma_dev_qp_count(const mesh_rdma_dev *d)
{
  (void)d;
  return 0;
}

int mesh_rdma_dev_poll(mesh_rdma_dev *d, const mesh_rdma_handler *h)
{
  (void)d;
  (void)h;
  return -ENOSYS;
}

int mesh_rdma_dev_spin(mesh_rdma_dev *d, const mesh_rdma_handler *h)
{
  (void)d;
  (void)h;
  return -ENOSYS;
}

void mesh_rdma_dev_events(mesh_rdma_dev *d, const mesh_rdma_handler *h)
{
  (void)d;
  (void)h;
}

int mesh_rdma_qp_new(mesh_rdma_dev *d, uint32_t psn, void *arg, mesh_rdma_qp **out,
                     mesh_rdma_attr *local)
{
  (void)d;
  (void)psn;
  (void)arg;
  (void)local;
  *out = NULL;
  return -ENOSYS;
}

int mesh_rdma_qp_connect(mesh_rdma_qp *qp, const mesh_rdma_attr *remote)
{
  (void)qp;
  (void)remote;
  return -ENOSYS;
}

void mesh_rdma_qp_local(const mesh_rdma_qp *qp, uint32_t *qpn, uint32_t *psn)
{
  (void)qp;
  *qpn = 0;
  *psn = 0;
}

int mesh_rdma_qp_repoint(mesh_rdma_qp *qp, uint32_t qpn, uint32_t psn)
{
  (void)qp;
  (void)qpn;
  (void)psn;
  return -ENOSYS;
}

int mesh_rdma_qp_reset(mesh_rdma_qp *qp)
{
  (void)qp;
  return -ENOSYS;
}

int mesh_rdma_qp_send(mesh_rdma_qp *qp, const uint8_t *buf, size_t len)
{
  (void)qp;
  (void)buf;
  (void)len;
  return -ENOTCONN;
}

int mesh_rdma_qp_send_slot(mesh_rdma_qp *qp, uint8_t **buf, size_t *cap)
{
  (void)qp;
  *buf = NULL;
  *cap = 0;
  return -ENOTCONN;
}

int mesh_rdma_qp_post(mesh_rdma_qp *qp, size_t len)
{
  (void)qp;
  (void)len;
  return -ENOTCONN;
}

bool mesh_rdma_qp_can_send(const mesh_rdma_qp *qp)
{
  (void)qp;
  return false;
}

uint32_t mesh_rdma_qp_send_free(const mesh_rdma_qp *qp)
{
  (void)qp;
  return 0;
}

uint32_t mesh_rdma_qp_send_depth(const mesh_rdma_qp *qp)
{
  (void)qp;
  return 0;
}

size_t mesh_rdma_qp_max_frame(const mesh_rdma_qp *qp)
{
  (void)qp;
  return 0;
}

int mesh_rdma_qp_break(mesh_rdma_qp *qp)
{
  (void)qp;
  return -ENOSYS;
}

void mesh_rdma_qp_free(mesh_rdma_qp *qp)
{
  (void)qp;
}

#endif /* !HAVE_IBVERBS */
