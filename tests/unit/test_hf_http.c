/*
 * HTTP rules of the Hub client: backoff and Retry-After timing, status
 * classes and messages, redirect policy, token origin, URL building and
 * repository/revision checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "coord/hf_http.h"

#include <errno.h>
#include <string.h>

static void test_backoff_doubles_to_cap(void **state)
{
  assert_int_equal(mesh_hf_backoff_ms(0, 500, 30000, NULL), 500);
  assert_int_equal(mesh_hf_backoff_ms(1, 500, 30000, NULL), 1000);
  assert_int_equal(mesh_hf_backoff_ms(5, 500, 30000, NULL), 16000);
  assert_int_equal(mesh_hf_backoff_ms(6, 500, 30000, NULL), 30000);
  /* Large attempt numbers neither overflow nor pass the cap. */
  assert_int_equal(mesh_hf_backoff_ms(1000, 500, 30000, NULL), 30000);
  assert_int_equal(mesh_hf_backoff_ms(70, UINT64_MAX / 4, UINT64_MAX, NULL), UINT64_MAX);
}

static void test_backoff_jitter_stays_in_half_to_full(void **state)
{
  mesh_rng rng;
  mesh_rng_seed(&rng, 42);
  uint64_t lo = UINT64_MAX, hi = 0;
  for (int i = 0; i < 2000; i++) {
    uint64_t d = mesh_hf_backoff_ms(3, 500, 30000, &rng); /* d = 4000 */
    assert_in_range(d, 2000, 4000);
    lo = d < lo ? d : lo;
    hi = d > hi ? d : hi;
  }
  /* The draws spread over the range rather than sticking to one value. */
  assert_true(lo < 2200);
  assert_true(hi > 3800);
}

static void test_retry_delay_honours_retry_after(void **state)
{
  /* No Retry-After: the backoff. */
  assert_int_equal(mesh_hf_retry_delay_ms(0, UINT64_MAX, 500, 30000, 120000, NULL), 500);
  /* A longer Retry-After wins over the backoff. */
  assert_int_equal(mesh_hf_retry_delay_ms(0, 5000, 500, 30000, 120000, NULL), 5000);
  /* A shorter one does not shorten the backoff. */
  assert_int_equal(mesh_hf_retry_delay_ms(4, 1000, 500, 30000, 120000, NULL), 8000);
  /* And a server cannot park us beyond the cap. */
  assert_int_equal(mesh_hf_retry_delay_ms(0, 86400000, 500, 30000, 120000, NULL), 120000);
}

static void test_parse_retry_after(void **state)
{
  uint64_t ms = 0;
  assert_int_equal(mesh_hf_parse_retry_after("120", 0, &ms), 0);
  assert_int_equal(ms, 120000);
  assert_int_equal(mesh_hf_parse_retry_after(" 3 ", 0, &ms), 0);
  assert_int_equal(ms, 3000);
  assert_int_equal(mesh_hf_parse_retry_after("0", 0, &ms), 0);
  assert_int_equal(ms, 0);
  assert_int_equal(mesh_hf_parse_retry_after("3x", 0, &ms), -EBADMSG);
  assert_int_equal(mesh_hf_parse_retry_after("soon", 0, &ms), -EBADMSG);
  assert_int_equal(mesh_hf_parse_retry_after("99999999999999999999999", 0, &ms), -EBADMSG);
  /* HTTP-date: Wed, 21 Oct 2015 07:28:00 GMT is 1445412480. */
  assert_int_equal(mesh_hf_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470, &ms), 0);
  assert_int_equal(ms, 10000);
  assert_int_equal(mesh_hf_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490, &ms), 0);
  assert_int_equal(ms, 0);
}

