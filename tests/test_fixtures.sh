#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/test_fixtures.sh — `dorm dumpdata` and `dorm loaddata` end to end.
#
#   sh tests/test_fixtures.sh DORM_BINARY sqlite|postgresql
#
# The models of tests/data/fixture_models.json hold every field type, a
# self reference, a one_to_one, a key that is not an integer and two
# many_to_many fields.  A fixture of every type (NULLs, unicode, big
# decimals, json, bytes, a row pointing at a later one) is loaded, dumped
# and checked value by value; then the round trip: the dump loads into an
# empty database of the other dialect (postgresql: SQLite -> PostgreSQL ->
# SQLite; sqlite: between two files) and dumps back byte-identical, as
# JSON and as JSON lines.  Then dependency order, the order given, small
# chunks, --output, a fixture Django 3.2 wrote from the same rows (when
# Django is installed), PostgreSQL's sequences after a load, and every
# refusal: the message names the file, object, line, model and field, and
# nothing is written.  PostgreSQL uses DORM_TEST_PG with schemas of its own.
# Prints "ok"/"FAIL" lines; exits 1 on the first failure.
set -u
DORM=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
KIND=$2
MODELS=$(cd "$(dirname "$0")" && pwd)/data/fixture_models.json
W=$(mktemp -d /tmp/dorm-fx.XXXXXX)
S=""
cleanup() {
  [ -n "$S" ] && psql "$DORM_TEST_PG" -qAt -c "DROP SCHEMA IF EXISTS ${S}_p CASCADE; DROP SCHEMA IF EXISTS ${S}_r CASCADE" >/dev/null 2>&1
  rm -rf "$W"
}
trap 'cleanup' EXIT INT TERM
cd "$W"

# P: the database of the KIND under test; E: an empty one to load into
# (of the other dialect for postgresql); R: a third, empty, for refusals
if [ "$KIND" = postgresql ]; then
  [ -n "${DORM_TEST_PG:-}" ] || { echo "FAIL DORM_TEST_PG is not set"; exit 1; }
  S="fx_$$_$(date +%s)"
  psql "$DORM_TEST_PG" -qAt -c "CREATE SCHEMA ${S}_p; CREATE SCHEMA ${S}_r" >/dev/null || exit 1
  P="$DORM_TEST_PG options='-csearch_path=${S}_p'"
  R="$DORM_TEST_PG options='-csearch_path=${S}_r'"
  sqlp() { psql "$P" -qAt -v ON_ERROR_STOP=1 -c "$1"; }
  sqlr() { psql "$R" -qAt -v ON_ERROR_STOP=1 -c "$1"; }
else
  P="sqlite:///$W/p.db"
  R="sqlite:///$W/r.db"
  sqlp() { sqlite3 "$W/p.db" "$1"; }
  sqlr() { sqlite3 "$W/r.db" "$1"; }
fi
S1="sqlite:///$W/s1.db"
S2="sqlite:///$W/s2.db"

n=0
fail() { echo "FAIL [$KIND] $*"; echo "--- last output:"; cat "$W/out" "$W/err" 2>/dev/null | tail -n 30; exit 1; }
ok() { n=$((n + 1)); }
run() {
  want=$1; shift
  "$@" >"$W/out" 2>"$W/err"
  got=$?
  [ "$got" = "$want" ] || fail "exit $got (wanted $want): $*"
  # under build-san a refusal exits 1 as a sanitizer report does
  grep -q "Sanitizer\|runtime error" "$W/err" && fail "sanitizer report: $*"
  ok
}
has() { grep -qF -- "$1" "$W/$2" || fail "'$1' not in $2"; ok; }
eq() { [ "$1" = "$2" ] || fail "got '$1', wanted '$2' ($3)"; ok; }
same() { cmp -s "$1" "$2" || { diff "$1" "$2" | head -n 20; fail "$1 and $2 differ ($3)"; }; ok; }
dorm() { "$DORM" "$@"; }

cp "$MODELS" models.json
run 0 dorm makemigrations
for db in "$P" "$R" "$S1" "$S2"; do run 0 dorm migrate --db "$db"; done

