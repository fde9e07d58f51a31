/*
 * The coordinator core against DESIGN.md's eight rules, one or more tests
 * per rule, with time passed in and executors answered by the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_coord_harness.h"

#include "coord/coord_internal.h"
#include "src/base/err.h"

#include <errno.h>
#include <stdint.h>

#define MIN 60000ull

/* Two nodes that see each other and have exchanged what they hold. */
static void pair(tnode *a, tnode *b, mesh_time_ms now)
{
  tnode *all[] = {a, b};
  view_event(a, MESH_VIEW_JOINED, b, b->epoch, b->epoch, now);
  view_event(b, MESH_VIEW_JOINED, a, a->epoch, a->epoch, now);
  exchange(all, 2, now);
}

/* Rule 1: actions only for own entries; B replicates A's entries and never
 * acts on them, whatever their status. */
static void test_rule1_only_own_entries_act(void **state)
{
  (void)state;
  tnode a, b;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  pair(&a, &b, 0);
  start_model(&a, "org/done", true, 0);
  start_model(&a, "org/going", false, 0);
  mesh_coord_cmd del = {.kind = MESH_COORD_CMD_DELETE, .model_id = "org/gone"};
  assert_int_equal(mesh_coord_command(a.c, &del, 0, NULL, NULL, 0), 0);
  tnode *all[] = {&a, &b};
  exchange(all, 2, 0);
  mesh_coord_tick(a.c, 1000);
  exchange(all, 2, 1000);
  /* A asked its own executors: space, download, delete. */
  assert_int_equal(a.act_total[MESH_COORD_ACT_CHECK_SPACE], 2);
  assert_int_equal(a.act_total[MESH_COORD_ACT_DOWNLOAD], 2);
  assert_int_equal(a.act_total[MESH_COORD_ACT_DELETE], 1);
  /* B holds the three entries and acts on none of them, ever. */
  visit_count v = visit(&b, 1000);
  assert_int_equal(v.others, 3);
  assert_int_equal(v.own, 0);
  for (mesh_time_ms t = 1000; t < 30 * MIN; t += 1000)
    mesh_coord_tick(b.c, t);
  tnode_drain(&b);
  for (int k = 0; k < 16; k++)
    assert_int_equal(b.act_total[k], 0);
  assert_int_equal(b.total[MESH_COORD_OUT_STORE_PUT], 0);
  assert_int_equal(b.total[MESH_COORD_OUT_JOURNAL], 0);
  tnode_free(&a);
  tnode_free(&b);
}

/* Rule 1: a command for another node travels to it, signed; the owner
 * executes and answers. */
static void test_rule1_command_travels_to_owner(void **state)
{
  (void)state;
  tnode a, b;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  pair(&a, &b, 0);
  mesh_coord_cmd cmd = {.kind = MESH_COORD_CMD_START, .model_id = "org/m", .target = &b.id.id};
  uint64_t seq = 0;
  char msg[256];
  assert_int_equal(mesh_coord_command(a.c, &cmd, 10, &seq, msg, sizeof msg), 0);
  assert_true(seq > 0);
  tnode_clear(&a);
  tnode_drain(&a);
  /* The sender only sends: no action of its own. */
  assert_int_equal(tnode_count(&a, MESH_COORD_OUT_ACTION), 0);
  assert_int_equal(tnode_count(&a, MESH_COORD_OUT_SEND), 1);
  tnode *all[] = {&a, &b};
  deliver(&a, all, 2, 10);
  exchange(all, 2, 10);
  assert_int_equal(b.act_total[MESH_COORD_ACT_CHECK_SPACE], 1);
  assert_int_equal(mesh_coord_get_stats(b.c)->cmds_accepted, 1);
  assert_int_equal(a.total[MESH_COORD_OUT_RESULT], 1);
  assert_int_equal(a.last_result.u.result.code, 0);
  assert_int_equal(a.last_result.u.result.seq, seq);
  assert_true(mesh_peer_id_eq(&a.last_result.u.result.from, &b.id.id));
  /* The entry is B's and A sees it through B's document. */
  visit_count v = visit(&a, 10);
  assert_int_equal(v.others, 1);
  assert_int_equal(mesh_coord_own_count(a.c), 0);
  assert_int_equal(mesh_coord_own_count(b.c), 1);

  /* The same signed bytes again: refused as a replay, nothing executed. */
  mesh_coord_cmd again = {.kind = MESH_COORD_CMD_DELETE, .model_id = "org/m", .target = &b.id.id};
  assert_int_equal(mesh_coord_command(a.c, &again, 20, &seq, msg, sizeof msg), 0);
  tnode_clear(&a);
  tnode_drain(&a);
  deliver(&a, all, 2, 20);
  deliver(&a, all, 2, 20);
  assert_int_equal(mesh_coord_get_stats(b.c)->cmds_accepted, 2);
  assert_int_equal(mesh_coord_get_stats(b.c)->cmds_refused_replay, 1);
  tnode_free(&a);
  tnode_free(&b);
}

/* Rule 1: a command for a node that is not in the view is refused and says
 * so; nothing is sent. */
static void test_rule1_command_not_in_view(void **state)
{
  (void)state;
  tnode a, b, stranger;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  tnode_init(&stranger, 3, 1, NULL);
  pair(&a, &b, 0);
  char msg[256];
  mesh_coord_cmd cmd = {
      .kind = MESH_COORD_CMD_DELETE, .model_id = "org/m", .target = &stranger.id.id};
  assert_int_equal(mesh_coord_command(a.c, &cmd, 5, NULL, msg, sizeof msg), -EHOSTUNREACH);
  assert_non_null(strstr(msg, "not in the view"));
  view_event(&a, MESH_VIEW_DEAD, &b, 1, 1, 6);
  cmd.target = &b.id.id;
  assert_int_equal(mesh_coord_command(a.c, &cmd, 7, NULL, msg, sizeof msg), -EHOSTUNREACH);
  assert_non_null(strstr(msg, "not in the view"));
  assert_non_null(strstr(msg, "dead"));
  tnode_clear(&a);
  tnode_drain(&a);
  assert_int_equal(tnode_count(&a, MESH_COORD_OUT_SEND), 0);
  /* Both refusals are in the journal, with their reason. */
  size_t refused = 0;
  for (size_t i = 0; i < a.n; i++) {
    if (a.out[i].kind == MESH_COORD_OUT_JOURNAL &&
        a.out[i].u.journal.kind == MESH_COORD_J_REFUSED) {
      refused++;
      assert_non_null(strstr(a.out[i].u.journal.text, "not in the view"));
    }
  }
  assert_int_equal(refused, 2);
  /* A bad model ID is refused before anything else. */
  mesh_coord_cmd bad = {.kind = MESH_COORD_CMD_DELETE, .model_id = "../../etc"};
  assert_int_equal(mesh_coord_command(a.c, &bad, 8, NULL, msg, sizeof msg), -EINVAL);
  assert_non_null(strstr(msg, "invalid model ID"));
  tnode_free(&a);
  tnode_free(&b);
  tnode_free(&stranger);
}

/* Rule 1: a command naming an old epoch is refused, locally when the view
 * knows better, and by the target when the sender's view is behind. */
static void test_rule1_command_old_epoch(void **state)
{
  (void)state;
  tnode a, b;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 4, NULL);
  pair(&a, &b, 0);
  char msg[256];
  mesh_coord_cmd cmd = {
      .kind = MESH_COORD_CMD_START, .model_id = "org/m", .target = &b.id.id, .target_epoch = 3};
  assert_int_equal(mesh_coord_command(a.c, &cmd, 5, NULL, msg, sizeof msg), -ESTALE);
  assert_non_null(strstr(msg, "epoch 3"));
  assert_non_null(strstr(msg, "current epoch is 4"));
  /* For this node itself too. */
  mesh_coord_cmd self = {.kind = MESH_COORD_CMD_START, .model_id = "org/m", .target_epoch = 9};
  assert_int_equal(mesh_coord_command(a.c, &self, 5, NULL, msg, sizeof msg), -ESTALE);

  /* B restarts (epoch 5) before A's view knows: A's command names epoch 4;
   * B refuses it and A receives the reason. */
  tnode_restart(&b, 5);
  view_event(&b, MESH_VIEW_JOINED, &a, 1, 1, 6);
  cmd.target_epoch = 0;
  uint64_t seq;
  assert_int_equal(mesh_coord_command(a.c, &cmd, 6, &seq, msg, sizeof msg), 0);
  tnode *all[] = {&a, &b};
  tnode_clear(&a);
  tnode_drain(&a);
  deliver(&a, all, 2, 6);
  exchange(all, 2, 6);
  assert_int_equal(mesh_coord_own_count(b.c), 0);
  assert_int_equal(a.last_result.u.result.code, -ESTALE);
  assert_non_null(strstr(a.last_result.u.result.message, "epoch 4"));
  assert_non_null(strstr(a.last_result.u.result.message, "current epoch is 5"));
  assert_int_equal(mesh_coord_get_stats(b.c)->cmds_refused_epoch, 1);
  tnode_free(&a);
  tnode_free(&b);
}

typedef struct dir_seen {
  char own[256];
  char theirs[256];
  int theirs_n;
} dir_seen;

static void see_dirs(void *arg, const mesh_coord_view_entry *ve)
{
  dir_seen *s = arg;
  char *dst = ve->own ? s->own : s->theirs;
  snprintf(dst, 256, "%s", ve->models_dir != NULL ? ve->models_dir : "(none)");
  if (!ve->own)
    s->theirs_n++;
}

/* The owner's models directory travels in its document so that every node
 * shows where the files are; one that is not a plain absolute path refuses
 * the document, counted by its own reason. */
