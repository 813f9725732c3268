/* SPDX-License-Identifier: MIT */
/* base/value.c — names of value types, for error messages. */
#include "dorm/value.h"

const char *dorm_type_name(dorm_type t) {
  switch (t) {
    case DORM_T_NULL: return "null";
    case DORM_T_BOOL: return "boolean";
    case DORM_T_INT: return "integer";
    case DORM_T_FLOAT: return "float";
    case DORM_T_TEXT: return "text";
    case DORM_T_BYTES: return "bytes";
    case DORM_T_DECIMAL: return "decimal";
    case DORM_T_DATE: return "date";
    case DORM_T_TIME: return "time";
    case DORM_T_DATETIME: return "datetime";
    case DORM_T_UUID: return "uuid";
    case DORM_T_JSON: return "json";
    case DORM_T_LIST: return "list";
    case DORM_T_EXPR: return "expression";
  }
  return "unknown";
}