# ---- every field type ---------------------------------------------------
# Entry 1 points at Entry 2 (later in the file) and at Author 2, whose
# object comes after it: foreign key checks wait for the commit.
cat > all.json <<'EOF'
[
{"model": "Tag", "pk": "python", "fields": {}},
{"model": "Entry", "pk": 1, "fields": {"author": 2, "parent": 2, "headline": "child first", "tags": ["python", "c", "zig"], "related": [2]}},
{"model": "Tag", "pk": "c", "fields": {}},
{"model": "Tag", "pk": "zig", "fields": {}},
{"model": "Author", "pk": 1, "fields": {"name": "Zo\u00eb \u00e9 \u2603 \ud83d\ude00", "age": -32768, "rank": -2147483648, "followers": 9223372036854775807, "rating": 0.5, "balance": "-12345678901.2345", "active": false, "bio": "line\nbreak \"q\" \\ tab\t", "born": "1970-01-01", "joined": "2024-05-01T13:45:00.123456Z", "wakes": "07:30:00", "uid": "123e4567-e89b-12d3-a456-426614174000", "prefs": {"b": [1, 2.5, null, true], "a": {"z": "\u2603"}}, "avatar": "AAEC/w=="}},
{"model": "Author", "pk": 2, "fields": {"name": "Nulls", "age": null, "followers": null, "rating": null, "balance": null, "born": null, "joined": null, "wakes": null, "uid": null, "prefs": null, "avatar": null}},
{"model": "Entry", "pk": 2, "fields": {"author": 1, "parent": null, "headline": "parent", "tags": [], "related": []}},
{"model": "Profile", "pk": 7, "fields": {"author": 1, "site": "https://example.org/"}},
{"model": "Author", "pk": 3, "fields": {"name": "", "balance": "99999999999.9999", "joined": "1999-12-31T23:59:59Z", "prefs": "just a string", "avatar": ""}}
]
EOF
run 0 dorm loaddata --db "$P" all.json
has "Installed 9 objects from 1 fixture" out
run 0 dorm dumpdata --db "$P"
cp "$W/out" p.json
# dependency order: Author (Entry points at it) before Entry, though
# Entry is declared first; rows by primary key; one object a line
eq "$(sed -n 1p p.json)" "[" "the array opens on a line of its own"
eq "$(sed -n 2p p.json | cut -c1-40)" '{"model": "Author", "pk": 1, "fields": {' "Author first"
eq "$(grep -c '"model": "Entry"' p.json)" 2 "two entries"
eq "$(grep -n '"model": "Entry"' p.json | head -n 1 | cut -d: -f1)" 5 "Entry after the three authors"
eq "$(tail -n 1 p.json)" "]" "the array closes on a line of its own"
has '"name": "Zoë é ☃ 😀", "age": -32768, "rank": -2147483648, "followers": 9223372036854775807, "rating": 0.5, "balance": "-12345678901.2345", "active": false, "bio": "line\nbreak \"q\" \\ tab\t", "born": "1970-01-01", "joined": "2024-05-01T13:45:00.123456Z", "wakes": "07:30:00", "uid": "123e4567-e89b-12d3-a456-426614174000", "prefs": {"a": {"z": "☃"}, "b": [1, 2.5, null, true]}, "avatar": "AAEC/w=="}},' p.json
has '{"model": "Author", "pk": 2, "fields": {"name": "Nulls", "age": null, "rank": 0, "followers": null, "rating": null, "balance": null, "active": true, "bio": "", "born": null, "joined": null, "wakes": null, "uid": null, "prefs": null, "avatar": null}},' p.json
has '"balance": "99999999999.9999", "active": true, "bio": "", "born": null, "joined": "1999-12-31T23:59:59Z"' p.json
has '"prefs": "just a string", "avatar": ""' p.json
# many_to_many as lists of keys, ascending; a self many_to_many
has '{"model": "Entry", "pk": 1, "fields": {"author": 2, "parent": 2, "headline": "child first", "tags": ["c", "python", "zig"], "related": [2]}},' p.json
has '{"model": "Entry", "pk": 2, "fields": {"author": 1, "parent": null, "headline": "parent", "tags": [], "related": []}},' p.json
has '{"model": "Profile", "pk": 7, "fields": {"author": 1, "site": "https://example.org/"}},' p.json
has '{"model": "Tag", "pk": "zig", "fields": {}}' p.json
eq "$(sqlp 'SELECT COUNT(*) FROM entry_tags')" 3 "the join table's rows"

# ---- the round trip -------------------------------------------------------
if [ "$KIND" = postgresql ]; then
  # SQLite -> PostgreSQL -> SQLite, byte for byte
  run 0 dorm loaddata --db "$S1" all.json
  run 0 dorm dumpdata --db "$S1" --output s1.json
  same p.json s1.json "the same fixture dumped from PostgreSQL and SQLite"
  run 0 dorm loaddata --db "$R" s1.json
  run 0 dorm dumpdata --db "$R" --output r.json
  same s1.json r.json "SQLite's dump loaded into PostgreSQL and dumped back"
  sqlr "DELETE FROM entry_tags; DELETE FROM entry_related; DELETE FROM entry; DELETE FROM profile; DELETE FROM author; DELETE FROM tag" >/dev/null
