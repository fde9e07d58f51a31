/* Helpers for the identity tests: hex literals, scratch directories, small files. */
#include "support_identity.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static int hex_nibble(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  fail_msg("bad hex digit '%c' in a test literal", c);
  return 0;
}

size_t ident_test_hex(const char *hex, uint8_t *out, size_t cap)
{
  size_t len = strlen(hex);
  assert_true(len % 2 == 0);
  assert_true(len / 2 <= cap);
  for (size_t i = 0; i < len / 2; i++)
    out[i] = (uint8_t)(hex_nibble(hex[2 * i]) << 4 | hex_nibble(hex[2 * i + 1]));
  return len / 2;
}

void ident_test_mkdtemp(char *dir, size_t cap)
{
  const char *base = getenv("MESH_TEST_TMP");
  if (base == NULL || base[0] == '\0')
    base = "/tmp";
  mkdir(base, 0755); /* may exist already */
  int n = snprintf(dir, cap, "%s/ident-XXXXXX", base);
  assert_true(n > 0 && (size_t)n < cap);
  assert_non_null(mkdtemp(dir));
}

void ident_test_rmdir(const char *dir)
{
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    char path[4096];
    ident_test_path(path, sizeof path, dir, e->d_name);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
      rmdir(path);
    else
      unlink(path);
  }
  closedir(d);
  rmdir(dir);
}

void ident_test_path(char *out, size_t cap, const char *dir, const char *name)
{
  int n = snprintf(out, cap, "%s/%s", dir, name);
  assert_true(n > 0 && (size_t)n < cap);
}

void ident_test_write(const char *path, const void *data, size_t len, mode_t mode)
{
  unlink(path);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  assert_true(fd >= 0);
  assert_int_equal(fchmod(fd, mode), 0);
  if (len > 0)
    assert_int_equal(write(fd, data, len), (ssize_t)len);
  assert_int_equal(close(fd), 0);
}

long ident_test_read(const char *path, char *buf, size_t cap)
{
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    assert_int_equal(errno, ENOENT);
    return -1;
  }
  ssize_t n = read(fd, buf, cap - 1);
  assert_true(n >= 0);
  buf[n] = '\0';
  close(fd);
  return (long)n;
}

int ident_test_count(const char *dir, const char *prefix)
{
  DIR *d = opendir(dir);
  assert_non_null(d);
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
      count++;
  closedir(d);
  return count;
}
