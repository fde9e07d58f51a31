/*
 * The test-only delay line (net/fault.h): spec parsing, the sans-IO core
 * (a min-heap of held messages ordered by due time, then arrival) and the
 * libevent driver that releases them into the transports.
 */
#include "net/fault.h"

#include "src/base/cfg_values.h"
#include "src/base/rng.h"

#include <errno.h>
#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- Spec text --- */

void mesh_fault_spec_default(mesh_fault_spec *s)
{
  memset(s, 0, sizeof *s);
  s->max_bytes = 4u << 20;
  s->max_messages = 4096;
}

static int spec_error(char *err, size_t errlen, const char *key, const char *why)
{
  if (err != NULL && errlen > 0)
    snprintf(err, errlen, "%s%s%s", key, key[0] != '\0' ? ": " : "", why);
  return -EINVAL;
}

/* Applies one key=value item; item is NUL-terminated and writable. */
static int spec_item(mesh_fault_spec *s, char *item, unsigned *seen, char *err, size_t errlen)
{
  static const char *const keys[] = {"delay",     "jitter",       "dist", "peer",
                                     "max-bytes", "max-messages", "seed"};
  char *eq = strchr(item, '=');
  if (eq == NULL)
    return spec_error(err, errlen, item, "expected key=value");
  *eq = '\0';
  const char *key = item, *val = eq + 1;
  size_t k = 0;
  while (k < sizeof keys / sizeof keys[0] && strcmp(keys[k], key) != 0)
    k++;
  if (k == sizeof keys / sizeof keys[0])
    return spec_error(err, errlen, key,
                      "unknown key (delay, jitter, dist, peer, max-bytes, "
                      "max-messages, seed)");
  if ((*seen & (1u << k)) != 0)
    return spec_error(err, errlen, key, "given twice");
  *seen |= 1u << k;
  if (val[0] == '\0')
    return spec_error(err, errlen, key, "empty value");

  const char *why = NULL;
  uint64_t u = 0;
  int64_t i = 0;
  switch (k) {
  case 0: /* delay */
  case 1: /* jitter */
    if (mesh_config_parse_duration(val, &u, &why) != 0)
      return spec_error(err, errlen, key, why != NULL ? why : "not a duration");
    if (u > MESH_FAULT_DELAY_MAX)
      return spec_error(err, errlen, key, "more than 60s");
    if (k == 0)
      s->delay_ms = u;
    else
      s->jitter_ms = u;
    return 0;
  case 2: /* dist */
    if (strcmp(val, "uniform") == 0)
      s->dist = MESH_FAULT_UNIFORM;
    else if (strcmp(val, "normal") == 0)
      s->dist = MESH_FAULT_NORMAL;
    else
      return spec_error(err, errlen, key, "uniform or normal");
    return 0;
  case 3: /* peer */
    if (mesh_peer_id_parse(val, &s->peer) != 0)
      return spec_error(err, errlen, key, "not a peer ID");
    s->has_peer = true;
    return 0;
  case 4: /* max-bytes */
    if (mesh_config_parse_size(val, &u, &why) != 0)
      return spec_error(err, errlen, key, why != NULL ? why : "not a size");
    if (u < 1 || u > MESH_FAULT_BYTES_MAX)
      return spec_error(err, errlen, key, "from 1 byte to 64 MiB");
    s->max_bytes = (size_t)u;
    return 0;
  case 5: /* max-messages */
    if (mesh_config_parse_int(val, &i, &why) != 0)
      return spec_error(err, errlen, key, why != NULL ? why : "not a number");
    if (i < 1 || i > MESH_FAULT_MESSAGES_MAX)
      return spec_error(err, errlen, key, "from 1 to 65536");
    s->max_messages = (size_t)i;
    return 0;
  default: /* seed */
    if (mesh_config_parse_int(val, &i, &why) != 0 || i < 0)
      return spec_error(err, errlen, key, why != NULL ? why : "not a non-negative number");
    s->seed = (uint64_t)i;
    s->has_seed = true;
    return 0;
  }
}