static void test_models_dir_published(void **state)
{
  (void)state;
  assert_int_equal(mesh_coord_models_dir_check("/srv/models", 11), 0);
  assert_int_equal(mesh_coord_models_dir_check("/", 1), 0);
  assert_int_equal(mesh_coord_models_dir_check("/a/..b/c..", 10), 0);
  assert_int_equal(mesh_coord_models_dir_check("", 0), -EINVAL);
  assert_int_equal(mesh_coord_models_dir_check("models", 6), -EINVAL);
  assert_int_equal(mesh_coord_models_dir_check("/a/../etc", 9), -EINVAL);
  assert_int_equal(mesh_coord_models_dir_check("/a/..", 5), -EINVAL);
  assert_int_equal(mesh_coord_models_dir_check("/a\nb", 4), -EINVAL);
  assert_int_equal(mesh_coord_models_dir_check("/a\x1b[2J", 6), -EINVAL);
  assert_int_equal(mesh_coord_models_dir_check("/a\x7f", 3), -EINVAL);
  char longp[MESH_COORD_MODELS_DIR_MAX + 2];
  memset(longp, 'x', sizeof longp);
  longp[0] = '/';
  assert_int_equal(mesh_coord_models_dir_check(longp, MESH_COORD_MODELS_DIR_MAX), 0);
  assert_int_equal(mesh_coord_models_dir_check(longp, MESH_COORD_MODELS_DIR_MAX + 1), -EINVAL);

  mesh_coord_settings set;
  mesh_coord_settings_default(&set);
  set.models_dir = "/b/models";
  tnode a, b;
  tnode_init(&a, 1, 2, NULL);
  tnode_init(&b, 2, 1, &set);
  view_event(&b, MESH_VIEW_JOINED, &a, 2, 2, 0);
  const mesh_coord_stats *st = mesh_coord_get_stats(b.c);
  char msg[256];
  mesh_coord_cmd self = {.kind = MESH_COORD_CMD_START, .model_id = "org/mine"};
  assert_int_equal(mesh_coord_command(b.c, &self, 1, NULL, msg, sizeof msg), 0);
  uint8_t *m;
  size_t len;
  const char *bad[] = {"relative/models", "/a/../etc", "/a\nb"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    craft_doc_dir(&a.id, &a.id.id, 2, 1 + i, "org/m", 1, bad[i], &m, &len);
    assert_int_equal(mesh_coord_receive(b.c, &a.id.id, m, len, 1), -ENOTDIR);
    free(m);
  }
  assert_int_equal(st->docs_refused_models_dir, 3);
  assert_int_equal(st->docs_refused_malformed, 0);
  craft_doc_dir(&a.id, &a.id.id, 2, 9, "org/m", 1, "/a/models", &m, &len);
  assert_int_equal(mesh_coord_receive(b.c, &a.id.id, m, len, 1), 0);
  free(m);
  dir_seen seen = {0};
  mesh_coord_visit(b.c, 1, see_dirs, &seen);
  assert_string_equal(seen.own, "/b/models");
  assert_string_equal(seen.theirs, "/a/models");
  /* An owner that publishes none (an older version): no directory shown. */
  craft_doc_dir(&a.id, &a.id.id, 2, 10, "org/m", 1, NULL, &m, &len);
  assert_int_equal(mesh_coord_receive(b.c, &a.id.id, m, len, 1), 0);
  free(m);
  memset(&seen, 0, sizeof seen);
  mesh_coord_visit(b.c, 1, see_dirs, &seen);
  assert_string_equal(seen.theirs, "(none)");
  assert_int_equal(seen.theirs_n, 1);
  tnode_free(&a);
  tnode_free(&b);
}

/* A member's document is asked for and taken only once it answered a ping
 * of ours in its epoch: before that, a key holder's members cost nothing. */
static void test_docs_only_from_answered_members(void **state)
{
  (void)state;
  tnode a, b;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  const mesh_coord_stats *st = mesh_coord_get_stats(b.c);
  view_event_only(&b, MESH_VIEW_JOINED, &a, 1, 1, 0);
  assert_int_equal(st->requests_sent, 0);
  uint8_t *m;
  size_t len;
  craft_doc(&a.id, &a.id.id, 1, 1, "org/early", &m, &len);
  assert_int_equal(mesh_coord_receive(b.c, &a.id.id, m, len, 1), -EAGAIN);
  assert_int_equal(st->docs_refused_unanswered, 1);
  assert_int_equal(st->docs_accepted, 0);
  /* Reconnecting does not ask either. */
  mesh_coord_peer_connected(b.c, &a.id.id, 1);
  assert_int_equal(st->requests_sent, 0);

  /* It answers: its document is asked for, and taken. */
  view_event_only(&b, MESH_VIEW_ANSWERED, &a, 1, 1, 2);
  assert_int_equal(st->requests_sent, 1);
  assert_int_equal(mesh_coord_receive(b.c, &a.id.id, m, len, 3), 0);
  free(m);
  assert_int_equal(st->docs_accepted, 1);
  /* An answer again changes nothing. */
  view_event_only(&b, MESH_VIEW_ANSWERED, &a, 1, 1, 4);
  assert_int_equal(st->requests_sent, 1);

  /* A new epoch must answer again. */
  view_event_only(&b, MESH_VIEW_EPOCH_CHANGED, &a, 2, 1, 5);
  craft_doc(&a.id, &a.id.id, 2, 1, "org/next", &m, &len);
  assert_int_equal(mesh_coord_receive(b.c, &a.id.id, m, len, 6), -EAGAIN);
  assert_int_equal(st->docs_refused_unanswered, 2);
  /* An answer about the ended epoch does not count for the new one. */
  view_event_only(&b, MESH_VIEW_ANSWERED, &a, 1, 1, 7);
  assert_int_equal(mesh_coord_receive(b.c, &a.id.id, m, len, 8), -EAGAIN);
  view_event_only(&b, MESH_VIEW_ANSWERED, &a, 2, 2, 9);
  assert_int_equal(mesh_coord_receive(b.c, &a.id.id, m, len, 10), 0);
  free(m);
  assert_int_equal(st->docs_accepted, 2);
  tnode_free(&a);
  tnode_free(&b);
}

/* Replication: only a newer version of the owner's current epoch, signed by
 * the owner, is accepted. */
static void test_docs_refused_by_reason(void **state)
{
  (void)state;
  tnode a, b, c;
  tnode_init(&a, 1, 2, NULL);
  tnode_init(&b, 2, 1, NULL);
  tnode_init(&c, 3, 1, NULL);
  view_event(&b, MESH_VIEW_JOINED, &a, 2, 2, 0);
  view_event(&b, MESH_VIEW_JOINED, &c, 1, 1, 0);
  const mesh_coord_stats *st = mesh_coord_get_stats(b.c);
  uint8_t *m;
  size_t len;

  /* Old epoch. */
  craft_doc(&a.id, &a.id.id, 1, 5, "org/old", &m, &len);
  assert_int_equal(mesh_coord_receive(b.c, &c.id.id, m, len, 1), -ESTALE);
  free(m);
  assert_int_equal(st->docs_refused_old_epoch, 1);
  /* Forged: C signs a document that claims to be A's. */
  craft_doc(&c.id, &a.id.id, 2, 5, "org/forged", &m, &len);
  assert_int_equal(mesh_coord_receive(b.c, &c.id.id, m, len, 1), -EPERM);
  free(m);
  assert_int_equal(st->docs_refused_forged, 1);
  /* Tampered: a byte of a good document changed. */
  craft_doc(&a.id, &a.id.id, 2, 5, "org/good", &m, &len);
  uint8_t *t = malloc(len);
  memcpy(t, m, len);
  t[len - 3] ^= 0x01; /* inside the signature */
  assert_int_equal(mesh_coord_receive(b.c, &c.id.id, t, len, 1), -MESH_EAUTH);
  free(t);
  assert_int_equal(st->docs_refused_forged, 2);
  /* Unknown owner. */
  tnode d;
  tnode_init(&d, 4, 1, NULL);
  uint8_t *u;
  size_t ulen;
  craft_doc(&d.id, &d.id.id, 1, 1, "org/unknown", &u, &ulen);
  assert_int_equal(mesh_coord_receive(b.c, &d.id.id, u, ulen, 1), -EHOSTUNREACH);
  free(u);
  assert_int_equal(st->docs_refused_unknown, 1);
  /* Good, relayed by C. */
  assert_int_equal(mesh_coord_receive(b.c, &c.id.id, m, len, 1), 0);
  assert_int_equal(st->docs_accepted, 1);
  /* Replayed: the same and an older version. */
  assert_int_equal(mesh_coord_receive(b.c, &c.id.id, m, len, 2), -ESTALE);
  free(m);
  craft_doc(&a.id, &a.id.id, 2, 4, "org/older", &m, &len);
  assert_int_equal(mesh_coord_receive(b.c, &c.id.id, m, len, 2), -ESTALE);
  free(m);
  assert_int_equal(st->docs_refused_old_version, 2);
  /* A future epoch waits for membership. */
  craft_doc(&a.id, &a.id.id, 3, 1, "org/future", &m, &len);
  assert_int_equal(mesh_coord_receive(b.c, &c.id.id, m, len, 2), -EAGAIN);
  free(m);
  assert_int_equal(st->docs_refused_future_epoch, 1);
  /* A model ID a peer should never send: the document is refused whole. */
  craft_doc(&a.id, &a.id.id, 2, 9, "../../etc", &m, &len);
  assert_int_equal(mesh_coord_receive(b.c, &c.id.id, m, len, 2), -EBADMSG);
  free(m);
  craft_doc(&a.id, &a.id.id, 2, 9, "/abs", &m, &len);
  assert_int_equal(mesh_coord_receive(b.c, &c.id.id, m, len, 2), -EBADMSG);
  free(m);
  assert_int_equal(st->docs_refused_malformed, 2);
  /* Garbage. */
  uint8_t junk[] = {0x0a, 0xff, 0xff, 0x01};
  assert_true(mesh_coord_receive(b.c, &c.id.id, junk, sizeof junk, 2) < 0);
  assert_int_equal(st->msgs_malformed, 1);

  visit_count v = visit(&b, 2);
  assert_int_equal(v.others, 1);
  assert_string_equal(v.last_model, "org/good");
  tnode_free(&a);
  tnode_free(&b);
  tnode_free(&c);
  tnode_free(&d);
}

/* Rule 2: owner epoch superseded -> its entries are out of sight at once;
 * the restarted owner's completed models come back under the new epoch. */
static void test_rule2_superseded_epoch_collected_at_once(void **state)
{
  (void)state;
  tnode a, b;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  pair(&a, &b, 0);
  start_model(&a, "org/keep", true, 0);
  start_model(&a, "org/half", false, 0);
  tnode *all[] = {&a, &b};
  mesh_coord_tick(a.c, 1000);
  exchange(all, 2, 1000);
  assert_int_equal(visit(&b, 1000).others, 2);

  /* A restarts with epoch 2: its completed entry survives in its store. */
  mesh_coord_entry kept[2];
  memset(kept, 0, sizeof kept);
  snprintf(kept[0].model_id, sizeof kept[0].model_id, "org/keep");
  snprintf(kept[0].revision, sizeof kept[0].revision, "main");
  kept[0].status = MESH_COORD_COMPLETED;
  kept[0].total_bytes = 1000;
  snprintf(kept[1].model_id, sizeof kept[1].model_id, "org/half");
  snprintf(kept[1].revision, sizeof kept[1].revision, "main");
  kept[1].status = MESH_COORD_ONGOING;
  kept[1].total_bytes = 1000;
  tnode_restart(&a, 2);
  assert_int_equal(mesh_coord_restore(a.c, kept, 2, mesh_coord_doc_version(a.c), 2000), 0);
  view_event(&b, MESH_VIEW_EPOCH_CHANGED, &a, 2, 1, 2000);
  /* At once: nothing of epoch 1 is shown. */
  assert_int_equal(visit(&b, 2000).others, 0);
  view_event(&a, MESH_VIEW_JOINED, &b, 1, 1, 2000);
  exchange(all, 2, 2000);
  /* The restored node verifies and resumes. */
  assert_int_equal(a.act_total[MESH_COORD_ACT_VERIFY], 1);
  assert_int_equal(a.act_total[MESH_COORD_ACT_CHECK_SPACE], 1);
  mesh_coord_verified(a.c, "org/keep", "main", true, 1000, 2100);
  mesh_coord_tick(a.c, 2400);
  exchange(all, 2, 2400);
  visit_count v = visit(&b, 2400);
  assert_int_equal(v.others, 2);
  assert_int_equal(v.last_epoch, 2);
  /* Memory of the old document is freed by ticks. */
  mesh_coord_tick(b.c, 2500);
  assert_int_equal(mesh_coord_held_entries(b.c), 2);
  /* The two of epoch 1, and those of versions that newer ones replaced. */
  assert_true(mesh_coord_get_stats(b.c)->entries_collected >= 2);
  tnode_free(&a);
  tnode_free(&b);
}

