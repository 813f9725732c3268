/* SPDX-License-Identifier: MIT */
/* tests/test_query_joins.c — the query compiler, joins: INNER and LEFT OUTER
 * joins along forward and reverse relations, exclude() across multi-valued
 * relations (Django's subqueries), join groups of separate filter() calls, and
 * the order in which calls add joins.
 *
 * Each statement is compared with its golden SQL and parameters and
 * prepared on SQLite, and on PostgreSQL when the run has one
 * (tests/querytest.h).
 */
#include "querytest.h"

/* ---- relations ------------------------------------------------------------
 */

static void test_joins(void **state) {
  (void)state;
  const char *j_author =
      " INNER JOIN \"author\" ON (\"entry\".\"author_id\" = \"author\".\"id\")";
  dorm_query *q = dorm_select(Entry);
  dorm_filter(q, "author__name__icontains", dorm_str("ann"));
  char want[2048];
  snprintf(want, sizeof want,
           "%s%s WHERE UPPER(\"author\".\"name\") LIKE UPPER($1)", E_FROM,
           j_author);
  expect(q, DORM_DIALECT_POSTGRES, want, "'%ann%'");
  snprintf(want, sizeof want,
           "%s%s WHERE \"author\".\"name\" LIKE ? ESCAPE '\\'", E_FROM,
           j_author);
  expect(q, DORM_DIALECT_SQLITE, want, "'%ann%'");
  dorm_query_free(q);

  /* two lookups through the same relation share one join; author__id uses
   * the foreign key column without a join */
  q = dorm_select(Entry);
  dorm_filter(q, "author__name", dorm_str("a"));
  dorm_filter(q, "author__age__gt", dorm_int(3));
  dorm_filter(q, "author__id", dorm_int(4));
  dorm_filter(q, "author_id__in", dorm_list((dorm_value[]){dorm_int(4)}, 1));
  snprintf(want, sizeof want,
           "%s%s WHERE \"author\".\"name\" = $1 AND \"author\".\"age\" > $2 "
           "AND \"entry\".\"author_id\" = $3 AND \"entry\".\"author_id\" IN "
           "($4)",
           E_FROM, j_author);
  expect_both(q, want, "'a', 3, 4, 4");
  dorm_query_free(q);

  /* a nullable foreign key: INNER for a plain filter (no row can match
   * through a missing editor), LEFT under OR and for isnull */
  q = dorm_select(Entry);
  dorm_filter(q, "editor__name", dorm_str("e"));
  expect_both(q,
              E_FROM
              " INNER JOIN \"author\" ON (\"entry\".\"editor_id\" = "
              "\"author\".\"id\") WHERE \"author\".\"name\" = $1",
              "'e'");
  dorm_query_free(q);
  q = dorm_select(Entry);
  dorm_filter_q(q, dorm_q_or(q, dorm_Q(q, "editor__name", dorm_str("e")),
                             dorm_Q(q, "rating__gt", dorm_int(3))));
  expect_both_sq(q,
                 E_FROM
                 " LEFT OUTER JOIN \"author\" ON (\"entry\".\"editor_id\" = "
                 "\"author\".\"id\") WHERE \"author\".\"name\" = ? OR "
                 "\"entry\".\"rating\" > ?",
                 "'e', 3");
  dorm_query_free(q);
  q = dorm_select(Entry);
  dorm_filter(q, "editor__name__isnull", dorm_bool(1));
  dorm_filter(q, "editor__isnull", dorm_bool(0));
  expect_both(q,
              E_FROM
              " LEFT OUTER JOIN \"author\" ON (\"entry\".\"editor_id\" = "
              "\"author\".\"id\") WHERE \"author\".\"name\" IS NULL AND "
              "\"entry\".\"editor_id\" IS NOT NULL",
              "");
  dorm_query_free(q);

  /* author and editor both join "author": the second gets an alias */
  q = dorm_select(Entry);
  dorm_filter(q, "author__name", dorm_str("a"));
  dorm_exclude(q, "editor__age__lt", dorm_int(30));
  snprintf(want, sizeof want,
           "%s%s LEFT OUTER JOIN \"author\" \"T3\" ON (\"entry\".\"editor_id\" "
           "= \"T3\".\"id\") WHERE \"author\".\"name\" = $1 AND NOT "
           "(\"T3\".\"age\" < $2 AND \"T3\".\"age\" IS NOT NULL)",
           E_FROM, j_author);
  expect_both(q, want, "'a', 30");
  dorm_query_free(q);

  /* reverse foreign key and many-to-many both ways */
  q = dorm_select(Author);
  dorm_filter(q, "entries__headline__contains", dorm_str("C"));
  expect(q, DORM_DIALECT_POSTGRES,
         A_FROM
         " INNER JOIN \"entry\" ON (\"author\".\"id\" = "
         "\"entry\".\"author_id\") WHERE \"entry\".\"headline\" LIKE $1",
         "'%C%'");
  expect(q, DORM_DIALECT_SQLITE,
         A_FROM
         " INNER JOIN \"entry\" ON (\"author\".\"id\" = "
         "\"entry\".\"author_id\") WHERE \"entry\".\"headline\" GLOB ?",
         "'*C*'");
  dorm_query_free(q);
  q = dorm_select(Entry);
  dorm_filter(q, "tags__name", dorm_str("c"));
  expect_both_sq(
      q,
      E_FROM
      " INNER JOIN \"entry_tags\" ON (\"entry\".\"id\" = "
      "\"entry_tags\".\"entry_id\") INNER JOIN \"tag\" ON "
      "(\"entry_tags\".\"tag_id\" = \"tag\".\"id\") WHERE \"tag\".\"name\" "
      "= ?",
      "'c'");
  dorm_query_free(q);
  q = dorm_select(Tag);
  dorm_filter(q, "entry__author__name", dorm_str("a"));
  expect_both(
      q,
      "SELECT \"tag\".\"id\", \"tag\".\"name\" FROM \"tag\" INNER JOIN "
      "\"entry_tags\" ON (\"tag\".\"id\" = \"entry_tags\".\"tag_id\") "
      "INNER JOIN \"entry\" ON (\"entry_tags\".\"entry_id\" = "
      "\"entry\".\"id\") INNER JOIN \"author\" ON (\"entry\".\"author_id\" "
      "= \"author\".\"id\") WHERE \"author\".\"name\" = $1",
      "'a'");
  dorm_query_free(q);
}