int mesh_fault_spec_parse(const char *text, mesh_fault_spec *out, char *err, size_t errlen)
{
  mesh_fault_spec s;
  mesh_fault_spec_default(&s);
  size_t n = strnlen(text, MESH_FAULT_SPEC_MAX + 1);
  if (n > MESH_FAULT_SPEC_MAX)
    return spec_error(err, errlen, "", "spec longer than 512 characters");
  char buf[MESH_FAULT_SPEC_MAX + 1];
  memcpy(buf, text, n);
  buf[n] = '\0';
  /* Whitespace around the text (a file's trailing newline) is not part of it. */
  char *start = buf;
  while (*start == ' ' || *start == '\t' || *start == '\n' || *start == '\r')
    start++;
  char *end = start + strlen(start);
  while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
    *--end = '\0';
  if (strcmp(start, "off") == 0) {
    *out = s;
    return 0;
  }
  if (*start == '\0')
    return spec_error(err, errlen, "", "empty spec (\"off\", or delay=...)");
  unsigned seen = 0;
  char *item = start;
  for (;;) {
    char *comma = strchr(item, ',');
    if (comma != NULL)
      *comma = '\0';
    int rc = spec_item(&s, item, &seen, err, errlen);
    if (rc != 0)
      return rc;
    if (comma == NULL)
      break;
    item = comma + 1;
  }
  if ((seen & 1u) == 0)
    return spec_error(err, errlen, "delay", "missing (give delay=0 for jitter alone)");
  s.active = true;
  *out = s;
  return 0;
}

void mesh_fault_spec_describe(const mesh_fault_spec *s, char *buf, size_t len)
{
  if (!s->active) {
    snprintf(buf, len, "off");
    return;
  }
  char d[32], j[32], b[32], peer[MESH_PEER_ID_TEXT_MAX + 8] = "";
  mesh_config_format_duration(s->delay_ms, d, sizeof d);
  mesh_config_format_duration(s->jitter_ms, j, sizeof j);
  mesh_config_format_size(s->max_bytes, b, sizeof b);
  if (s->has_peer) {
    char id[MESH_PEER_ID_TEXT_MAX];
    mesh_peer_id_to_text(&s->peer, id, sizeof id);
    snprintf(peer, sizeof peer, ",peer=%s", id);
  }
  snprintf(buf, len, "delay=%s,jitter=%s,dist=%s,max-bytes=%s,max-messages=%zu%s", d, j,
           s->dist == MESH_FAULT_NORMAL ? "normal" : "uniform", b, s->max_messages, peer);
}

/* --- The core --- */

struct mesh_fault {
  mesh_fault_spec spec;
  mesh_rng rng;
  mesh_fault_msg **heap;                        /* min-heap by (due, seq) */
  size_t n, cap;                                /* messages held, heap slots */
  size_t bytes;                                 /* bytes held */
  uint64_t next_seq;                            /* arrival counter */
  mesh_peer_id blocked[MESH_FAULT_BLOCKED_MAX]; /* refused peers, to be told of room */
  size_t n_blocked;
  mesh_fault_counters counters;
};

static bool spec_bounds_ok(const mesh_fault_spec *s)
{
  return s->max_bytes >= 1 && s->max_bytes <= MESH_FAULT_BYTES_MAX && s->max_messages >= 1 &&
         s->max_messages <= MESH_FAULT_MESSAGES_MAX && s->delay_ms <= MESH_FAULT_DELAY_MAX &&
         s->jitter_ms <= MESH_FAULT_DELAY_MAX;
}

int mesh_fault_new(const mesh_fault_spec *spec, uint64_t seed, mesh_fault **out)
{
  if (!spec_bounds_ok(spec))
    return -EINVAL;
  mesh_fault *f = calloc(1, sizeof *f);
  if (f == NULL)
    return -ENOMEM;
  f->spec = *spec;
  mesh_rng_seed(&f->rng, spec->has_seed ? spec->seed : seed);
  *out = f;
  return 0;
}

void mesh_fault_free(mesh_fault *f)
{
  if (f == NULL)
    return;
  for (size_t i = 0; i < f->n; i++)
    free(f->heap[i]);
  free(f->heap);
  free(f);
}