/* Rule 8, renewal in place: the owner declared dead takes a new epoch in
 * the same process. Its entries move to the new epoch as they are: nothing
 * is verified, re-listed or restarted, the transfer in flight keeps
 * reporting into its entry, and peers see both entries under the new epoch
 * once membership tells them of it. */
static void test_rule8_renewal_in_place_keeps_running(void **state)
{
  (void)state;
  tnode a, b;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  pair(&a, &b, 0);
  start_model(&a, "org/keep", true, 0);
  start_model(&a, "org/going", false, 0);
  tnode *all[] = {&a, &b};
  mesh_coord_tick(a.c, 1000);
  exchange(all, 2, 1000);
  assert_int_equal(a.act_total[MESH_COORD_ACT_DOWNLOAD], 2);
  mesh_coord_progress(a.c, "org/going", "main", 300, 1000, 0, 2, 100, 7000, 1100);
  exchange(all, 2, 1100);
  visit_count v = visit(&b, 1100);
  assert_int_equal(v.others, 2);
  assert_int_equal(v.last_epoch, 1);
  size_t actions_before = a.total[MESH_COORD_OUT_ACTION];

  assert_int_equal(mesh_coord_set_epoch(a.c, 1, 1200), -ESTALE);
  assert_int_equal(mesh_coord_set_epoch(a.c, 2, 1200), 0);
  assert_int_equal(mesh_coord_epoch(a.c), 2);
  tnode_clear(&a);
  tnode_drain(&a);
  /* No action at all: no verify, no new size check, no cancel. */
  assert_int_equal(a.total[MESH_COORD_OUT_ACTION], actions_before);
  assert_int_equal(tnode_count(&a, MESH_COORD_OUT_STORE_PUT), 2);
  assert_int_equal(tnode_count(&a, MESH_COORD_OUT_APP_STATE), 1);
  assert_int_equal(tnode_count(&a, MESH_COORD_OUT_JOURNAL), 1);
  for (size_t i = 0; i < a.n; i++)
    if (a.out[i].kind == MESH_COORD_OUT_STORE_PUT)
      assert_int_equal(a.out[i].u.entry.owner_epoch, 2);
  /* The document went straight out; B has not heard of epoch 2 yet and
   * refuses it, then asks once membership tells it. */
  assert_int_equal(tnode_count(&a, MESH_COORD_OUT_SEND), 1);
  deliver(&a, all, 2, 1200);
  assert_int_equal(mesh_coord_get_stats(b.c)->docs_refused_future_epoch, 1);
  view_event(&b, MESH_VIEW_EPOCH_CHANGED, &a, 2, 1, 1300);
  exchange(all, 2, 1300);
  v = visit(&b, 1300);
  assert_int_equal(v.others, 2);
  assert_int_equal(v.last_epoch, 2);
  /* The transfer that was running reports on, and completes. */
  uint64_t ignored = mesh_coord_get_stats(a.c)->results_ignored;
  mesh_coord_progress(a.c, "org/going", "main", 600, 1000, 1, 2, 100, 4000, 1400);
  mesh_coord_completed(a.c, "org/going", "main", 1000, 1500);
  assert_int_equal(mesh_coord_get_stats(a.c)->results_ignored, ignored);
  mesh_coord_tick(a.c, 2000);
  exchange(all, 2, 2000);
  assert_int_equal(a.act_total[MESH_COORD_ACT_VERIFY], 0);
  assert_int_equal(a.act_total[MESH_COORD_ACT_CHECK_SPACE], 2);
  v = visit(&b, 2000);
  assert_int_equal(v.others, 2);
  assert_int_equal(v.last_epoch, 2);
  tnode_free(&a);
  tnode_free(&b);
}

/* Rule 2: owner dead or left -> abandoned at once with the time left,
 * collected after gc_grace, never acted upon, never written. */
static void test_rule2_departed_owner_abandoned_then_collected(void **state)
{
  (void)state;
  mesh_coord_settings set;
  mesh_coord_settings_default(&set);
  set.gc_grace = 3 * MIN;
  tnode a, b;
  tnode_init(&a, 1, 1, &set);
  tnode_init(&b, 2, 1, &set);
  pair(&a, &b, 0);
  start_model(&a, "org/x", false, 0);
  mesh_coord_cmd del = {.kind = MESH_COORD_CMD_DELETE, .model_id = "org/y"};
  assert_int_equal(mesh_coord_command(a.c, &del, 0, NULL, NULL, 0), 0);
  tnode *all[] = {&a, &b};
  exchange(all, 2, 0);
  mesh_coord_tick(a.c, 1000);
  exchange(all, 2, 1000);
  assert_int_equal(visit(&b, 1000).others, 2);
  tnode_clear(&b);
  size_t before[16];
  memcpy(before, b.total, sizeof before);

  view_event(&b, MESH_VIEW_DEAD, &a, 1, 1, 10000);
  /* Replaced documents of A are freed by the first tick. */
  mesh_coord_tick(b.c, 10000);
  visit_count v = visit(&b, 10000);
  assert_int_equal(v.abandoned, 2);
  assert_int_equal(v.min_collect_in, 3 * MIN);
  assert_int_equal(mesh_coord_next_deadline(b.c), 10000 + 3 * MIN);
  for (mesh_time_ms t = 10000; t < 10000 + 3 * MIN; t += 500) {
    mesh_coord_tick(b.c, t);
    assert_int_equal(visit(&b, t).abandoned, 2);
  }
  v = visit(&b, 10000 + 3 * MIN - 500);
  assert_int_equal(v.min_collect_in, 500);
  mesh_coord_tick(b.c, 10000 + 3 * MIN);
  assert_int_equal(visit(&b, 10000 + 3 * MIN).others, 0);
  assert_int_equal(mesh_coord_held_entries(b.c), 0);
  tnode_drain(&b);
  /* Nothing was sent, acted upon or written about the departed owner. */
  assert_int_equal(memcmp(before, b.total, sizeof before), 0);
  /* A document of the departed owner is refused. */
  uint8_t *m;
  size_t len;
  craft_doc(&a.id, &a.id.id, 1, 99, "org/x", &m, &len);
  assert_int_equal(mesh_coord_receive(b.c, &a.id.id, m, len, 10000 + 4 * MIN), -EHOSTUNREACH);
  free(m);
  tnode_free(&a);
  tnode_free(&b);
}

static void visit_entry(void *arg, const mesh_coord_view_entry *ve)
{
  *(mesh_coord_entry *)arg = *ve->e;
}

/* Rule 3: deleting a directory that is not there succeeds once and ends. */
static void test_rule3_delete_missing_succeeds_once(void **state)
{
  (void)state;
  tnode a;
  tnode_init(&a, 1, 1, NULL);
  mesh_coord_cmd del = {.kind = MESH_COORD_CMD_DELETE, .model_id = "org/nothing"};
  assert_int_equal(mesh_coord_command(a.c, &del, 0, NULL, NULL, 0), 0);
  tnode_drain(&a);
  const mesh_coord_out *act = tnode_find_action(&a, MESH_COORD_ACT_DELETE);
  assert_non_null(act);
  assert_string_equal(act->u.action.model_dir, "org--nothing");
  mesh_coord_delete_result(a.c, "org/nothing", "main", -ENOENT, 10);
  assert_int_equal(mesh_coord_own_count(a.c), 0);
  for (mesh_time_ms t = 10; t < 10 * MIN; t += 100)
    mesh_coord_tick(a.c, t);
  tnode_drain(&a);
  assert_int_equal(a.act_total[MESH_COORD_ACT_DELETE], 1);
  assert_int_equal(a.total[MESH_COORD_OUT_STORE_DEL], 1);
  /* A late second answer is ignored, not a crash. */
  mesh_coord_delete_result(a.c, "org/nothing", "main", 0, 20);
  assert_int_equal(mesh_coord_get_stats(a.c)->results_ignored, 1);
  tnode_free(&a);
}

/* Rule 3: a directory that will not go gives a failed entry with the error
 * and retries with capped exponential backoff and jitter: attempts over a
 * minute are few, and the process never loops. */
static void test_rule3_delete_failure_backoff(void **state)
{
  (void)state;
  mesh_coord_settings set;
  mesh_coord_settings_default(&set);
  set.retry_base = 1000;
  set.retry_cap = 16000;
  tnode a;
  tnode_init(&a, 7, 1, &set);
  mesh_coord_cmd del = {.kind = MESH_COORD_CMD_DELETE, .model_id = "org/stuck"};
  assert_int_equal(mesh_coord_command(a.c, &del, 0, NULL, NULL, 0), 0);
  tnode_drain(&a);
  assert_int_equal(a.act_total[MESH_COORD_ACT_DELETE], 1);
  mesh_time_ms failed_at = 0;
  uint32_t attempts = 0;
  mesh_time_ms retry_at = 0;
  for (mesh_time_ms t = 0; t <= 2 * MIN; t += 10) {
    if (a.act_total[MESH_COORD_ACT_DELETE] > attempts) {
      attempts = (uint32_t)a.act_total[MESH_COORD_ACT_DELETE];
      if (attempts > 1) {
        /* The retry came no sooner than half the nominal delay and no later
         * than its due time (plus one tick). */
        mesh_time_ms gap = t - failed_at;
        mesh_time_ms nominal = 1000ull << (attempts - 2);
        if (nominal > 16000)
          nominal = 16000;
        assert_true(gap >= nominal / 2);
        assert_true(gap <= nominal + 10);
        assert_true(t >= retry_at);
      }
      mesh_coord_delete_result(a.c, "org/stuck", "main", -ENOTEMPTY, t);
      failed_at = t;
      mesh_coord_entry e;
      mesh_coord_visit(a.c, t, visit_entry, &e);
      assert_int_equal(e.status, MESH_COORD_FAILED);
      assert_int_equal(e.attempts, attempts);
      assert_true(e.failed_delete);
      retry_at = e.retry_at;
      assert_true(retry_at > t);
    }
    mesh_coord_tick(a.c, t);
    tnode_clear(&a);
    tnode_drain(&a);
  }
  /* Capped at 16 s: in two minutes, 1+2+4+8+16+16+... -> at most 14. */
  assert_true(attempts >= 6);
  assert_true(attempts <= 14);
  tnode_free(&a);
}

/* The failed entry carries the error text; the entry is published with it. */
static void visit_error(void *arg, const mesh_coord_view_entry *ve)
{
  snprintf(arg, MESH_COORD_ERROR_MAX, "%s", ve->e->error);
}