/* Negated lookups across a multi-valued relation (Django's
 * split_exclude): EXISTS subqueries with their own "U<n>" aliases.  Each
 * statement is the shape of Django 3.2's for the same query (its SQL with
 * the Writer/Novel/Tag models, and the answers
 * tests/test_db_negation.c checks). */
static void test_exclude_multi_valued(void **state) {
  (void)state;
  dorm_query *q = dorm_select(Author);
  dorm_exclude(q, "entries__headline", dorm_str("x"));
  dorm_filter(q, "name", dorm_str("a"));
  expect_both(q,
              A_FROM
              " WHERE NOT (EXISTS(SELECT 1 FROM \"entry\" \"U1\" WHERE "
              "\"U1\".\"headline\" = $1 AND \"U1\".\"author_id\" = "
              "\"author\".\"id\")) AND \"author\".\"name\" = $2",
              "'x', 'a'");
  dorm_query_free(q);

  q = dorm_select(Entry);
  dorm_filter_q(q, dorm_q_not(q, dorm_Q(q, "tags__name", dorm_str("t"))));
  expect_both(q,
              E_FROM
              " WHERE NOT (EXISTS(SELECT 1 FROM \"entry_tags\" \"U1\" INNER "
              "JOIN \"tag\" \"U2\" ON (\"U1\".\"tag_id\" = \"U2\".\"id\") "
              "WHERE \"U2\".\"name\" = $1 AND \"U1\".\"entry_id\" = "
              "\"entry\".\"id\"))",
              "'t'");
  dorm_query_free(q);

  /* reverse many-to-many, then a join inside the subquery */
  q = dorm_select(Tag);
  dorm_exclude(q, "entry__author__name", dorm_str("a"));
  expect_both(q,
              "SELECT \"tag\".\"id\", \"tag\".\"name\" FROM \"tag\" WHERE "
              "NOT (EXISTS(SELECT 1 FROM \"entry_tags\" \"U1\" INNER JOIN "
              "\"entry\" \"U2\" ON (\"U1\".\"entry_id\" = \"U2\".\"id\") "
              "INNER JOIN \"author\" \"U3\" ON (\"U2\".\"author_id\" = "
              "\"U3\".\"id\") WHERE \"U3\".\"name\" = $1 AND "
              "\"U1\".\"tag_id\" = \"tag\".\"id\"))",
              "'a'");
  dorm_query_free(q);

  /* a foreign key followed before the relation is not joined: the
   * subquery is correlated on its column */
  q = dorm_select(Entry);
  dorm_exclude(q, "author__entries__rating__gt", dorm_int(3));
  expect_both(q,
              E_FROM
              " WHERE NOT (EXISTS(SELECT 1 FROM \"entry\" \"U2\" WHERE \"U2\""
              ".\"rating\" > $1 AND \"U2\".\"author_id\" = \"entry\".\"author"
              "_id\"))",
              "3");
  dorm_query_free(q);

  /* a path that visits a table twice: the subquery's own aliases
   * (Novel.exclude(tags__novel__pages__gt=800) in the issue) */
  q = dorm_select(Entry);
  dorm_exclude(q, "tags__entry__rating__gt", dorm_int(3));
  expect_both(q,
              E_FROM
              " WHERE NOT (EXISTS(SELECT 1 FROM \"entry_tags\" \"U1\" INNER J"
              "OIN \"tag\" \"U2\" ON (\"U1\".\"tag_id\" = \"U2\".\"id\") INNE"
              "R JOIN \"entry_tags\" \"U3\" ON (\"U2\".\"id\" = \"U3\".\"tag_"
              "id\") INNER JOIN \"entry\" \"U4\" ON (\"U3\".\"entry_id\" = \""
              "U4\".\"id\") WHERE \"U4\".\"rating\" > $1 AND \"U1\".\"entry_i"
              "d\" = \"entry\".\"id\"))",
              "3");
  dorm_query_free(q);

  /* the other way round (Tag.exclude(novel__tags__name="noir")) */
  q = dorm_select(Tag);
  dorm_exclude(q, "entry__tags__name", dorm_str("a"));
  expect_both(q,
              "SELECT \"tag\".\"id\", \"tag\".\"name\" FROM \"tag\" WHERE NOT"
              " (EXISTS(SELECT 1 FROM \"entry_tags\" \"U1\" INNER JOIN \"entr"
              "y\" \"U2\" ON (\"U1\".\"entry_id\" = \"U2\".\"id\") INNER JOIN"
              " \"entry_tags\" \"U3\" ON (\"U2\".\"id\" = \"U3\".\"entry_id\""
              ") INNER JOIN \"tag\" \"U4\" ON (\"U3\".\"tag_id\" = \"U4\".\"i"
              "d\") WHERE \"U4\".\"name\" = $1 AND \"U1\".\"tag_id\" = \"tag"
              "\".\"id\"))",
              "'a'");
  dorm_query_free(q);

  /* through a nullable foreign key: correlated on it, so a NULL editor
   * matches no row and the row is kept */
  q = dorm_select(Entry);
  dorm_exclude(q, "editor__edited__rating__gt", dorm_int(3));
  expect_both(q,
              E_FROM
              " WHERE NOT (EXISTS(SELECT 1 FROM \"entry\" \"U2\" WHERE \"U2\""
              ".\"rating\" > $1 AND \"U2\".\"editor_id\" = \"entry\".\"editor"
              "_id\"))",
              "3");
  dorm_query_free(q);

  /* under two NOTs it stays a subquery (not a join) */
  q = dorm_select(Author);
  dorm_exclude_q(q, dorm_q_not(q, dorm_Q(q, "entries__rating", dorm_int(5))));
  expect_both(q,
              A_FROM
              " WHERE NOT (NOT (EXISTS(SELECT 1 FROM \"entry\" \"U1\" WHERE "
              "\"U1\".\"rating\" = $1 AND \"U1\".\"author_id\" = \"author\"."
              "\"id\")))",
              "5");
  dorm_query_free(q);

  /* ~(Q(a) & ~Q(b)): each lookup its own subquery */
  q = dorm_select(Author);
  dorm_exclude_q(
      q,
      dorm_q_and(q, dorm_Q(q, "entries__rating__lt", dorm_int(1)),
                 dorm_q_not(q, dorm_Q(q, "entries__headline", dorm_str("x")))));
  expect_both(q,
              A_FROM
              " WHERE NOT (EXISTS(SELECT 1 FROM \"entry\" \"U1\" WHERE \"U1\""
              ".\"rating\" < $1 AND \"U1\".\"author_id\" = \"author\".\"id\")"
              " AND NOT (EXISTS(SELECT 1 FROM \"entry\" \"U1\" WHERE \"U1\"."
              "\"headline\" = $2 AND \"U1\".\"author_id\" = \"author\".\"id\""
              ")))",
              "1, 'x'");
  dorm_query_free(q);

  /* exclude(a, b): NOT (EXISTS(a) AND EXISTS(b)), as Django */
  q = dorm_select(Author);
  dorm_exclude_q(q, dorm_q_and(q, dorm_Q(q, "entries__rating__gt", dorm_int(3)),
                               dorm_Q(q, "entries__headline", dorm_str("x"))));
  expect_both(q,
              A_FROM
              " WHERE NOT (EXISTS(SELECT 1 FROM \"entry\" \"U1\" WHERE \"U1\""
              ".\"rating\" > $1 AND \"U1\".\"author_id\" = \"author\".\"id\")"
              " AND EXISTS(SELECT 1 FROM \"entry\" \"U1\" WHERE \"U1\".\"head"
              "line\" = $2 AND \"U1\".\"author_id\" = \"author\".\"id\"))",
              "3, 'x'");
  dorm_query_free(q);

  /* negation inside OR */
  q = dorm_select(Author);
  dorm_filter_q(
      q,
      dorm_q_or(q, dorm_Q(q, "name", dorm_str("a")),
                dorm_q_not(q, dorm_Q(q, "entries__rating__gt", dorm_int(3)))));
  expect_both(q,
              A_FROM
              " WHERE \"author\".\"name\" = $1 OR NOT (EXISTS(SELECT 1 FROM "
              "\"entry\" \"U1\" WHERE \"U1\".\"rating\" > $2 AND \"U1\".\"aut"
              "hor_id\" = \"author\".\"id\"))",
              "'a', 3");
  dorm_query_free(q);

  /* in one filter() call, after a positive lookup across the same
   * relation: tied to that lookup's row */
  q = dorm_select(Author);
  dorm_filter_q(q, dorm_q_and(q, dorm_Q(q, "entries__rating__lt", dorm_int(1)),
                              dorm_q_not(q, dorm_Q(q, "entries__rating__gte",
                                                   dorm_int(4)))));
  expect_both(q,
              A_FROM
              " INNER JOIN \"entry\" ON (\"author\".\"id\" = \"entry\".\"auth"
              "or_id\") WHERE \"entry\".\"rating\" < $1 AND NOT (EXISTS(SELEC"
              "T 1 FROM \"entry\" \"U1\" WHERE \"U1\".\"rating\" >= $2 AND \""
              "U1\".\"id\" = \"entry\".\"id\" AND \"U1\".\"author_id\" = \"au"
              "thor\".\"id\"))",
              "1, 4");
  dorm_query_free(q);

  /* before it: not tied (Django's order dependence) */
  q = dorm_select(Author);
  dorm_filter_q(
      q, dorm_q_and(
             q, dorm_q_not(q, dorm_Q(q, "entries__rating__gte", dorm_int(4))),
             dorm_Q(q, "entries__rating__lt", dorm_int(1))));
  expect_both(q,
              A_FROM
              " INNER JOIN \"entry\" ON (\"author\".\"id\" = \"entry\".\"auth"
              "or_id\") WHERE NOT (EXISTS(SELECT 1 FROM \"entry\" \"U1\" WHER"
              "E \"U1\".\"rating\" >= $1 AND \"U1\".\"author_id\" = \"author"
              "\".\"id\")) AND \"entry\".\"rating\" < $2",
              "4, 1");
  dorm_query_free(q);

  /* a many-to-many is tied on the join table's row */
  q = dorm_select(Entry);
  dorm_filter_q(
      q, dorm_q_and(q, dorm_Q(q, "tags__name", dorm_str("a")),
                    dorm_q_not(q, dorm_Q(q, "tags__name", dorm_str("b")))));
  expect_both(q,
              E_FROM
              " INNER JOIN \"entry_tags\" ON (\"entry\".\"id\" = \"entry_tags"
              "\".\"entry_id\") INNER JOIN \"tag\" ON (\"entry_tags\".\"tag_i"
              "d\" = \"tag\".\"id\") WHERE \"tag\".\"name\" = $1 AND NOT (EXI"
              "STS(SELECT 1 FROM \"entry_tags\" \"U1\" INNER JOIN \"tag\" \"U"
              "2\" ON (\"U1\".\"tag_id\" = \"U2\".\"id\") WHERE \"U2\".\"name"
              "\" = $2 AND \"U1\".\"tag_id\" = \"entry_tags\".\"tag_id\" AND "
              "\"U1\".\"entry_id\" = \"entry\".\"id\"))",
              "'a', 'b'");
  dorm_query_free(q);

  /* another relation to the same table: not tied (Django ties it, by
   * alias name: docs/queries.md, Differences from Django) */
  q = dorm_select(Author);
  dorm_filter_q(q, dorm_q_and(q, dorm_Q(q, "edited__rating__lt", dorm_int(1)),
                              dorm_q_not(q, dorm_Q(q, "entries__rating__gte",
                                                   dorm_int(4)))));
  expect_both(q,
              A_FROM
              " INNER JOIN \"entry\" ON (\"author\".\"id\" = \"entry\".\"edit"
              "or_id\") WHERE \"entry\".\"rating\" < $1 AND NOT (EXISTS(SELEC"
              "T 1 FROM \"entry\" \"U1\" WHERE \"U1\".\"rating\" >= $2 AND \""
              "U1\".\"author_id\" = \"author\".\"id\"))",
              "1, 4");
  dorm_query_free(q);

  /* isnull=True is true of a missing row: the subquery starts at the
   * row before the relation, with LEFT joins */
  q = dorm_select(Author);
  dorm_exclude(q, "entries__headline__isnull", dorm_bool(1));
  expect_both(q,
              A_FROM
              " WHERE NOT (EXISTS(SELECT 1 FROM \"author\" \"U0\" LEFT OUTER "
              "JOIN \"entry\" \"U1\" ON (\"U0\".\"id\" = \"U1\".\"author_id\""
              ") WHERE \"U1\".\"headline\" IS NULL AND \"U0\".\"id\" = \"auth"
              "or\".\"id\"))",
              "");
  dorm_query_free(q);

  q = dorm_select(Author);
  dorm_exclude(q, "edited__id__isnull", dorm_bool(1));
  expect_both(q,
              A_FROM
              " WHERE NOT (EXISTS(SELECT 1 FROM \"author\" \"U0\" LEFT OUTER "
              "JOIN \"entry\" \"U1\" ON (\"U0\".\"id\" = \"U1\".\"editor_id\""
              ") WHERE \"U1\".\"id\" IS NULL AND \"U0\".\"id\" = \"author\"."
              "\"id\"))",
              "");
  dorm_query_free(q);

  /* ...and after a nullable foreign key, a NULL key counts as missing */
  q = dorm_select(Entry);
  dorm_exclude(q, "editor__edited__rating__isnull", dorm_bool(1));
  expect_both(q,
              E_FROM
              " WHERE NOT ((EXISTS(SELECT 1 FROM \"author\" \"U1\" LEFT OUTER"
              " JOIN \"entry\" \"U2\" ON (\"U1\".\"id\" = \"U2\".\"editor_id"
              "\") WHERE \"U2\".\"rating\" IS NULL AND \"U1\".\"id\" = \"entr"
              "y\".\"editor_id\") OR \"entry\".\"editor_id\" IS NULL))",
              "");
  dorm_query_free(q);

  q = dorm_select(Tag);
  dorm_exclude(q, "entry__editor__isnull", dorm_bool(1));
  expect_both(q,
              "SELECT \"tag\".\"id\", \"tag\".\"name\" FROM \"tag\" WHERE NOT"
              " (EXISTS(SELECT 1 FROM \"tag\" \"U0\" LEFT OUTER JOIN \"entry_"
              "tags\" \"U1\" ON (\"U0\".\"id\" = \"U1\".\"tag_id\") LEFT OUTE"
              "R JOIN \"entry\" \"U2\" ON (\"U1\".\"entry_id\" = \"U2\".\"id"
              "\") WHERE \"U2\".\"editor_id\" IS NULL AND \"U0\".\"id\" = \"t"
              "ag\".\"id\"))",
              "");
  dorm_query_free(q);

  /* isnull=False needs a row: no LEFT join */
  q = dorm_select(Author);
  dorm_exclude(q, "entries__headline__isnull", dorm_bool(0));
  expect_both(q,
              A_FROM
              " WHERE NOT (EXISTS(SELECT 1 FROM \"entry\" \"U1\" WHERE \"U1\""
              ".\"headline\" IS NOT NULL AND \"U1\".\"author_id\" = \"author"
              "\".\"id\"))",
              "");
  dorm_query_free(q);

  /* an F() on the right names the outer row (Django's OuterRef) */
  q = dorm_select(Author);
  dorm_exclude(q, "edited__author", dorm_fval(dorm_F(q, "id")));
  expect_both(q,
              A_FROM
              " WHERE NOT (EXISTS(SELECT 1 FROM \"entry\" \"U1\" WHERE \"U1\""
              ".\"author_id\" = \"author\".\"id\" AND \"U1\".\"editor_id\" = "
              "\"author\".\"id\"))",
              "");
  dorm_query_free(q);

  /* ...across the relation: an outer LEFT join, and the subquery tied
   * to its row, as Django */
  q = dorm_select(Author);
  dorm_exclude(q, "entries__rating__gt", dorm_fval(dorm_F(q, "entries__id")));
  expect_both(q,
              A_FROM
              " LEFT OUTER JOIN \"entry\" ON (\"author\".\"id\" = \"entry\"."
              "\"author_id\") WHERE NOT (EXISTS(SELECT 1 FROM \"entry\" \"U1"
              "\" WHERE \"U1\".\"rating\" > \"entry\".\"id\" AND \"U1\".\"id"
              "\" = \"entry\".\"id\" AND \"U1\".\"author_id\" = \"author\".\""
              "id\"))",
              "");
  dorm_query_free(q);

  /* a delete: the EXISTS names the table being deleted from */
  q = dorm_delete(Entry);
  dorm_exclude(q, "tags__name", dorm_str("a"));
  expect_both(q,
              "DELETE FROM \"entry\" WHERE NOT (EXISTS(SELECT 1 FROM \"entry_"
              "tags\" \"U1\" INNER JOIN \"tag\" \"U2\" ON (\"U1\".\"tag_id\" "
              "= \"U2\".\"id\") WHERE \"U2\".\"name\" = $1 AND \"U1\".\"entry"
              "_id\" = \"entry\".\"id\"))",
              "'a'");
  dorm_query_free(q);

  q = dorm_delete(Entry);
  dorm_filter(q, "author__name", dorm_str("a"));
  dorm_exclude(q, "tags__name", dorm_str("b"));
  expect_both(q,
              "DELETE FROM \"entry\" WHERE \"entry\".\"id\" IN (SELECT \"entr"
              "y\".\"id\" FROM \"entry\" INNER JOIN \"author\" ON (\"entry\"."
              "\"author_id\" = \"author\".\"id\") WHERE \"author\".\"name\" ="
              " $1 AND NOT (EXISTS(SELECT 1 FROM \"entry_tags\" \"U1\" INNER "
              "JOIN \"tag\" \"U2\" ON (\"U1\".\"tag_id\" = \"U2\".\"id\") WHE"
              "RE \"U2\".\"name\" = $2 AND \"U1\".\"entry_id\" = \"entry\".\""
              "id\")))",
              "'a', 'b'");
  dorm_query_free(q);
}