int mesh_fault_set_spec(mesh_fault *f, const mesh_fault_spec *spec)
{
  if (!spec_bounds_ok(spec))
    return -EINVAL;
  if (spec->has_seed && (!f->spec.has_seed || f->spec.seed != spec->seed))
    mesh_rng_seed(&f->rng, spec->seed);
  f->spec = *spec;
  return 0;
}

const mesh_fault_spec *mesh_fault_get_spec(const mesh_fault *f)
{
  return &f->spec;
}

bool mesh_fault_selects(const mesh_fault *f, const mesh_peer_id *peer)
{
  return f->spec.active && (!f->spec.has_peer || mesh_peer_id_eq(&f->spec.peer, peer));
}

bool mesh_fault_holds_stream(const mesh_fault *f, const mesh_peer_id *peer)
{
  for (size_t i = 0; i < f->n; i++)
    if (f->heap[i]->cls == MESH_CLASS_STREAM && mesh_peer_id_eq(&f->heap[i]->peer, peer))
      return true;
  return false;
}

/* One delay drawn from the spec's distribution, never negative. */
static mesh_time_ms sample_delay(mesh_fault *f)
{
  int64_t d = (int64_t)f->spec.delay_ms, j = (int64_t)f->spec.jitter_ms;
  if (j == 0)
    return (mesh_time_ms)d;
  int64_t v;
  if (f->spec.dist == MESH_FAULT_NORMAL) {
    /* Box-Muller; 1 - u keeps the logarithm's argument in (0, 1]. */
    double u1 = 1.0 - mesh_rng_unit(&f->rng), u2 = mesh_rng_unit(&f->rng);
    double z = sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
    if (z > 3.0)
      z = 3.0;
    if (z < -3.0)
      z = -3.0;
    v = d + (int64_t)llround(z * (double)j);
  } else {
    v = d - j + (int64_t)mesh_rng_below(&f->rng, (uint64_t)(2 * j + 1));
  }
  return v < 0 ? 0 : (mesh_time_ms)v;
}

static bool before(const mesh_fault_msg *a, const mesh_fault_msg *b)
{
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void sift_up(mesh_fault *f, size_t i)
{
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!before(f->heap[i], f->heap[p]))
      break;
    mesh_fault_msg *t = f->heap[i];
    f->heap[i] = f->heap[p];
    f->heap[p] = t;
    i = p;
  }
}

static void sift_down(mesh_fault *f, size_t i)
{
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < f->n && before(f->heap[l], f->heap[m]))
      m = l;
    if (r < f->n && before(f->heap[r], f->heap[m]))
      m = r;
    if (m == i)
      break;
    mesh_fault_msg *t = f->heap[i];
    f->heap[i] = f->heap[m];
    f->heap[m] = t;
    i = m;
  }
}

/* Remembers a refused peer (once) so that it hears when there is room. */
static void remember_blocked(mesh_fault *f, const mesh_peer_id *peer)
{
  for (size_t i = 0; i < f->n_blocked; i++)
    if (mesh_peer_id_eq(&f->blocked[i], peer))
      return;
  /* Past the table's size the peer learns of room from its next attempt. */
  if (f->n_blocked < MESH_FAULT_BLOCKED_MAX)
    f->blocked[f->n_blocked++] = *peer;
}

int mesh_fault_push(mesh_fault *f, mesh_time_ms now, const mesh_peer_id *peer, mesh_channel ch,
                    mesh_class cls, const uint8_t *buf, size_t len, mesh_time_ms *due)
{
  return mesh_fault_push_tagged(f, now, peer, ch, cls, buf, len, NULL, due);
}

