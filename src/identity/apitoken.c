/* Creating and reading the control API's token file, $MESH_HOME/api.token. */
#include "src/identity/apitoken.h"

#include "src/base/err.h"
#include "src/base/fileperm.h"
#include "src/identity/durable.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Random bytes in a made token: 256 bits, as the identity key's. */
#define TOKEN_RANDOM_BYTES 32

/* The file is one short line; anything much longer is not a token file. */
#define TOKEN_FILE_MAX (MESH_APITOKEN_MAX + 2)

/* Checks buf (len bytes, the file's contents) and copies the token into
 * out (cap bytes). */
int mesh_apitoken_parse(const char *path, const uint8_t *buf, size_t len, char *out, size_t cap,
                        char *err, size_t errlen)
{
  while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
    len--;
  if (len < MESH_APITOKEN_MIN || len > MESH_APITOKEN_MAX || len >= cap) {
    mesh_identity_errf(err, errlen,
                       "API token file '%s' must hold one line of %d to %d characters; remove it "
                       "and meshd makes a new one",
                       path, MESH_APITOKEN_MIN, MESH_APITOKEN_MAX);
    return -EBADMSG;
  }
  for (size_t i = 0; i < len; i++) {
    if (buf[i] <= 0x20 || buf[i] >= 0x7f) {
      mesh_identity_errf(err, errlen,
                         "API token file '%s' holds a space or a character that is not printable "
                         "ASCII; remove it and meshd makes a new one",
                         path);
      return -EBADMSG;
    }
  }
  memcpy(out, buf, len);
  out[len] = '\0';
  return 0;
}

/* Reads the file at path (not following a symlink when strict) into buf
 * (TOKEN_FILE_MAX bytes); *st receives its status. */
static int read_file(const char *path, bool strict, uint8_t *buf, size_t *len, struct stat *st)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (strict ? O_NOFOLLOW : 0));
  if (fd < 0)
    return -errno;
  int rc = 0;
  size_t n = 0;
  if (fstat(fd, st) != 0)
    rc = -errno;
  else if (!S_ISREG(st->st_mode))
    rc = -EINVAL;
  while (rc == 0) {
    ssize_t r = read(fd, buf + n, TOKEN_FILE_MAX - n);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      rc = -errno;
    } else if (r == 0) {
      break;
    } else {
      n += (size_t)r;
      if (n == TOKEN_FILE_MAX)
        rc = -EFBIG;
    }
  }
  close(fd);
  *len = n;
  return rc;
}

int mesh_apitoken_read(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
  uint8_t buf[TOKEN_FILE_MAX];
  size_t len = 0;
  struct stat st;
  int rc = read_file(path, false, buf, &len, &st);
  if (rc == -EFBIG || rc == -EINVAL) {
    mesh_identity_errf(err, errlen, "API token file '%s' is not a short regular file", path);
    rc = -EBADMSG;
  } else if (rc < 0) {
    mesh_identity_errf(err, errlen, "cannot read API token file '%s': %s", path, mesh_strerror(rc));
  } else {
    rc = mesh_apitoken_parse(path, buf, len, out, cap, err, errlen);
  }
  sodium_memzero(buf, sizeof buf);
  return rc;
}

/* Makes a new token file at path. -EEXIST when another start made one
 * first. */
static int create(const char *path)
{
  uint8_t raw[TOKEN_RANDOM_BYTES];
  char text[2 * TOKEN_RANDOM_BYTES + 2];
  randombytes_buf(raw, sizeof raw);
  sodium_bin2hex(text, sizeof text, raw, sizeof raw);
  size_t n = 2 * TOKEN_RANDOM_BYTES;
  text[n++] = '\n';
  int rc = mesh_durable_write(path, NULL, text, n, 0600, false);
  sodium_memzero(raw, sizeof raw);
  sodium_memzero(text, sizeof text);
  return rc;
}

int mesh_apitoken_load_or_create(const char *path, char *out, size_t cap, bool *created, char *err,
                                 size_t errlen)
{
  *created = false;
  if (sodium_init() < 0) {
    mesh_identity_errf(err, errlen, "libsodium failed to initialise");
    return -ENOSYS;
  }
  uint8_t buf[TOKEN_FILE_MAX];
  size_t len = 0;
  struct stat st;
  const char *doing = "read";
  int rc = read_file(path, true, buf, &len, &st);
  if (rc == -ENOENT) {
    rc = create(path);
    if (rc == 0)
      *created = true;
    else if (rc != -EEXIST)
      doing = "create";
    if (rc == 0 || rc == -EEXIST)
      rc = read_file(path, true, buf, &len, &st);
  }
  /* O_NOFOLLOW fails with ELOOP on Linux and macOS (EMLINK on FreeBSD). */
  if (rc == -ELOOP || rc == -EMLINK) {
    mesh_identity_errf(err, errlen,
                       "API token file '%s' is a symlink; meshd reads only a regular file of its "
                       "own there (remove the link and meshd makes a new token)",
                       path);
    rc = -ELOOP;
  } else if (rc == -EINVAL || rc == -EFBIG) {
    mesh_identity_errf(err, errlen, "API token file '%s' is not a short regular file", path);
    /* Too long is a file that holds no token; a folder is not a file. */
    if (rc == -EFBIG)
      rc = -EBADMSG;
  } else if (rc < 0) {
    mesh_identity_errf(err, errlen, "cannot %s API token file '%s': %s", doing, path,
                       mesh_strerror(rc));
  } else if ((rc = mesh_file_check(&st, path, MESH_FILE_SECRET, "API token file", err, errlen)) !=
             0) {
    /* Anyone who can read it can command the node; anyone who can write it
     * can choose the token: the identity key's rule. */
  } else {
    rc = mesh_apitoken_parse(path, buf, len, out, cap, err, errlen);
  }
  sodium_memzero(buf, sizeof buf);
  return rc;
}