/* Join groups (Django's "spanning multi-valued relationships"): the
 * conditions of one filter() call share the join of a multi-valued
 * relation, each further call gets its own; single-valued hops are
 * shared by every call. */
#define J_TAGS                                          \
  " INNER JOIN \"entry_tags\" ON (\"entry\".\"id\" = "  \
  "\"entry_tags\".\"entry_id\") INNER JOIN \"tag\" ON " \
  "(\"entry_tags\".\"tag_id\" = \"tag\".\"id\")"
#define J_TAGS_T4                                                         \
  " INNER JOIN \"entry_tags\" \"T4\" ON (\"entry\".\"id\" = "             \
  "\"T4\".\"entry_id\") INNER JOIN \"tag\" \"T5\" ON (\"T4\".\"tag_id\" " \
  "= \"T5\".\"id\")"

static void test_join_groups(void **state) {
  (void)state;
  /* Entry.filter(tags__name="a").filter(tags__name="b"): tagged both */
  dorm_query *q = dorm_select(Entry);
  dorm_filter(q, "tags__name", dorm_str("a"));
  dorm_filter(q, "tags__name", dorm_str("b"));
  expect_both(q,
              E_FROM J_TAGS J_TAGS_T4
              " WHERE \"tag\".\"name\" = $1 AND \"T5\".\"name\" = $2",
              "'a', 'b'");
  dorm_query_free(q);

  /* Entry.filter(Q(tags__name="a") & Q(tags__name="b")): one call, one
   * tag row named both (none) */
  q = dorm_select(Entry);
  dorm_filter_q(q, dorm_q_and(q, dorm_Q(q, "tags__name", dorm_str("a")),
                              dorm_Q(q, "tags__name", dorm_str("b"))));
  expect_both(
      q, E_FROM J_TAGS " WHERE \"tag\".\"name\" = $1 AND \"tag\".\"name\" = $2",
      "'a', 'b'");
  dorm_query_free(q);

  /* reverse foreign key: Author.filter(entries__headline__startswith="x",
   * entries__rating__gte=4) is one call, one entry meeting both */
  const char *j_entry =
      " INNER JOIN \"entry\" ON (\"author\".\"id\" = \"entry\".\"author_id\")";
  char want[4096];
  q = dorm_select(Author);
  dorm_filter_q(
      q,
      dorm_q_and(q, dorm_Q(q, "entries__headline__startswith", dorm_str("x")),
                 dorm_Q(q, "entries__rating__gte", dorm_int(4))));
  snprintf(want, sizeof want,
           "%s%s WHERE \"entry\".\"headline\" LIKE $1 AND "
           "\"entry\".\"rating\" >= $2",
           A_FROM, j_entry);
  expect(q, DORM_DIALECT_POSTGRES, want, "'x%', 4");
  snprintf(want, sizeof want,
           "%s%s WHERE \"entry\".\"headline\" GLOB ? AND "
           "\"entry\".\"rating\" >= ?",
           A_FROM, j_entry);
  expect(q, DORM_DIALECT_SQLITE, want, "'x*', 4");
  dorm_query_free(q);
  /* the same as two calls: two entries, each meeting one */
  q = dorm_select(Author);
  dorm_filter(q, "entries__headline__startswith", dorm_str("x"));
  dorm_filter(q, "entries__rating__gte", dorm_int(4));
  snprintf(want, sizeof want,
           "%s%s INNER JOIN \"entry\" \"T3\" ON (\"author\".\"id\" = "
           "\"T3\".\"author_id\") WHERE \"entry\".\"headline\" LIKE $1 AND "
           "\"T3\".\"rating\" >= $2",
           A_FROM, j_entry);
  expect(q, DORM_DIALECT_POSTGRES, want, "'x%', 4");
  snprintf(want, sizeof want,
           "%s%s INNER JOIN \"entry\" \"T3\" ON (\"author\".\"id\" = "
           "\"T3\".\"author_id\") WHERE \"entry\".\"headline\" GLOB ? AND "
           "\"T3\".\"rating\" >= ?",
           A_FROM, j_entry);
  expect(q, DORM_DIALECT_SQLITE, want, "'x*', 4");
  dorm_query_free(q);

  /* a forward foreign key is single-valued: two calls, one join */
  q = dorm_select(Entry);
  dorm_filter(q, "author__name", dorm_str("a"));
  dorm_filter(q, "author__age__gt", dorm_int(3));
  expect_both(q,
              E_FROM
              " INNER JOIN \"author\" ON (\"entry\".\"author_id\" = "
              "\"author\".\"id\") WHERE \"author\".\"name\" = $1 AND "
              "\"author\".\"age\" > $2",
              "'a', 3");
  dorm_query_free(q);

  /* a forward hop before the multi-valued one is shared, the reverse hop
   * after it is not */
  q = dorm_select(Entry);
  dorm_filter(q, "author__entries__rating", dorm_int(1));
  dorm_filter(q, "author__entries__rating", dorm_int(2));
  expect_both(q,
              E_FROM
              " INNER JOIN \"author\" ON (\"entry\".\"author_id\" = "
              "\"author\".\"id\") INNER JOIN \"entry\" \"T3\" ON "
              "(\"author\".\"id\" = \"T3\".\"author_id\") INNER JOIN "
              "\"entry\" \"T4\" ON (\"author\".\"id\" = \"T4\".\"author_id\") "
              "WHERE \"T3\".\"rating\" = $1 AND \"T4\".\"rating\" = $2",
              "1, 2");
  dorm_query_free(q);

  /* reverse many-to-many; the forward hop after the multi-valued one
   * belongs to its call's join too */
  q = dorm_select(Tag);
  dorm_filter(q, "entry__author__name", dorm_str("a"));
  dorm_filter(q, "entry__author__name", dorm_str("b"));
  expect_both(
      q,
      "SELECT \"tag\".\"id\", \"tag\".\"name\" FROM \"tag\" INNER JOIN "
      "\"entry_tags\" ON (\"tag\".\"id\" = \"entry_tags\".\"tag_id\") "
      "INNER JOIN \"entry\" ON (\"entry_tags\".\"entry_id\" = "
      "\"entry\".\"id\") INNER JOIN \"author\" ON (\"entry\".\"author_id\" "
      "= \"author\".\"id\") INNER JOIN \"entry_tags\" \"T5\" ON "
      "(\"tag\".\"id\" = \"T5\".\"tag_id\") INNER JOIN \"entry\" \"T6\" ON "
      "(\"T5\".\"entry_id\" = \"T6\".\"id\") INNER JOIN \"author\" \"T7\" "
      "ON (\"T6\".\"author_id\" = \"T7\".\"id\") WHERE \"author\".\"name\" "
      "= $1 AND \"T7\".\"name\" = $2",
      "'a', 'b'");
  dorm_query_free(q);

  /* join promotion is per call: the OR makes only the second call's join
   * LEFT */
  q = dorm_select(Entry);
  dorm_filter(q, "tags__name", dorm_str("a"));
  dorm_filter_q(q, dorm_q_or(q, dorm_Q(q, "tags__name", dorm_str("b")),
                             dorm_Q(q, "rating__gt", dorm_int(3))));
  expect_both(q,
              E_FROM J_TAGS
              " LEFT OUTER JOIN \"entry_tags\" \"T4\" ON (\"entry\".\"id\" = "
              "\"T4\".\"entry_id\") LEFT OUTER JOIN \"tag\" \"T5\" ON "
              "(\"T4\".\"tag_id\" = \"T5\".\"id\") WHERE \"tag\".\"name\" = "
              "$1 AND (\"T5\".\"name\" = $2 OR \"entry\".\"rating\" > $3)",
              "'a', 'b', 3");
  dorm_query_free(q);

  /* values() and order_by() are no filter's.  Django 3.2's SQL (str(qs.query)
   * of Entry.values("headline", "tags__name").filter(tags__name="a")
   * .filter(tags__name="b").order_by("tags__name")): values(), called
   * first, has its own outer join, which no filter() call shares; the
   * ordering, resolved when compiling, takes the most recent join (the
   * second call's) and leaves it INNER */
  q = dorm_select(Entry);
  dorm_values(q, "headline");
  dorm_values(q, "tags__name");
  dorm_filter(q, "tags__name", dorm_str("a"));
  dorm_filter(q, "tags__name", dorm_str("b"));
  dorm_order_by(q, "tags__name");
  expect_both_tail(
      q,
      "SELECT \"entry\".\"headline\", \"tag\".\"name\" FROM \"entry\" "
      "LEFT OUTER JOIN \"entry_tags\" ON (\"entry\".\"id\" = "
      "\"entry_tags\".\"entry_id\") LEFT OUTER JOIN \"tag\" ON "
      "(\"entry_tags\".\"tag_id\" = \"tag\".\"id\")" J_TAGS_T4
      " INNER JOIN \"entry_tags\" \"T6\" ON (\"entry\".\"id\" = "
      "\"T6\".\"entry_id\") INNER JOIN \"tag\" \"T7\" ON "
      "(\"T6\".\"tag_id\" = \"T7\".\"id\") WHERE \"T5\".\"name\" = $1 "
      "AND \"T7\".\"name\" = $2 ORDER BY \"T7\".\"name\" ASC",
      " NULLS LAST", "'a', 'b'");
  dorm_query_free(q);

  /* an exclude beside them is still a subquery; a delete keeps the
   * calls' joins in its subquery */
  q = dorm_select(Entry);
  dorm_filter(q, "tags__name", dorm_str("a"));
  dorm_exclude(q, "tags__name", dorm_str("b"));
  expect_both(q,
              E_FROM J_TAGS
              " WHERE \"tag\".\"name\" = $1 AND NOT (EXISTS(SELECT 1 FROM "
              "\"entry_tags\" \"U1\" INNER JOIN \"tag\" \"U2\" ON "
              "(\"U1\".\"tag_id\" = \"U2\".\"id\") WHERE \"U2\".\"name\" = $2 "
              "AND \"U1\".\"entry_id\" = \"entry\".\"id\"))",
              "'a', 'b'");
  dorm_query_free(q);
  q = dorm_delete(Entry);
  dorm_filter(q, "tags__name", dorm_str("a"));
  dorm_filter(q, "tags__name", dorm_str("b"));
  expect_both(q,
              "DELETE FROM \"entry\" WHERE \"entry\".\"id\" IN (SELECT "
              "\"entry\".\"id\" FROM \"entry\"" J_TAGS J_TAGS_T4
              " WHERE \"tag\".\"name\" = $1 AND \"T5\".\"name\" = $2)",
              "'a', 'b'");
  dorm_query_free(q);
}

