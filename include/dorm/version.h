/* SPDX-License-Identifier: MIT */
/* dorm/version.h — the library's version and the mark on its exported
 * functions.
 *
 * DORM_VERSION_MAJOR/MINOR/PATCH and DORM_VERSION_STRING say which dorm a
 * program was compiled against; dorm_version() and dorm_version_number()
 * which one it runs against (a shared library installed later may be
 * newer).  The major version is the shared library's soname (libdorm.so.0):
 * it changes when a release breaks the ABI; while it is 0, a minor release
 * may too.  The Makefile reads the three numbers from here (the installed
 * file names, dorm.pc), and `dorm --version` prints dorm_version(): this
 * header is the one place the version is written.
 *
 * DORM_EXTERN marks every function of the public API.  The library is
 * built with -fvisibility=hidden, so a function without it (the internal
 * dorm__ ones) is not exported from libdorm.so; tests/exports.txt lists
 * what is, and tests/test_exports.c fails when the two disagree.  A new
 * public function is declared
 *     DORM_EXTERN int dorm_thing(dorm_db *db);
 * in its header under include/dorm/ (which includes "dorm/version.h"), and
 * its name is added to tests/exports.txt (sorted).  Static inline functions
 * in headers take no mark.
 */
#ifndef DORM_VERSION_H
#define DORM_VERSION_H

#if defined(__GNUC__) || defined(__clang__)
#define DORM_EXTERN __attribute__((visibility("default")))
#else
#define DORM_EXTERN
#endif

#define DORM_VERSION_MAJOR 0
#define DORM_VERSION_MINOR 2
#define DORM_VERSION_PATCH 0

#define DORM_VERSION_STR_(x) #x
#define DORM_VERSION_STR(x) DORM_VERSION_STR_(x)
/* "MAJOR.MINOR.PATCH": "0.2.0" */
#define DORM_VERSION_STRING                                      \
  DORM_VERSION_STR(DORM_VERSION_MAJOR)                           \
  "." DORM_VERSION_STR(DORM_VERSION_MINOR) "." DORM_VERSION_STR( \
      DORM_VERSION_PATCH)
/* the same, under the name earlier releases gave it */
#define DORM_VERSION DORM_VERSION_STRING
/* one byte each, so versions compare with <: 0x000200 for 0.2.0 */
#define DORM_VERSION_HEX \
  ((DORM_VERSION_MAJOR << 16) | (DORM_VERSION_MINOR << 8) | DORM_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library linked at run time, "MAJOR.MINOR.PATCH"
 * (static storage; never NULL). */
DORM_EXTERN const char *dorm_version(void);
/* The same as a number laid out as DORM_VERSION_HEX. */
DORM_EXTERN unsigned int dorm_version_number(void);

#ifdef __cplusplus
}
#endif

#endif /* DORM_VERSION_H */
