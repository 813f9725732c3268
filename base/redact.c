/* SPDX-License-Identifier: MIT */
/* base/redact.c — keeping database passwords out of messages.
 *
 * A database URL or libpq keyword string may hold a password (the userinfo
 * of postgresql://app:secret@host, or password=secret), and several
 * messages about a bad URL quote it: libpq's own parse errors repeat the
 * whole text, and a URL that names no backend is echoed so the user sees
 * what was read.  Rather than trust every message to leave the password
 * out, dorm_db_open passes its message through dorm__redact, which finds
 * the secrets in the text the user gave and replaces each occurrence (as
 * written, and %-decoded) by "***".  The scan is deliberately generous: it
 * would rather hide too much of a malformed URL than any of a password.
 */
#include <string.h>

#include "base/base_int.h"

#define MAX_SECRETS 16

typedef struct secret {
  const char *p;
  size_t n;
} secret;

static int boundary(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' ||
         c == '"' || c == '\'';
}

/* Secrets of src: for every '@', the text after the first ':' of its token
 * (the token runs back to a boundary or to a "//"); for every "password"
 * followed by '=', its value (quoted, or up to a space or '&'). */
static size_t find_secrets(const char *src, secret *out, size_t max) {
  size_t k = 0;
  for (const char *at = strchr(src, '@'); at && k < max;
       at = strchr(at + 1, '@')) {
    const char *t = at;
    while (t > src && !boundary(t[-1]) &&
           !(t - src >= 2 && t[-1] == '/' && t[-2] == '/'))
      t--;
    const char *colon = memchr(t, ':', (size_t)(at - t));
    if (colon && at - colon > 1)
      out[k++] = (secret){colon + 1, (size_t)(at - colon - 1)};
  }
  for (const char *pw = strstr(src, "password"); pw && k < max;
       pw = strstr(pw + 1, "password")) {
    const char *v = pw + 8;
    while (*v == ' ' || *v == '\t') v++;
    if (*v != '=') continue;
    v++;
    while (*v == ' ' || *v == '\t') v++;
    const char *e = v;
    if (*v == '\'') {
      for (e = ++v; *e && *e != '\''; e++)
        if (*e == '\\' && e[1]) e++;
    } else {
      while (*e && !boundary(*e) && *e != '&') e++;
    }
    if (e > v) out[k++] = (secret){v, (size_t)(e - v)};
  }
  return k;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Replace every occurrence of s[0..n) in msg (NUL-terminated, in a buffer
 * of cap bytes) by "***". */
static void replace_all(char *msg, size_t cap, const char *s, size_t n) {
  if (!n) return;
  char out[DORM_ERROR_MSG_MAX];
  if (cap > sizeof out) cap = sizeof out;
  size_t k = 0;
  int changed = 0;
  for (const char *p = msg; *p && k + 1 < cap;) {
    if (!strncmp(p, s, n)) {
      for (const char *r = "***"; *r && k + 1 < cap; r++) out[k++] = *r;
      p += n;
      changed = 1;
    } else {
      out[k++] = *p++;
    }
  }
  out[k] = '\0';
  if (changed) memcpy(msg, out, k + 1);
}

void dorm__redact(char *msg, size_t cap, const char *src) {
  if (!msg || !src || !cap) return;
  secret s[MAX_SECRETS];
  size_t k = find_secrets(src, s, MAX_SECRETS);
  for (size_t i = 0; i < k; i++) {
    replace_all(msg, cap, s[i].p, s[i].n);
    /* libpq may quote the %-decoded password too */
    char dec[256];
    size_t m = 0;
    int decoded = 0;
    for (size_t j = 0; j < s[i].n && m + 1 < sizeof dec; j++) {
      int h, l;
      if (s[i].p[j] == '%' && j + 2 < s[i].n &&
          (h = hexval(s[i].p[j + 1])) >= 0 &&
          (l = hexval(s[i].p[j + 2])) >= 0) {
        dec[m++] = (char)(h * 16 + l);
        j += 2;
        decoded = 1;
      } else {
        dec[m++] = s[i].p[j];
      }
    }
    if (decoded && m && !memchr(dec, '\0', m)) replace_all(msg, cap, dec, m);
  }
}

void dorm__redact_value(char *msg, size_t cap, const char *value) {
  if (msg && cap && value) replace_all(msg, cap, value, strlen(value));
}
