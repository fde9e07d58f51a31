/*
 * Swarm key files (libp2p private networks, PSK v1). The layout, line by
 * line, each line ending in "\n" or "\r\n":
 *
 *   LINE  CONTENT
 *   1     "/key/swarm/psk/1.0.0/"
 *   2     the encoding: "/base16/", "/base64/" or "/bin/"
 *   3     /base16/: 64 hex digits; /base64/: 44 characters of padded
 *         base64; both optionally followed by one line end.
 *         /bin/: the rest of the file is the 32 raw key bytes, optionally
 *         followed by one line end.
 *
 * Nothing may follow the key. The key must be exactly 32 bytes.
 */
#include "src/identity/psk.h"

#include "src/base/err.h"
#include "src/base/fileperm.h"
#include "src/identity/durable.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PSK_HEADER "/key/swarm/psk/1.0.0/"
/* A swarm key file is under 100 bytes; refuse anything far larger. */
#define PSK_FILE_MAX 4096

/* A cursor over the file: splits off lines that end in LF or CRLF. */
typedef struct psk_reader {
  const uint8_t *p; /* next unread byte */
  size_t left;      /* bytes left */
} psk_reader;

/* Takes the next line without its line end. -EBADMSG when there is no line
 * end before the data runs out. */
static int next_line(psk_reader *r, const uint8_t **line, size_t *len)
{
  const uint8_t *nl = memchr(r->p, '\n', r->left);
  if (nl == NULL)
    return -EBADMSG;
  size_t n = (size_t)(nl - r->p);
  *line = r->p;
  *len = n > 0 && r->p[n - 1] == '\r' ? n - 1 : n;
  r->left -= n + 1;
  r->p = nl + 1;
  return 0;
}

static int line_is(const uint8_t *line, size_t len, const char *s)
{
  return len == strlen(s) && memcmp(line, s, len) == 0;
}

/* The body without one final line end ("\n" or "\r\n"), if there is one. */
static size_t strip_line_end(const uint8_t *p, size_t len)
{
  if (len > 0 && p[len - 1] == '\n') {
    len--;
    if (len > 0 && p[len - 1] == '\r')
      len--;
  }
  return len;
}

