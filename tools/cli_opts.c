/* SPDX-License-Identifier: MIT */
/* tools/cli_opts.c — the one option parser of the dorm commands.
 *
 * Each command describes its options in a table (cli_opt: name, kind,
 * destination, help) and its one positional argument, if any, in a
 * cli_command; cli_parse walks argv once against it.  Values come as
 * `--opt value` or `--opt=value`; a later option overrides an earlier one,
 * except CLI_OPT_FN options, whose function sees every occurrence (the
 * repeatable ones).  `--help`/`-h` prints the usage, the about text, the
 * option list made from the table and the closing text on stdout.  Any
 * mistake (unknown option, missing or refused value, a number that is not
 * all digits or out of range, a missing or second positional argument) is
 * a usage error: "dorm <command>: <what>" and the usage on stderr, exit 2.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int
usage_error(const cli_command *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "dorm %s: ", c->name);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  fputs(c->usage, stderr);
  return CLI_USAGE;
}

/* "--db URL": the left column of the option list. */
static int left_width(const cli_opt *o) {
  return (int)strlen(o->name) +
         (o->kind == CLI_OPT_FLAG ? 0 : 1 + (int)strlen(o->arg));
}

/* Help lines may hold '\n': each following line is indented to the help
 * column. */
static void print_entry(const char *left, const char *arg, const char *help,
                        int col) {
  int n = printf("  %s%s%s", left, arg ? " " : "", arg ? arg : "");
  if (n > col - 2) { /* too wide: the help starts on the next line */
    putchar('\n');
    n = 0;
  }
  printf("%*s", col - n, "");
  for (const char *p = help; *p; p++) {
    putchar(*p);
    if (*p == '\n' && p[1]) printf("%*s", col, "");
  }
  putchar('\n');
}

static void print_help(const cli_command *c) {
  fputs(c->usage, stdout);
  if (c->about) fputs(c->about, stdout);
  /* the help column: after the widest left column up to 24 characters */
  int w = 10; /* "-h, --help" */
  for (const cli_opt *o = c->opts; o && o->name; o++) {
    int lw = left_width(o);
    if (o->help && lw > w && lw <= 24) w = lw;
  }
  int col = 2 + w + 2;
  fputs("\noptions:\n", stdout);
  for (const cli_opt *o = c->opts; o && o->name; o++)
    if (o->help)
      print_entry(o->name, o->kind == CLI_OPT_FLAG ? NULL : o->arg, o->help,
                  col);
  print_entry("-h, --help", NULL, "print this help", col);
  if (c->after) fputs(c->after, stdout);
}

/* The option named by arg ("--db" or "--db=..."); *value is what follows
 * '=' (NULL without one). */
static const cli_opt *find(const cli_opt *opts, const char *arg,
                           const char **value) {
  for (const cli_opt *o = opts; o && o->name; o++) {
    size_t n = strlen(o->name);
    if (strncmp(arg, o->name, n)) continue;
    if (arg[n] == '\0') {
      *value = NULL;
      return o;
    }
    if (arg[n] == '=') {
      *value = arg + n + 1;
      return o;
    }
  }
  return NULL;
}

/* Digits only (strtoull would skip spaces and wrap a '-'), within
 * [lo, hi]. */
static int parse_number(const char *v, unsigned long long lo,
                        unsigned long long hi, unsigned long long *out) {
  const char *p = v;
  if (!*p) return -1;
  for (; *p; p++)
    if (*p < '0' || *p > '9') return -1;
  errno = 0;
  unsigned long long n = strtoull(v, NULL, 10);
  if (errno || n < lo || n > hi) return -1;
  *out = n;
  return 0;
}

int cli_parse(const cli_command *c, int argc, char **argv) {
  int have_pos = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (cli_is_help(a)) {
      print_help(c);
      return CLI_OK;
    }
    if (a[0] != '-') {
      if (c->many) {
        c->many[(*c->nmany)++] = a;
        continue;
      }
      if (!c->pos) return usage_error(c, "unexpected argument '%s'", a);
      if (have_pos) return usage_error(c, "%s", c->pos_extra);
      *c->pos = a;
      have_pos = 1;
      continue;
    }
    const char *v;
    const cli_opt *o = find(c->opts, a, &v);
    if (!o) return usage_error(c, "unknown option '%s'", a);
    if (o->kind == CLI_OPT_FLAG) {
      if (v) return usage_error(c, "%s takes no value", o->name);
      *(int *)o->dest = 1;
      continue;
    }
    if (!v) {
      if (i + 1 >= argc)
        return usage_error(c, "%s needs a value (%s %s)", o->name, o->name,
                           o->arg);
      v = argv[++i];
    }
    switch (o->kind) {
      case CLI_OPT_STR: *(const char **)o->dest = v; break;
      case CLI_OPT_NUM:
        if (parse_number(v, o->min, o->max, (unsigned long long *)o->dest))
          return usage_error(c,
                             "%s '%s': expected a whole number from %llu to "
                             "%llu",
                             o->name, v, o->min, o->max);
        break;
      case CLI_OPT_FN: {
        const char *why = o->fn(o->dest, v);
        if (why) return usage_error(c, "%s '%s': %s", o->name, v, why);
        break;
      }
      case CLI_OPT_FLAG: break;
    }
  }
  if (c->many && !*c->nmany && c->pos_missing)
    return usage_error(c, "%s", c->pos_missing);
  if (c->pos && !have_pos && c->pos_missing)
    return usage_error(c, "%s", c->pos_missing);
  return CLI_GO;
}
