/*
 * Swarm keys: the three encodings of the libp2p private-network format, LF
 * and CRLF line ends, and refusal (with a message that says what is wrong)
 * of wrong sizes, headers, encodings and digits; generated files are 0600,
 * parse back and are never overwritten.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "src/base/err.h"
#include "src/identity/psk.h"
#include "support_identity.h"

/* The key 00 01 02 ... 1f in each encoding. */
#define HEX_KEY "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define B64_KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define HEADER "/key/swarm/psk/1.0.0/"

static void expect_key(const char *text, size_t len)
{
  mesh_psk psk;
  memset(&psk, 0xee, sizeof psk);
  char err[256] = "";
  int rc = mesh_psk_parse((const uint8_t *)text, len, &psk, err, sizeof err);
  if (rc != 0)
    fail_msg("refused (%d: %s): %.*s", rc, err, (int)len, text);
  for (int i = 0; i < MESH_PSK_LEN; i++)
    assert_int_equal(psk.key[i], i);
}

static void expect_reject(const char *text, size_t len, const char *want)
{
  mesh_psk psk;
  char err[256] = "";
  assert_int_equal(mesh_psk_parse((const uint8_t *)text, len, &psk, err, sizeof err), -EBADMSG);
  if (strstr(err, want) == NULL)
    fail_msg("message '%s' does not say '%s' for: %.*s", err, want, (int)len, text);
}

#define S(lit) lit, sizeof(lit) - 1

static void test_base16(void **state)
{
  (void)state;
  expect_key(S(HEADER "\n/base16/\n" HEX_KEY "\n"));
  expect_key(S(HEADER "\n/base16/\n" HEX_KEY));
  expect_key(S(HEADER "\r\n/base16/\r\n" HEX_KEY "\r\n"));
  expect_key(S(HEADER "\n/base16/\r\n" HEX_KEY "\n"));
  expect_key(S(HEADER "\n/base16/\n"
                      "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F\n"));
}

static void test_base64(void **state)
{
  (void)state;
  expect_key(S(HEADER "\n/base64/\n" B64_KEY "\n"));
  expect_key(S(HEADER "\n/base64/\n" B64_KEY));
  expect_key(S(HEADER "\r\n/base64/\r\n" B64_KEY "\r\n"));
}

static void test_bin(void **state)
{
  (void)state;
  char buf[128];
  size_t n = 0;
  memcpy(buf, HEADER "\n/bin/\n", strlen(HEADER "\n/bin/\n"));
  n = strlen(HEADER "\n/bin/\n");
  for (int i = 0; i < MESH_PSK_LEN; i++)
    buf[n++] = (char)i;
  expect_key(buf, n);
  buf[n] = '\n';
  expect_key(buf, n + 1);
  buf[n] = '\r';
  buf[n + 1] = '\n';
  expect_key(buf, n + 2);

  /* CRLF header lines. */
  char crlf[128];
  size_t h = strlen(HEADER "\r\n/bin/\r\n");
  memcpy(crlf, HEADER "\r\n/bin/\r\n", h);
  memcpy(crlf + h, buf + strlen(HEADER "\n/bin/\n"), MESH_PSK_LEN);
  expect_key(crlf, h + MESH_PSK_LEN);

  /* A raw key may itself end in a line-end byte: it is key, not line end. */
  char nl[128];
  memcpy(nl, HEADER "\n/bin/\n", h - 2);
  size_t k = h - 2;
  memset(nl + k, '\n', MESH_PSK_LEN);
  mesh_psk psk;
  char err[128];
  assert_int_equal(mesh_psk_parse((const uint8_t *)nl, k + MESH_PSK_LEN, &psk, err, sizeof err), 0);
  for (int i = 0; i < MESH_PSK_LEN; i++)
    assert_int_equal(psk.key[i], '\n');
  /* ... and 31 of them plus a line end is a short key. */
  expect_reject(nl, k + MESH_PSK_LEN - 1, "31 bytes");

  /* Wrong sizes: 31, 33 (not a line end), 34. */
  expect_reject(buf, n - 1, "31 bytes");
  buf[n] = 'x';
  expect_reject(buf, n + 1, "33 bytes");
  buf[n] = '\n';
  buf[n + 1] = '\n';
  expect_reject(buf, n + 2, "33 bytes");
}