static void test_rule3_failed_entry_says_why(void **state)
{
  (void)state;
  tnode a, b;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  pair(&a, &b, 0);
  mesh_coord_cmd del = {.kind = MESH_COORD_CMD_DELETE, .model_id = "org/ro"};
  assert_int_equal(mesh_coord_command(a.c, &del, 0, NULL, NULL, 0), 0);
  mesh_coord_delete_result(a.c, "org/ro", "main", -EACCES, 5);
  char err[MESH_COORD_ERROR_MAX] = "";
  mesh_coord_visit(a.c, 5, visit_error, err);
  assert_non_null(strstr(err, "org--ro"));
  assert_non_null(strstr(err, mesh_strerror(-EACCES)));
  tnode *all[] = {&a, &b};
  /* Before the retry is due (at least 500 ms after the failure). */
  mesh_coord_tick(a.c, 400);
  exchange(all, 2, 400);
  err[0] = '\0';
  mesh_coord_visit(b.c, 400, visit_error, err);
  assert_non_null(strstr(err, mesh_strerror(-EACCES)));
  /* Deleting succeeds later: the entry is gone and so is its row. */
  mesh_coord_tick(a.c, 5 * MIN);
  mesh_coord_delete_result(a.c, "org/ro", "main", 0, 5 * MIN);
  assert_int_equal(mesh_coord_own_count(a.c), 0);
  tnode_free(&a);
  tnode_free(&b);
}

/* Rule 4: a delete acts on the directory of the model ID; nothing creates an
 * entry but a command (documents, digests and results do not). */
static void test_rule4_entries_only_from_commands(void **state)
{
  (void)state;
  tnode a, b;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  pair(&a, &b, 0);
  start_model(&a, "org/one", true, 0);
  tnode *all[] = {&a, &b};
  mesh_coord_tick(a.c, 1000);
  exchange(all, 2, 1000);
  mesh_coord_completed(b.c, "org/one", "main", 1, 1000);
  mesh_coord_verified(b.c, "org/one", "main", true, 1, 1000);
  mesh_coord_space(b.c, "org/one", "main", 1, 1, 1000);
  assert_int_equal(mesh_coord_own_count(b.c), 0);
  assert_int_equal(mesh_coord_get_stats(b.c)->results_ignored, 3);
  /* A delete's only action names the model directory. */
  mesh_coord_cmd del = {.kind = MESH_COORD_CMD_DELETE, .model_id = "org/one"};
  tnode_clear(&a);
  assert_int_equal(mesh_coord_command(a.c, &del, 2000, NULL, NULL, 0), 0);
  tnode_drain(&a);
  assert_int_equal(tnode_count(&a, MESH_COORD_OUT_ACTION), 1);
  assert_string_equal(tnode_find_action(&a, MESH_COORD_ACT_DELETE)->u.action.model_dir, "org--one");
  tnode_free(&a);
  tnode_free(&b);
}

/* Rule 5: too big for free space, or over the configured maximum: a failed
 * entry with both numbers, no download, no retry. */

typedef struct entry_probe {
  const char *model;
  mesh_coord_entry *out;
} entry_probe;

static void entry_visit(void *arg, const mesh_coord_view_entry *ve)
{
  entry_probe *p = arg;
  if (ve->own && strcmp(ve->e->model_id, p->model) == 0)
    *p->out = *ve->e;
}

/* The own entry of model (status 0 when there is none). */
static void entry_of(mesh_coord *c, const char *model, mesh_coord_entry *out)
{
  memset(out, 0, sizeof *out);
  entry_probe p = {model, out};
  mesh_coord_visit(c, 0, entry_visit, &p);
}

static void test_rule5_size_guard(void **state)
{
  (void)state;
  mesh_coord_settings set;
  mesh_coord_settings_default(&set);
  set.max_download_bytes = 5000000;
  tnode a;
  tnode_init(&a, 1, 1, &set);
  mesh_coord_cmd cmd = {.kind = MESH_COORD_CMD_START, .model_id = "org/huge"};
  assert_int_equal(mesh_coord_command(a.c, &cmd, 0, NULL, NULL, 0), 0);
  mesh_coord_space(a.c, "org/huge", "main", 1100000000000ull, 3000000, 1);
  mesh_coord_entry e;
  mesh_coord_visit(a.c, 1, visit_entry, &e);
  assert_int_equal(e.status, MESH_COORD_FAILED);
  assert_non_null(strstr(e.error, "1100000000000"));
  assert_non_null(strstr(e.error, "5000000"));
  assert_non_null(strstr(e.error, "3000000"));
  assert_int_equal(e.retry_at, 0);

  mesh_coord_cmd small = {.kind = MESH_COORD_CMD_START, .model_id = "org/small"};
  assert_int_equal(mesh_coord_command(a.c, &small, 2, NULL, NULL, 0), 0);
  mesh_coord_space(a.c, "org/small", "main", 4000000, 1000000, 3);
  mesh_coord_cmd mid = {.kind = MESH_COORD_CMD_START, .model_id = "org/fits"};
  assert_int_equal(mesh_coord_command(a.c, &mid, 4, NULL, NULL, 0), 0);
  mesh_coord_space(a.c, "org/fits", "main", 4000000, 4000000, 5);
  for (mesh_time_ms t = 5; t < 30 * MIN; t += 1000)
    mesh_coord_tick(a.c, t);
  tnode_drain(&a);
  assert_int_equal(a.act_total[MESH_COORD_ACT_DOWNLOAD], 1);
  assert_string_equal(tnode_find_action(&a, MESH_COORD_ACT_DOWNLOAD)->u.action.model_id,
                      "org/fits");
  assert_int_equal(a.act_total[MESH_COORD_ACT_CHECK_SPACE], 3);
  tnode_free(&a);
}

/* Document requests are answered for members only, each within a budget
 * (a burst of 256, then 16 a second): a stranger or a flooding member gets
 * no document, counted. */
static void test_requests_members_only_and_bounded(void **state)
{
  (void)state;
  tnode a, m, x;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&m, 2, 1, NULL);
  tnode_init(&x, 3, 1, NULL);
  start_model(&a, "org/m", true, 0);
  mesh_coord_tick(a.c, 1000);
  view_event(&a, MESH_VIEW_JOINED, &m, 1, 1, 1000);
  tnode_drain(&a);
  tnode_clear(&a);
  uint8_t *req;
  size_t len;
  assert_int_equal(coord_wire_request(&a.id.id, 1, 0, &req, &len), 0);
  /* A stranger: nothing. */
  assert_int_equal(mesh_coord_receive(a.c, &x.id.id, req, len, 1000), 0);
  tnode_drain(&a);
  assert_int_equal(tnode_count(&a, MESH_COORD_OUT_SEND), 0);
  assert_int_equal(mesh_coord_get_stats(a.c)->requests_refused_stranger, 1);
  /* A member: 256 answered at once, then the rest refused. */
  for (int i = 0; i < 300; i++)
    assert_int_equal(mesh_coord_receive(a.c, &m.id.id, req, len, 2000), 0);
  tnode_drain(&a);
  assert_int_equal(mesh_coord_get_stats(a.c)->requests_answered, 256);
  assert_int_equal(mesh_coord_get_stats(a.c)->requests_refused_rate, 44);
  /* A second later, 16 more. */
  tnode_clear(&a);
  for (int i = 0; i < 20; i++)
    assert_int_equal(mesh_coord_receive(a.c, &m.id.id, req, len, 3000), 0);
  assert_int_equal(mesh_coord_get_stats(a.c)->requests_answered, 256 + 16);
  free(req);
  tnode_free(&a);
  tnode_free(&m);
  tnode_free(&x);
}

/* A connection that comes up (new, or replacing one) exchanges the
 * documents again with a member: what went out on the old one may be lost.
 * A stranger gets nothing. */
static void test_documents_again_on_a_new_connection(void **state)
{
  (void)state;
  mesh_coord_settings set;
  mesh_coord_settings_default(&set);
  tnode a, b, c;
  tnode_init(&a, 1, 1, &set);
  tnode_init(&b, 2, 1, &set);
  tnode_init(&c, 3, 1, &set);
  view_event(&a, MESH_VIEW_JOINED, &b, 1, 1, 0);
  tnode_drain(&a);
  tnode_clear(&a);
  uint64_t requests = mesh_coord_get_stats(a.c)->requests_sent;
  mesh_coord_peer_connected(a.c, &b.id.id, 10);
  tnode_drain(&a);
  /* A request for b's document (a has none of its own to send yet). */
  assert_int_equal(tnode_count(&a, MESH_COORD_OUT_SEND), 1);
  assert_int_equal(mesh_coord_get_stats(a.c)->requests_sent, requests + 1);
  assert_int_equal(mesh_coord_get_stats(a.c)->reconnect_syncs, 1);
  tnode_clear(&a);
  mesh_coord_peer_connected(a.c, &c.id.id, 20);
  tnode_drain(&a);
  assert_int_equal(tnode_count(&a, MESH_COORD_OUT_SEND), 0);
  assert_int_equal(mesh_coord_get_stats(a.c)->reconnect_syncs, 1);
  tnode_free(&a);
  tnode_free(&b);
  tnode_free(&c);
}

/* Space is reserved: two downloads that each fit the free space but not
 * together; the second fails at once, with the numbers, and fits again once
 * the first is done (its bytes are then on disk, in the free figure). */
static void test_space_reserved_for_downloads_under_way(void **state)
{
  (void)state;
  mesh_coord_settings set;
  mesh_coord_settings_default(&set);
  tnode a;
  tnode_init(&a, 1, 1, &set);
  mesh_coord_cmd one = {.kind = MESH_COORD_CMD_START, .model_id = "org/one"};
  mesh_coord_cmd two = {.kind = MESH_COORD_CMD_START, .model_id = "org/two"};
  assert_int_equal(mesh_coord_command(a.c, &one, 0, NULL, NULL, 0), 0);
  assert_int_equal(mesh_coord_command(a.c, &two, 0, NULL, NULL, 0), 0);
  mesh_coord_space(a.c, "org/one", "main", 6000000, 10000000, 1);
  mesh_coord_space(a.c, "org/two", "main", 6000000, 10000000, 2);
  mesh_coord_entry e;
  entry_of(a.c, "org/two", &e);
  assert_int_equal(e.status, MESH_COORD_FAILED);
  assert_non_null(strstr(e.error, "6000000"));  /* needed */
  assert_non_null(strstr(e.error, "10000000")); /* free */
  assert_non_null(strstr(e.error, "reserved"));
  assert_non_null(strstr(e.error, "4000000")); /* usable */
  entry_of(a.c, "org/one", &e);
  assert_true(e.status == MESH_COORD_PENDING || e.status == MESH_COORD_ONGOING);
  /* One is done: its bytes are on disk, no longer reserved. */
  mesh_coord_completed(a.c, "org/one", "main", 6000000, 100);
  assert_int_equal(mesh_coord_command(a.c, &two, 200, NULL, NULL, 0), 0);
  mesh_coord_space(a.c, "org/two", "main", 6000000, 7000000, 300);
  entry_of(a.c, "org/two", &e);
  assert_int_not_equal(e.status, MESH_COORD_FAILED);
  tnode_free(&a);
}

/* Rule 6: idle means silent: after the last input, ticks for hours emit
 * nothing, and the next deadline says there is nothing to wait for. */
