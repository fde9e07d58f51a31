/*
 * Asynchronous name resolution on evdns. See net/resolve.h.
 *
 * A lookup's life: mesh_resolve_start links it into the resolver's list,
 * arms its timer with the deadline and asks evdns. evdns's answer (which
 * may come at once, from /etc/hosts) is stored and the timer re-armed to
 * fire at once, so the caller hears of it from the loop. The timer, fired
 * for the deadline or for an answer, is the one place that calls back and
 * frees the lookup. A cancelled evdns request still calls its callback
 * later (deferred) with EVUTIL_EAI_CANCEL; that call is recognised before
 * its argument is touched, since the lookup is gone by then.
 */
#include "net/resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mesh_resolve_req {
  mesh_resolve_req *next, *prev; /* in the resolver's list */
  mesh_resolver *r;
  struct evdns_getaddrinfo_request *dns; /* the evdns lookup running, or NULL */
  struct event *timer;                   /* the deadline, then the answer's delivery */
  mesh_resolve_fn fn;
  void *arg;
  bool answered; /* rc, ss and sl hold the answer */
  int rc;
  struct sockaddr_storage ss;
  socklen_t sl;
  mesh_multiaddr addr;
};

struct mesh_resolver {
  struct event_base *base; /* borrowed */
  struct evdns_base *dns;  /* made on the first DNS lookup */
  mesh_resolver_options opt;
  char nameserver[64];    /* copy of opt.nameserver */
  mesh_resolve_req *reqs; /* lookups running */
  unsigned pending;       /* their number */
  mesh_resolver_counters c;
};

static char test_nameserver[64]; /* the test hook's server, or "" */

void mesh_resolver_test_nameserver(const char *addr)
{
  snprintf(test_nameserver, sizeof test_nameserver, "%s", addr != NULL ? addr : "");
}

void mesh_resolver_options_default(mesh_resolver_options *o)
{
  memset(o, 0, sizeof *o);
  o->timeout_ms = 5000;
  o->max_pending = 64;
  if (test_nameserver[0] != '\0')
    o->nameserver = test_nameserver;
}

/* Checks "IP" or "IP:port" (IPv6 as "[IP]:port") without resolving. */
static bool valid_nameserver(const char *s)
{
  struct sockaddr_storage ss;
  int len = (int)sizeof ss;
  return evutil_parse_sockaddr_port(s, (struct sockaddr *)&ss, &len) == 0;
}

int mesh_resolver_new(struct event_base *base, const mesh_resolver_options *opt,
                      mesh_resolver **out)
{
  mesh_resolver *r = calloc(1, sizeof *r);
  if (r == NULL)
    return -ENOMEM;
  r->base = base;
  if (opt != NULL)
    r->opt = *opt;
  else
    mesh_resolver_options_default(&r->opt);
  if (r->opt.timeout_ms == 0)
    r->opt.timeout_ms = 5000;
  if (r->opt.max_pending == 0)
    r->opt.max_pending = 64;
  if (r->opt.nameserver != NULL) {
    size_t n = strlen(r->opt.nameserver);
    if (n >= sizeof r->nameserver || !valid_nameserver(r->opt.nameserver)) {
      free(r);
      return -EINVAL;
    }
    memcpy(r->nameserver, r->opt.nameserver, n + 1);
    r->opt.nameserver = r->nameserver;
  }
  *out = r;
  return 0;
}

/* The evdns base, made on first use: reading resolv.conf waits until a
 * name is actually dialled. */
static struct evdns_base *dns_base(mesh_resolver *r)
{
  if (r->dns != NULL)
    return r->dns;
  /* An idle base keeps no event pending, so it never holds the loop up. */
  int flags = EVDNS_BASE_DISABLE_WHEN_INACTIVE;
  if (r->opt.nameserver == NULL)
    flags |= EVDNS_BASE_INITIALIZE_NAMESERVERS;
  struct evdns_base *d = evdns_base_new(r->base, flags);
  if (d == NULL)
    return NULL;
  if (r->opt.nameserver != NULL && evdns_base_nameserver_ip_add(d, r->opt.nameserver) != 0) {
    evdns_base_free(d, 0);
    return NULL;
  }
  /* Names in /etc/hosts (localhost above all) are answered without a
   * query; without the file, localhost still is. */
  if (evdns_base_load_hosts(d, "/etc/hosts") != 0)
    evdns_base_load_hosts(d, NULL);
  r->dns = d;
  return d;
}

static void unlink_req(mesh_resolve_req *q)
{
  mesh_resolver *r = q->r;
  if (q->prev != NULL)
    q->prev->next = q->next;
  else
    r->reqs = q->next;
  if (q->next != NULL)
    q->next->prev = q->prev;
  r->pending--;
}

static void free_req(mesh_resolve_req *q)
{
  if (q->timer != NULL)
    event_free(q->timer);
  free(q);
}

/* Abandons q's evdns lookup, if any; its callback comes later and is
 * ignored. */
static void drop_dns(mesh_resolve_req *q)
{
  struct evdns_getaddrinfo_request *d = q->dns;
  if (d != NULL) {
    q->dns = NULL;
    evdns_getaddrinfo_cancel(d);
  }
}

static void deliver_soon(mesh_resolve_req *q)
{
  struct timeval zero = {0, 0};
  evtimer_add(q->timer, &zero);
}

