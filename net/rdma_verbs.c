/*
 * The verbs side of RDMA (net/rdma.h): one device, one completion queue
 * shared by every queue pair, one UC queue pair per peer.
 *
 * Memory: each queue pair owns one registration (IBV_ACCESS_LOCAL_WRITE)
 * of depth receive buffers followed by send_depth send buffers, all
 * buf_size bytes. A work request's wr_id says which queue pair slot, which
 * kind and which buffer:
 *
 *   bits 63..40  slot of the queue pair in the device's table
 *   bits 39..33  generation: counts the queue pair's resets
 *   bit  32      1 send, 0 receive
 *   bits 31..0   buffer index
 *
 * A completion is matched to its queue pair by slot and QP number, so one
 * left in the queue by a destroyed queue pair is dropped, never applied to
 * the queue pair that took its slot; and by generation, so one flushed
 * before a reset (which re-posts every buffer) is dropped too.
 *
 * Sends are signalled only every send_depth / 2 (and when the last free
 * send buffer goes): send buffers are used in ring order and a queue pair
 * completes its sends in order, so one completion frees its buffer and all
 * those before it. An unsignalled send makes no completion, so the kernel
 * does no notification work for it while a reader sleeps on the channel.
 * Completions with an error are made for every request, signalled or not.
 *
 * Verbs' conventions (NULL plus errno, or a positive errno) are turned into
 * negative errnos here; nothing above sees them.
 */
#ifdef HAVE_IBVERBS
#include "net/rdma.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POLL_BATCH 32
#define WR_SEND (1ull << 32)
#define WR_GEN_SHIFT 33
#define WR_GEN_MASK 0x7fu
#define DEPTH_MIN 2 /* below this a queue pair is not worth having */

struct mesh_rdma_qp {
  mesh_rdma_dev *dev;
  struct ibv_qp *qp;
  struct ibv_mr *mr;
  uint8_t *mem;        /* depth receive buffers, then send_depth send buffers */
  uint32_t depth;      /* receive buffers (all posted while the qp lives) */
  uint32_t send_depth; /* send buffers */
  uint32_t send_first; /* oldest send buffer in flight (ring order) */
  uint32_t inflight;   /* send buffers in flight, from send_first on */
  uint32_t unsignaled; /* sends posted since the last signalled one */
  uint32_t gen;        /* generation of the posted requests (WR_GEN_MASK) */
  uint32_t psn;        /* our first sequence number */
  int slot;            /* index in dev->qps */
  void *arg;           /* the owner's, handed back in callbacks */
  bool connected;      /* RTS reached */
  bool failed;         /* an error was reported; no more sends */
  bool has_remote;     /* remote holds the peer's attributes */
  mesh_rdma_attr remote;
  size_t max_frame; /* the agreed frame size (mesh_rdma_frame_size) once connected */
};

struct mesh_rdma_dev {
  struct ibv_context *ctx;
  struct ibv_pd *pd;
  struct ibv_comp_channel *ch;
  struct ibv_cq *cq;
  uint8_t port;
  int gid_index;
  union ibv_gid gid;
  uint32_t mtu_bytes; /* the port's active MTU */
  enum ibv_mtu mtu;
  mesh_rdma_dev_options opt; /* depths already cut to what the device allows */
  mesh_rdma_qp **qps;        /* opt.max_qps slots */
  int nqps;
  unsigned events_unacked; /* CQ events taken and not yet acknowledged */
  char name[64];
};

