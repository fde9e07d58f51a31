/* meshd's own error codes and their text, beside errno's (src/base/err.h). */
#include "src/base/err.h"

#include <string.h>

const char *mesh_strerror(int err)
{
  if (err == 0)
    return "success";
  if (err < 0)
    err = -err;
  switch (err) {
  case EBADMSG:
    return "malformed input";
  case MESH_EAUTH:
    return "signature or authentication failed";
  case ESTALE:
    return "stale: old epoch or older version";
  case EMSGSIZE:
    return "input exceeds its size limit";
  default:
    return strerror(err);
  }
}