static void test_status_classes(void **state)
{
  assert_int_equal(mesh_hf_status_classify(200), MESH_HF_STATUS_OK);
  assert_int_equal(mesh_hf_status_classify(206), MESH_HF_STATUS_OK);
  assert_int_equal(mesh_hf_status_classify(302), MESH_HF_STATUS_REDIRECT);
  assert_int_equal(mesh_hf_status_classify(307), MESH_HF_STATUS_REDIRECT);
  assert_int_equal(mesh_hf_status_classify(429), MESH_HF_STATUS_RETRY);
  assert_int_equal(mesh_hf_status_classify(500), MESH_HF_STATUS_RETRY);
  assert_int_equal(mesh_hf_status_classify(503), MESH_HF_STATUS_RETRY);
  assert_int_equal(mesh_hf_status_classify(401), MESH_HF_STATUS_FATAL);
  assert_int_equal(mesh_hf_status_classify(403), MESH_HF_STATUS_FATAL);
  assert_int_equal(mesh_hf_status_classify(404), MESH_HF_STATUS_FATAL);
  assert_int_equal(mesh_hf_status_classify(416), MESH_HF_STATUS_FATAL);
  assert_int_equal(mesh_hf_status_errno(401), -EACCES);
  assert_int_equal(mesh_hf_status_errno(403), -EPERM);
  assert_int_equal(mesh_hf_status_errno(404), -ENOENT);
  assert_int_equal(mesh_hf_status_errno(418), -EPROTO);
}

static void test_status_messages_say_which(void **state)
{
  char m[256];
  mesh_hf_status_message(401, false, "GatedRepo", "org/m", "main", "file list", m, sizeof m);
  assert_non_null(strstr(m, "no token"));
  mesh_hf_status_message(401, false, "RepoNotFound", "org/m", "main", "file list", m, sizeof m);
  assert_non_null(strstr(m, "no such repository 'org/m', or it is private or gated"));
  assert_non_null(strstr(m, "no token"));
  mesh_hf_status_message(401, true, NULL, "org/m", "main", "file list", m, sizeof m);
  assert_non_null(strstr(m, "token was refused"));
  mesh_hf_status_message(403, true, "GatedRepo", "org/m", "main", "a.bin", m, sizeof m);
  assert_non_null(strstr(m, "gated model"));
  assert_non_null(strstr(m, "a.bin"));
  mesh_hf_status_message(404, false, "RevisionNotFound", "org/m", "v9", "file list", m, sizeof m);
  assert_non_null(strstr(m, "no such revision 'v9'"));
  mesh_hf_status_message(404, false, "RepoNotFound", "org/m", "main", "file list", m, sizeof m);
  assert_non_null(strstr(m, "no such repository 'org/m'"));
  mesh_hf_status_message(404, false, "EntryNotFound", "org/m", "main", "a.bin", m, sizeof m);
  assert_non_null(strstr(m, "no such file"));
  mesh_hf_status_message(404, false, NULL, "org/m", "main", "file list", m, sizeof m);
  assert_non_null(strstr(m, "no such repository 'org/m' or revision 'main'"));
}

static void test_redirect_policy(void **state)
{
  const char *ep = "http://127.0.0.1:8080";
  const char *why = NULL;
  assert_true(mesh_hf_redirect_allowed(ep, "https://cdn-lfs.example.org/x?sig=1", &why));
  assert_true(mesh_hf_redirect_allowed(ep, "http://127.0.0.1:8080/_cdn/a", &why));
  assert_false(mesh_hf_redirect_allowed(ep, "http://127.0.0.2:8080/_cdn/a", &why));
  assert_non_null(strstr(why, "https"));
  assert_false(mesh_hf_redirect_allowed(ep, "http://127.0.0.1:9090/a", &why));
  assert_false(mesh_hf_redirect_allowed(ep, "ftp://127.0.0.1:8080/a", &why));
  assert_false(mesh_hf_redirect_allowed(ep, "not a url", &why));
  /* An https endpoint is not followed down to plain http, even on its host. */
  assert_false(mesh_hf_redirect_allowed("https://huggingface.co", "http://huggingface.co/x", &why));
  assert_true(mesh_hf_redirect_allowed("https://huggingface.co", "https://huggingface.co/x", &why));
}