static void test_rule6_idle_silence(void **state)
{
  (void)state;
  tnode a, b, c;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  tnode_init(&c, 3, 1, NULL);
  tnode *all[] = {&a, &b, &c};
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++)
      if (i != j)
        view_event(all[i], MESH_VIEW_JOINED, all[j], 1, 1, 0);
  start_model(&a, "org/a", true, 0);
  start_model(&b, "org/b", false, 0);
  exchange(all, 3, 0);
  for (int i = 0; i < 3; i++)
    mesh_coord_tick(all[i]->c, 1000);
  exchange(all, 3, 1000);
  /* The first tick frees the documents that newer versions replaced. */
  for (int i = 0; i < 3; i++)
    mesh_coord_tick(all[i]->c, 1000);
  exchange(all, 3, 1000);
  for (int i = 0; i < 3; i++) {
    tnode_clear(all[i]);
    /* b's download stays ongoing: nothing further is due. */
    assert_int_equal(mesh_coord_next_deadline(all[i]->c), UINT64_MAX);
  }
  for (mesh_time_ms t = 1000; t < 6 * 60 * MIN; t += 250) {
    for (int i = 0; i < 3; i++) {
      mesh_coord_tick(all[i]->c, t);
      assert_int_equal(mesh_coord_outbox_len(all[i]->c), 0);
    }
  }
  tnode_free(&a);
  tnode_free(&b);
  tnode_free(&c);
}

/* Rule 7: the journal records commands and own transitions only. */
static void test_rule7_journal_only_own(void **state)
{
  (void)state;
  tnode a, b;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  pair(&a, &b, 0);
  start_model(&a, "org/m", true, 0);
  tnode *all[] = {&a, &b};
  exchange(all, 2, 0);
  /* start command, pending, ongoing, completed */
  /* The start command, then pending -> ongoing -> completed. */
  assert_true(a.total[MESH_COORD_OUT_JOURNAL] >= 3);
  assert_int_equal(a.total[MESH_COORD_OUT_JOURNAL], mesh_coord_get_stats(a.c)->journal_records);
  assert_int_equal(b.total[MESH_COORD_OUT_JOURNAL], 0);
  assert_int_equal(mesh_coord_get_stats(b.c)->journal_records, 0);
  assert_int_equal(mesh_coord_get_stats(b.c)->store_writes, 0);
  tnode_free(&a);
  tnode_free(&b);
}

/* Rule 8: on restart, completed models are checked before being published
 * again, unfinished downloads resume, and a model missing on disk is
 * downloaded again. */
static void test_rule8_restart(void **state)
{
  (void)state;
  tnode a;
  tnode_init(&a, 1, 7, NULL);
  mesh_coord_entry in[4];
  memset(in, 0, sizeof in);
  const char *models[] = {"org/done", "org/lost", "org/partial", "org/deleting"};
  mesh_coord_status st[] = {MESH_COORD_COMPLETED, MESH_COORD_COMPLETED, MESH_COORD_ONGOING,
                            MESH_COORD_DELETING};
  for (int i = 0; i < 4; i++) {
    snprintf(in[i].model_id, sizeof in[i].model_id, "%s", models[i]);
    snprintf(in[i].revision, sizeof in[i].revision, "main");
    in[i].status = st[i];
    in[i].total_bytes = 100;
  }
  assert_int_equal(mesh_coord_restore(a.c, in, 4, 41, 0), 0);
  tnode_drain(&a);
  assert_int_equal(a.act_total[MESH_COORD_ACT_VERIFY], 2);
  assert_int_equal(a.act_total[MESH_COORD_ACT_CHECK_SPACE], 1);
  assert_int_equal(a.act_total[MESH_COORD_ACT_DELETE], 1);
  /* Published without the unverified ones, under the new epoch. */
  assert_int_equal(mesh_coord_doc_version(a.c), 42);
  mesh_coord_verified(a.c, "org/done", "main", true, 100, 10);
  mesh_coord_verified(a.c, "org/lost", "main", false, 0, 10);
  tnode_clear(&a);
  mesh_coord_tick(a.c, 1000);
  tnode_drain(&a);
  assert_int_equal(a.act_total[MESH_COORD_ACT_CHECK_SPACE], 2);
  mesh_coord_entry e;
  memset(&e, 0, sizeof e);
  visit_count v = visit(&a, 1000);
  assert_int_equal(v.own, 4);
  assert_int_equal(v.last_epoch, 7);
  assert_int_equal(mesh_coord_doc_version(a.c), 43);
  tnode_free(&a);
}

/* Rate limits: a flood of commands never produces more actions than the
 * global cap allows; the rest waits and is counted. */
static void test_rate_caps(void **state)
{
  (void)state;
  mesh_coord_settings set;
  mesh_coord_settings_default(&set);
  set.actions_per_sec = 5;
  tnode a;
  tnode_init(&a, 1, 1, &set);
  for (int i = 0; i < 100; i++) {
    char model[32];
    snprintf(model, sizeof model, "org/m%d", i);
    mesh_coord_cmd cmd = {.kind = MESH_COORD_CMD_DELETE, .model_id = model};
    assert_int_equal(mesh_coord_command(a.c, &cmd, 0, NULL, NULL, 0), 0);
  }
  tnode_drain(&a);
  assert_int_equal(a.act_total[MESH_COORD_ACT_DELETE], 5);
  assert_true(mesh_coord_get_stats(a.c)->actions_deferred_global > 0);
  /* The next deadline is when a token comes back, not now: a daemon that
   * arms its timer from it does not spin. */
  mesh_time_ms next = mesh_coord_next_deadline(a.c);
  assert_true(next > 0);
  assert_true(next <= 1000 / 5 + 1);
  for (mesh_time_ms t = 0; t <= 10000; t += 50)
    mesh_coord_tick(a.c, t);
  tnode_drain(&a);
  /* 5 at once plus 5 per second for 10 s. */
  assert_true(a.act_total[MESH_COORD_ACT_DELETE] <= 5 + 50 + 1);
  assert_true(a.act_total[MESH_COORD_ACT_DELETE] >= 50);

  /* Per entry: a delete that keeps answering "more to do" is re-issued at
   * most once per entry_action_interval. */
  tnode b;
  tnode_init(&b, 2, 1, NULL);
  mesh_coord_cmd del = {.kind = MESH_COORD_CMD_DELETE, .model_id = "org/huge-tree"};
  assert_int_equal(mesh_coord_command(b.c, &del, 0, NULL, NULL, 0), 0);
  tnode_drain(&b);
  size_t seen = b.act_total[MESH_COORD_ACT_DELETE];
  for (mesh_time_ms t = 0; t < 10000; t += 10) {
    if (b.act_total[MESH_COORD_ACT_DELETE] > seen || t == 0) {
      seen = b.act_total[MESH_COORD_ACT_DELETE];
      mesh_coord_delete_result(b.c, "org/huge-tree", "main", -EAGAIN, t);
    }
    mesh_coord_tick(b.c, t);
    tnode_clear(&b);
    tnode_drain(&b);
  }
  assert_true(b.act_total[MESH_COORD_ACT_DELETE] <= 11);
  assert_true(mesh_coord_get_stats(b.c)->actions_deferred_entry > 0);
  tnode_free(&a);
  tnode_free(&b);
}

/* Push-pull: a peer's digest showing a newer document makes us ask for it,
 * and a third node answers for an owner it holds. */
static void test_digest_and_relay(void **state)
{
  (void)state;
  tnode a, b, c;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  tnode_init(&c, 3, 1, NULL);
  pair(&a, &b, 0);
  start_model(&a, "org/m", true, 0);
  tnode *ab[] = {&a, &b};
  mesh_coord_tick(a.c, 1000);
  exchange(ab, 2, 1000);
  /* A's digest is what membership would carry. */
  tnode_clear(&a);
  mesh_coord_cmd cmd = {.kind = MESH_COORD_CMD_START, .model_id = "org/n"};
  assert_int_equal(mesh_coord_command(a.c, &cmd, 2000, NULL, NULL, 0), 0);
  tnode_drain(&a);
  const mesh_coord_out *digest = NULL;
  for (size_t i = 0; i < a.n; i++)
    if (a.out[i].kind == MESH_COORD_OUT_APP_STATE)
      digest = &a.out[i];
  assert_non_null(digest);
  /* C knows A and B but got no push from A (say it was lost). */
  view_event(&c, MESH_VIEW_JOINED, &a, 1, 1, 2000);
  view_event(&c, MESH_VIEW_JOINED, &b, 1, 1, 2000);
  tnode_drain(&c); /* requests to A and B on join: dropped here */
  tnode_clear(&c);
  assert_int_equal(visit(&c, 2000).others, 0);
  assert_int_equal(
      mesh_coord_app_state(c.c, &a.id.id, digest->u.app_state.bytes, digest->u.app_state.len, 2000),
      0);
  tnode_drain(&c);
  assert_int_equal(tnode_count(&c, MESH_COORD_OUT_SEND), 1);
  assert_int_equal(mesh_coord_get_stats(c.c)->requests_sent, 3);
  /* The request goes to B instead (as if relayed); B holds A's document.
   * B answers members only: it knows C. */
  view_event(&b, MESH_VIEW_JOINED, &c, 1, 1, 2000);
  tnode_drain(&b);
  tnode_clear(&b);
  c.out[0].u.send.to = b.id.id;
  tnode *bc[] = {&b, &c};
  deliver(&c, bc, 2, 2000);
  tnode_clear(&b);
  tnode_drain(&b);
  assert_int_equal(mesh_coord_get_stats(b.c)->requests_answered, 1);
  deliver(&b, bc, 2, 2000);
  visit_count v = visit(&c, 2000);
  assert_int_equal(v.others, 1);
  assert_string_equal(v.last_model, "org/m");
  tnode_free(&a);
  tnode_free(&b);
  tnode_free(&c);
}

/* Progress reports are published at most every progress_publish_interval;
 * status changes go out within publish_interval. */
static void test_publish_coalesced(void **state)
{
  (void)state;
  tnode a, b;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  pair(&a, &b, 0);
  start_model(&a, "org/m", false, 0);
  tnode_clear(&a);
  tnode_drain(&a);
  size_t docs0 = mesh_coord_get_stats(a.c)->docs_sent;
  for (mesh_time_ms t = 100; t <= 20000; t += 100) {
    mesh_coord_progress(a.c, "org/m", "main", t * 1000, 20000000, 1, 4, 1000000, 20000 - t, t);
    mesh_coord_tick(a.c, t);
  }
  size_t progress_docs = mesh_coord_get_stats(a.c)->docs_sent - docs0;
  /* 200 reports over 20 s, one peer: at most one document per 5 s. */
  assert_true(progress_docs >= 3);
  assert_true(progress_docs <= 5);
  mesh_coord_completed(a.c, "org/m", "main", 20000000, 20050);
  mesh_coord_tick(a.c, 20300);
  assert_int_equal(mesh_coord_get_stats(a.c)->docs_sent - docs0, progress_docs + 1);
  tnode_free(&a);
  tnode_free(&b);
}