/* Paths outside the filters across a multi-valued relation find the
 * join Django 3.2 finds: the most recent one made before them, in call
 * order (values() and annotate() when called, order_by and
 * select_related when compiled).  Each expected statement is Django's
 * str(qs.query) for the same calls on these models, with dorm's quoting
 * and parameters. */
#define J_ENTRY_T3 \
  " INNER JOIN \"entry\" \"T3\" ON (\"author\".\"id\" = \"T3\".\"author_id\")"
#define W_TWO_CALLS \
  " WHERE \"entry\".\"rating\" > $1 AND \"T3\".\"rating\" < $2"
static void two_calls(dorm_query *q) {
  dorm_filter(q, "entries__rating__gt", dorm_int(3));
  dorm_filter(q, "entries__rating__lt", dorm_int(1));
}

static void test_join_call_order(void **state) {
  (void)state;
  /* Author.filter(entries__rating__gt=3).filter(entries__rating__lt=1)
   *   .values("id", "entries__rating").order_by("id", "entries__rating") */
  dorm_query *q = dorm_select(Author);
  two_calls(q);
  dorm_values(q, "id");
  dorm_values(q, "entries__rating");
  dorm_order_by(q, "id");
  dorm_order_by(q, "entries__rating");
  expect_both_tail(
      q,
      "SELECT \"author\".\"id\", \"T3\".\"rating\" FROM \"author\"" J_ENTRY
          J_ENTRY_T3 W_TWO_CALLS
      " ORDER BY \"author\".\"id\" ASC, \"T3\".\"rating\" ASC",
      " NULLS LAST", "3, 1");
  dorm_query_free(q);

  /* ordering across a further relation hangs off the most recent join:
   * .order_by("entries__tags__name") */
  q = dorm_select(Author);
  dorm_only(q, "name");
  two_calls(q);
  dorm_order_by(q, "entries__tags__name");
  expect(q, DORM_DIALECT_POSTGRES,
         "SELECT \"author\".\"id\", \"author\".\"name\" FROM \"author\"" J_ENTRY
             J_ENTRY_T3
         " LEFT OUTER JOIN \"entry_tags\" ON (\"T3\".\"id\" = "
         "\"entry_tags\".\"entry_id\") LEFT OUTER JOIN \"tag\" ON "
         "(\"entry_tags\".\"tag_id\" = \"tag\".\"id\")" W_TWO_CALLS
         " ORDER BY \"tag\".\"name\" ASC",
         "3, 1");
  dorm_query_free(q);

  /* annotate() before filter(): its own outer join, the filter another
   * (Author.values("name").annotate(n=Count("entries"))
   *  .filter(entries__rating__gt=3)) */
  q = dorm_select(Author);
  dorm_values(q, "name");
  dorm_annotate(q, "n", DORM_AGG_COUNT, "entries");
  dorm_filter(q, "entries__rating__gt", dorm_int(3));
  expect_both(
      q,
      "SELECT \"author\".\"name\", COUNT(\"entry\".\"id\") AS \"n\" FROM "
      "\"author\" LEFT OUTER JOIN \"entry\" ON (\"author\".\"id\" = "
      "\"entry\".\"author_id\") INNER JOIN \"entry\" \"T3\" ON "
      "(\"author\".\"id\" = \"T3\".\"author_id\") WHERE "
      "\"T3\".\"rating\" > $1 GROUP BY \"author\".\"name\"",
      "3");
  dorm_query_free(q);
  /* after it: the filter's join (values("name").filter(...).annotate()) */
  q = dorm_select(Author);
  dorm_values(q, "name");
  dorm_filter(q, "entries__rating__gt", dorm_int(3));
  dorm_annotate(q, "n", DORM_AGG_COUNT, "entries");
  expect_both(
      q,
      "SELECT \"author\".\"name\", COUNT(\"entry\".\"id\") AS \"n\" FROM "
      "\"author\"" J_ENTRY
      " WHERE \"entry\".\"rating\" > $1 GROUP BY \"author\".\"name\"",
      "3");
  dorm_query_free(q);
  /* after two calls: the second's (.values("name")
   * .annotate(n=Max("entries__rating"))) */
  q = dorm_select(Author);
  two_calls(q);
  dorm_values(q, "name");
  dorm_annotate(q, "n", DORM_AGG_MAX, "entries__rating");
  expect_both(
      q,
      "SELECT \"author\".\"name\", MAX(\"T3\".\"rating\") AS \"n\" FROM "
      "\"author\"" J_ENTRY J_ENTRY_T3 W_TWO_CALLS
      " GROUP BY \"author\".\"name\"",
      "3, 1");
  dorm_query_free(q);
  /* aggregate() likewise: Sum("entries__rating") after two calls */
  q = dorm_select(Author);
  two_calls(q);
  dorm_aggregate(q, "s", DORM_AGG_SUM, "entries__rating");
  expect_both(q,
              "SELECT SUM(\"T3\".\"rating\") AS \"s\" FROM \"author\"" J_ENTRY
                  J_ENTRY_T3 W_TWO_CALLS,
              "3, 1");
  dorm_query_free(q);

  /* select_related is resolved when compiling: the filter's join to the
   * same table came first and takes the table's name
   * (Entry.select_related("author").filter(editor__name="x")) */
  q = dorm_select(Entry);
  dorm_only(q, "headline");
  dorm_select_related(q, "author");
  dorm_filter(q, "editor__name", dorm_str("x"));
  expect_both(q,
              "SELECT \"entry\".\"id\", \"entry\".\"headline\", \"T3\".\"id\", "
              "\"T3\".\"name\", \"T3\".\"age\", \"T3\".\"country\", "
              "\"T3\".\"email\", \"T3\".\"joined\", \"T3\".\"bio\", "
              "\"T3\".\"score\", \"T3\".\"active\", \"T3\".\"uid\", "
              "\"T3\".\"data\", \"T3\".\"wake\", \"T3\".\"born\", "
              "\"T3\".\"avatar\" FROM \"entry\" INNER JOIN \"author\" ON "
              "(\"entry\".\"editor_id\" = \"author\".\"id\") INNER JOIN "
              "\"author\" \"T3\" ON (\"entry\".\"author_id\" = \"T3\".\"id\") "
              "WHERE \"author\".\"name\" = $1",
              "'x'");
  dorm_query_free(q);

  /* the same path in values() and order_by() is two columns when they
   * read two joins: Author.values("entries__rating")
   * .filter(entries__rating__gt=3).distinct().order_by("entries__rating") */
  q = dorm_select(Author);
  dorm_values(q, "entries__rating");
  dorm_filter(q, "entries__rating__gt", dorm_int(3));
  dorm_distinct(q);
  dorm_order_by(q, "entries__rating");
  expect_both_tail(
      q,
      "SELECT DISTINCT \"entry\".\"rating\", \"T3\".\"rating\" "
      "FROM \"author\" LEFT OUTER JOIN \"entry\" ON "
      "(\"author\".\"id\" = \"entry\".\"author_id\")" J_ENTRY_T3
      " WHERE \"T3\".\"rating\" > $1 ORDER BY \"T3\".\"rating\" ASC",
      " NULLS LAST", "3");
  dorm_query_free(q);

  /* distinct() with an ordering it does not select: the ordering column
   * joins the SELECT DISTINCT list (Author.values("name")
   * .filter(entries__rating__gt=3).distinct().order_by("-entries__rating")) */
  q = dorm_select(Author);
  dorm_values(q, "name");
  dorm_filter(q, "entries__rating__gt", dorm_int(3));
  dorm_distinct(q);
  dorm_order_by(q, "-entries__rating");
  expect_both_tail(
      q,
      "SELECT DISTINCT \"author\".\"name\", \"entry\".\"rating\" FROM "
      "\"author\"" J_ENTRY
      " WHERE \"entry\".\"rating\" > $1 ORDER BY \"entry\".\"rating\" "
      "DESC",
      " NULLS FIRST", "3");
  dorm_query_free(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_joins),
      cmocka_unit_test(test_exclude_multi_valued),
      cmocka_unit_test(test_join_groups),
      cmocka_unit_test(test_join_call_order),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
