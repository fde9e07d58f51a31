/*
 * Signed file lists of members (format in coord/hf_filelist.h): sealing a
 * manifest under this node's key, and checking one a member sent.
 */
#include "coord/hf_filelist.h"

#include "coord/hf_verify.h"
#include "src/base/err.h"
#include "src/identity/signed.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char magic[] = "meshd-file-list 1\n";
static const uint8_t payload_type[] = "text";

/* Writes lines 1 to 6 of the head into buf (cap bytes): their length, or
 * -EINVAL when a field is out of bounds or they do not fit. */
static int head_text(const mesh_hf_filelist_meta *m, const char *sha_hex, char *buf, size_t cap)
{
  const char *why;
  size_t ml = strnlen(m->model_id, sizeof m->model_id);
  size_t rl = strnlen(m->revision, sizeof m->revision);
  if (ml >= sizeof m->model_id || mesh_model_id_validate(m->model_id, ml, &why) != 0 ||
      rl > MESH_REVISION_MAX || mesh_revision_validate(m->revision, rl) != 0)
    return -EINVAL;
  char owner[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(&m->owner, owner, sizeof owner);
  int n = snprintf(buf, cap, "%smodel %s\nrevision %s\nowner %s\nepoch %" PRIu64 "\nsha256 %s\n",
                   magic, m->model_id, m->revision, owner, m->epoch, sha_hex);
  if (n < 0 || (size_t)n >= cap)
    return -EINVAL;
  return n;
}

static void to_hex(const uint8_t *b, size_t n, char *out)
{
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[b[i] >> 4];
    out[2 * i + 1] = digits[b[i] & 15];
  }
  out[2 * n] = '\0';
}

static int from_hex(const char *s, size_t n, uint8_t *out)
{
  for (size_t i = 0; i < n / 2; i++) {
    unsigned v = 0;
    for (int k = 0; k < 2; k++) {
      char c = s[2 * i + (size_t)k];
      unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                   : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                                          : 16;
      if (d == 16)
        return -EBADMSG;
      v = v * 16 + d;
    }
    out[i] = (uint8_t)v;
  }
  return 0;
}

int mesh_hf_filelist_seal(const mesh_identity *id, const mesh_hf_filelist_meta *meta,
                          const char *manifest, size_t mlen, uint8_t **out, size_t *len)
{
  if (mlen > MESH_HF_MANIFEST_MAX || !mesh_peer_id_eq(&id->id, &meta->owner))
    return -EINVAL;
  char sha[MESH_HF_HEX_MAX];
  mesh_hf_sha256_hex(manifest, mlen, sha);
  char head[MESH_HF_FILELIST_HEAD_MAX];
  int hn = head_text(meta, sha, head, sizeof head - (4 + 2 * MESH_SIG_LEN + 1));
  if (hn < 0)
    return hn;
  uint8_t sig[MESH_SIG_LEN];
  int rc = mesh_sign(id, MESH_DOMAIN_FILE_LIST, payload_type, sizeof payload_type - 1,
                     (const uint8_t *)head, (size_t)hn, sig);
  if (rc != 0)
    return rc;
  char sig_hex[2 * MESH_SIG_LEN + 1];
  to_hex(sig, sizeof sig, sig_hex);
  size_t total = (size_t)hn + 4 + 2 * MESH_SIG_LEN + 1 + mlen;
  uint8_t *b = malloc(total);
  if (b == NULL)
    return -ENOMEM;
  memcpy(b, head, (size_t)hn);
  memcpy(b + hn, "sig ", 4);
  memcpy(b + hn + 4, sig_hex, 2 * MESH_SIG_LEN);
  b[hn + 4 + 2 * MESH_SIG_LEN] = '\n';
  memcpy(b + hn + 5 + 2 * MESH_SIG_LEN, manifest, mlen);
  *out = b;
  *len = total;
  return 0;
}

/* Takes the next head line "<key> <value>\n" at *p (before end): the value
 * and its length, or false when the line is not there or malformed. */
static bool head_line(const char **p, const char *end, const char *key, const char **val,
                      size_t *vlen)
{
  size_t kl = strlen(key);
  size_t room = (size_t)(end - *p);
  if (room < kl + 2 || memcmp(*p, key, kl) != 0 || (*p)[kl] != ' ')
    return false;
  const char *v = *p + kl + 1;
  const char *nl = memchr(v, '\n', (size_t)(end - v));
  if (nl == NULL || nl == v)
    return false;
  for (const char *c = v; c < nl; c++)
    if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
      return false;
  *val = v;
  *vlen = (size_t)(nl - v);
  *p = nl + 1;
  return true;
}