/* Cancel stops a download and removes the entry; an unknown one is an error. */
static void test_cancel(void **state)
{
  (void)state;
  tnode a;
  tnode_init(&a, 1, 1, NULL);
  start_model(&a, "org/m", false, 0);
  mesh_coord_cmd cancel = {.kind = MESH_COORD_CMD_CANCEL, .model_id = "org/m"};
  char msg[256];
  assert_int_equal(mesh_coord_command(a.c, &cancel, 10, NULL, msg, sizeof msg), 0);
  tnode_drain(&a);
  assert_int_equal(a.act_total[MESH_COORD_ACT_CANCEL], 1);
  assert_int_equal(mesh_coord_own_count(a.c), 0);
  assert_int_equal(mesh_coord_command(a.c, &cancel, 20, NULL, msg, sizeof msg), -ENOENT);
  /* Progress for the cancelled download is ignored. */
  mesh_coord_progress(a.c, "org/m", "main", 1, 2, 0, 1, 1, 1, 30);
  assert_int_equal(mesh_coord_own_count(a.c), 0);
  tnode_free(&a);
}

/* The own entry of (model, rev), or status 0 when there is none. */
typedef struct rev_probe {
  const char *model;
  const char *rev;
  mesh_coord_entry *out;
} rev_probe;

static void rev_visit(void *arg, const mesh_coord_view_entry *ve)
{
  rev_probe *p = arg;
  if (ve->own && strcmp(ve->e->model_id, p->model) == 0 && strcmp(ve->e->revision, p->rev) == 0)
    *p->out = *ve->e;
}

static bool rev_entry(mesh_coord *c, const char *model, const char *rev, mesh_coord_entry *out)
{
  memset(out, 0, sizeof *out);
  out->status = (mesh_coord_status)-1;
  rev_probe p = {model, rev, out};
  mesh_coord_visit(c, 0, rev_visit, &p);
  return out->status != (mesh_coord_status)-1;
}

/* Revisions of one model are separate entries in separate directories: a
 * delete or cancel names one revision (NULL meaning main) and leaves the
 * others, their directories and their status alone. */
static void test_revisions_apart(void **state)
{
  (void)state;
  tnode a;
  tnode_init(&a, 1, 1, NULL);
  const char *revs[] = {"main", "v2", "refs/pr/1"};
  const char *dirs[] = {"org--m", "org--m@v2", "org--m@refs%2Fpr%2F1"};
  char msg[256];
  for (size_t i = 0; i < 3; i++) {
    mesh_coord_cmd st = {.kind = MESH_COORD_CMD_START, .model_id = "org/m", .revision = revs[i]};
    assert_int_equal(mesh_coord_command(a.c, &st, 0, NULL, msg, sizeof msg), 0);
    tnode_drain(&a);
    mesh_coord_space(a.c, "org/m", revs[i], 1000, 1u << 30, 0);
  }
  mesh_coord_tick(a.c, 1);
  tnode_drain(&a);
  /* Each revision's download writes into its own directory. */
  size_t seen = 0;
  for (size_t k = 0; k < a.n; k++) {
    const mesh_coord_out *o = &a.out[k];
    if (o->kind != MESH_COORD_OUT_ACTION || o->u.action.kind != MESH_COORD_ACT_DOWNLOAD)
      continue;
    for (size_t i = 0; i < 3; i++) {
      if (strcmp(o->u.action.revision, revs[i]) == 0) {
        assert_string_equal(o->u.action.model_dir, dirs[i]);
        seen |= 1u << i;
      }
    }
  }
  assert_int_equal(seen, 7);
  mesh_coord_completed(a.c, "org/m", "main", 1000, 10);
  mesh_coord_completed(a.c, "org/m", "v2", 1000, 10);
  /* Cancel of the non-main revision still downloading. */
  mesh_coord_cmd cancel = {
      .kind = MESH_COORD_CMD_CANCEL, .model_id = "org/m", .revision = "refs/pr/1"};
  tnode_clear(&a);
  assert_int_equal(mesh_coord_command(a.c, &cancel, 20, NULL, msg, sizeof msg), 0);
  tnode_drain(&a);
  const mesh_coord_out *act = tnode_find_action(&a, MESH_COORD_ACT_CANCEL);
  assert_non_null(act);
  assert_string_equal(act->u.action.revision, "refs/pr/1");
  mesh_coord_entry e;
  assert_false(rev_entry(a.c, "org/m", "refs/pr/1", &e));
  /* A cancel without a revision means main, which is completed: refused,
   * and nothing changes. */
  mesh_coord_cmd cancel_main = {.kind = MESH_COORD_CMD_CANCEL, .model_id = "org/m"};
  assert_int_equal(mesh_coord_command(a.c, &cancel_main, 30, NULL, msg, sizeof msg), -ENOENT);
  /* Delete of v2: its directory only; main stays completed. */
  mesh_coord_cmd del = {.kind = MESH_COORD_CMD_DELETE, .model_id = "org/m", .revision = "v2"};
  tnode_clear(&a);
  assert_int_equal(mesh_coord_command(a.c, &del, 40, NULL, msg, sizeof msg), 0);
  tnode_drain(&a);
  assert_int_equal(tnode_count_action(&a, MESH_COORD_ACT_DELETE), 1);
  act = tnode_find_action(&a, MESH_COORD_ACT_DELETE);
  assert_string_equal(act->u.action.revision, "v2");
  assert_string_equal(act->u.action.model_dir, "org--m@v2");
  assert_true(rev_entry(a.c, "org/m", "main", &e));
  assert_int_equal(e.status, MESH_COORD_COMPLETED);
  assert_string_equal(e.model_dir, "org--m");
  mesh_coord_delete_result(a.c, "org/m", "v2", 0, 50);
  assert_false(rev_entry(a.c, "org/m", "v2", &e));
  assert_true(rev_entry(a.c, "org/m", "main", &e));
  assert_int_equal(e.status, MESH_COORD_COMPLETED);
  /* A pair whose directory name would not fit one path component is refused. */
  char longid[MESH_MODEL_ID_MAX];
  memset(longid, 'x', 96);
  longid[96] = '/';
  memset(longid + 97, 'y', 96);
  longid[193] = '\0';
  /* 64 characters, 32 of them '/' (each written "%2F"): 194 + 1 + 128 bytes. */
  char rev[MESH_REVISION_MAX + 1];
  for (size_t i = 0; i < MESH_REVISION_MAX; i++)
    rev[i] = i % 2 == 0 ? 'r' : '/';
  rev[MESH_REVISION_MAX - 1] = 'r';
  rev[MESH_REVISION_MAX] = '\0';
  mesh_coord_cmd too_long = {.kind = MESH_COORD_CMD_START, .model_id = longid, .revision = rev};
  assert_int_equal(mesh_coord_command(a.c, &too_long, 60, NULL, msg, sizeof msg), -EINVAL);
  assert_non_null(strstr(msg, "too long"));
  tnode_free(&a);
}

/* An install from before per-revision directories: the store has main and
 * v2 completed, both with the model's single directory. main keeps it; v2 is
 * checked in its own directory, found missing there and downloaded again
 * into it, never into main's. */
static void test_revisions_restored_from_one_directory(void **state)
{
  (void)state;
  tnode a;
  tnode_init(&a, 1, 3, NULL);
  mesh_coord_entry in[2];
  memset(in, 0, sizeof in);
  const char *revs[] = {"main", "v2"};
  for (int i = 0; i < 2; i++) {
    snprintf(in[i].model_id, sizeof in[i].model_id, "org/m");
    snprintf(in[i].revision, sizeof in[i].revision, "%s", revs[i]);
    snprintf(in[i].model_dir, sizeof in[i].model_dir, "org--m");
    in[i].status = MESH_COORD_COMPLETED;
    in[i].total_bytes = 100;
  }
  assert_int_equal(mesh_coord_restore(a.c, in, 2, 5, 0), 0);
  tnode_drain(&a);
  assert_int_equal(tnode_count_action(&a, MESH_COORD_ACT_VERIFY), 2);
  for (size_t k = 0; k < a.n; k++) {
    const mesh_coord_out *o = &a.out[k];
    if (o->kind != MESH_COORD_OUT_ACTION || o->u.action.kind != MESH_COORD_ACT_VERIFY)
      continue;
    assert_string_equal(o->u.action.model_dir,
                        strcmp(o->u.action.revision, "main") == 0 ? "org--m" : "org--m@v2");
  }
  mesh_coord_verified(a.c, "org/m", "main", true, 100, 10);
  mesh_coord_verified(a.c, "org/m", "v2", false, 0, 10);
  tnode_clear(&a);
  mesh_coord_tick(a.c, 1000);
  tnode_drain(&a);
  const mesh_coord_out *act = tnode_find_action(&a, MESH_COORD_ACT_CHECK_SPACE);
  assert_non_null(act);
  assert_string_equal(act->u.action.revision, "v2");
  assert_string_equal(act->u.action.model_dir, "org--m@v2");
  assert_int_equal(tnode_count_action(&a, MESH_COORD_ACT_CHECK_SPACE), 1);
  mesh_coord_entry e;
  assert_true(rev_entry(a.c, "org/m", "main", &e));
  assert_int_equal(e.status, MESH_COORD_COMPLETED);
  assert_string_equal(e.model_dir, "org--m");
  tnode_free(&a);
}

/* A failed download is retried with backoff, up to download_max_attempts. */
static void test_download_retry_limited(void **state)
{
  (void)state;
  mesh_coord_settings set;
  mesh_coord_settings_default(&set);
  set.download_max_attempts = 3;
  tnode a;
  tnode_init(&a, 1, 1, &set);
  start_model(&a, "org/flaky", false, 0);
  tnode_drain(&a);
  size_t answered = 0;
  for (mesh_time_ms t = 0; t < 60 * MIN; t += 100) {
    if (a.act_total[MESH_COORD_ACT_CHECK_SPACE] > answered) {
      answered = a.act_total[MESH_COORD_ACT_CHECK_SPACE];
      if (answered > 1)
        mesh_coord_space(a.c, "org/flaky", "main", 10, 1000, t);
    }
    if (tnode_find_action(&a, MESH_COORD_ACT_DOWNLOAD) != NULL)
      mesh_coord_download_failed(a.c, "org/flaky", "main", "HTTP 503", t);
    tnode_clear(&a);
    mesh_coord_tick(a.c, t);
    tnode_drain(&a);
  }
  assert_int_equal(a.act_total[MESH_COORD_ACT_DOWNLOAD], 3);
  mesh_coord_entry e;
  mesh_coord_visit(a.c, 0, visit_entry, &e);
  assert_int_equal(e.status, MESH_COORD_FAILED);
  assert_int_equal(e.attempts, 3);
  assert_non_null(strstr(e.error, "HTTP 503"));
  tnode_free(&a);
}

/* ---- who may command whom, and answers (issue 16) ------------------------ */

/* from sends a command of kind for model to target; both sides exchange
 * until quiet. Returns the answer's code as from heard it (1 when none). */
static int remote(tnode *from, tnode *target, mesh_coord_cmd_kind kind, const char *model,
                  mesh_time_ms now)
{
  mesh_coord_cmd cmd = {.kind = kind, .model_id = model, .target = &target->id.id};
  uint64_t seq = 0;
  char msg[256];
  assert_int_equal(mesh_coord_command(from->c, &cmd, now, &seq, msg, sizeof msg), 0);
  size_t before = from->total[MESH_COORD_OUT_RESULT];
  tnode *all[] = {from, target};
  exchange(all, 2, now);
  if (from->total[MESH_COORD_OUT_RESULT] == before)
    return 1;
  assert_int_equal(from->last_result.u.result.seq, seq);
  return from->last_result.u.result.code;
}

