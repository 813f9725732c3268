/* SPDX-License-Identifier: MIT */
/* fuzz/fuzz_serve_input.c — `dorm serve`'s input validation, without a
 * socket or a database.
 *
 * tools/serve/serve_input.c (linked in from the tools, with serve_m2m.c) turns
 * a request's decoded query-string parameters into filters, ordering, fields,
 * limit and offset on a query (serve_apply_params), a JSON body into the fields
 * of an insert or an update (serve_apply_body), and a path's text into a
 * primary key (serve_parse_pk).  Here each gets the fuzzer's bytes for a model
 * of the blog schema (fuzz_schema.h), and what they accept is compiled for both
 * dialects.  A refusal must be a 400 (or 503) whose message can be sent as JSON
 * — the message travels as
 * {"error": message}, and one that is not valid UTF-8 would turn the
 * answer into a bare 500.
 *
 * Input: byte 0 picks the model and the flags (with_shape, creating); the
 * rest is "<query string>\n<body>", the query string raw as on the wire
 * (split on '&' and '=', '+' and %-escapes decoded as http/conn.c does),
 * its first parameter's value also tried as a primary key.
 */
#include <ctype.h>

#include "fuzz/fuzz_schema.h"
#include "tools/serve/serve.h"

#define MAX_PARAMS 32

static void check_refusal(const serve_refusal *why) {
  FUZZ_CHECK(why->status == 400 || why->status == 503, "status %d",
             why->status);
  FUZZ_CHECK(why->message[0], "refusal without message");
  json_t *j = json_string(why->message);
  FUZZ_CHECK(j,
             "refusal message is not UTF-8, the answer would be a bare "
             "500: %s",
             why->message);
  json_decref(j);
}

/* The query string's parameters, decoded into one block (freed by the
 * caller) as http/conn.c's ex_finish_request does. */
static size_t split_params(const char *qs, size_t len, dorm_http_param *ps,
                           char **block) {
  char *strs = malloc(2 * len + 2 * MAX_PARAMS + 1);
  if (!strs) abort();
  *block = strs;
  size_t k = 0;
  const char *p = qs, *end = qs + len;
  while (p < end && k < MAX_PARAMS) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    size_t n = amp ? (size_t)(amp - p) : (size_t)(end - p);
    if (n) {
      const char *eq = memchr(p, '=', n);
      size_t kl = eq ? (size_t)(eq - p) : n;
      size_t vl = eq ? n - kl - 1 : 0;
      char *name = strs;
      memcpy(name, p, kl);
      for (size_t j = 0; j < kl; j++)
        if (name[j] == '+') name[j] = ' ';
      ps[k].name_len = dorm_http_url_decode(name, kl);
      ps[k].name = name;
      strs += kl + 1;
      char *val = strs;
      if (vl) memcpy(val, eq + 1, vl);
      for (size_t j = 0; j < vl; j++)
        if (val[j] == '+') val[j] = ' ';
      ps[k].value_len = dorm_http_url_decode(val, vl);
      ps[k].value = val;
      strs += vl + 1;
      k++;
    }
    p += n + (amp ? 1 : 0);
  }
  return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 16384) return 0;
  const dorm_schema *schema = fuzz_schema();
  static char *names[16];
  if (!names[0])
    for (size_t i = 0; i < schema->nmodels && i < 15; i++) {
      names[i] = strdup(schema->models[i].name);
      for (char *p = names[i]; *p; p++) *p = (char)tolower((unsigned char)*p);
    }
  serve_state st = {.schema = (dorm_schema *)schema, .names = names};
  const dorm_model *m = &schema->models[data[0] % schema->nmodels];
  int with_shape = (data[0] >> 4) & 1, creating = (data[0] >> 5) & 1;
  char *text = fuzz_cstr(data + 1, size - 1);
  size_t len = size - 1;
  char *nl = memchr(text, '\n', len);
  size_t qlen = nl ? (size_t)(nl - text) : len;
  const char *body = nl ? nl + 1 : "";
  size_t blen = nl ? len - qlen - 1 : 0;

  /* the query string */
  dorm_http_param ps[MAX_PARAMS];
  char *block;
  size_t np = split_params(text, qlen, ps, &block);
  dorm_http_request req;
  memset(&req, 0, sizeof req);
  req.method = "GET";
  req.path = "/api/x";
  req.path_len = 6;
  req.query = "";
  req.params = ps;
  req.nparams = np;
  req.body = "";
  req.peer = "fuzz";
  serve_refusal why;
  memset(&why, 0, sizeof why);
  serve_m2m_want want;
  memset(&want, 0, sizeof want);
  dorm_query *q = dorm_select(m);
  if (serve_apply_params(&st, q, &req, with_shape, &want, &why) == 0)
    fuzz_compile_all(q);
  else {
    check_refusal(&why);
    dorm_query_free(q);
  }

  /* the first value as a primary key */
  dorm_value pk;
  if (np && serve_parse_pk(m, ps[0].value, &pk) == 0) {
    q = dorm_select(m);
    dorm_filter(q, "pk", pk);
    fuzz_compile_all(q);
  }

  /* the body, as POST (creating) or PATCH */
  q = creating ? dorm_insert(m) : dorm_update(m);
  if (!creating) dorm_filter(q, "pk", dorm_int(1));
  size_t nset = 0;
  serve_m2m_input in;
  memset(&in, 0, sizeof in);
  memset(&why, 0, sizeof why);
  if (serve_apply_body(m, q, body, blen, creating, &nset, &in, &why) == 0)
    fuzz_compile_all(q);
  else {
    check_refusal(&why);
    dorm_query_free(q);
  }
  serve_m2m_input_free(&in);
  free(block);
  free(text);
  return 0;
}
