/* dorm/version.h — the mark on the library's exported functions.
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

#endif /* DORM_VERSION_H */
