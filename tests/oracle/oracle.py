#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""tests/oracle/oracle.py — Django 3.2 as the oracle for dorm's queries.

Generates random queries in the `dorm query` language (which is Django's own
syntax) over seeded data, runs each through Django 3.2 on PostgreSQL and
through `dorm query --json` on PostgreSQL and on SQLite, and requires the
same answers: in order when the query has a total order, as multisets
otherwise.  Everything comes from the seed (the data and the queries), so a
failure reproduces with `--seed S --expr '...'`.  A disagreement is shrunk
(calls, arguments and Q terms dropped while it persists) and printed with
the query, the three answers and the SQL of both sides, and grouped by the
features of its shrunk shape.

Run with Debian's /usr/bin/python3 (python3-django, python3-psycopg2) and a
libpq conninfo of a PostgreSQL server in --pg or $DORM_TEST_PG; each run
creates and drops a database of its own there.  See docs/oracle.md.
"""
import argparse
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODELS = os.path.join(HERE, "models.json")
MIGRATIONS = os.path.join(HERE, "migrations")

# --------------------------------------------------------------------------
# the schema, as the generator sees it

FIELDS = {
    "Writer": {"id": "pk", "name": "str", "age": "nint"},
    "Novel": {"id": "pk", "title": "str", "pages": "int", "in_print": "bool",
              "rating": "nint"},
    "Tag": {"id": "pk", "name": "str"},
}
# relation -> (target model, kind): fk (not null), nullfk, multi
RELS = {
    "Writer": {"novels": ("Novel", "multi"), "edited": ("Novel", "multi")},
    "Novel": {"writer": ("Writer", "fk"), "editor": ("Writer", "nullfk"),
              "tags": ("Tag", "multi")},
    "Tag": {"novel": ("Novel", "multi")},
}

NAMES = ["ann", "bob", "cy", "dee", "ann", "eve", "bob", "flo"]
AGES = [None, 20, 30, 30, 41, None, 55]
TITLES = ["dune", "emma", "it", "ulysses", "dune", "beloved", "ada", "emma"]
PAGES = [50, 100, 200, 200, 350]
RATINGS = [None, None, 1, 3, 3, 5]
TAGNAMES = ["sf", "classic", "short", "sf", "gothic"]

# --------------------------------------------------------------------------
# seeded data


def make_data(rng):
    nw = rng.randint(4, 8)
    writers = [(i + 1, rng.choice(NAMES), rng.choice(AGES)) for i in range(nw)]
    authors = rng.sample(range(1, nw + 1), max(1, nw - rng.randint(1, 3)))
    ntag = rng.randint(2, 5)
    tags = [(i + 1, rng.choice(TAGNAMES)) for i in range(ntag)]
    nn = rng.randint(5, 12)
    novels, links = [], []
    for i in range(nn):
        w = rng.choice(authors)
        r = rng.random()
        editor = None if r < 0.3 else (w if r < 0.45 else rng.randint(1, nw))
        novels.append((i + 1, rng.choice(TITLES), rng.choice(PAGES),
                       rng.random() < 0.6, rng.choice(RATINGS), w, editor))
        for t in rng.sample(range(1, ntag + 1), rng.randint(0, min(3, ntag))):
            links.append((len(links) + 1, i + 1, t))
    return {"writer": writers, "tag": tags, "novel": novels,
            "novel_tags": links}


COLS = {
    "writer": ("id", "name", "age"),
    "tag": ("id", "name"),
    "novel": ("id", "title", "pages", "in_print", "rating", "writer_id",
              "editor_id"),
    "novel_tags": ("id", "novel_id", "tag_id"),
}


def load(conn, data, mark):
    cur = conn.cursor()
    for t in ("novel_tags", "novel", "tag", "writer"):
        cur.execute('DELETE FROM "%s"' % t)
    for t in ("writer", "tag", "novel", "novel_tags"):
        cols = COLS[t]
        sql = 'INSERT INTO "%s" (%s) VALUES (%s)' % (
            t, ", ".join('"%s"' % c for c in cols),
            ", ".join([mark] * len(cols)))
        for row in data[t]:
            cur.execute(sql, row)
    conn.commit()


# --------------------------------------------------------------------------
# queries: a small tree, rendered as text for both sides
#
# cond := ("Q", [(lookup, value), ...]) | ("not", cond)
#       | ("and", cond, cond) | ("or", cond, cond)
# call := (method, [cond...], [(lookup, value)...])     filter or exclude
# query := dict(model, calls, order, values, distinct, slice, term)


class FRef:
    """F("path") on the right of a lookup, maybe plus a number."""

    def __init__(self, path, plus=0):
        self.path, self.plus = path, plus

    def __str__(self):
        f = "F(%s)" % json.dumps(self.path)
        return f if not self.plus else "%s + %d" % (f, self.plus)


# numeric columns an F() may name, from each model (single-valued paths
# only: Django resolves an F() across a multi-valued relation in the outer
# query, which repeats rows)
F_PATHS = {
    "Writer": ["id", "age"],
    "Novel": ["id", "pages", "rating", "writer__age", "editor__age",
              "editor__id"],
    "Tag": ["id"],
}


def lit(v):
    if isinstance(v, FRef):
        return str(v)
    if v is None:
        return "None"
    if v is True:
        return "True"
    if v is False:
        return "False"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(lit(x) for x in v) + "]"
    return str(v)


def render_cond(c, top=True):
    if c[0] == "Q":
        return "Q(" + ", ".join("%s=%s" % (k, lit(v)) for k, v in c[1]) + ")"
    if c[0] == "not":
        return "~" + render_cond(c[1], False)
    op = " & " if c[0] == "and" else " | "
    s = render_cond(c[1], False) + op + render_cond(c[2], False)
    return s if top else "(" + s + ")"


def render(q):
    s = q["model"]
    for m, conds, kw in q["calls"]:
        args = [render_cond(c) for c in conds]
        args += ["%s=%s" % (k, lit(v)) for k, v in kw]
        s += ".%s(%s)" % (m, ", ".join(args))
    for part in q["tail"]:
        if part == "order" and q["order"] is not None:
            s += ".order_by(%s)" % ", ".join(json.dumps(o) for o in q["order"])
        elif part == "values" and q["values"] is not None:
            s += ".values(%s)" % ", ".join(json.dumps(v) for v in q["values"])
        elif part == "distinct" and q["distinct"]:
            s += ".distinct()"
    if s == q["model"]:
        s += ".all()"
    sl = q["slice"]
    if sl is not None:
        if sl[0] == "idx":
            s += "[%d]" % sl[1]
        else:
            s += "[%s:%s]" % ("" if sl[0] is None else sl[0],
                              "" if sl[1] is None else sl[1])
    if q["term"] != "rows":
        s += ".%s()" % q["term"]
    return s


def strip_dir(o):
    return o[1:] if o.startswith("-") else o


def is_total(q):
    """Whether the order_by fixes the order of the printed rows: rows that
    tie on every ordering column print the same."""
    if q["order"] is None:
        return False
    keys = set(strip_dir(o) for o in q["order"])
    if q["values"] is not None:
        return set(q["values"]) <= keys
    return "pk" in keys or "id" in keys


def valid(q):
    """Whether the answer is determined by the data (no ties decide it)."""
    if q["slice"] is not None and q["term"] in ("count", "exists"):
        return True
    if q["term"] == "first" and q["values"] is None and q["order"] is None:
        return True  # first() orders by pk
    if q["slice"] is not None or q["term"] == "first":
        return is_total(q)
    return True


def ordered(q):
    return q["term"] == "first" or (q["slice"] is not None and
                                    q["slice"][0] == "idx") or is_total(q)


class Gen:
    def __init__(self, rng, data):
        self.r = rng
        self.data = data

    # a path from a model to a field: ([steps], model, field, type); steps
    # are (relation, kind)
    def path(self, model, maxdepth=2, allow_rel_end=True):
        steps = []
        m = model
        depth = self.r.choice([0, 1, 1, 1, 2, 2] if maxdepth >= 2 else [0, 1])
        depth = min(depth, maxdepth)
        for _ in range(depth):
            rel = self.r.choice(sorted(RELS[m]))
            steps.append((rel, RELS[m][rel][1]))
            m = RELS[m][rel][0]
        if steps and allow_rel_end and self.r.random() < 0.15:
            # end on the relation itself: writer=3, tags=2, novels__isnull
            return steps, m, None, "rel"
        f = self.r.choice(sorted(FIELDS[m]))
        return steps, m, f, FIELDS[m][f]

    def ids(self, model):
        t = model.lower()
        n = len(self.data[t])
        return list(range(1, n + 2))

    def lookup(self, model):
        steps, m, f, typ = self.path(model)
        names = [s[0] for s in steps]
        r = self.r
        nullable = any(k in ("nullfk", "multi") for _, k in steps)
        if typ == "rel":
            last = steps[-1][1]
            ch = r.random()
            if last in ("multi", "nullfk") and ch < 0.45:
                return "__".join(names) + "__isnull", r.random() < 0.5
            if last == "nullfk" and ch < 0.55:
                return "__".join(names), None
            if ch < 0.75:
                return "__".join(names), r.choice(self.ids(m))
            return "__".join(names) + "__in", r.sample(self.ids(m), 2)
        base = "__".join(names + [f])
        if f == "id" and r.random() < 0.3 and steps:
            base = "__".join(names + ["pk"])
        if (typ == "nint" or nullable) and r.random() < 0.15:
            return base + "__isnull", r.random() < 0.5
        if typ == "nint" and r.random() < 0.08:
            return base, None
        if typ == "bool":
            return base, r.random() < 0.5
        if typ in ("int", "nint", "pk"):
            pool = {"pk": self.ids(m), "int": PAGES + [0, 400],
                    "nint": [v for v in (AGES if m == "Writer" else RATINGS)
                             if v is not None] + [0, 99]}[typ]
            lk = r.choice(["", "", "__gt", "__gte", "__lt", "__lte", "__in",
                           "__range"])
            if lk == "__in":
                return base + lk, r.sample(pool, min(len(pool), 2))
            if lk == "__range":
                a, b = sorted(r.sample(pool, 2))
                return base + lk, [a, b]
            if lk not in ("__in",) and r.random() < 0.2:
                return base + lk, FRef(r.choice(F_PATHS[model]),
                                       r.choice([0, 0, 1, 100]))
            return base + lk, r.choice(pool)
        pool = {"Writer": NAMES, "Novel": TITLES, "Tag": TAGNAMES}[m]
        lk = r.choice(["", "", "__iexact", "__contains", "__icontains",
                       "__startswith", "__istartswith", "__endswith", "__in",
                       "__regex", "__gt"])
        v = r.choice(pool + ["zzz"])
        if lk == "__in":
            return base + lk, r.sample(pool, 2)
        if lk in ("__contains", "__icontains"):
            v = v[r.randint(0, max(0, len(v) - 2)):][:2]
        elif lk in ("__startswith", "__istartswith"):
            v = v[:1]
        elif lk == "__endswith":
            v = v[-1:]
        elif lk == "__regex":
            v = r.choice(["^[a-d]", "e$", "m+", "^(dune|it)$", "s"])
        if lk.startswith("__i"):
            v = v.upper()
        return base + lk, v

    def q(self, model, depth=0):
        r = self.r.random()
        if depth >= 3 or r < 0.45:
            n = 1 if self.r.random() < 0.75 else 2
            kw = [self.lookup(model) for _ in range(n)]
            if n == 2 and kw[0][0] == kw[1][0]:
                kw = kw[:1]  # a keyword argument only once
            return ("Q", kw)
        if r < 0.65:
            return ("not", self.q(model, depth + 1))
        return ("and" if self.r.random() < 0.45 else "or",
                self.q(model, depth + 1), self.q(model, depth + 1))

    def call(self, model):
        m = "exclude" if self.r.random() < 0.35 else "filter"
        conds, kw = [], []
        if self.r.random() < 0.55:
            conds.append(self.q(model))
        if not conds or self.r.random() < 0.5:
            kw = [self.lookup(model) for _ in range(self.r.randint(1, 2))]
            seen = set()
            kw = [(k, v) for k, v in kw if not (k in seen or seen.add(k))]
        return (m, conds, kw)

    def field_path(self, model):
        """A path to a field, for values() and order_by()."""
        steps, m, f, typ = self.path(model, allow_rel_end=False)
        names = [s[0] for s in steps]
        if f == "id" and steps and self.r.random() < 0.5:
            f = "pk"
        return "__".join(names + [f])

    def query(self):
        r = self.r
        model = r.choice(["Writer", "Novel", "Novel", "Tag"])
        q = {"model": model, "calls": [], "order": None, "values": None,
             "distinct": False, "slice": None, "term": "rows"}
        ncalls = r.choice([0, 1, 1, 1, 2, 2, 3])
        q["calls"] = [self.call(model) for _ in range(ncalls)]
        t = r.random()
        if t < 0.4:
            term, sl = "rows", None
        elif t < 0.58:
            term, sl = "count", None
        elif t < 0.68:
            term, sl = "exists", None
        elif t < 0.78:
            term, sl = "first", None
        elif t < 0.92:
            term = "rows"
            sl = ("idx", r.randint(0, 3)) if r.random() < 0.2 else \
                (r.randint(0, 2), r.randint(1, 5))
            if sl[0] != "idx" and sl[1] <= sl[0]:
                sl = (sl[0], sl[0] + 2)
        else:
            term = r.choice(["count", "exists"])
            sl = (r.randint(0, 2), r.choice([None, 2, 4]))
        q["term"], q["slice"] = term, sl
        if r.random() < 0.35 and term != "exists":
            seen = []
            for _ in range(r.randint(1, 3)):
                p = self.field_path(model)
                if p not in seen:
                    seen.append(p)
            q["values"] = seen
        if r.random() < 0.2:
            q["distinct"] = True
        need_total = sl is not None and term == "rows" or term == "first"
        if need_total or r.random() < 0.4:
            prefix = []
            for _ in range(r.choice([0, 1, 1, 2])):
                p = self.field_path(model)
                prefix.append(("-" if r.random() < 0.4 else "") + p)
            if need_total or r.random() < 0.5:
                if q["values"] is not None:
                    have = set(strip_dir(o) for o in prefix)
                    prefix += [("-" if r.random() < 0.3 else "") + v
                               for v in q["values"] if v not in have]
                else:
                    prefix.append(r.choice(["pk", "-pk", "id"]))
            if prefix:
                q["order"] = prefix
        if term == "first" and q["values"] is None and r.random() < 0.3 \
                and not q["distinct"]:
            q["order"] = None
        tail = ["order", "values", "distinct"]
        r.shuffle(tail)
        q["tail"] = tail
        return q


# --------------------------------------------------------------------------
# features of a query, for grouping disagreements


def cond_leaves(c, neg=False, depth=0):
    """(lookup, negated, negation depth) for every leaf of a Q tree."""
    if c[0] == "Q":
        for k, _ in c[1]:
            yield k, neg, depth
    elif c[0] == "not":
        yield from cond_leaves(c[1], not neg, depth + 1)
    else:
        yield from cond_leaves(c[1], neg, depth)
        yield from cond_leaves(c[2], neg, depth)


def path_info(model, lookup):
    """The relation kinds a lookup path crosses and the models it visits."""
    kinds, visits = [], [model]
    m = model
    for part in lookup.split("__"):
        if part in RELS.get(m, {}):
            tgt, kind = RELS[m][part]
            kinds.append(kind)
            m = tgt
            visits.append(m)
        else:
            break
    return kinds, visits


def features(q):
    f = set()
    model = q["model"]
    multi_calls = {}
    for m, conds, kw in q["calls"]:
        leaves = [(k, m == "exclude", 1 if m == "exclude" else 0)
                  for k, _ in kw]
        for c in conds:
            for k, neg, d in cond_leaves(c):
                leaves.append((k, neg != (m == "exclude"),
                               d + (1 if m == "exclude" else 0)))
        rels_here = set()
        pos_rel, neg_rel = set(), set()
        for k, neg, d in leaves:
            kinds, visits = path_info(model, k)
            if d >= 2:
                f.add("double-negation")
            if "multi" in kinds:
                first_multi = k.split("__")[kinds.index("multi")]
                rels_here.add(first_multi)
                if neg:
                    f.add("negated-multi")
                    if k.endswith("__isnull"):
                        f.add("negated-multi-isnull")
                else:
                    pos_rel.add(first_multi)
            if neg and "nullfk" in kinds:
                f.add("negated-nullfk")
            if neg and "multi" in kinds and "nullfk" in kinds:
                f.add("negated-multi-via-nullfk")
            if len(set(visits)) < len(visits):
                f.add("revisit" + ("-negated" if neg else ""))
            if k.endswith("__isnull") and kinds and kinds[-1] == "multi" \
                    and k.count("__") == len(kinds):
                f.add("multi-isnull")
            if neg:
                neg_rel.add(tuple(visits[1:2]))
            else:
                pos_rel.add(tuple(visits[1:2]))
        if any(m2 for m2 in pos_rel if m2 and m2 in neg_rel):
            f.add("pos+neg-same-table-one-call")
        for rel in rels_here:
            multi_calls[rel] = multi_calls.get(rel, 0) + 1
    if any(n >= 2 for n in multi_calls.values()):
        f.add("chained-multi")
    for p in (q["values"] or []):
        if "multi" in path_info(model, p)[0]:
            f.add("values-multi")
    for p in (q["order"] or []):
        if "multi" in path_info(model, strip_dir(p))[0]:
            f.add("order-multi")
    if q["distinct"]:
        f.add("distinct")
        if q["order"] and (q["values"] is None or not set(
                strip_dir(o) for o in q["order"]) <= set(q["values"])):
            f.add("distinct+order-unselected")
    if q["slice"] is not None:
        f.add("slice")
        if q["slice"][0] == q["slice"][1]:
            f.add("empty-slice")
    f.add("term:" + q["term"])
    return f


# --------------------------------------------------------------------------
# Django's side

_dj = {}


def django_setup(pg):
    import types
    import django
    # an installed app for the models, so that their reverse relations
    # (novels, edited, novel) are known; a module made here, not a package
    app = types.ModuleType("oracle_app")
    app.__file__ = os.path.abspath(__file__)
    sys.modules["oracle_app"] = app
    from django.conf import settings
    settings.configure(
        DATABASES={"default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": pg.get("dbname", ""), "HOST": pg.get("host", ""),
            "PORT": pg.get("port", ""), "USER": pg.get("user", ""),
            "PASSWORD": pg.get("password", "")}},
        INSTALLED_APPS=["oracle_app"], USE_TZ=False,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField")
    django.setup()
    from django.db import models

    class Writer(models.Model):
        name = models.CharField(max_length=50)
        age = models.IntegerField(null=True)

        class Meta:
            app_label = "oracle_app"
            db_table = "writer"
            managed = False

    class Tag(models.Model):
        name = models.CharField(max_length=20)

        class Meta:
            app_label = "oracle_app"
            db_table = "tag"
            managed = False

    class Novel(models.Model):
        title = models.TextField()
        pages = models.IntegerField()
        in_print = models.BooleanField()
        rating = models.IntegerField(null=True)
        writer = models.ForeignKey(Writer, models.CASCADE,
                                   related_name="novels")
        editor = models.ForeignKey(Writer, models.SET_NULL, null=True,
                                   related_name="edited")
        tags = models.ManyToManyField(Tag, db_table="novel_tags")

        class Meta:
            app_label = "oracle_app"
            db_table = "novel"
            managed = False

    _dj["models"] = {"Writer": Writer, "Novel": Novel, "Tag": Tag}
    _dj["Q"] = models.Q
    _dj["F"] = models.F


class _Manager:
    """Writer.filter(...) in the query text is Writer.objects.filter(...)."""

    def __init__(self, model):
        self._m = model

    def __getattr__(self, name):
        if name == "objects":
            return self._m.objects
        return getattr(self._m.objects, name)


def dj_row(obj):
    row = {}
    for f in obj._meta.concrete_fields:
        row[f.name] = getattr(obj, f.attname)
    return row


def django_run(expr):
    from django.db.models.query import QuerySet
    env = {k: _Manager(m) for k, m in _dj["models"].items()}
    env["Q"] = _dj["Q"]
    env["F"] = _dj["F"]
    sql = ""
    try:
        # the query without its terminal, for the report
        base = re.sub(r"(\.(count|exists|first)\(\)|\[\d+\])$", "", expr)
        qs = eval(base, {"__builtins__": {}}, env)
        if isinstance(qs, QuerySet):
            try:
                sql = str(qs.query)
            except Exception as e:  # noqa
                sql = "(%s)" % e
        res = eval(expr, {"__builtins__": {}}, env)
        if isinstance(res, QuerySet):
            return [r if isinstance(r, dict) else dj_row(r) for r in res], sql
    except IndexError:
        return "IndexError", sql
    except Exception as e:
        from django.db import connection
        if connection.in_atomic_block is False:
            connection.close()  # an aborted statement: start afresh
        return ("error", "%s: %s" % (type(e).__name__, e)), sql
    if isinstance(res, bool) or isinstance(res, int) or res is None:
        return res, sql
    return (res if isinstance(res, dict) else dj_row(res)), sql


# --------------------------------------------------------------------------
# dorm's side


def dorm_run(dorm, db, expr):
    p = subprocess.run([dorm, "query", "--json", "--models", MODELS, "--db",
                        db, expr], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True,
                       timeout=120)
    out = p.stdout.strip()
    if p.returncode != 0:
        if "matching query does not exist" in p.stderr:
            return None
        if "no row at index" in p.stderr:  # qs[n] past the end
            return "IndexError"
        return ("error", p.stderr.strip())
    if out == "True":
        return True
    if out == "False":
        return False
    if re.fullmatch(r"-?\d+", out):
        return int(out)
    try:
        doc = json.loads(out)
    except ValueError:
        return ("error", "unreadable output: " + out[:200])
    if isinstance(doc, dict) and set(doc) == {"results"}:
        return doc["results"]
    return doc


def dorm_sql(dorm, db, expr):
    p = subprocess.run([dorm, "query", "--sql", "--models", MODELS, "--db",
                        db, expr], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=60)
    return p.stdout.strip()


# --------------------------------------------------------------------------
# comparing


def canon(ans, in_order):
    if isinstance(ans, list):
        rows = [json.dumps(r, sort_keys=True) for r in ans]
        return ("rows", rows if in_order else sorted(rows))
    if isinstance(ans, tuple):
        return ans
    return ("value", json.dumps(ans, sort_keys=True))


def show(ans):
    if isinstance(ans, tuple):
        return "ERROR " + ans[1]
    if isinstance(ans, list):
        return "[" + ",\n  ".join(json.dumps(r, sort_keys=True)
                                  for r in ans) + "]" if ans else "[]"
    return json.dumps(ans)


class Runner:
    def __init__(self, dorm, pg_url, sqlite_url):
        self.dorm = dorm
        self.pg = pg_url
        self.sqlite = sqlite_url
        self.calls = 0

    def check(self, q):
        """(verdict, answers): verdict is 'agree', 'refused' (Django and
        dorm both refuse the query) or 'disagree'."""
        expr = render(q)
        self.calls += 1
        dj, dj_sql = django_run(expr)
        a_pg = dorm_run(self.dorm, self.pg, expr)
        a_lite = dorm_run(self.dorm, self.sqlite, expr)
        io = ordered(q)
        c = canon(dj, io)
        ans = {"expr": expr, "django": dj, "django_sql": dj_sql,
               "postgresql": a_pg, "sqlite": a_lite}
        if isinstance(dj, tuple) and dj[0] == "error":
            if isinstance(a_pg, tuple) and isinstance(a_lite, tuple):
                return "refused", ans
            if re.match(r"(ProgrammingError|DataError|InternalError)", dj[1]):
                return "django-failed", ans  # Django's SQL is invalid
            return "disagree", ans
        if canon(a_pg, io) == c and canon(a_lite, io) == c:
            return "agree", ans
        return "disagree", ans


# --------------------------------------------------------------------------
# shrinking a disagreement


def cond_smaller(c):
    if c[0] == "Q":
        if len(c[1]) > 1:
            for i in range(len(c[1])):
                yield ("Q", c[1][:i] + c[1][i + 1:])
        return
    if c[0] == "not":
        yield c[1]
        for s in cond_smaller(c[1]):
            yield ("not", s)
        return
    yield c[1]
    yield c[2]
    for s in cond_smaller(c[1]):
        yield (c[0], s, c[2])
    for s in cond_smaller(c[2]):
        yield (c[0], c[1], s)


def smaller(q):
    def with_(**kw):
        n = dict(q)
        n.update(kw)
        return n
    calls = q["calls"]
    for i in range(len(calls)):
        yield with_(calls=calls[:i] + calls[i + 1:])
    if q["slice"] is not None:
        yield with_(slice=None)
    if q["term"] != "rows":
        yield with_(term="rows")
    if q["distinct"]:
        yield with_(distinct=False)
    if q["order"] is not None:
        yield with_(order=None)
        for i in range(len(q["order"])):
            yield with_(order=q["order"][:i] + q["order"][i + 1:] or None)
    if q["values"] is not None:
        yield with_(values=None)
        for i in range(len(q["values"])):
            v = q["values"][i]
            order = q["order"]
            if order is not None:
                order = [o for o in order if strip_dir(o) != v] or None
            yield with_(values=q["values"][:i] + q["values"][i + 1:] or None,
                        order=order)
    for i, (m, conds, kw) in enumerate(calls):
        def put(call):
            return with_(calls=calls[:i] + [call] + calls[i + 1:])
        if m == "exclude":
            yield put(("filter", conds, kw))
        for j in range(len(conds)):
            if conds[j:j + 1] and (len(conds) > 1 or kw):
                yield put((m, conds[:j] + conds[j + 1:], kw))
            for s in cond_smaller(conds[j]):
                yield put((m, conds[:j] + [s] + conds[j + 1:], kw))
            if not kw and conds[j][0] == "Q":
                yield put((m, conds[:j] + conds[j + 1:], conds[j][1]))
        for j in range(len(kw)):
            if len(kw) > 1 or conds:
                yield put((m, conds, kw[:j] + kw[j + 1:]))


def size(q):
    return len(render(q))


def shrink(runner, q, budget=150):
    best = q
    progress = True
    while progress and budget > 0:
        progress = False
        for cand in smaller(best):
            if budget <= 0:
                break
            if not valid(cand) or django_skip(cand):
                continue
            if size(cand) >= size(best):
                continue
            budget -= 1
            verdict, _ = runner.check(cand)
            if verdict == "disagree":
                best = cand
                progress = True
                break
    return best


# --------------------------------------------------------------------------
# shapes where Django 3.2 is the one that is wrong (docs/queries.md,
# "Differences from Django"): the generator does not use them


def visits(model, lookup):
    """{model: set of relation prefixes reaching it} along a lookup path."""
    out = {}
    m, prefix = model, ()
    for part in lookup.split("__"):
        if part not in RELS.get(m, {}):
            break
        prefix += (part,)
        m = RELS[m][part][0]
        out.setdefault(m, set()).add(prefix)
    return out


def nullfk_prefixes(model, lookup):
    """The relation prefixes of a lookup path that end with a nullable
    foreign key, before any multi-valued hop."""
    out, m, prefix = set(), model, ()
    for part in lookup.split("__"):
        if part not in RELS.get(m, {}):
            break
        tgt, kind = RELS[m][part]
        if kind == "multi":
            break
        prefix += (part,)
        if kind == "nullfk":
            out.add(prefix)
        m = tgt
    return out


def nullfk_pos_neg(q):
    """Django 3.2 decides whether a negated lookup through a nullable
    foreign key keeps the rows without a related object ("AND col IS NOT
    NULL" inside the NOT) from the join's type at the moment it builds that
    lookup; an earlier positive lookup of the same filter() call through
    the same key has made the join INNER by then, so
    Novel.filter(Q(editor__name="bob") | ~Q(editor__name__contains="a"))
    loses the novels without an editor that the second term alone keeps.
    The answer depends on the order of the terms; dorm keeps those rows
    whatever the order (docs/queries.md, "Differences from Django")."""
    for m, conds, kw in q["calls"]:
        leaves = [(k, m == "exclude") for k, _ in kw]
        for c in conds:
            leaves += [(k, neg != (m == "exclude"))
                       for k, neg, _ in cond_leaves(c)]
        pos, neg = set(), set()
        for k, n in leaves:
            (neg if n else pos).update(nullfk_prefixes(q["model"], k))
        if pos & neg:
            return True
    return False


def django_skip(q):
    """Django 3.2 correlates a negated condition across a multi-valued
    relation with the wrong join when another condition of the same
    filter()/exclude() call reaches the same table through another
    relation: Writer.filter(Q(novels__title="x") & ~Q(edited__pages=50))
    asks about the novel joined for `novels`, and
    Novel.exclude(editor__name="a", writer__name="b",
    writer__novels__in_print=True) is SQL PostgreSQL refuses.  Across
    calls too, when the negated path starts with a foreign key and another
    path starts with another foreign key to the same model:
    Novel.exclude(writer__novels__id=1).exclude(editor__age=30,
    editor__edited__pages=200) is refused SQL as well."""
    if nullfk_pos_neg(q):
        return True
    model = q["model"]
    firsts = set()
    for m, conds, kw in q["calls"]:
        for k, _ in kw:
            firsts.add(k.split("__")[0])
        for c in conds:
            firsts.update(k.split("__")[0] for k, _, _ in cond_leaves(c))
    for m, conds, kw in q["calls"]:
        # under any NOT, as Django's split_exclude (branch_negated): two
        # NOTs do not cancel there
        for k, neg, _ in [(k, m == "exclude", 0) for k, _ in kw] + [
                (k, m == "exclude" or d > 0, 0)
                for c in conds for k, _, d in cond_leaves(c)]:
            first = k.split("__")[0]
            if not neg or first not in RELS[model] or \
                    RELS[model][first][1] == "multi" or \
                    "multi" not in path_info(model, k)[0]:
                continue
            for other in firsts:
                if other != first and other in RELS[model] and \
                        RELS[model][other][0] == RELS[model][first][0]:
                    return True
    for m, conds, kw in q["calls"]:
        leaves = [(k, m == "exclude") for k, _ in kw]
        for c in conds:
            leaves += [(k, m == "exclude" or d > 0)
                       for k, _, d in cond_leaves(c)]
        for i, (kb, negb) in enumerate(leaves):
            if not negb or "multi" not in path_info(q["model"], kb)[0]:
                continue
            vb = visits(q["model"], kb)
            for j, (ka, _) in enumerate(leaves):
                if j == i:
                    continue
                for model, prefixes in visits(q["model"], ka).items():
                    if model in vb and prefixes - vb[model]:
                        return True
    return False


# --------------------------------------------------------------------------


def parse_conninfo(s):
    d = {}
    for m in re.finditer(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", s):
        v = m.group(2)
        if v.startswith("'"):
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        d[m.group(1)] = v
    return d


def conninfo(d):
    def q(v):
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" \
            if (not v or re.search(r"[\s'\\]", v)) else v
    return " ".join("%s=%s" % (k, q(v)) for k, v in d.items())


def report(n, ans, sql_pg, sql_lite, seed, feats, shrunk_from=None):
    print("=" * 72)
    print("DISAGREEMENT #%d (seed %d) [%s]" % (n, seed, " ".join(sorted(
        x for x in feats if not x.startswith("term:")))))
    if shrunk_from:
        print("generated: %s" % shrunk_from)
    print("query:     %s" % ans["expr"])
    print("django:    %s" % show(ans["django"]))
    print("dorm pg:   %s" % show(ans["postgresql"]))
    print("dorm lite: %s" % show(ans["sqlite"]))
    print("django SQL:\n  %s" % ans["django_sql"])
    print("dorm SQL (postgresql):\n  %s" % sql_pg.replace("\n", "\n  "))
    if sql_lite:
        print("dorm SQL (sqlite):\n  %s" % sql_lite.replace("\n", "\n  "))
    print("reproduce: /usr/bin/python3 tests/oracle/oracle.py --seed %d "
          "--expr '%s'" % (seed, ans["expr"].replace("'", "'\\''")))
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", default=os.environ.get("DORM_TEST_PG"),
                    help="libpq conninfo (default $DORM_TEST_PG)")
    ap.add_argument("--dorm", default=os.path.join(ROOT, "build", "dorm"))
    ap.add_argument("--seeds", default="1,2,3,4,5,6",
                    help="comma-separated seeds (the suite's fixed set)")
    ap.add_argument("--seed", type=int, help="one seed (with --expr)")
    ap.add_argument("--per-seed", type=int, default=50,
                    help="queries per seed (default 50)")
    ap.add_argument("--campaign", type=int, metavar="N",
                    help="run N queries on fresh random seeds")
    ap.add_argument("--expr", help="run this one query on --seed's data")
    ap.add_argument("--show", type=int, default=20,
                    help="disagreements printed in full (campaign: per "
                    "group, 1)")
    ap.add_argument("--no-shrink", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if not args.pg:
        sys.exit("oracle: no PostgreSQL: set DORM_TEST_PG or pass --pg")
    if not os.access(args.dorm, os.X_OK):
        sys.exit("oracle: %s is not built (make)" % args.dorm)
    pg = parse_conninfo(args.pg)

    import signal
    # a TERM or HUP (a killed campaign) still drops the database below
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))
    import psycopg2
    admin = psycopg2.connect(args.pg)
    admin.autocommit = True
    dbname = "oracle_%d_%d" % (os.getpid(), int(time.time()))
    admin.cursor().execute(
        "CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8' "
        "LC_COLLATE 'C' LC_CTYPE 'C'" % dbname)
    tmp = tempfile.mkdtemp(prefix="dorm-oracle.")
    lite_path = os.path.join(tmp, "oracle.db")
    try:
        return run(args, pg, dbname, lite_path)
    finally:
        from django.db import connections
        if _dj:
            connections.close_all()
        admin.cursor().execute("DROP DATABASE IF EXISTS %s" % dbname)
        admin.close()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)


def run(args, pg, dbname, lite_path):
    import psycopg2
    pgd = dict(pg)
    pgd["dbname"] = dbname
    pg_url = conninfo(pgd)
    lite_url = "sqlite:///" + lite_path
    for url in (pg_url, lite_url):
        p = subprocess.run([args.dorm, "migrate", "--db", url,
                            "--migrations", MIGRATIONS],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        if p.returncode:
            sys.exit("oracle: dorm migrate failed:\n" + p.stdout)
    django_setup(pgd)
    pgc = psycopg2.connect(pg_url)
    litec = sqlite3.connect(lite_path)
    runner = Runner(args.dorm, pg_url, lite_url)
    try:
        return run_queries(args, runner, pgc, litec, pg_url, lite_url)
    finally:
        pgc.close()
        litec.close()


def run_queries(args, runner, pgc, litec, pg_url, lite_url):

    def seed_data(seed):
        data = make_data(random.Random("data-%d" % seed))
        load(pgc, data, "%s")
        load(litec, data, "?")
        return data

    if args.expr:
        seed_data(args.seed or 0)
        dj, dj_sql = django_run(args.expr)
        a_pg = dorm_run(args.dorm, pg_url, args.expr)
        a_lite = dorm_run(args.dorm, lite_url, args.expr)
        print("query:     %s" % args.expr)
        print("django:    %s" % show(dj))
        print("dorm pg:   %s" % show(a_pg))
        print("dorm lite: %s" % show(a_lite))
        print("django SQL:\n  %s" % dj_sql)
        print("dorm SQL (postgresql):\n  %s" %
              dorm_sql(args.dorm, pg_url, args.expr).replace("\n", "\n  "))
        print("dorm SQL (sqlite):\n  %s" %
              dorm_sql(args.dorm, lite_url, args.expr).replace("\n", "\n  "))
        return 0

    if args.campaign:
        sr = random.SystemRandom()
        seeds = []
        left = args.campaign
        while left > 0:
            seeds.append((sr.randrange(1, 10 ** 9), min(left, args.per_seed)))
            left -= args.per_seed
    else:
        seeds = [(int(s), args.per_seed) for s in args.seeds.split(",") if s]

    started = time.time()
    total = agree = refused = skipped = django_failed = 0
    groups = {}  # features of the shrunk query -> [count, first example]
    ndis = 0
    for seed, n in seeds:
        data = seed_data(seed)
        gen = Gen(random.Random("queries-%d" % seed), data)
        made = 0
        while made < n:
            q = gen.query()
            if not valid(q):
                continue
            if django_skip(q):
                skipped += 1
                continue
            made += 1
            total += 1
            verdict, ans = runner.check(q)
            if args.verbose:
                print("%-8s %s" % (verdict, ans["expr"]))
            if verdict == "agree":
                agree += 1
                continue
            if verdict == "refused":
                refused += 1
                continue
            if verdict == "django-failed":
                django_failed += 1
                print("note: Django's SQL fails (seed %d): %s\n  %s" % (
                    seed, ans["expr"], ans["django"][1].split("\n")[0]))
                continue
            ndis += 1
            small = q if args.no_shrink else shrink(runner, q)
            if small is not q:
                _, ans = runner.check(small)
            feats = features(small)
            key = " ".join(sorted(feats)) or "(plain)"
            g = groups.setdefault(key, [0, None])
            g[0] += 1
            show_it = ndis <= args.show if not args.campaign else g[0] == 1
            if show_it:
                report(ndis, ans, dorm_sql(args.dorm, pg_url, ans["expr"]),
                       dorm_sql(args.dorm, lite_url, ans["expr"]), seed,
                       feats, render(q) if small is not q else None)
    took = time.time() - started
    print("=" * 72)
    print("oracle: %d queries on %d seed%s (%s) in %.1fs: %d agree, %d "
          "refused by both, %d where Django's SQL fails, %d disagree; %d "
          "generated queries skipped (a shape where Django is wrong)" % (
              total, len(seeds), "" if len(seeds) == 1 else "s",
              ",".join(str(s) for s, _ in seeds) if len(seeds) <= 12 else
              "fresh", took, agree, refused, django_failed, ndis, skipped))
    if groups:
        print("disagreements by shape (features of the shrunk query):")
        for key, (cnt, _) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
            print("  %5d  %s" % (cnt, key))
    return 1 if ndis else 0


if __name__ == "__main__":
    sys.exit(main())