int mesh_fault_push_tagged(mesh_fault *f, mesh_time_ms now, const mesh_peer_id *peer,
                           mesh_channel ch, mesh_class cls, const uint8_t *buf, size_t len,
                           void *tag, mesh_time_ms *due)
{
  if (f->n + 1 > f->spec.max_messages || len > f->spec.max_bytes - f->bytes ||
      f->bytes > f->spec.max_bytes) {
    if (cls == MESH_CLASS_STREAM) {
      f->counters.refused++;
      remember_blocked(f, peer);
      return -EAGAIN;
    }
    f->counters.dropped++;
    return -ENOBUFS;
  }
  if (f->n == f->cap) {
    size_t cap = f->cap == 0 ? 64 : f->cap * 2;
    if (cap > f->spec.max_messages)
      cap = f->spec.max_messages;
    mesh_fault_msg **h = realloc(f->heap, cap * sizeof *h);
    if (h == NULL)
      return -ENOMEM;
    f->heap = h;
    f->cap = cap;
  }
  mesh_fault_msg *m = malloc(sizeof *m + len);
  if (m == NULL)
    return -ENOMEM;
  mesh_time_ms delay = mesh_fault_selects(f, peer) ? sample_delay(f) : 0;
  m->due = now + delay;
  if (cls == MESH_CLASS_STREAM) {
    /* Never ahead of an earlier stream message to the same peer. */
    for (size_t i = 0; i < f->n; i++) {
      const mesh_fault_msg *o = f->heap[i];
      if (o->cls == MESH_CLASS_STREAM && o->due > m->due && mesh_peer_id_eq(&o->peer, peer))
        m->due = o->due;
    }
  }
  m->seq = f->next_seq++;
  m->peer = *peer;
  m->ch = ch;
  m->cls = cls;
  m->tag = tag;
  m->len = len;
  if (len > 0)
    memcpy(m->buf, buf, len);
  f->heap[f->n++] = m;
  sift_up(f, f->n - 1);
  f->bytes += len;
  f->counters.held++;
  if (delay > f->counters.max_delay_ms)
    f->counters.max_delay_ms = delay;
  f->counters.held_now = f->n;
  f->counters.held_bytes_now = f->bytes;
  if (due != NULL)
    *due = m->due;
  return 0;
}

bool mesh_fault_next_due(const mesh_fault *f, mesh_time_ms *due)
{
  if (f->n == 0)
    return false;
  *due = f->heap[0]->due;
  return true;
}

mesh_fault_msg *mesh_fault_pop(mesh_fault *f, mesh_time_ms now)
{
  if (f->n == 0 || f->heap[0]->due > now)
    return NULL;
  mesh_fault_msg *m = f->heap[0];
  f->heap[0] = f->heap[--f->n];
  if (f->n > 0)
    sift_down(f, 0);
  f->bytes -= m->len;
  f->counters.released++;
  f->counters.held_now = f->n;
  f->counters.held_bytes_now = f->bytes;
  return m;
}

void mesh_fault_msg_free(mesh_fault_msg *m)
{
  free(m);
}

size_t mesh_fault_take_room(mesh_fault *f, mesh_peer_id *out, size_t cap)
{
  if (f->n_blocked == 0 || f->n >= f->spec.max_messages || f->bytes >= f->spec.max_bytes)
    return 0;
  size_t k = f->n_blocked < cap ? f->n_blocked : cap;
  memcpy(out, f->blocked, k * sizeof *out);
  memmove(f->blocked, f->blocked + k, (f->n_blocked - k) * sizeof *f->blocked);
  f->n_blocked -= k;
  return k;
}

const mesh_fault_counters *mesh_fault_counters_get(const mesh_fault *f)
{
  return &f->counters;
}

/* --- The driver: a decorator around each transport (mesh_net_wrap) --- */

struct mesh_fault_line {
  mesh_net *net;       /* borrowed: the net owns the line once it wraps it */
  mesh_fault *core;    /* owned */
  struct event *timer; /* fires at the earliest due time */
  size_t frame_max;    /* larger messages are not held */
  bool releasing;      /* inside on_timer: no re-arm from push */
  bool passing;        /* a released datagram re-routed: decorators let it through */
};

/* One transport as the line wraps it: the state of the decorator. */
typedef struct fault_wrap {
  mesh_transport_ops ops;          /* this decorator's table: inner's scheme */
  mesh_fault_line *line;           /* borrowed: freed after the transports */
  const mesh_transport_ops *inner; /* the transport (or decorator) inside */
  void *inner_state;
} fault_wrap;

