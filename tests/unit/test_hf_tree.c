/*
 * The Hub's file list parser: a good list over pages, and each kind of bad
 * entry refused with -EBADMSG (or -EMSGSIZE for bounds) and a message that
 * names the problem. Also the Link header's rel="next".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "coord/hf_tree.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define OID "3a558070d32e5e1ecae16e32414c7db8bf44ba19"
#define SHA "b8cdc7894ed3382ac3cf7137ccf1b12fe70ad530204ad4777a7a6a766e003516"

static int parse(mesh_hf_tree *t, const char *json, char *err, size_t errlen)
{
  return mesh_hf_tree_parse_page(t, json, strlen(json), NULL, err, errlen);
}

static void test_good_list(void **state)
{
  const char *page1 =
      "[{\"type\":\"directory\",\"oid\":\"" OID "\",\"size\":0,\"path\":\"tokenizer\"},"
      "{\"type\":\"file\",\"oid\":\"" OID "\",\"size\":69,\"path\":\"config.json\","
      "\"lastCommit\":{\"id\":\"x\"},\"security\":null},"
      "{\"type\":\"file\",\"oid\":\"" OID "\",\"size\":1048576,\"path\":\"model.safetensors\","
      "\"lfs\":{\"oid\":\"" SHA "\",\"size\":1048576,\"pointerSize\":134}}]";
  const char *page2 = "[{\"type\":\"file\",\"oid\":\"" OID
                      "\",\"size\":21,\"path\":\"tokenizer/vocab.txt\",\"lfs\":null}]";
  mesh_hf_tree t;
  mesh_hf_tree_init(&t);
  char err[256] = "";
  assert_int_equal(parse(&t, page1, err, sizeof err), 0);
  assert_int_equal(parse(&t, page2, err, sizeof err), 0);
  assert_int_equal(mesh_hf_tree_finish(&t, err, sizeof err), 0);
  assert_int_equal(t.len, 3); /* the directory is dropped */
  assert_int_equal(t.entries, 4);
  assert_int_equal(t.total_bytes, 69 + 1048576 + 21);
  /* Sorted by path. */
  assert_string_equal(t.files[0].path, "config.json");
  assert_false(t.files[0].lfs);
  assert_string_equal(t.files[0].oid, OID);
  assert_string_equal(t.files[0].sha256, "");
  assert_string_equal(t.files[1].path, "model.safetensors");
  assert_true(t.files[1].lfs);
  assert_string_equal(t.files[1].sha256, SHA);
  assert_int_equal(t.files[1].size, 1048576);
  assert_string_equal(t.files[2].path, "tokenizer/vocab.txt");
  mesh_hf_tree_free(&t);
}

static void test_upper_case_hex_is_normalised(void **state)
{
  const char *j = "[{\"type\":\"file\",\"oid\":\"3A558070D32E5E1ECAE16E32414C7DB8BF44BA19\","
                  "\"size\":1,\"path\":\"a\"}]";
  mesh_hf_tree t;
  mesh_hf_tree_init(&t);
  assert_int_equal(parse(&t, j, NULL, 0), 0);
  assert_string_equal(t.files[0].oid, OID);
  mesh_hf_tree_free(&t);
}

/* One bad list and the words its error must contain. */
typedef struct bad_case {
  const char *json;
  int rc;
  const char *words;
} bad_case;

#define F(extra) "[{\"type\":\"file\",\"oid\":\"" OID "\",\"size\":5," extra "}]"