static int map_error(int err)
{
  switch (err) {
  case EVUTIL_EAI_NONAME:
  case EVUTIL_EAI_NODATA:
  case EVUTIL_EAI_ADDRFAMILY:
  case EVUTIL_EAI_FAMILY:
    return -EHOSTUNREACH;
  case EVUTIL_EAI_MEMORY:
    return -ENOMEM;
  default:
    return -EAGAIN; /* server failure, refused, no server answered */
  }
}

static void on_dns(int err, struct evutil_addrinfo *res, void *arg)
{
  if (err == EVUTIL_EAI_CANCEL) {
    /* Only ever for a lookup already gone: do not touch arg. */
    if (res != NULL)
      evutil_freeaddrinfo(res);
    return;
  }
  mesh_resolve_req *q = arg;
  q->dns = NULL;
  q->answered = true;
  q->rc = err != 0 ? map_error(err) : -EHOSTUNREACH;
  for (struct evutil_addrinfo *ai = res; err == 0 && ai != NULL; ai = ai->ai_next) {
    if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) && ai->ai_addrlen <= sizeof q->ss) {
      memcpy(&q->ss, ai->ai_addr, ai->ai_addrlen);
      q->sl = (socklen_t)ai->ai_addrlen;
      q->rc = 0;
      break;
    }
  }
  if (res != NULL)
    evutil_freeaddrinfo(res);
  deliver_soon(q);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
  mesh_resolve_req *q = arg;
  mesh_resolver *r = q->r;
  if (!q->answered) {
    drop_dns(q);
    q->rc = -ETIMEDOUT;
    r->c.timed_out++;
  } else if (q->rc == 0) {
    r->c.resolved++;
  } else {
    r->c.failed++;
  }
  unlink_req(q);
  mesh_resolve_fn fn = q->fn;
  void *fn_arg = q->arg;
  int rc = q->rc;
  struct sockaddr_storage ss = q->ss;
  socklen_t sl = q->sl;
  free_req(q);
  fn(fn_arg, rc, rc == 0 ? (const struct sockaddr *)&ss : NULL, rc == 0 ? sl : 0);
}

int mesh_resolve_start(mesh_resolver *r, const mesh_multiaddr *a, mesh_resolve_fn fn, void *arg,
                       mesh_resolve_req **req)
{
  if (a->host[0] == '\0')
    return -EINVAL;
  if (r->pending >= r->opt.max_pending)
    return -EBUSY;
  mesh_resolve_req *q = calloc(1, sizeof *q);
  if (q == NULL)
    return -ENOMEM;
  q->r = r;
  q->fn = fn;
  q->arg = arg;
  q->addr = *a;
  q->timer = evtimer_new(r->base, on_timer, q);
  if (q->timer == NULL) {
    free(q);
    return -ENOMEM;
  }
  q->next = r->reqs;
  if (r->reqs != NULL)
    r->reqs->prev = q;
  r->reqs = q;
  r->pending++;
  r->c.lookups++;
  if (a->kind == MESH_MA_IP4 || a->kind == MESH_MA_IP6) {
    /* A literal: nothing to ask anyone. */
    q->answered = true;
    q->rc = mesh_multiaddr_resolve(a, &q->ss, &q->sl);
    deliver_soon(q);
  } else {
    struct evdns_base *d = dns_base(r);
    if (d == NULL) {
      unlink_req(q);
      r->c.lookups--;
      free_req(q);
      return -ENOMEM;
    }
    struct timeval tv = {.tv_sec = (time_t)(r->opt.timeout_ms / 1000),
                         .tv_usec = (suseconds_t)(r->opt.timeout_ms % 1000) * 1000};
    evtimer_add(q->timer, &tv);
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = a->kind == MESH_MA_DNS4   ? AF_INET
                      : a->kind == MESH_MA_DNS6 ? AF_INET6
                                                : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_NUMERICSERV;
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)a->port);
    /* The callback may run inside this call (a hosts-file answer); it only
     * stores the answer and re-arms the timer. */
    struct evdns_getaddrinfo_request *dr =
        evdns_getaddrinfo(d, q->addr.host, port, &hints, on_dns, q);
    if (!q->answered)
      q->dns = dr;
  }
  if (req != NULL)
    *req = q;
  return 0;
}

void mesh_resolve_cancel(mesh_resolve_req *q)
{
  q->r->c.cancelled++;
  drop_dns(q);
  unlink_req(q);
  free_req(q);
}

void mesh_resolver_free(mesh_resolver *r)
{
  if (r == NULL)
    return;
  while (r->reqs != NULL)
    mesh_resolve_cancel(r->reqs);
  /* Lookups cancelled just now still have callbacks scheduled on the loop
   * (they are ignored); fail_requests = 0 leaves those alone. */
  if (r->dns != NULL)
    evdns_base_free(r->dns, 0);
  free(r);
}

const mesh_resolver_counters *mesh_resolver_counters_of(const mesh_resolver *r)
{
  return &r->c;
}

const char *mesh_resolve_strerror(int rc)
{
  switch (rc) {
  case 0:
    return "resolved";
  case -EHOSTUNREACH:
    return "no such name (or no address of the family asked)";
  case -ETIMEDOUT:
    return "no answer before the deadline";
  case -EAGAIN:
    return "the nameserver failed or refused";
  case -EBUSY:
    return "too many lookups running";
  case -ENOMEM:
    return "out of memory";
  default:
    return "lookup failed";
  }
}