static void arm(mesh_fault_line *l, mesh_time_ms now)
{
  mesh_time_ms due;
  if (!mesh_fault_next_due(l->core, &due)) {
    evtimer_del(l->timer);
    return;
  }
  mesh_time_ms wait = due > now ? due - now : 0;
  struct timeval tv = {.tv_sec = (time_t)(wait / 1000),
                       .tv_usec = (suseconds_t)(wait % 1000) * 1000};
  evtimer_add(l->timer, &tv);
}

/* Hands a due message to the transport it was sent to, as if sent now. */
static int release(mesh_fault_line *l, const mesh_fault_msg *m)
{
  const fault_wrap *w = m->tag;
  /* The connection went down meanwhile (or the path it was to take). */
  if (!w->inner->can_send(w->inner_state, &m->peer, m->cls))
    return -ENOTCONN;
  int rc = w->inner->send(w->inner_state, &m->peer, m->ch, m->cls, m->buf, m->len);
  if (rc == -EMSGSIZE && m->cls == MESH_CLASS_DATAGRAM) {
    /* Too big for that transport (its size is known only by sending): the
     * net hands it to the next one down, undelayed this time. */
    l->passing = true;
    rc = mesh_net_send(l->net, &m->peer, m->ch, m->cls, m->buf, m->len);
    l->passing = false;
  }
  return rc;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
  (void)fd;
  (void)what;
  mesh_fault_line *l = arg;
  mesh_time_ms now = mesh_net_now(l->net);
  mesh_fault_msg *m;
  l->releasing = true;
  while ((m = mesh_fault_pop(l->core, now)) != NULL) {
    if (release(l, m) != 0)
      l->core->counters.release_failed++;
    mesh_fault_msg_free(m);
  }
  l->releasing = false;
  mesh_peer_id room[MESH_FAULT_BLOCKED_MAX];
  size_t k = mesh_fault_take_room(l->core, room, MESH_FAULT_BLOCKED_MAX);
  for (size_t i = 0; i < k; i++)
    mesh_net_writable(l->net, &room[i]);
  arm(l, now);
}

/* The decorator's send: holds what the spec selects, passes the rest. */
static int wrap_send(void *state, const mesh_peer_id *peer, mesh_channel ch, mesh_class cls,
                     const uint8_t *buf, size_t len)
{
  fault_wrap *w = state;
  mesh_fault_line *l = w->line;
  bool held_before = cls == MESH_CLASS_STREAM && mesh_fault_holds_stream(l->core, peer);
  if (l->passing || (!held_before && !mesh_fault_selects(l->core, peer)) || len > l->frame_max)
    return w->inner->send(w->inner_state, peer, ch, cls, buf, len);
  mesh_time_ms now = mesh_net_now(l->net);
  int rc = mesh_fault_push_tagged(l->core, now, peer, ch, cls, buf, len, w, NULL);
  /* A message pushed while releasing is armed for by the release's own arm. */
  if (rc == 0 && !l->releasing)
    arm(l, now);
  return rc;
}

/* Everything but send is the transport's own: these forward to it. */
static int wrap_listen(void *state, const mesh_multiaddr *addr, mesh_multiaddr *bound)
{
  fault_wrap *w = state;
  return w->inner->listen(w->inner_state, addr, bound);
}

static int wrap_dial(void *state, const mesh_multiaddr *addr, const mesh_peer_id *expect,
                     uint64_t token)
{
  fault_wrap *w = state;
  return w->inner->dial(w->inner_state, addr, expect, token);
}

static bool wrap_can_send(void *state, const mesh_peer_id *peer, mesh_class cls)
{
  fault_wrap *w = state;
  return w->inner->can_send(w->inner_state, peer, cls);
}

static int wrap_disconnect(void *state, const mesh_peer_id *peer)
{
  fault_wrap *w = state;
  return w->inner->disconnect(w->inner_state, peer);
}

static void wrap_peer_event(void *state, const mesh_net_peer_event *ev)
{
  fault_wrap *w = state;
  w->inner->peer_event(w->inner_state, ev);
}