static int hex_value(uint8_t c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static int parse_base16(const uint8_t *p, size_t len, mesh_psk *out, char *err, size_t errlen)
{
  len = strip_line_end(p, len);
  for (size_t i = 0; i < len; i++) {
    if (hex_value(p[i]) < 0) {
      mesh_identity_errf(err, errlen, "bad hex digit at offset %zu of the /base16/ key", i);
      return -EBADMSG;
    }
  }
  if (len != 2 * MESH_PSK_LEN) {
    mesh_identity_errf(err, errlen, "the /base16/ key has %zu hex digits; a swarm key is 64", len);
    return -EBADMSG;
  }
  for (size_t i = 0; i < MESH_PSK_LEN; i++)
    out->key[i] = (uint8_t)(hex_value(p[2 * i]) << 4 | hex_value(p[2 * i + 1]));
  return 0;
}

static int parse_base64(const uint8_t *p, size_t len, mesh_psk *out, char *err, size_t errlen)
{
  len = strip_line_end(p, len);
  /* Decode into room for more than a key so that a longer one is reported
   * with its size rather than as garbage. The bound on the whole file bounds
   * this too. */
  uint8_t key[PSK_FILE_MAX];
  size_t n = 0;
  const char *end = NULL;
  int rc = sodium_base642bin(key, sizeof key, (const char *)p, len, NULL, &n, &end,
                             sodium_base64_VARIANT_ORIGINAL);
  if (rc != 0 || end != (const char *)p + len) {
    mesh_identity_errf(err, errlen, "the /base64/ key is not valid padded base64");
    rc = -EBADMSG;
  } else if (n != MESH_PSK_LEN) {
    mesh_identity_errf(err, errlen, "the /base64/ key is %zu bytes; a swarm key is 32", n);
    rc = -EBADMSG;
  } else {
    memcpy(out->key, key, MESH_PSK_LEN);
  }
  sodium_memzero(key, n < sizeof key ? n : sizeof key);
  return rc;
}

static int parse_bin(const uint8_t *p, size_t len, mesh_psk *out, char *err, size_t errlen)
{
  /* The key bytes may themselves end in '\n' or "\r\n", so a line end is
   * only taken off when the key is otherwise too long. */
  if (len > MESH_PSK_LEN)
    len = MESH_PSK_LEN + strip_line_end(p + MESH_PSK_LEN, len - MESH_PSK_LEN);
  if (len != MESH_PSK_LEN) {
    mesh_identity_errf(err, errlen, "the /bin/ key is %zu bytes; a swarm key is 32", len);
    return -EBADMSG;
  }
  memcpy(out->key, p, MESH_PSK_LEN);
  return 0;
}

int mesh_psk_parse(const uint8_t *buf, size_t len, mesh_psk *out, char *err, size_t errlen)
{
  if (len > PSK_FILE_MAX) {
    mesh_identity_errf(err, errlen, "%zu bytes is too large for a swarm key file", len);
    return -EBADMSG;
  }
  psk_reader r = {buf, len};
  const uint8_t *line;
  size_t n;
  if (next_line(&r, &line, &n) != 0 || !line_is(line, n, PSK_HEADER)) {
    mesh_identity_errf(err, errlen, "the first line is not " PSK_HEADER);
    return -EBADMSG;
  }
  if (next_line(&r, &line, &n) != 0) {
    mesh_identity_errf(err, errlen, "no encoding line (/base16/, /base64/ or /bin/)");
    return -EBADMSG;
  }
  mesh_psk key;
  int rc;
  if (line_is(line, n, "/base16/")) {
    rc = parse_base16(r.p, r.left, &key, err, errlen);
  } else if (line_is(line, n, "/base64/")) {
    rc = parse_base64(r.p, r.left, &key, err, errlen);
  } else if (line_is(line, n, "/bin/")) {
    rc = parse_bin(r.p, r.left, &key, err, errlen);
  } else {
    mesh_identity_errf(err, errlen, "unknown encoding line (expected /base16/, /base64/ or /bin/)");
    return -EBADMSG;
  }
  if (rc == 0)
    *out = key;
  sodium_memzero(&key, sizeof key);
  return rc;
}

int mesh_psk_load(const char *path, mesh_psk *out, char *err, size_t errlen)
{
  uint8_t buf[PSK_FILE_MAX];
  size_t len = 0;
  struct stat st;
  int fd;
  /* Whoever can read the swarm key can join; whoever can write it can split
   * this node off: the identity key's rule (src/base/fileperm.h). */
  int rc = mesh_file_open_checked(path, MESH_FILE_SECRET, "swarm key", &fd, &st, err, errlen);
  if (rc != 0)
    return rc;
  rc = mesh_durable_read_fd(fd, buf, sizeof buf, &len);
  close(fd);
  if (rc == -EFBIG) {
    mesh_identity_errf(err, errlen, "swarm key '%s' is too large to be a swarm key", path);
    return -EBADMSG;
  }
  if (rc != 0) {
    mesh_identity_errf(err, errlen, "cannot read swarm key '%s': %s", path, mesh_strerror(rc));
    return rc;
  }
  char why[128];
  rc = mesh_psk_parse(buf, len, out, why, sizeof why);
  sodium_memzero(buf, sizeof buf);
  if (rc != 0)
    mesh_identity_errf(err, errlen, "swarm key '%s' is invalid: %s", path, why);
  return rc;
}

int mesh_psk_format(const mesh_psk *psk, char *buf, size_t len)
{
  char hex[2 * MESH_PSK_LEN + 1];
  sodium_bin2hex(hex, sizeof hex, psk->key, MESH_PSK_LEN);
  int n = snprintf(buf, len, PSK_HEADER "\n/base16/\n%s\n", hex);
  sodium_memzero(hex, sizeof hex);
  return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

int mesh_psk_generate_file(const char *path, char *err, size_t errlen)
{
  if (sodium_init() < 0) {
    mesh_identity_errf(err, errlen, "cannot initialise libsodium");
    return -EIO;
  }
  mesh_psk psk;
  randombytes_buf(psk.key, sizeof psk.key);
  char text[128];
  int rc = mesh_psk_format(&psk, text, sizeof text);
  if (rc == 0)
    rc = mesh_durable_write(path, NULL, text, strlen(text), 0600, false);
  sodium_memzero(&psk, sizeof psk);
  sodium_memzero(text, sizeof text);
  if (rc == -EEXIST)
    mesh_identity_errf(err, errlen, "swarm key '%s' already exists; not overwriting it", path);
  else if (rc != 0)
    mesh_identity_errf(err, errlen, "cannot write swarm key '%s': %s", path, mesh_strerror(rc));
  return rc;
}