/* --accept-commands-from none: a member's command is refused with an answer
 * that says why, counted, and leaves nothing behind: no entry, no action, no
 * journal record, no store write. The operator's own commands still work. */
static void test_cmds_accept_none(void **state)
{
  (void)state;
  mesh_coord_settings set;
  mesh_coord_settings_default(&set);
  set.accept = MESH_COORD_ACCEPT_NONE;
  tnode a, b;
  tnode_init(&a, 1, 1, &set);
  tnode_init(&b, 2, 1, NULL);
  pair(&a, &b, 0);
  tnode_clear(&a);
  memset(a.total, 0, sizeof a.total);
  assert_int_equal(remote(&b, &a, MESH_COORD_CMD_START, "org/m", 10), -EPERM);
  assert_non_null(strstr(b.last_result.u.result.message, "--accept-commands-from none"));
  assert_int_equal(remote(&b, &a, MESH_COORD_CMD_DELETE, "org/m", 20), -EPERM);
  const mesh_coord_stats *st = mesh_coord_get_stats(a.c);
  assert_int_equal(st->cmds_refused_policy, 2);
  assert_int_equal(st->cmds_refused, 2);
  assert_int_equal(st->cmds_accepted, 0);
  assert_int_equal(mesh_coord_own_count(a.c), 0);
  for (int k = 0; k < 16; k++)
    assert_int_equal(a.act_total[k], 0);
  assert_int_equal(a.total[MESH_COORD_OUT_JOURNAL], 0);
  assert_int_equal(a.total[MESH_COORD_OUT_STORE_PUT], 0);
  assert_int_equal(a.total[MESH_COORD_OUT_STORE_DEL], 0);
  /* The operator is not another node. */
  mesh_coord_cmd own = {.kind = MESH_COORD_CMD_START, .model_id = "org/m"};
  assert_int_equal(mesh_coord_command(a.c, &own, 30, NULL, NULL, 0), 0);
  assert_int_equal(mesh_coord_own_count(a.c), 1);
  tnode_free(&a);
  tnode_free(&b);
}

/* --accept-commands-from ID: the listed member is obeyed, another member is
 * refused and told it is not on the list. */
static void test_cmds_accept_listed(void **state)
{
  (void)state;
  tnode a, b, c;
  tnode_init(&b, 2, 1, NULL);
  tnode_init(&c, 3, 1, NULL);
  mesh_coord_settings set;
  mesh_coord_settings_default(&set);
  set.accept = MESH_COORD_ACCEPT_LISTED;
  set.accept_from = &b.id.id;
  set.accept_n = 1;
  tnode_init(&a, 1, 1, &set);
  pair(&a, &b, 0);
  pair(&a, &c, 0);
  assert_int_equal(remote(&b, &a, MESH_COORD_CMD_START, "org/m", 10), 0);
  assert_int_equal(remote(&c, &a, MESH_COORD_CMD_DELETE, "org/m", 20), -EPERM);
  assert_non_null(strstr(c.last_result.u.result.message, "not in --accept-commands-from"));
  assert_int_equal(mesh_coord_get_stats(a.c)->cmds_accepted, 1);
  assert_int_equal(mesh_coord_get_stats(a.c)->cmds_refused_policy, 1);
  /* The entry is still pending, not deleting. */
  mesh_coord_entry e;
  mesh_coord_visit(a.c, 20, visit_entry, &e);
  assert_int_equal(e.status, MESH_COORD_PENDING);
  assert_true(e.by_peer);
  assert_true(mesh_peer_id_eq(&e.requester, &b.id.id));
  /* More IDs than a list may hold are refused at creation. */
  mesh_coord *bad;
  set.accept_n = MESH_COORD_ACCEPT_MAX + 1;
  assert_int_equal(mesh_coord_new(&a.id, 1, &set, &a.rng, &bad), -EINVAL);
  tnode_free(&a);
  tnode_free(&b);
  tnode_free(&c);
}

/* Quotas: one requester gets remote_quota entries; all requesters together
 * never take the slots kept for the operator, who can always start. */
static void test_cmds_quota(void **state)
{
  (void)state;
  mesh_coord_settings set;
  mesh_coord_settings_default(&set);
  set.remote_quota = 3;
  tnode a, b, c;
  tnode_init(&a, 1, 1, &set);
  tnode_init(&b, 2, 1, NULL);
  tnode_init(&c, 3, 1, NULL);
  pair(&a, &b, 0);
  pair(&a, &c, 0);
  char model[64];
  for (int i = 0; i < 3; i++) {
    snprintf(model, sizeof model, "org/b%d", i);
    assert_int_equal(remote(&b, &a, MESH_COORD_CMD_START, model, 10), 0);
  }
  assert_int_equal(remote(&b, &a, MESH_COORD_CMD_START, "org/b3", 10), -EDQUOT);
  assert_non_null(strstr(b.last_result.u.result.message, "--command-quota"));
  /* A delete that would make an entry counts too. */
  assert_int_equal(remote(&b, &a, MESH_COORD_CMD_DELETE, "org/x", 10), -EDQUOT);
  /* Acting on an entry it already has needs no new room. */
  assert_int_equal(remote(&b, &a, MESH_COORD_CMD_CANCEL, "org/b0", 10), 0);
  assert_int_equal(remote(&b, &a, MESH_COORD_CMD_START, "org/b3", 10), 0);
  /* Another requester has a share of its own. */
  assert_int_equal(remote(&c, &a, MESH_COORD_CMD_START, "org/c0", 10), 0);
  assert_int_equal(mesh_coord_get_stats(a.c)->cmds_refused_quota, 2);
  /* The operator is never held by these quotas. */
  mesh_coord_cmd own = {.kind = MESH_COORD_CMD_START, .model_id = "org/b9"};
  assert_int_equal(mesh_coord_command(a.c, &own, 20, NULL, NULL, 0), 0);
  tnode_free(&a);
  tnode_free(&b);
  tnode_free(&c);

  /* A peer with a quota as large as the table: it stops where the
   * operator's reserve begins, and the operator fills the rest. */
  set.remote_quota = MESH_COORD_MAX_OWN_ENTRIES;
  tnode_init(&a, 1, 1, &set);
  tnode_init(&b, 2, 1, NULL);
  pair(&a, &b, 0);
  int refused = 0;
  for (int i = 0; i < MESH_COORD_MAX_OWN_ENTRIES; i++) {
    snprintf(model, sizeof model, "org/p%d", i);
    int rc = remote(&b, &a, MESH_COORD_CMD_START, model, 100 + (mesh_time_ms)i);
    if (rc != 0) {
      assert_int_equal(rc, -EDQUOT);
      refused++;
    }
    tnode_clear(&a);
    tnode_clear(&b);
  }
  assert_int_equal(mesh_coord_own_count(a.c),
                   MESH_COORD_MAX_OWN_ENTRIES - MESH_COORD_LOCAL_RESERVED);
  assert_int_equal(refused, MESH_COORD_LOCAL_RESERVED);
  for (int i = 0; i < MESH_COORD_LOCAL_RESERVED; i++) {
    snprintf(model, sizeof model, "org/op%d", i);
    own.model_id = model;
    assert_int_equal(mesh_coord_command(a.c, &own, 5000, NULL, NULL, 0), 0);
    tnode_clear(&a);
  }
  own.model_id = "org/one-too-many";
  assert_int_equal(mesh_coord_command(a.c, &own, 5000, NULL, NULL, 0), -ENOSPC);
  tnode_free(&a);
  tnode_free(&b);
}

/* A delete of a directory meshd did not make (-EPERM from the executor) is
 * a failure for good: counted, explained, never retried. */
static void test_cmds_delete_unowned_refused(void **state)
{
  (void)state;
  tnode a;
  tnode_init(&a, 1, 1, NULL);
  mesh_coord_cmd del = {.kind = MESH_COORD_CMD_DELETE, .model_id = "org/theirs"};
  assert_int_equal(mesh_coord_command(a.c, &del, 0, NULL, NULL, 0), 0);
  mesh_coord_delete_result(a.c, "org/theirs", "main", -EPERM, 5);
  mesh_coord_entry e;
  mesh_coord_visit(a.c, 5, visit_entry, &e);
  assert_int_equal(e.status, MESH_COORD_FAILED);
  assert_int_equal(e.retry_at, 0);
  assert_non_null(strstr(e.error, "meshd did not create it"));
  assert_non_null(strstr(e.error, "org--theirs"));
  assert_int_equal(mesh_coord_get_stats(a.c)->deletes_refused_unowned, 1);
  tnode_drain(&a);
  tnode_clear(&a);
  for (mesh_time_ms t = 5; t < 60 * MIN; t += 1000)
    mesh_coord_tick(a.c, t);
  tnode_drain(&a);
  assert_int_equal(tnode_count_action(&a, MESH_COORD_ACT_DELETE), 0);
  assert_int_equal(mesh_coord_next_deadline(a.c), UINT64_MAX);
  tnode_free(&a);
}

/* Answers are taken only from the target's own connection, naming the
 * epoch and sequence number of a command still awaited; a forged one from
 * a third peer, one naming another epoch, an unknown sequence number and a
 * second answer are dropped and counted. */
static void test_cmds_answers_matched(void **state)
{
  (void)state;
  tnode a, b, c;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 7, NULL);
  tnode_init(&c, 3, 1, NULL);
  pair(&a, &b, 0);
  pair(&a, &c, 0);
  mesh_coord_cmd cmd = {.kind = MESH_COORD_CMD_START, .model_id = "org/m", .target = &b.id.id};
  uint64_t seq = 0;
  assert_int_equal(mesh_coord_command(a.c, &cmd, 10, &seq, NULL, 0), 0);
  tnode_clear(&a);
  tnode_drain(&a);
  size_t results = a.total[MESH_COORD_OUT_RESULT];
  uint8_t *buf;
  size_t len;
  /* C forges B's answer: right seq and epoch, wrong connection. */
  craft_result(seq, 7, 0, "done", &buf, &len);
  assert_int_equal(mesh_coord_receive(a.c, &c.id.id, buf, len, 11), -EPERM);
  /* B's connection, but another epoch or another number. */
  uint8_t *buf2, *buf3;
  size_t len2, len3;
  craft_result(seq, 6, 0, "done", &buf2, &len2);
  assert_int_equal(mesh_coord_receive(a.c, &b.id.id, buf2, len2, 11), -EPERM);
  craft_result(seq + 1, 7, 0, "done", &buf3, &len3);
  assert_int_equal(mesh_coord_receive(a.c, &b.id.id, buf3, len3, 11), -EPERM);
  tnode_drain(&a);
  assert_int_equal(a.total[MESH_COORD_OUT_RESULT], results);
  assert_int_equal(mesh_coord_get_stats(a.c)->results_unmatched, 3);
  /* The real answer, then the same answer again. */
  assert_int_equal(mesh_coord_receive(a.c, &b.id.id, buf, len, 12), 0);
  assert_int_equal(mesh_coord_receive(a.c, &b.id.id, buf, len, 12), -EPERM);
  tnode_drain(&a);
  assert_int_equal(a.total[MESH_COORD_OUT_RESULT], results + 1);
  assert_true(mesh_peer_id_eq(&a.last_result.u.result.from, &b.id.id));
  assert_int_equal(mesh_coord_get_stats(a.c)->results_unmatched, 4);
  free(buf);
  free(buf2);
  free(buf3);
  tnode_free(&a);
  tnode_free(&b);
  tnode_free(&c);
}