else
  run 0 dorm loaddata --db "$S1" p.json
  run 0 dorm dumpdata --db "$S1" --output s1.json
  same p.json s1.json "a dump loaded into another file and dumped back"
fi
# JSON lines: the same objects, one a line, no brackets; loaddata finds
# the format by itself
run 0 dorm dumpdata --db "$P" --format jsonl --output p.jsonl
eq "$(wc -l < p.jsonl | tr -d ' ')" 9 "one line per object"
sed -e '1d' -e '$d' -e 's/},$/}/' p.json > expect.jsonl
same expect.jsonl p.jsonl "jsonl holds the array's lines"
run 0 dorm loaddata --db "$S2" p.jsonl
has "Installed 9 objects" out
run 0 dorm dumpdata --db "$S2"
same p.json "$W/out" "the jsonl dump loaded into SQLite and dumped back"

# the models named, in the order given; small chunks page the same rows
run 0 dorm dumpdata --db "$P" Tag author
eq "$(sed -n 2p "$W/out" | cut -c1-30)" '{"model": "Tag", "pk": "c", "f' "the order given"
eq "$(grep -c '"model": "Author"' "$W/out")" 3 "then the authors"
eq "$(grep -c '"model": "Entry"' "$W/out")" 0 "and nothing else"
run 0 dorm dumpdata --db "$P" --chunk 1
same p.json "$W/out" "a dump one row per query"
run 0 dorm dumpdata --db "$P" --chunk 2 --format jsonl
same p.jsonl "$W/out" "a jsonl dump two rows per query"
run 0 dorm dumpdata --db "$R" Tag
eq "$(cat "$W/out")" "[]" "an empty table"
# Django's "app.model" names load too
printf '[{"model": "blog.tag", "pk": "django", "fields": {}}]\n' > app.json
run 0 dorm loaddata --db "$S2" app.json
eq "$(sqlite3 "$W/s2.db" "SELECT label FROM tag WHERE label = 'django'")" django "app.model"

# ---- a fixture Django wrote ------------------------------------------------
# Django 3.2 (when installed) dumps the rows dorm loaded into S1 through
# models of its own on the same tables; dorm loads that file (its
# "fx.author" names, its millisecond date-times, its indentation) into an
# empty file and dumps what dorm dumped, but for the microseconds Django
# drops.
if [ "$KIND" = sqlite ] && /usr/bin/python3 -c 'import django' 2>/dev/null; then
  mkdir fx && : > fx/__init__.py
  cat > fx/models.py <<'EOF'
from django.db import models
class Author(models.Model):
    name = models.CharField(max_length=100)
    age = models.SmallIntegerField(null=True)
    rank = models.IntegerField(default=0)
    followers = models.BigIntegerField(null=True)
    rating = models.FloatField(null=True)
    balance = models.DecimalField(max_digits=15, decimal_places=4, null=True)
    active = models.BooleanField(default=True)
    bio = models.TextField(default="")
    born = models.DateField(null=True)
    joined = models.DateTimeField(null=True)
    wakes = models.TimeField(null=True)
    uid = models.UUIDField(null=True)
    prefs = models.JSONField(null=True)
    avatar = models.BinaryField(null=True)
    class Meta:
        db_table = "author"
class Tag(models.Model):
    label = models.CharField(max_length=30, primary_key=True)
    class Meta:
        db_table = "tag"
        ordering = ["-label"]
class Entry(models.Model):
    id = models.BigAutoField(primary_key=True)
    author = models.ForeignKey(Author, models.CASCADE, related_name="entries")
    parent = models.ForeignKey("self", models.DO_NOTHING, null=True, related_name="children")
    headline = models.CharField(max_length=255)
    tags = models.ManyToManyField(Tag, db_table="entry_tags")
    related = models.ManyToManyField("self", db_table="entry_related", symmetrical=False)
    class Meta:
        db_table = "entry"
class Profile(models.Model):
    id = models.BigAutoField(primary_key=True)
    author = models.OneToOneField(Author, models.CASCADE)
    site = models.CharField(max_length=200, default="")
    class Meta:
        db_table = "profile"
EOF
  /usr/bin/python3 - "$W/s1.db" "$W/django.json" <<'EOF' >"$W/out" 2>"$W/err" || fail "Django could not dump the rows"