static void test_token_goes_to_endpoint_origin_only(void **state)
{
  assert_true(mesh_hf_same_origin("https://huggingface.co", "https://huggingface.co:443/x"));
  assert_true(mesh_hf_same_origin("https://HuggingFace.co", "https://huggingface.co/x"));
  assert_false(mesh_hf_same_origin("https://huggingface.co", "https://cdn-lfs.huggingface.co/x"));
  assert_false(mesh_hf_same_origin("http://127.0.0.1:1", "http://127.0.0.1:2/"));
  assert_false(mesh_hf_same_origin("http://127.0.0.1:1", "garbage"));
}

static void test_urls(void **state)
{
  char u[MESH_HF_URL_MAX];
  assert_int_equal(mesh_hf_url_tree("https://huggingface.co/", "org/m", "main", u, sizeof u), 0);
  assert_string_equal(u, "https://huggingface.co/api/models/org/m/tree/main?recursive=true");
  assert_int_equal(mesh_hf_url_tree("http://h:1", "org/m", "refs/pr/1", u, sizeof u), 0);
  assert_string_equal(u, "http://h:1/api/models/org/m/tree/refs%2Fpr%2F1?recursive=true");
  assert_int_equal(
      mesh_hf_url_resolve("http://h:1", "org/m", "main", "sub dir/a+b.bin", u, sizeof u), 0);
  assert_string_equal(u, "http://h:1/org/m/resolve/main/sub%20dir/a%2Bb.bin");
  char small[24];
  assert_int_equal(mesh_hf_url_resolve("http://h:1", "org/m", "main", "a", small, sizeof small),
                   -EMSGSIZE);
}

static void test_repo_and_revision_checks(void **state)
{
  assert_int_equal(mesh_hf_repo_check("org/name"), 0);
  assert_int_equal(mesh_hf_repo_check("gpt2"), 0);
  assert_int_equal(mesh_hf_repo_check("Org-1/Llama-3.2_1B.instruct"), 0);
  const char *bad[] = {"", "a/b/c", "../x", "a/..", "./a", "a b", "/a", "a/", "a\nb", "a?b"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    if (mesh_hf_repo_check(bad[i]) != -EINVAL)
      fail_msg("repo '%s' accepted", bad[i]);
  char d[64];
  assert_int_equal(mesh_hf_model_dirname("mlx-community/Llama-3.2-1B", d, sizeof d), 0);
  assert_string_equal(d, "mlx-community--Llama-3.2-1B");
  assert_int_equal(mesh_hf_model_dirname("gpt2", d, sizeof d), 0);
  assert_string_equal(d, "gpt2");
  assert_int_equal(mesh_hf_model_dirname("../x", d, sizeof d), -EINVAL);
  assert_int_equal(mesh_hf_model_dirname("org/name", d, 8), -EMSGSIZE);
  assert_int_equal(mesh_hf_revision_check("main"), 0);
  assert_int_equal(mesh_hf_revision_check("refs/pr/1"), 0);
  assert_int_equal(mesh_hf_revision_check(""), -EINVAL);
  assert_int_equal(mesh_hf_revision_check("a b"), -EINVAL);
  assert_int_equal(mesh_hf_revision_check("a\r\nX: y"), -EINVAL);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backoff_doubles_to_cap),
      cmocka_unit_test(test_backoff_jitter_stays_in_half_to_full),
      cmocka_unit_test(test_retry_delay_honours_retry_after),
      cmocka_unit_test(test_parse_retry_after),
      cmocka_unit_test(test_status_classes),
      cmocka_unit_test(test_status_messages_say_which),
      cmocka_unit_test(test_redirect_policy),
      cmocka_unit_test(test_token_goes_to_endpoint_origin_only),
      cmocka_unit_test(test_urls),
      cmocka_unit_test(test_repo_and_revision_checks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
