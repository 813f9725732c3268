/* SPDX-License-Identifier: MIT */
/* base/version.c — dorm_version and dorm_version_number: the version the
 * library was built as, for a program to compare with the headers it was
 * compiled against (include/dorm/version.h). */
#include "dorm/version.h"

const char *dorm_version(void) { return DORM_VERSION_STRING; }

unsigned int dorm_version_number(void) { return DORM_VERSION_HEX; }