import sys
sys.path.insert(0, ".")
import django
from django.conf import settings
settings.configure(INSTALLED_APPS=["fx"], USE_TZ=True,
                   DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": sys.argv[1]}})
django.setup()
from django.core.management import call_command
call_command("dumpdata", "fx", output=sys.argv[2], indent=2)
EOF
  has '"model": "fx.author"' django.json
  run 0 dorm migrate --db "sqlite:///$W/dj.db"
  run 0 dorm loaddata --db "sqlite:///$W/dj.db" django.json
  has "Installed 9 objects" out
  run 0 dorm dumpdata --db "sqlite:///$W/dj.db"
  sed "s/13:45:00\\.123456Z/13:45:00.123000Z/" p.json > expect.json
  same expect.json "$W/out" "Django's fixture loaded by dorm and dumped back"
fi

# ---- sequences; PostgreSQL's snapshot -------------------------------------
if [ "$KIND" = postgresql ]; then
  # the next key after a load is past the loaded ones (Django's setval)
  eq "$(sqlp "INSERT INTO profile (author_id, site) VALUES (2, 'next') RETURNING id")" 8 "profile's sequence after the load"
  eq "$(sqlp "INSERT INTO entry (author_id, headline) VALUES (1, 'next') RETURNING id")" 3 "entry's sequence after the load"
  # one snapshot: a row committed while the dump is stalled mid-table (a
  # full pipe) is not in it; 3,000 tags read 10 a query are 130 kB,
  # more than a pipe holds
  sqlp "INSERT INTO tag (label) SELECT 't' || lpad(i::text, 5, '0') FROM generate_series(1, 3000) AS i" >/dev/null
  mkfifo "$W/fifo"
  "$DORM" dumpdata --db "$P" --chunk 10 --format jsonl Tag >"$W/fifo" 2>"$W/err" &
  dump_pid=$!
  exec 3<"$W/fifo"
  dd bs=100 count=1 <&3 >"$W/out" 2>/dev/null   # the dump has begun
  sqlp "INSERT INTO tag (label) VALUES ('zzzz')" >/dev/null
  cat <&3 >>"$W/out"
  exec 3<&-
  wait "$dump_pid" || fail "dumpdata through a pipe"
  eq "$(wc -l < "$W/out" | tr -d ' ')" 3003 "the dump holds the tags of its snapshot"
  eq "$(grep -c zzzz "$W/out")" 0 "a row committed during the dump is not in it"
  sqlp "DELETE FROM tag WHERE label LIKE 't0%' OR label = 'zzzz'" >/dev/null
fi

# ---- refusals: nothing written --------------------------------------------
# refuse "FILE ..." EXPECTED...: exit 1, each EXPECTED in the message,
# and no row in any table of R
refuse() {
  f=$1; shift
  # shellcheck disable=SC2086 # the files are a list
  run 1 dorm loaddata --db "$R" $f
  for want in "$@"; do has "$want" err; done
  has "(nothing was loaded)" err
  eq "$(sqlr 'SELECT (SELECT COUNT(*) FROM author) + (SELECT COUNT(*) FROM tag) + (SELECT COUNT(*) FROM entry) + (SELECT COUNT(*) FROM entry_tags)')" 0 "nothing written after: $*"
}
good='{"model": "Tag", "pk": "ok", "fields": {}}'
printf '%s\n{"model": "Nope", "pk": 1, "fields": {}}\n' "$good" > bad1.jsonl
refuse bad1.jsonl "bad1.jsonl: object 2 (line 2): unknown model 'Nope'"
printf '[%s,\n  {"model": "Author", "pk": 1,\n   "fields": {"name": "x", "agee": 3}}]\n' "$good" > bad2.json
refuse bad2.json "bad2.json: object 2 (line 2): model 'Author': unknown field 'agee'"
printf '%s\n\n{"model": "Author", "pk": 1, "fields": {"name": 5}}\n' "$good" > bad3.jsonl
refuse bad3.jsonl "bad3.jsonl: object 2 (line 3): model 'Author', field 'name': expected a string"
printf '%s\n{"model": "Author", "fields": {"name": "x"}}\n' "$good" > bad4.jsonl
refuse bad4.jsonl "bad4.jsonl: object 2 (line 2): model 'Author': missing pk"
printf '[%s,\n{"model": "Author", "pk": 1, "fields": {"name": "x",}}]\n' "$good" > bad5.json
refuse bad5.json "bad5.json: object 2 (line 2): invalid JSON"
printf '%s\n{"model": "Author", "pk": 1, "fields": {"name": "x"\n' "$good" > bad6.jsonl
refuse bad6.jsonl "bad6.jsonl: object 2 (line 2): invalid JSON"
printf '[%s\n' "$good" > bad7.json
refuse bad7.json "bad7.json: line 2: invalid JSON: the file ends inside the array"
printf '{"model": "Author", "pk": 1, "fields": {"name": "x"}}\n{"model": "Entry", "pk": 1, "fields": {"author": 7, "headline": "h"}}\n' > bad8.jsonl
refuse bad8.jsonl "bad8.jsonl: object 2 (line 2): model 'Entry', field 'author': no 'Author' has pk 7"
printf '{"model": "Author", "pk": 1, "fields": {"name": "x"}}\n{"model": "Entry", "pk": 4, "fields": {"author": 1, "headline": "h", "tags": ["ok", "zz"]}}\n%s\n' "$good" > bad9.jsonl
refuse bad9.jsonl "bad9.jsonl: object 2 (line 2): model 'Entry', field 'tags' (many_to_many): no 'Tag' has pk zz"
printf '%s\n{"model": "Author", "pk": 1, "fields": {"name": "x", "balance": "1.23456"}}\n' "$good" > bad10.jsonl
refuse bad10.jsonl "bad10.jsonl: object 2 (line 2): model 'Author', field 'balance': decimal '1.23456' has more than 4 decimal places"
printf '%s\n{"model": "Author", "pk": 1, "fields": {"name": "x", "avatar": "!!"}}\n' "$good" > bad11.jsonl
refuse bad11.jsonl "object 2 (line 2): model 'Author', field 'avatar': expected base64 text"
printf '%s\n{"model": "Author", "pk": 1, "fields": {"name": "x", "age": 40000}}\n' "$good" > bad12.jsonl
refuse bad12.jsonl "object 2 (line 2): model 'Author', field 'age': the integer is out of the field's range"
printf '%s\n{"model": "Author", "pk": 1, "fields": {"name": "x", "joined": "yesterday"}}\n' "$good" > bad13.jsonl
refuse bad13.jsonl "object 2 (line 2): model 'Author', field 'joined': 'yesterday' is not an ISO 8601 date-time"
printf '%s\n{"model": "Author", "pk": 1, "fields": {"name": null}}\n' "$good" > bad14.jsonl
refuse bad14.jsonl "object 2 (line 2): model 'Author', field 'name': null, but the field is not nullable"
printf '%s\n{"model": "Author", "pk": "one", "fields": {"name": "x"}}\n' "$good" > bad15.jsonl
refuse bad15.jsonl "object 2 (line 2): model 'Author', pk: expected an integer"
printf '%s\n{"model": "Entry", "pk": 1, "fields": {"author": 1, "headline": "h", "tags": "ok"}}\n' "$good" > bad16.jsonl
refuse bad16.jsonl "object 2 (line 2): model 'Entry', field 'tags': expected a list of primary keys"
printf '%s\n[1]\n' "$good" > bad17.jsonl
refuse bad17.jsonl "object 2 (line 2): expected an object"
printf '%s\n{"model": "Author", "pk": 1, "fields": {"age": 3}}\n' "$good" > bad19.jsonl
refuse bad19.jsonl "object 2 (line 2): model 'Author': missing field 'name' (it is not nullable and has no default)"
# a duplicate key: the database refuses the chunk holding it
printf '%s\n{"model": "Tag", "pk": "ok", "fields": {}}\n' "$good" > bad18.jsonl
refuse bad18.jsonl "bad18.jsonl: objects 1-2 (lines 1-2), model 'Tag':"
# a good file and a bad one: neither loads
refuse "p.json bad1.jsonl" "bad1.jsonl: object 2 (line 2)"
refuse "p.json bad17.jsonl" "bad17.jsonl: object 2 (line 2)"
# a key the first file loaded, again in the second
refuse "p.json bad8.jsonl" "bad8.jsonl: object 1 (line 1), model 'Author':"
run 1 dorm loaddata --db "$R" missing.json
has "missing.json: No such file or directory" err

# ---- usage ----------------------------------------------------------------
run 2 dorm loaddata --db "$R"
has "dorm loaddata: which fixture files?" err
run 2 dorm dumpdata --format xml
has "expected json or jsonl" err
run 1 dorm dumpdata --db "$P" Nope
has "unknown model 'Nope'" err
run 1 dorm dumpdata --db "sqlite:///$W/none.db"
has "does not exist" err
[ -e "$W/none.db" ] && fail "dumpdata created the database"
run 0 dorm dumpdata --help
has "usage: dorm dumpdata" out
run 0 dorm loaddata --help
has "usage: dorm loaddata" out

echo "ok [$KIND] test_fixtures.sh: $n checks"