static void wrap_set_epoch(void *state, uint64_t epoch)
{
  fault_wrap *w = state;
  w->inner->set_epoch(w->inner_state, epoch);
}

static int wrap_frame_cipher(void *state, const mesh_peer_id *peer)
{
  fault_wrap *w = state;
  return w->inner->frame_cipher(w->inner_state, peer);
}

static void wrap_listened(void *state, const mesh_multiaddr *bound)
{
  fault_wrap *w = state;
  w->inner->listened(w->inner_state, bound);
}

static void wrap_bulk_seq(void *state, const mesh_peer_id *from, const uint8_t *buf, size_t len)
{
  fault_wrap *w = state;
  w->inner->bulk_seq(w->inner_state, from, buf, len);
}

static void wrap_writable(void *state, const mesh_peer_id *peer)
{
  fault_wrap *w = state;
  w->inner->writable(w->inner_state, peer);
}

static void wrap_traffic(void *state, const mesh_peer_id *peer, bool sent)
{
  fault_wrap *w = state;
  w->inner->traffic(w->inner_state, peer, sent);
}

/* Frees the decorator only: the net finishes the transport inside. */
static void wrap_fini(void *state)
{
  free(state);
}

int mesh_fault_line_wrap(void *arg, const mesh_transport_ops *inner, void *inner_state,
                         const mesh_transport_ops **ops, void **state)
{
  fault_wrap *w = calloc(1, sizeof *w);
  if (w == NULL)
    return -ENOMEM;
  w->line = arg;
  w->inner = inner;
  w->inner_state = inner_state;
  w->ops = (mesh_transport_ops){
      .scheme = inner->scheme,
      .role = inner->role,
      .init = NULL,
      .fini = wrap_fini,
      .listen = inner->listen != NULL ? wrap_listen : NULL,
      .dial = inner->dial != NULL ? wrap_dial : NULL,
      .can_send = wrap_can_send,
      .send = wrap_send,
      .disconnect = inner->disconnect != NULL ? wrap_disconnect : NULL,
      .peer_event = inner->peer_event != NULL ? wrap_peer_event : NULL,
      .set_epoch = inner->set_epoch != NULL ? wrap_set_epoch : NULL,
      .frame_cipher = inner->frame_cipher != NULL ? wrap_frame_cipher : NULL,
      .listened = inner->listened != NULL ? wrap_listened : NULL,
      .bulk_seq = inner->bulk_seq != NULL ? wrap_bulk_seq : NULL,
      .writable = inner->writable != NULL ? wrap_writable : NULL,
      .traffic = inner->traffic != NULL ? wrap_traffic : NULL,
  };
  *ops = &w->ops;
  *state = w;
  return 0;
}

int mesh_fault_line_new(mesh_net *net, struct event_base *base, const mesh_fault_spec *spec,
                        uint64_t seed, size_t frame_max, mesh_fault_line **out)
{
  mesh_fault_line *l = calloc(1, sizeof *l);
  if (l == NULL)
    return -ENOMEM;
  int rc = mesh_fault_new(spec, seed, &l->core);
  if (rc != 0)
    goto fail;
  l->timer = evtimer_new(base, on_timer, l);
  if (l->timer == NULL) {
    rc = -ENOMEM;
    goto fail;
  }
  l->net = net;
  l->frame_max = frame_max;
  *out = l;
  return 0;

fail:
  mesh_fault_free(l->core);
  free(l);
  return rc;
}

void mesh_fault_line_free(mesh_fault_line *l)
{
  if (l == NULL)
    return;
  if (l->timer != NULL)
    event_free(l->timer);
  mesh_fault_free(l->core);
  free(l);
}

void mesh_fault_line_release(void *line)
{
  mesh_fault_line_free(line);
}

int mesh_fault_line_set_spec(mesh_fault_line *l, const mesh_fault_spec *spec)
{
  return mesh_fault_set_spec(l->core, spec);
}

const mesh_fault *mesh_fault_line_core(const mesh_fault_line *l)
{
  return l->core;
}
