/* SPDX-License-Identifier: MIT */
/* base/error.c — dorm_strerror, dorm_err_name and dorm_error recording.
 *
 * All three are generated from DORM_ERRNO_MAP so the code, its name and its
 * text cannot drift apart.  dorm_error_set keeps the first error: later
 * failures are usually consequences of the first and would hide it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base_int.h"
#include "dorm/error.h"

const char *dorm_strerror(int code) {
  switch (code) {
    case 0: return "success";
#define XX(name, c, msg) \
  case c: return msg;
      DORM_ERRNO_MAP(XX)
#undef XX
  }
  return "unknown error";
}

const char *dorm_err_name(int code) {
  switch (code) {
    case 0: return "DORM_OK";
#define XX(name, c, msg) \
  case c: return "DORM_" #name;
      DORM_ERRNO_MAP(XX)
#undef XX
  }
  return "DORM_EUNKNOWN";
}

void dorm_error_clear(dorm_error *err) {
  if (!err) return;
  err->code = 0;
  err->sqlstate[0] = '\0';
  err->message[0] = '\0';
}

int dorm_error_set(dorm_error *err, int code, const char *fmt, ...) {
  if (!err || err->code != 0) return code;
  err->code = code;
  err->sqlstate[0] = '\0';
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    dorm__utf8_mend(err->message);
  } else {
    snprintf(err->message, sizeof err->message, "%s", dorm_strerror(code));
  }
  return code;
}

int dorm_error_copy(dorm_error *dst, const dorm_error *src) {
  if (dst && dst->code == 0 && src) memcpy(dst, src, sizeof *dst);
  return src ? src->code : 0;
}