static int refuse(char *err, size_t errlen, int rc, const char *why)
{
  snprintf(err, errlen, "%s", why);
  return rc;
}

int mesh_hf_filelist_open(const uint8_t *buf, size_t len, const mesh_hf_filelist_meta *want,
                          const char **manifest, size_t *mlen, char *err, size_t errlen)
{
  if (len > MESH_HF_FILELIST_MAX)
    return refuse(err, errlen, -EMSGSIZE, "larger than a file list may be");
  const char *s = (const char *)buf;
  const char *end = s + (len < MESH_HF_FILELIST_HEAD_MAX ? len : MESH_HF_FILELIST_HEAD_MAX);
  if (len < sizeof magic - 1 || memcmp(s, magic, sizeof magic - 1) != 0)
    return refuse(err, errlen, -EBADMSG, "not a signed file list (version 1)");
  const char *p = s + sizeof magic - 1;
  const char *model, *rev, *owner, *epoch, *sha, *sig;
  size_t model_n, rev_n, owner_n, epoch_n, sha_n, sig_n;
  if (!head_line(&p, end, "model", &model, &model_n) ||
      !head_line(&p, end, "revision", &rev, &rev_n) ||
      !head_line(&p, end, "owner", &owner, &owner_n) ||
      !head_line(&p, end, "epoch", &epoch, &epoch_n) || !head_line(&p, end, "sha256", &sha, &sha_n))
    return refuse(err, errlen, -EBADMSG, "malformed head");
  size_t signed_len = (size_t)(p - s);
  if (!head_line(&p, end, "sig", &sig, &sig_n) || sig_n != 2 * MESH_SIG_LEN ||
      sha_n != MESH_HF_SHA256_HEX_LEN)
    return refuse(err, errlen, -EBADMSG, "malformed signature or hash line");
  /* Every field must be the one expected: the member signs what it was
   * asked for, nothing else is taken. */
  char owner_want[MESH_PEER_ID_TEXT_MAX];
  mesh_peer_id_to_text(&want->owner, owner_want, sizeof owner_want);
  char epoch_want[24];
  snprintf(epoch_want, sizeof epoch_want, "%" PRIu64, want->epoch);
  if (model_n != strlen(want->model_id) || memcmp(model, want->model_id, model_n) != 0)
    return refuse(err, errlen, -EBADMSG, "the list is of another model");
  if (rev_n != strlen(want->revision) || memcmp(rev, want->revision, rev_n) != 0)
    return refuse(err, errlen, -EBADMSG, "the list is of another revision");
  if (owner_n != strlen(owner_want) || memcmp(owner, owner_want, owner_n) != 0)
    return refuse(err, errlen, -EBADMSG, "the list names another owner than the member asked");
  if (epoch_n != strlen(epoch_want) || memcmp(epoch, epoch_want, epoch_n) != 0)
    return refuse(err, errlen, -EBADMSG, "the list is of another epoch of its owner");
  uint8_t sigb[MESH_SIG_LEN];
  if (from_hex(sig, sig_n, sigb) != 0)
    return refuse(err, errlen, -EBADMSG, "malformed signature");
  uint8_t pk[MESH_PUBKEY_LEN];
  mesh_peer_id_pubkey(&want->owner, pk);
  if (mesh_verify(pk, MESH_DOMAIN_FILE_LIST, payload_type, sizeof payload_type - 1, buf, signed_len,
                  sigb) != 0)
    return refuse(err, errlen, -MESH_EAUTH, "bad signature");
  const char *m = p;
  size_t n = len - (size_t)(p - s);
  if (n > MESH_HF_MANIFEST_MAX)
    return refuse(err, errlen, -EMSGSIZE, "the manifest is too large");
  char got[MESH_HF_HEX_MAX];
  mesh_hf_sha256_hex(m, n, got);
  if (memcmp(got, sha, MESH_HF_SHA256_HEX_LEN) != 0)
    return refuse(err, errlen, -MESH_EAUTH, "the manifest is not the one signed");
  *manifest = m;
  *mlen = n;
  return 0;
}