/* Sequence numbers never repeat across epochs: after a restart and after a
 * renewal in place they start above every number of the epoch before, so
 * an answer of an old epoch cannot match a new command. */
static void test_cmds_seq_unique_across_epochs(void **state)
{
  (void)state;
  tnode a, b;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  pair(&a, &b, 0);
  mesh_coord_cmd cmd = {.kind = MESH_COORD_CMD_START, .model_id = "org/m", .target = &b.id.id};
  uint64_t s1 = 0, s2 = 0, s3 = 0, s4 = 0;
  assert_int_equal(mesh_coord_command(a.c, &cmd, 10, &s1, NULL, 0), 0);
  assert_int_equal(mesh_coord_command(a.c, &cmd, 10, &s2, NULL, 0), 0);
  assert_true(s2 > s1 && s1 != 0);
  assert_int_equal(mesh_coord_set_epoch(a.c, 2, 20), 0);
  assert_int_equal(mesh_coord_command(a.c, &cmd, 20, &s3, NULL, 0), 0);
  assert_true(s3 > s2);
  tnode_restart(&a, 3);
  view_event(&a, MESH_VIEW_JOINED, &b, 1, 1, 30);
  assert_int_equal(mesh_coord_command(a.c, &cmd, 30, &s4, NULL, 0), 0);
  assert_true(s4 > s3);
  /* B hears the new epoch's command as new, not as a replay. */
  view_event(&b, MESH_VIEW_EPOCH_CHANGED, &a, 3, 1, 30);
  tnode *all[] = {&a, &b};
  tnode_clear(&a);
  tnode_drain(&a);
  deliver(&a, all, 2, 30);
  assert_int_equal(mesh_coord_get_stats(b.c)->cmds_refused_replay, 0);
  tnode_free(&a);
  tnode_free(&b);
}

/* Codes are clamped before any negation: INT_MIN, a positive code and a
 * code beyond every errno arrive as negative errnos; the text is escaped. */
static void test_cmds_code_clamped_text_escaped(void **state)
{
  (void)state;
  tnode a, b;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  pair(&a, &b, 0);
  mesh_coord_cmd cmd = {.kind = MESH_COORD_CMD_START, .model_id = "org/m", .target = &b.id.id};
  static const struct {
    int32_t sent;
    int got;
  } cases[] = {{INT32_MIN, -EPROTO}, {EACCES, -EACCES},  {-ENOSPC, -ENOSPC},
               {4096, -EPROTO},      {-100000, -EPROTO}, {INT32_MAX, -EPROTO}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t seq;
    assert_int_equal(mesh_coord_command(a.c, &cmd, 10, &seq, NULL, 0), 0);
    uint8_t *buf;
    size_t len;
    craft_result(seq, 1, cases[i].sent, "bad\n\x1b[31mline\\", &buf, &len);
    assert_int_equal(mesh_coord_receive(a.c, &b.id.id, buf, len, 11), 0);
    free(buf);
    tnode_clear(&a);
    tnode_drain(&a);
    assert_int_equal(a.last_result.u.result.code, cases[i].got);
    assert_string_equal(a.last_result.u.result.message, "bad\\x0a\\x1b[31mline\\\\");
  }
  tnode_free(&a);
  tnode_free(&b);
}

/* Who asked survives a restart (the store keeps it), so quotas still hold;
 * actions for restored entries carry adopt, ordinary ones do not. */
static void test_cmds_requester_restored(void **state)
{
  (void)state;
  mesh_coord_settings set;
  mesh_coord_settings_default(&set);
  set.remote_quota = 1;
  tnode a, b;
  tnode_init(&a, 1, 1, &set);
  tnode_init(&b, 2, 1, NULL);
  pair(&a, &b, 0);
  assert_int_equal(remote(&b, &a, MESH_COORD_CMD_START, "org/m", 10), 0);
  mesh_coord_entry e;
  mesh_coord_visit(a.c, 10, visit_entry, &e);
  assert_true(e.by_peer);
  mesh_coord_cmd own = {.kind = MESH_COORD_CMD_START, .model_id = "org/local"};
  assert_int_equal(mesh_coord_command(a.c, &own, 15, NULL, NULL, 0), 0);
  tnode_clear(&a);
  tnode_drain(&a);
  const mesh_coord_out *act = tnode_find_action(&a, MESH_COORD_ACT_CHECK_SPACE);
  assert_non_null(act);
  assert_false(act->u.action.adopt);
  tnode_restart(&a, 2);
  e.status = MESH_COORD_COMPLETED;
  assert_int_equal(mesh_coord_restore(a.c, &e, 1, 3, 20), 0);
  tnode_drain(&a);
  act = tnode_find_action(&a, MESH_COORD_ACT_VERIFY);
  assert_non_null(act);
  assert_true(act->u.action.adopt);
  view_event(&a, MESH_VIEW_JOINED, &b, 1, 1, 30);
  view_event(&b, MESH_VIEW_EPOCH_CHANGED, &a, 2, 1, 30);
  assert_int_equal(remote(&b, &a, MESH_COORD_CMD_START, "org/n", 40), -EDQUOT);
  tnode_free(&a);
  tnode_free(&b);
}

/* The last STORE_PUT drained into t, or NULL. */
static const mesh_coord_out *last_put(const tnode *t)
{
  const mesh_coord_out *o = NULL;
  for (size_t i = 0; i < t->n; i++)
    if (t->out[i].kind == MESH_COORD_OUT_STORE_PUT)
      o = &t->out[i];
  return o;
}

/* The member whose file list a download used (the Hub unreachable) stays
 * with the entry: through the download that follows the space check (the
 * same run), its completion, the store and a restore. A new run (a resume
 * after a restart, a retry) lists afresh and clears it, in the store too. */
static void test_list_source_kept_until_next_run(void **state)
{
  (void)state;
  tnode a, b;
  tnode_init(&a, 1, 1, NULL);
  tnode_init(&b, 2, 1, NULL);
  mesh_coord_cmd own = {.kind = MESH_COORD_CMD_START, .model_id = "org/m"};
  assert_int_equal(mesh_coord_command(a.c, &own, 0, NULL, NULL, 0), 0);
  tnode_drain(&a);
  assert_non_null(tnode_find_action(&a, MESH_COORD_ACT_CHECK_SPACE));
  tnode_clear(&a);
  /* The space check's listing took B's list. */
  mesh_coord_list_from_member(a.c, "org/m", "main", &b.id.id);
  tnode_drain(&a);
  const mesh_coord_out *put = last_put(&a);
  assert_non_null(put);
  assert_true(put->u.entry.list_by_member);
  assert_true(mesh_peer_id_eq(&put->u.entry.list_from, &b.id.id));
  tnode_clear(&a);
  mesh_coord_space(a.c, "org/m", "main", 10, 1000, 5);
  mesh_coord_tick(a.c, 10);
  tnode_drain(&a);
  assert_non_null(tnode_find_action(&a, MESH_COORD_ACT_DOWNLOAD));
  mesh_coord_completed(a.c, "org/m", "main", 10, 20);
  tnode_drain(&a);
  mesh_coord_entry e;
  mesh_coord_visit(a.c, 20, visit_entry, &e);
  assert_int_equal(e.status, MESH_COORD_COMPLETED);
  assert_true(e.list_by_member);
  assert_true(mesh_peer_id_eq(&e.list_from, &b.id.id));
  put = last_put(&a);
  assert_non_null(put);
  assert_int_equal(put->u.entry.status, MESH_COORD_COMPLETED);
  assert_true(put->u.entry.list_by_member);

  /* A restart restores it; the check of the files on disk keeps it. */
  tnode_restart(&a, 2);
  assert_int_equal(mesh_coord_restore(a.c, &e, 1, 3, 30), 0);
  tnode_drain(&a);
  assert_non_null(tnode_find_action(&a, MESH_COORD_ACT_VERIFY));
  mesh_coord_entry r;
  mesh_coord_visit(a.c, 30, visit_entry, &r);
  assert_true(r.list_by_member);
  assert_true(mesh_peer_id_eq(&r.list_from, &b.id.id));

  /* A download cut by a restart resumes as a new run (its space check
   * first): it lists afresh. */
  tnode_restart(&a, 3);
  e.status = MESH_COORD_ONGOING;
  assert_int_equal(mesh_coord_restore(a.c, &e, 1, 4, 40), 0);
  tnode_clear(&a);
  tnode_drain(&a);
  mesh_coord_visit(a.c, 40, visit_entry, &r);
  assert_false(r.list_by_member);
  put = last_put(&a);
  assert_non_null(put);
  assert_false(put->u.entry.list_by_member);
  assert_non_null(tnode_find_action(&a, MESH_COORD_ACT_CHECK_SPACE));
  tnode_free(&a);
  tnode_free(&b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rule1_only_own_entries_act),
      cmocka_unit_test(test_rule1_command_travels_to_owner),
      cmocka_unit_test(test_rule1_command_not_in_view),
      cmocka_unit_test(test_rule1_command_old_epoch),
      cmocka_unit_test(test_docs_refused_by_reason),
      cmocka_unit_test(test_models_dir_published),
      cmocka_unit_test(test_rule2_superseded_epoch_collected_at_once),
      cmocka_unit_test(test_rule8_renewal_in_place_keeps_running),
      cmocka_unit_test(test_rule2_departed_owner_abandoned_then_collected),
      cmocka_unit_test(test_rule3_delete_missing_succeeds_once),
      cmocka_unit_test(test_rule3_delete_failure_backoff),
      cmocka_unit_test(test_rule3_failed_entry_says_why),
      cmocka_unit_test(test_rule4_entries_only_from_commands),
      cmocka_unit_test(test_rule5_size_guard),
      cmocka_unit_test(test_space_reserved_for_downloads_under_way),
      cmocka_unit_test(test_documents_again_on_a_new_connection),
      cmocka_unit_test(test_requests_members_only_and_bounded),
      cmocka_unit_test(test_rule6_idle_silence),
      cmocka_unit_test(test_rule7_journal_only_own),
      cmocka_unit_test(test_rule8_restart),
      cmocka_unit_test(test_rate_caps),
      cmocka_unit_test(test_digest_and_relay),
      cmocka_unit_test(test_publish_coalesced),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_revisions_apart),
      cmocka_unit_test(test_revisions_restored_from_one_directory),
      cmocka_unit_test(test_download_retry_limited),
      cmocka_unit_test(test_cmds_accept_none),
      cmocka_unit_test(test_cmds_accept_listed),
      cmocka_unit_test(test_cmds_quota),
      cmocka_unit_test(test_cmds_delete_unowned_refused),
      cmocka_unit_test(test_cmds_answers_matched),
      cmocka_unit_test(test_cmds_seq_unique_across_epochs),
      cmocka_unit_test(test_cmds_code_clamped_text_escaped),
      cmocka_unit_test(test_cmds_requester_restored),
      cmocka_unit_test(test_list_source_kept_until_next_run),
      cmocka_unit_test(test_docs_only_from_answered_members),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
