/* SPDX-License-Identifier: MIT */
/* query/quote_int.h — private helpers for putting identifiers into SQL.
 *
 * Identifiers are the only names that ever enter SQL text, and they come
 * only from models; every one goes through these helpers, which check it
 * with dorm_ident_valid and wrap it in double quotes (the same for
 * PostgreSQL and SQLite).  A name the rule refuses is never quoted: since
 * valid names cannot contain '"', there is nothing to escape, so a refused
 * name can never be smuggled through by escaping tricks.
 */
#ifndef DORM_QUOTE_INT_H
#define DORM_QUOTE_INT_H

#include <stddef.h>

#include "base/base_int.h"
#include "dorm/error.h"

/* Append "ident" (quoted) to b.  On a refused name returns DORM_EIDENT and
 * records "invalid identifier '<name>'" in err (control bytes and quotes in
 * the name are shown as \xNN so the message itself is safe to print); b is
 * left unchanged.  Out-of-memory is left to b's sticky oom flag. */
int dorm__quote_ident_buf(dorm__buf *b, const char *ident, dorm_error *err);

/* Write a printable rendering of s (at most ~80 bytes of it, non-printable
 * bytes and quotes as \xNN) into out[cap], for error messages.  s may be
 * NULL ("(null)"). */
void dorm__ident_for_message(const char *s, char *out, size_t cap);

#endif /* DORM_QUOTE_INT_H */