static void test_wrong_sizes(void **state)
{
  (void)state;
  expect_reject(S(HEADER "\n/base16/\n" HEX_KEY "00\n"), "66 hex digits");
  expect_reject(S(HEADER "\n/base16/\n"
                         "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e\n"),
                "62 hex digits");
  expect_reject(S(HEADER "\n/base16/\n" HEX_KEY "0\n"), "65 hex digits");
  expect_reject(S(HEADER "\n/base16/\n"), "0 hex digits");
  expect_reject(S(HEADER "\n/base16/\n\n"), "0 hex digits");
  /* 31 and 33 bytes of base64. */
  expect_reject(S(HEADER "\n/base64/\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n"), "31 bytes");
  expect_reject(S(HEADER "\n/base64/\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\n"), "33 bytes");
  expect_reject(S(HEADER "\n/base64/\n\n"), "0 bytes");
}

static void test_bad_headers(void **state)
{
  (void)state;
  expect_reject(S(""), "first line");
  expect_reject(S(HEADER), "first line");
  expect_reject(S("/key/swarm/psk/2.0.0/\n/base16/\n" HEX_KEY "\n"), "first line");
  expect_reject(S("/base16/\n" HEX_KEY "\n"), "first line");
  expect_reject(S(" " HEADER "\n/base16/\n" HEX_KEY "\n"), "first line");
  expect_reject(S(HEADER " \n/base16/\n" HEX_KEY "\n"), "first line");
  expect_reject(S(HEADER "\n"), "no encoding line");
  expect_reject(S(HEADER "\n/base16/"), "no encoding line");
  expect_reject(S(HEADER "\n/base32/\n" HEX_KEY "\n"), "unknown encoding");
  expect_reject(S(HEADER "\n/BASE16/\n" HEX_KEY "\n"), "unknown encoding");
  expect_reject(S(HEADER "\n\n" HEX_KEY "\n"), "unknown encoding");
  expect_reject(S(HEADER "\r\r\n/base16/\n" HEX_KEY "\n"), "first line");
}

static void test_bad_digits(void **state)
{
  (void)state;
  expect_reject(S(HEADER "\n/base16/\n"
                         "0001020304050607080g0a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"),
                "bad hex digit at offset 19");
  expect_reject(S(HEADER "\n/base16/\n"
                         " 00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"),
                "offset 0");
  /* Junk after the key line. */
  expect_reject(S(HEADER "\n/base16/\n" HEX_KEY "\nextra\n"), "bad hex digit");
  expect_reject(S(HEADER "\n/base16/\n" HEX_KEY "\n\n"), "bad hex digit");
  /* base64 without padding, with a bad character, with junk after it. */
  expect_reject(S(HEADER "\n/base64/\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n"), "base64");
  expect_reject(S(HEADER "\n/base64/\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd*h8=\n"), "base64");
  expect_reject(S(HEADER "\n/base64/\n" B64_KEY "\nAAAA\n"), "base64");
}

static void test_format_round_trip(void **state)
{
  (void)state;
  mesh_psk psk;
  for (int i = 0; i < MESH_PSK_LEN; i++)
    psk.key[i] = (uint8_t)i;
  char text[128];
  assert_int_equal(mesh_psk_format(&psk, text, sizeof text), 0);
  assert_string_equal(text, HEADER "\n/base16/\n" HEX_KEY "\n");
  expect_key(text, strlen(text));
  char small[64];
  assert_int_equal(mesh_psk_format(&psk, small, sizeof small), -ENOSPC);
}