__attribute__((format(printf, 3, 4))) static void say(char *why, size_t whylen, const char *fmt,
                                                      ...)
{
  if (why == NULL || whylen == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
}

void mesh_rdma_dev_options_default(mesh_rdma_dev_options *o)
{
  memset(o, 0, sizeof *o);
  o->buf_size = MESH_RDMA_BUF_DEFAULT;
  o->depth = MESH_RDMA_DEPTH_DEFAULT;
  o->send_depth = MESH_RDMA_SEND_DEPTH;
  o->max_qps = MESH_RDMA_MAX_QPS;
}

static bool gid_is_v4(const union ibv_gid *g)
{
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return memcmp(g->raw, prefix, sizeof prefix) == 0;
}

/* Finds the IPv4-mapped GID of addr (any IPv4-mapped one when addr is
 * NULL), RoCE v2 preferred. 0, or -ENOENT. */
static int find_gid(struct ibv_context *ctx, const struct in_addr *addr, uint8_t *port, int *index,
                    union ibv_gid *gid)
{
  struct ibv_device_attr da;
  if (ibv_query_device(ctx, &da) != 0)
    return -errno;
  int best = -1;
  struct ibv_gid_entry best_e;
  for (uint8_t p = 1; p <= da.phys_port_cnt; p++) {
    struct ibv_port_attr pa;
    if (ibv_query_port(ctx, p, &pa) != 0)
      continue;
    for (int i = 0; i < pa.gid_tbl_len; i++) {
      struct ibv_gid_entry e;
      if (ibv_query_gid_ex(ctx, p, (uint32_t)i, &e, 0) != 0)
        continue; /* an empty entry */
      if (!gid_is_v4(&e.gid))
        continue;
      if (addr != NULL && memcmp(e.gid.raw + 12, &addr->s_addr, 4) != 0)
        continue;
      int score = e.gid_type == IBV_GID_TYPE_ROCE_V2 ? 2 : 1;
      if (score > best) {
        best = score;
        best_e = e;
      }
      if (score == 2)
        break;
    }
    if (best == 2)
      break;
  }
  if (best < 0)
    return -ENOENT;
  *port = (uint8_t)best_e.port_num;
  *index = (int)best_e.gid_index;
  *gid = best_e.gid;
  return 0;
}

static int set_nonblock(int fd)
{
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return -errno;
  return 0;
}

int mesh_rdma_dev_open(const mesh_rdma_dev_options *o, mesh_rdma_dev **out, char *why,
                       size_t whylen)
{
  mesh_rdma_dev_options opt;
  if (o != NULL)
    opt = *o;
  else
    mesh_rdma_dev_options_default(&opt);
  int rc = mesh_rdma_dev_options_check(&opt, why, whylen);
  if (rc != 0)
    return rc;
  struct in_addr addr = {0};
  if (opt.addr != NULL)
    inet_pton(AF_INET, opt.addr, &addr); /* checked above */

  errno = 0;
  int ndev = 0;
  struct ibv_device **list = ibv_get_device_list(&ndev);
  if (list == NULL) {
    int e = errno != 0 ? errno : ENOSYS;
    if (e == ENOSYS)
      say(why, whylen, "no RDMA support in the running kernel (no ib_uverbs)");
    else
      say(why, whylen, "cannot list RDMA devices: %s", strerror(e));
    return e == ENOSYS ? -ENOSYS : -e;
  }
  mesh_rdma_dev *d = calloc(1, sizeof *d);
  rc = -ENODEV;
  if (d == NULL) {
    ibv_free_device_list(list);
    return -ENOMEM;
  }
  d->opt = opt;
  for (int i = 0; i < ndev && d->ctx == NULL; i++) {
    const char *name = ibv_get_device_name(list[i]);
    if (opt.device != NULL && strcmp(name, opt.device) != 0)
      continue;
    struct ibv_context *ctx = ibv_open_device(list[i]);
    if (ctx == NULL)
      continue;
    if (find_gid(ctx, opt.addr != NULL ? &addr : NULL, &d->port, &d->gid_index, &d->gid) == 0) {
      d->ctx = ctx;
      snprintf(d->name, sizeof d->name, "%s", name);
    } else {
      ibv_close_device(ctx);
    }
  }
  ibv_free_device_list(list);
  if (d->ctx == NULL) {
    if (ndev == 0)
      say(why, whylen, "no RDMA device");
    else if (opt.addr != NULL)
      say(why, whylen, "no RDMA device has a GID for %s", opt.addr);
    else
      say(why, whylen, "no RDMA device has an IPv4 GID");
    free(d);
    return -ENODEV;
  }

  struct ibv_device_attr da;
  struct ibv_port_attr pa;
  if (ibv_query_device(d->ctx, &da) != 0 || ibv_query_port(d->ctx, d->port, &pa) != 0) {
    rc = -errno;
    say(why, whylen, "RDMA device %s cannot be queried: %s", d->name, strerror(-rc));
    goto fail_ctx;
  }
  d->mtu = pa.active_mtu;
  d->mtu_bytes = 128u << pa.active_mtu;
  if ((uint32_t)da.max_qp_wr < d->opt.depth)
    d->opt.depth = (uint32_t)da.max_qp_wr;
  if ((uint32_t)da.max_qp_wr < d->opt.send_depth)
    d->opt.send_depth = (uint32_t)da.max_qp_wr;
  if (da.max_qp < d->opt.max_qps)
    d->opt.max_qps = da.max_qp;

  d->pd = ibv_alloc_pd(d->ctx);
  if (d->pd == NULL) {
    rc = -errno;
    say(why, whylen, "RDMA device %s: no protection domain: %s", d->name, strerror(-rc));
    goto fail_ctx;
  }
  d->ch = ibv_create_comp_channel(d->ctx);
  if (d->ch == NULL) {
    rc = -errno;
    say(why, whylen, "RDMA device %s: no completion channel: %s", d->name, strerror(-rc));
    goto fail_pd;
  }
  rc = set_nonblock(d->ch->fd);
  if (rc == 0)
    rc = set_nonblock(d->ctx->async_fd);
  if (rc != 0) {
    say(why, whylen, "RDMA device %s: fcntl: %s", d->name, strerror(-rc));
    goto fail_ch;
  }
  /* Room for every completion every queue pair can have outstanding; ask
   * for less while the device refuses. */
  int cqe = d->opt.max_qps * (int)(d->opt.depth + d->opt.send_depth);
  if (cqe > da.max_cqe)
    cqe = da.max_cqe;
  while (cqe >= DEPTH_MIN) {
    d->cq = ibv_create_cq(d->ctx, cqe, NULL, d->ch, 0);
    if (d->cq != NULL)
      break;
    cqe /= 2;
  }
  if (d->cq == NULL) {
    rc = -errno;
    say(why, whylen, "RDMA device %s: no completion queue: %s", d->name, strerror(-rc));
    goto fail_ch;
  }
  if (ibv_req_notify_cq(d->cq, 0) != 0) {
    rc = -EIO;
    say(why, whylen, "RDMA device %s: cannot arm the completion queue: %s", d->name, strerror(EIO));
    goto fail_cq;
  }
  d->qps = calloc((size_t)d->opt.max_qps, sizeof *d->qps);
  if (d->qps == NULL) {
    rc = -ENOMEM;
    goto fail_cq;
  }
  *out = d;
  return 0;

fail_cq:
  ibv_destroy_cq(d->cq);
fail_ch:
  ibv_destroy_comp_channel(d->ch);
fail_pd:
  ibv_dealloc_pd(d->pd);
fail_ctx:
  ibv_close_device(d->ctx);
  free(d);
  return rc;
}

void mesh_rdma_dev_close(mesh_rdma_dev *d)
{
  if (d == NULL)
    return;
  for (int i = 0; i < d->opt.max_qps; i++)
    mesh_rdma_qp_free(d->qps[i]);
  if (d->events_unacked > 0)
    ibv_ack_cq_events(d->cq, d->events_unacked);
  ibv_destroy_cq(d->cq);
  ibv_destroy_comp_channel(d->ch);
  ibv_dealloc_pd(d->pd);
  ibv_close_device(d->ctx);
  free(d->qps);
  free(d);
}

int mesh_rdma_dev_fd(const mesh_rdma_dev *d)
{
  return d->ch->fd;
}

int mesh_rdma_dev_async_fd(const mesh_rdma_dev *d)
{
  return d->ctx->async_fd;
}

const char *mesh_rdma_dev_name(const mesh_rdma_dev *d)
{
  return d->name;
}

int mesh_rdma_dev_qp_count(const mesh_rdma_dev *d)
{
  return d->nqps;
}

static uint8_t *recv_buf(mesh_rdma_qp *q, uint32_t i)
{
  return q->mem + (size_t)i * q->dev->opt.buf_size;
}

static uint8_t *send_buf(mesh_rdma_qp *q, uint32_t i)
{
  return q->mem + (size_t)(q->depth + i) * q->dev->opt.buf_size;
}

static int post_recv(mesh_rdma_qp *q, uint32_t i)
{
  struct ibv_sge sge = {
      .addr = (uintptr_t)recv_buf(q, i),
      .length = q->dev->opt.buf_size,
      .lkey = q->mr->lkey,
  };
  struct ibv_recv_wr wr = {
      .wr_id = ((uint64_t)q->slot << 40) | ((uint64_t)q->gen << WR_GEN_SHIFT) | i,
      .sg_list = &sge,
      .num_sge = 1,
  };
  struct ibv_recv_wr *bad;
  int rc = ibv_post_recv(q->qp, &wr, &bad);
  return rc == 0 ? 0 : -rc;
}

static int to_init(mesh_rdma_qp *q)
{
  struct ibv_qp_attr a = {
      .qp_state = IBV_QPS_INIT,
      .pkey_index = 0,
      .port_num = q->dev->port,
      .qp_access_flags = 0,
  };
  int rc = ibv_modify_qp(q->qp, &a,
                         IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
  return rc == 0 ? 0 : -rc;
}

/* Posts every receive buffer; a device that takes fewer than asked keeps
 * what it took (at least DEPTH_MIN). */
static int post_all(mesh_rdma_qp *q)
{
  for (uint32_t i = 0; i < q->depth; i++) {
    int rc = post_recv(q, i);
    if (rc != 0) {
      if (i < DEPTH_MIN)
        return rc;
      q->depth = i;
      break;
    }
  }
  q->send_first = 0;
  q->inflight = 0;
  q->unsignaled = 0;
  return 0;
}

int mesh_rdma_qp_new(mesh_rdma_dev *d, uint32_t psn, void *arg, mesh_rdma_qp **out,
                     mesh_rdma_attr *local)
{
  int slot = -1;
  for (int i = 0; i < d->opt.max_qps; i++) {
    if (d->qps[i] == NULL) {
      slot = i;
      break;
    }
  }
  if (slot < 0)
    return -ENOSPC;
  mesh_rdma_qp *q = calloc(1, sizeof *q);
  if (q == NULL)
    return -ENOMEM;
  q->dev = d;
  q->slot = slot;
  q->arg = arg;
  q->psn = psn & 0xffffff;
  q->send_depth = d->opt.send_depth;
  int rc;

  /* Ask for the depth wanted, then less while the device refuses. */
  uint32_t depth = d->opt.depth;
  while (depth >= DEPTH_MIN) {
    struct ibv_qp_init_attr ia = {
        .send_cq = d->cq,
        .recv_cq = d->cq,
        .cap = {.max_send_wr = q->send_depth,
                .max_recv_wr = depth,
                .max_send_sge = 1,
                .max_recv_sge = 1},
        .qp_type = IBV_QPT_UC,
        .sq_sig_all = 0, /* signalled one in send_depth / 2: see the top */
    };
    q->qp = ibv_create_qp(d->pd, &ia);
    if (q->qp != NULL)
      break;
    depth /= 2;
  }
  if (q->qp == NULL) {
    rc = errno != 0 ? -errno : -ENOMEM;
    goto fail;
  }
  q->depth = depth;
  size_t bytes = (size_t)(q->depth + q->send_depth) * d->opt.buf_size;
  if (posix_memalign((void **)&q->mem, 4096, bytes) != 0) {
    rc = -ENOMEM;
    goto fail_qp;
  }
  memset(q->mem, 0, bytes);
  q->mr = ibv_reg_mr(d->pd, q->mem, bytes, IBV_ACCESS_LOCAL_WRITE);
  if (q->mr == NULL) {
    rc = errno != 0 ? -errno : -ENOMEM;
    goto fail_mem;
  }
  rc = to_init(q);
  if (rc == 0)
    rc = post_all(q);
  if (rc != 0)
    goto fail_mr;
  d->qps[slot] = q;
  d->nqps++;
  if (local != NULL) {
    memset(local, 0, sizeof *local);
    memcpy(local->gid, d->gid.raw, MESH_RDMA_GID_LEN);
    local->qpn = q->qp->qp_num;
    local->psn = q->psn;
    local->mtu = d->mtu_bytes;
    local->buf_size = d->opt.buf_size;
    local->depth = q->depth;
  }
  *out = q;
  return 0;

fail_mr:
  ibv_dereg_mr(q->mr);
fail_mem:
  free(q->mem);
fail_qp:
  ibv_destroy_qp(q->qp);
fail:
  free(q);
  return rc;
}

static enum ibv_mtu mtu_enum(uint32_t bytes)
{
  switch (bytes) {
  case 256:
    return IBV_MTU_256;
  case 512:
    return IBV_MTU_512;
  case 1024:
    return IBV_MTU_1024;
  case 2048:
    return IBV_MTU_2048;
  default:
    return IBV_MTU_4096;
  }
}

static int to_rts(mesh_rdma_qp *q)
{
  mesh_rdma_dev *d = q->dev;
  const mesh_rdma_attr *r = &q->remote;
  uint32_t mtu = r->mtu < d->mtu_bytes ? r->mtu : d->mtu_bytes;
  struct ibv_qp_attr a = {
      .qp_state = IBV_QPS_RTR,
      .path_mtu = mtu_enum(mtu),
      .dest_qp_num = r->qpn,
      .rq_psn = r->psn,
      .ah_attr =
          {
              .is_global = 1,
              .port_num = d->port,
              .grh = {.hop_limit = 64, .sgid_index = (uint8_t)d->gid_index},
          },
  };
  memcpy(a.ah_attr.grh.dgid.raw, r->gid, MESH_RDMA_GID_LEN);
  int rc = ibv_modify_qp(
      q->qp, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN);
  if (rc != 0)
    return -rc;
  struct ibv_qp_attr s = {.qp_state = IBV_QPS_RTS, .sq_psn = q->psn};
  rc = ibv_modify_qp(q->qp, &s, IBV_QP_STATE | IBV_QP_SQ_PSN);
  if (rc != 0)
    return -rc;
  q->connected = true;
  q->failed = false;
  /* Frames of the size both ends post (each advertised its buffer size in
   * the signed handshake): a larger one would be dropped by the peer's
   * receive, silently on UC. */
  q->max_frame = mesh_rdma_frame_size(d->opt.buf_size, r->buf_size);
  return 0;
}

static void to_error(mesh_rdma_qp *q)
{
  struct ibv_qp_attr a = {.qp_state = IBV_QPS_ERR};
  (void)ibv_modify_qp(q->qp, &a, IBV_QP_STATE);
  q->connected = false;
}

int mesh_rdma_qp_connect(mesh_rdma_qp *q, const mesh_rdma_attr *remote)
{
  q->remote = *remote;
  q->has_remote = true;
  int rc = to_rts(q);
  if (rc != 0) {
    to_error(q);
    q->failed = true;
  }
  return rc;
}

int mesh_rdma_qp_reset(mesh_rdma_qp *q)
{
  struct ibv_qp_attr a = {.qp_state = IBV_QPS_RESET};
  q->connected = false;
  q->failed = true;
  int rc = ibv_modify_qp(q->qp, &a, IBV_QP_STATE);
  if (rc != 0)
    return -rc;
  /* RESET drops every posted request without a completion: all receive
   * buffers go back in and all send buffers are free again. Completions
   * still queued from before (flushes) carry the old generation. */
  q->gen = (q->gen + 1) & WR_GEN_MASK;
  rc = to_init(q);
  if (rc == 0)
    rc = post_all(q);
  if (rc == 0 && q->has_remote)
    rc = to_rts(q);
  if (rc != 0)
    to_error(q);
  return rc;
}

void mesh_rdma_qp_local(const mesh_rdma_qp *q, uint32_t *qpn, uint32_t *psn)
{
  *qpn = q->qp->qp_num;
  *psn = q->psn;
}

int mesh_rdma_qp_repoint(mesh_rdma_qp *q, uint32_t qpn, uint32_t psn)
{
  if (!q->has_remote)
    return -ENOTCONN;
  q->remote.qpn = qpn;
  q->remote.psn = psn;
  return mesh_rdma_qp_reset(q);
}

int mesh_rdma_qp_send_slot(mesh_rdma_qp *q, uint8_t **buf, size_t *cap)
{
  if (!q->connected || q->failed)
    return -ENOTCONN;
  if (q->inflight == q->send_depth)
    return -ENOBUFS;
  *buf = send_buf(q, (q->send_first + q->inflight) % q->send_depth);
  *cap = q->max_frame;
  return 0;
}

int mesh_rdma_qp_post(mesh_rdma_qp *q, size_t len)
{
  if (!q->connected || q->failed)
    return -ENOTCONN;
  if (len > q->max_frame)
    return -EMSGSIZE;
  if (q->inflight == q->send_depth)
    return -ENOBUFS;
  uint32_t i = (q->send_first + q->inflight) % q->send_depth;
  uint32_t every = q->send_depth / 2 > 0 ? q->send_depth / 2 : 1;
  bool signal = q->unsignaled + 1 >= every || q->inflight + 1 == q->send_depth;
  struct ibv_sge sge = {
      .addr = (uintptr_t)send_buf(q, i),
      .length = (uint32_t)len,
      .lkey = q->mr->lkey,
  };
  struct ibv_send_wr wr = {
      .wr_id = ((uint64_t)q->slot << 40) | ((uint64_t)q->gen << WR_GEN_SHIFT) | WR_SEND | i,
      .sg_list = &sge,
      .num_sge = 1,
      .opcode = IBV_WR_SEND,
      .send_flags = signal ? IBV_SEND_SIGNALED : 0,
  };
  struct ibv_send_wr *bad;
  if (ibv_post_send(q->qp, &wr, &bad) != 0) {
    to_error(q);
    q->failed = true;
    return -EIO;
  }
  q->inflight++;
  q->unsignaled = signal ? 0 : q->unsignaled + 1;
  return 0;
}

int mesh_rdma_qp_send(mesh_rdma_qp *q, const uint8_t *buf, size_t len)
{
  uint8_t *slot;
  size_t cap;
  int rc = mesh_rdma_qp_send_slot(q, &slot, &cap);
  if (rc != 0)
    return rc;
  if (len > cap)
    return -EMSGSIZE;
  memcpy(slot, buf, len);
  return mesh_rdma_qp_post(q, len);
}

bool mesh_rdma_qp_can_send(const mesh_rdma_qp *q)
{
  return q->connected && !q->failed && q->inflight < q->send_depth;
}

uint32_t mesh_rdma_qp_send_free(const mesh_rdma_qp *q)
{
  if (q == NULL || !q->connected || q->failed)
    return 0;
  return q->send_depth - q->inflight;
}

uint32_t mesh_rdma_qp_send_depth(const mesh_rdma_qp *q)
{
  return q == NULL ? 0 : q->send_depth;
}

size_t mesh_rdma_qp_max_frame(const mesh_rdma_qp *q)
{
  return q->connected ? q->max_frame : 0;
}

int mesh_rdma_qp_break(mesh_rdma_qp *q)
{
  struct ibv_qp_attr a = {.qp_state = IBV_QPS_ERR};
  int rc = ibv_modify_qp(q->qp, &a, IBV_QP_STATE);
  return rc == 0 ? 0 : -rc;
}

void mesh_rdma_qp_free(mesh_rdma_qp *q)
{
  if (q == NULL)
    return;
  mesh_rdma_dev *d = q->dev;
  d->qps[q->slot] = NULL;
  d->nqps--;
  ibv_destroy_qp(q->qp);
  ibv_dereg_mr(q->mr);
  free(q->mem);
  free(q);
}

static void fail_qp(mesh_rdma_qp *q, const mesh_rdma_handler *h, int err, const char *what)
{
  if (q->failed)
    return; /* flushes after the first error say nothing new */
  q->failed = true;
  q->connected = false;
  if (h->error != NULL)
    h->error(h->arg, q, q->arg, err, what);
}

/* The send in buffer idx completed, and with it every one posted before. */
static void send_done(mesh_rdma_qp *q, uint32_t idx)
{
  if (idx >= q->send_depth || q->inflight == 0)
    return;
  uint32_t n = (idx + q->send_depth - q->send_first) % q->send_depth + 1;
  if (n > q->inflight)
    return; /* not in flight: nothing to free */
  q->send_first = (idx + 1) % q->send_depth;
  q->inflight -= n;
}

/* One completion. The handler may free the queue pair; then nothing of it
 * is touched after the call. */
static void handle_wc(mesh_rdma_dev *d, const struct ibv_wc *wc, const mesh_rdma_handler *h)
{
  int slot = (int)(wc->wr_id >> 40);
  uint32_t idx = (uint32_t)wc->wr_id;
  bool is_send = (wc->wr_id & WR_SEND) != 0;
  if (slot >= d->opt.max_qps)
    return;
  mesh_rdma_qp *q = d->qps[slot];
  if (q == NULL || q->qp->qp_num != wc->qp_num)
    return; /* left over from a queue pair since destroyed */
  if (((wc->wr_id >> WR_GEN_SHIFT) & WR_GEN_MASK) != q->gen)
    return; /* flushed before the queue pair's last reset */
  if (is_send)
    send_done(q, idx);
  if (wc->status != IBV_WC_SUCCESS) {
    fail_qp(q, h, -EIO, ibv_wc_status_str(wc->status));
    return;
  }
  if (is_send)
    return;
  if (idx >= q->depth)
    return;
  if (h->recv != NULL)
    h->recv(h->arg, q, q->arg, recv_buf(q, idx), wc->byte_len);
  if (d->qps[slot] != q || q->failed)
    return; /* freed, or failed (a reset re-posts everything) */
  int rc = post_recv(q, idx);
  if (rc != 0)
    fail_qp(q, h, rc, "re-posting a receive failed");
}

static void drain_async(mesh_rdma_dev *d, const mesh_rdma_handler *h)
{
  struct ibv_async_event ev;
  while (ibv_get_async_event(d->ctx, &ev) == 0) {
    switch (ev.event_type) {
    case IBV_EVENT_QP_FATAL:
    case IBV_EVENT_QP_REQ_ERR:
    case IBV_EVENT_QP_ACCESS_ERR:
      for (int i = 0; i < d->opt.max_qps; i++) {
        if (d->qps[i] != NULL && d->qps[i]->qp == ev.element.qp) {
          mesh_rdma_qp *q = d->qps[i];
          ibv_ack_async_event(&ev);
          fail_qp(q, h, -EIO, ibv_event_type_str(ev.event_type));
          goto next;
        }
      }
      break;
    case IBV_EVENT_DEVICE_FATAL:
    case IBV_EVENT_PORT_ERR: {
      enum ibv_event_type type = ev.event_type;
      ibv_ack_async_event(&ev);
      for (int i = 0; i < d->opt.max_qps; i++) {
        if (d->qps[i] != NULL)
          fail_qp(d->qps[i], h, -ENETDOWN, ibv_event_type_str(type));
      }
      if (h->port != NULL)
        h->port(h->arg, false, ibv_event_type_str(type));
      continue;
    }
    case IBV_EVENT_PORT_ACTIVE:
      ibv_ack_async_event(&ev);
      if (h->port != NULL)
        h->port(h->arg, true, ibv_event_type_str(IBV_EVENT_PORT_ACTIVE));
      continue;
    default:
      break;
    }
    ibv_ack_async_event(&ev);
  next:;
  }
}

int mesh_rdma_dev_spin(mesh_rdma_dev *d, const mesh_rdma_handler *h)
{
  struct ibv_wc wc[POLL_BATCH];
  int n = ibv_poll_cq(d->cq, POLL_BATCH, wc);
  if (n < 0)
    return -EIO;
  for (int i = 0; i < n; i++)
    handle_wc(d, &wc[i], h);
  return n;
}

static void take_notifications(mesh_rdma_dev *d)
{
  struct ibv_cq *ev_cq;
  void *ev_ctx;
  while (ibv_get_cq_event(d->ch, &ev_cq, &ev_ctx) == 0)
    d->events_unacked++;
  if (d->events_unacked >= 64) {
    ibv_ack_cq_events(d->cq, d->events_unacked);
    d->events_unacked = 0;
  }
}

void mesh_rdma_dev_events(mesh_rdma_dev *d, const mesh_rdma_handler *h)
{
  take_notifications(d);
  drain_async(d, h);
}

int mesh_rdma_dev_poll(mesh_rdma_dev *d, const mesh_rdma_handler *h)
{
  int handled = 0;
  /* Take every pending notification (the fd is non-blocking), acknowledge
   * them in batches, and re-arm before draining so that a completion that
   * lands during the drain raises a new notification. */
  take_notifications(d);
  if (ibv_req_notify_cq(d->cq, 0) != 0)
    return -EIO;
  struct ibv_wc wc[POLL_BATCH];
  for (;;) {
    int n = ibv_poll_cq(d->cq, POLL_BATCH, wc);
    if (n < 0)
      return -EIO;
    for (int i = 0; i < n; i++)
      handle_wc(d, &wc[i], h);
    handled += n;
    if (n < POLL_BATCH)
      break;
  }
  drain_async(d, h);
  return handled;
}

#endif /* HAVE_IBVERBS */