static const bad_case bad_cases[] = {
    {"not json", -EBADMSG, "not JSON"},
    {"{\"type\":\"file\"}", -EBADMSG, "not a JSON array"},
    {"[1]", -EBADMSG, "not an object"},
    {"[{\"path\":\"a\",\"oid\":\"" OID "\",\"size\":1}]", -EBADMSG, "'type'"},
    {"[{\"type\":7,\"path\":\"a\"}]", -EBADMSG, "'type'"},
    {"[{\"type\":\"symlink\",\"path\":\"a\"}]", -EBADMSG, "unknown type"},
    {"[{\"type\":\"file\",\"oid\":\"" OID "\",\"size\":1}]", -EBADMSG, "'path'"},
    {F("\"path\":5"), -EBADMSG, "'path'"},
    {F("\"path\":\"/etc/passwd\""), -EBADMSG, "absolute"},
    {F("\"path\":\"../x\""), -EBADMSG, "'..'"},
    {F("\"path\":\"a/../../x\""), -EBADMSG, "'..'"},
    {F("\"path\":\"a/./b\""), -EBADMSG, "'.'"},
    {F("\"path\":\"a//b\""), -EBADMSG, "empty path component"},
    {F("\"path\":\"a/\""), -EBADMSG, "ends with '/'"},
    {F("\"path\":\"\""), -EBADMSG, "empty path"},
    {F("\"path\":\"a\\u0001b\""), -EBADMSG, "control character"},
    {F("\"path\":\"a\\\\b\""), -EBADMSG, "backslash"},
    {F("\"path\":\"model.bin.partial\""), -EBADMSG, ".partial"},
    {"[{\"type\":\"file\",\"oid\":\"" OID "\",\"path\":\"a\"}]", -EBADMSG, "'size'"},
    {"[{\"type\":\"file\",\"oid\":\"" OID "\",\"size\":\"5\",\"path\":\"a\"}]", -EBADMSG, "'size'"},
    {"[{\"type\":\"file\",\"oid\":\"" OID "\",\"size\":5.5,\"path\":\"a\"}]", -EBADMSG, "'size'"},
    {"[{\"type\":\"file\",\"oid\":\"" OID "\",\"size\":-1,\"path\":\"a\"}]", -EBADMSG,
     "out of range"},
    {"[{\"type\":\"file\",\"oid\":\"" OID "\",\"size\":9223372036854775807,\"path\":\"a\"}]",
     -EBADMSG, "out of range"},
    {"[{\"type\":\"file\",\"size\":5,\"path\":\"a\"}]", -EBADMSG, "'oid'"},
    {"[{\"type\":\"file\",\"oid\":\"abc\",\"size\":5,\"path\":\"a\"}]", -EBADMSG, "'oid'"},
    {"[{\"type\":\"file\",\"oid\":\"zz558070d32e5e1ecae16e32414c7db8bf44ba19\",\"size\":5,"
     "\"path\":\"a\"}]",
     -EBADMSG, "'oid'"},
    {F("\"path\":\"a\",\"lfs\":[]"), -EBADMSG, "'lfs' is not an object"},
    {F("\"path\":\"a\",\"lfs\":{\"size\":5}"), -EBADMSG, "'lfs.oid'"},
    {F("\"path\":\"a\",\"lfs\":{\"oid\":\"" OID "\",\"size\":5}"), -EBADMSG, "'lfs.oid'"},
    {F("\"path\":\"a\",\"lfs\":{\"oid\":\"" SHA "\"}"), -EBADMSG, "'lfs.size'"},
    {F("\"path\":\"a\",\"lfs\":{\"oid\":\"" SHA "\",\"size\":6}"), -EBADMSG, "differs"},
    {"[{\"type\":\"file\",\"type\":\"file\",\"oid\":\"" OID "\",\"size\":5,\"path\":\"a\"}]",
     -EBADMSG, "not JSON"},
};

static void test_bad_lists(void **state)
{
  for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
    mesh_hf_tree t;
    mesh_hf_tree_init(&t);
    char err[256] = "";
    int rc = parse(&t, bad_cases[i].json, err, sizeof err);
    if (rc != bad_cases[i].rc || strstr(err, bad_cases[i].words) == NULL)
      fail_msg("case %zu (%s): rc %d, err '%s', expected %d and '%s'", i, bad_cases[i].json, rc,
               err, bad_cases[i].rc, bad_cases[i].words);
    assert_int_equal(t.len, 0);
    mesh_hf_tree_free(&t);
  }
}

static void test_nul_in_path_is_refused(void **state)
{
  /* jansson refuses \u0000 unless asked; the bytes never reach a file name. */
  const char *j = F("\"path\":\"a\\u0000b\"");
  mesh_hf_tree t;
  mesh_hf_tree_init(&t);
  assert_int_equal(parse(&t, j, NULL, 0), -EBADMSG);
  mesh_hf_tree_free(&t);
  const char *why = NULL;
  assert_int_equal(mesh_hf_path_check("a\0b", 3, &why), -EBADMSG);
  assert_string_equal(why, "NUL in path");
}

static void test_duplicates_refused_at_finish(void **state)
{
  mesh_hf_tree t;
  mesh_hf_tree_init(&t);
  char err[256] = "";
  assert_int_equal(parse(&t, F("\"path\":\"b\""), err, sizeof err), 0);
  assert_int_equal(parse(&t, F("\"path\":\"a\""), err, sizeof err), 0);
  assert_int_equal(parse(&t, F("\"path\":\"b\""), err, sizeof err), 0);
  assert_int_equal(mesh_hf_tree_finish(&t, err, sizeof err), -EBADMSG);
  assert_non_null(strstr(err, "'b' listed twice"));
  mesh_hf_tree_free(&t);
}