static void test_generate_file(void **state)
{
  (void)state;
  char dir[512], path[600], other[600];
  ident_test_mkdtemp(dir, sizeof dir);
  ident_test_path(path, sizeof path, dir, "swarm.key");
  ident_test_path(other, sizeof other, dir, "other.key");
  char err[512] = "";
  mesh_psk a, b;
  assert_int_equal(mesh_psk_load(path, &a, err, sizeof err), -ENOENT);
  assert_non_null(strstr(err, path));

  assert_int_equal(mesh_psk_generate_file(path, err, sizeof err), 0);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(st.st_size, 96);
  assert_int_equal(mesh_psk_load(path, &a, err, sizeof err), 0);

  /* Never overwritten. */
  char before[256], after[256];
  ident_test_read(path, before, sizeof before);
  assert_int_equal(mesh_psk_generate_file(path, err, sizeof err), -EEXIST);
  assert_non_null(strstr(err, "already exists"));
  assert_non_null(strstr(err, path));
  ident_test_read(path, after, sizeof after);
  assert_string_equal(before, after);
  assert_int_equal(ident_test_count(dir, "swarm.key.tmp"), 0);

  /* A second key is a different key. */
  assert_int_equal(mesh_psk_generate_file(other, err, sizeof err), 0);
  assert_int_equal(mesh_psk_load(other, &b, err, sizeof err), 0);
  assert_memory_not_equal(a.key, b.key, MESH_PSK_LEN);

  /* A bad file is reported with its name and the reason. */
  ident_test_write(other, HEADER "\n/base16/\nzz\n", strlen(HEADER "\n/base16/\nzz\n"), 0600);
  assert_int_equal(mesh_psk_load(other, &b, err, sizeof err), -EBADMSG);
  assert_non_null(strstr(err, other));
  assert_non_null(strstr(err, "bad hex digit"));

  /* A missing directory. */
  char missing[700];
  ident_test_path(missing, sizeof missing, dir, "nodir/swarm.key");
  assert_int_equal(mesh_psk_generate_file(missing, err, sizeof err), -ENOENT);
  assert_non_null(strstr(err, missing));
  ident_test_rmdir(dir);
}

static void test_oversized(void **state)
{
  (void)state;
  static char big[5000];
  memset(big, 'a', sizeof big);
  expect_reject(big, sizeof big, "too large");
}

/* The identity key's rule holds for the swarm key: readable or writable by
 * group or others, owned by another user, or a symbolic link: refused with
 * the fix in the message, before a byte of the key is used. */
static void test_file_rules(void **state)
{
  (void)state;
  char dir[512], path[600], link[600], want[1600];
  ident_test_mkdtemp(dir, sizeof dir);
  ident_test_path(path, sizeof path, dir, "swarm.key");
  ident_test_path(link, sizeof link, dir, "link.key");
  char err[512] = "";
  mesh_psk a;
  assert_int_equal(mesh_psk_generate_file(path, err, sizeof err), 0);
  static const mode_t modes[] = {0644, 0666, 0640, 0604, 0620, 0602, 0610};
  for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
    assert_int_equal(chmod(path, modes[i]), 0);
    assert_int_equal(mesh_psk_load(path, &a, err, sizeof err), -EACCES);
    snprintf(want, sizeof want, "Permissions %04o for '%s' are too open; run: chmod 600 %s",
             (unsigned)modes[i], path, path);
    assert_string_equal(err, want);
  }
  assert_int_equal(chmod(path, 0400), 0);
  assert_int_equal(mesh_psk_load(path, &a, err, sizeof err), 0);
  assert_int_equal(chmod(path, 0600), 0);

  assert_int_equal(symlink(path, link), 0);
  assert_int_equal(mesh_psk_load(link, &a, err, sizeof err), -ELOOP);
  assert_non_null(strstr(err, "swarm key"));
  assert_non_null(strstr(err, "symbolic link"));

  if (geteuid() == 0) {
    assert_int_equal(chown(path, 1, 1), 0);
    assert_int_equal(mesh_psk_load(path, &a, err, sizeof err), -EACCES);
    snprintf(want, sizeof want,
             "swarm key '%s' is owned by uid 1, but meshd runs as uid 0; run: chown 0 %s", path,
             path);
    assert_string_equal(err, want);
  } else {
    print_message("skipped: swarm key owned by another user (needs root to chown)\n");
  }
  ident_test_rmdir(dir);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_base16),
      cmocka_unit_test(test_base64),
      cmocka_unit_test(test_bin),
      cmocka_unit_test(test_wrong_sizes),
      cmocka_unit_test(test_bad_headers),
      cmocka_unit_test(test_bad_digits),
      cmocka_unit_test(test_format_round_trip),
      cmocka_unit_test(test_generate_file),
      cmocka_unit_test(test_oversized),
      cmocka_unit_test(test_file_rules),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