static void test_bounds(void **state)
{
  mesh_hf_tree_limits lim = {.max_entries = 2};
  mesh_hf_tree t;
  mesh_hf_tree_init(&t);
  char err[256] = "";
  const char *two = "[{\"type\":\"directory\",\"path\":\"d\"},"
                    "{\"type\":\"file\",\"oid\":\"" OID "\",\"size\":5,\"path\":\"d/a\"}]";
  assert_int_equal(mesh_hf_tree_parse_page(&t, two, strlen(two), &lim, err, sizeof err), 0);
  /* The bound counts over pages. */
  const char *one = F("\"path\":\"c\"");
  assert_int_equal(mesh_hf_tree_parse_page(&t, one, strlen(one), &lim, err, sizeof err), -EMSGSIZE);
  assert_non_null(strstr(err, "more than 2 entries"));
  mesh_hf_tree_free(&t);

  mesh_hf_tree_limits small = {.max_file_size = 4};
  mesh_hf_tree_init(&t);
  assert_int_equal(mesh_hf_tree_parse_page(&t, one, strlen(one), &small, err, sizeof err),
                   -EBADMSG);
  assert_non_null(strstr(err, "out of range"));
  mesh_hf_tree_free(&t);

  mesh_hf_tree_limits total = {.max_total = 8};
  mesh_hf_tree_init(&t);
  const char *ab = "[{\"type\":\"file\",\"oid\":\"" OID "\",\"size\":5,\"path\":\"a\"},"
                   "{\"type\":\"file\",\"oid\":\"" OID "\",\"size\":5,\"path\":\"b\"}]";
  assert_int_equal(mesh_hf_tree_parse_page(&t, ab, strlen(ab), &total, err, sizeof err), -EMSGSIZE);
  assert_non_null(strstr(err, "total size"));
  mesh_hf_tree_free(&t);
}

static void test_path_check(void **state)
{
  const char *why = NULL;
  assert_int_equal(mesh_hf_path_check("a/b/c.bin", 9, &why), 0);
  assert_int_equal(mesh_hf_path_check("..a/b..", 7, &why), 0); /* dots inside names are fine */
  /* As deep as scans and deletes of the model directory reach, no deeper. */
  char deep[2 * (MESH_HF_PATH_DEPTH_MAX + 1)];
  for (size_t i = 0; i < MESH_HF_PATH_DEPTH_MAX + 1; i++) {
    deep[2 * i] = 'd';
    deep[2 * i + 1] = '/';
  }
  assert_int_equal(mesh_hf_path_check(deep, 2 * MESH_HF_PATH_DEPTH_MAX - 1, &why), 0);
  assert_int_equal(mesh_hf_path_check(deep, 2 * MESH_HF_PATH_DEPTH_MAX + 1, &why), -EBADMSG);
  assert_string_equal(why, "path nested too deep");
  char longname[300];
  memset(longname, 'x', sizeof longname);
  assert_int_equal(mesh_hf_path_check(longname, 256, &why), -EBADMSG);
  assert_string_equal(why, "path component too long");
  char longpath[1100];
  for (size_t i = 0; i < sizeof longpath; i++)
    longpath[i] = i % 2 ? '/' : 'a';
  assert_int_equal(mesh_hf_path_check(longpath, sizeof longpath - 1, &why), -EBADMSG);
  assert_string_equal(why, "path too long");
}

static void test_link_next(void **state)
{
  char out[256];
  assert_int_equal(mesh_hf_link_next("<https://h/api?cursor=2>; rel=\"next\"", out, sizeof out), 0);
  assert_string_equal(out, "https://h/api?cursor=2");
  assert_int_equal(
      mesh_hf_link_next("<https://h/p1>; rel=\"prev\", <https://h/p3>; rel=next", out, sizeof out),
      0);
  assert_string_equal(out, "https://h/p3");
  assert_int_equal(
      mesh_hf_link_next("<https://h/x>;title=\"a, b\"; rel=\"prev next\"", out, sizeof out), 0);
  assert_string_equal(out, "https://h/x");
  assert_int_equal(mesh_hf_link_next("<https://h/x>; REL=\"Next\"", out, sizeof out), 0);
  assert_int_equal(mesh_hf_link_next("<https://h/x>; rel=\"prev\"", out, sizeof out), -ENOENT);
  assert_int_equal(mesh_hf_link_next("<https://h/x>; rel=\"nextpage\"", out, sizeof out), -ENOENT);
  assert_int_equal(mesh_hf_link_next("", out, sizeof out), -ENOENT);
  assert_int_equal(mesh_hf_link_next("https://h/x; rel=next", out, sizeof out), -EBADMSG);
  assert_int_equal(mesh_hf_link_next("<https://h/x; rel=next", out, sizeof out), -EBADMSG);
  assert_int_equal(mesh_hf_link_next("<https://h/x>; rel=\"next", out, sizeof out), -EBADMSG);
  assert_int_equal(mesh_hf_link_next("<>; rel=next", out, sizeof out), -EBADMSG);
  assert_int_equal(mesh_hf_link_next("<https://h/x>; rel=next", out, 8), -EMSGSIZE);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_list),
      cmocka_unit_test(test_upper_case_hex_is_normalised),
      cmocka_unit_test(test_bad_lists),
      cmocka_unit_test(test_nul_in_path_is_refused),
      cmocka_unit_test(test_duplicates_refused_at_finish),
      cmocka_unit_test(test_bounds),
      cmocka_unit_test(test_path_check),
      cmocka_unit_test(test_link_next),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
