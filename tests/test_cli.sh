#!/bin/sh
# SPDX-License-Identifier: MIT
# tests/test_cli.sh — the walk of a real project through the dorm binary.
#
#   sh tests/test_cli.sh DORM_BINARY sqlite|postgresql
#
# Initial models; migrate; add a nullable field, a field with a default,
# an index, a model with a foreign key; rename a field; alter a type; drop a
# field — each step makemigrations, sqlmigrate (both dialects), migrate,
# showmigrations, with rows inserted between steps checked after each.
# Then "No changes detected", inspectdb round-tripping through
# makemigrations --check, migrate zero and forward again, a failing
# migration that leaves everything untouched, two migrates at once, a
# history with two leaves refused, every field type read back by inspectdb
# as the migrations made it,
# malformed migration files and refused names, --help and usage errors.
# Last, nested Q() and F() arithmetic in `dorm query` on a database of
# their own, each answer the one Django 3.2 gives on the same rows.
# PostgreSQL uses DORM_TEST_PG with a schema of its own (search_path).
# Prints "ok"/"FAIL" lines; exits 1 on the first failure.
set -u
DORM=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
KIND=$2
VERSION_H=$(cd "$(dirname "$0")/.." && pwd)/include/dorm/version.h
W=$(mktemp -d /tmp/dorm-cli.XXXXXX)
trap 'cleanup' EXIT INT TERM
cd "$W"

# DB: the walk's database; DB2: a second, empty one (every field type)
if [ "$KIND" = postgresql ]; then
  [ -n "${DORM_TEST_PG:-}" ] || { echo "FAIL DORM_TEST_PG is not set"; exit 1; }
  SCHEMA="walk_$$_$(date +%s)"
  psql "$DORM_TEST_PG" -qAt -c "CREATE SCHEMA $SCHEMA; CREATE SCHEMA ${SCHEMA}_2" >/dev/null || exit 1
  DB="$DORM_TEST_PG options='-csearch_path=$SCHEMA'"
  DB2="$DORM_TEST_PG options='-csearch_path=${SCHEMA}_2'"
  sql() { psql "$DB" -qAt -v ON_ERROR_STOP=1 -c "$1"; }
  sql2() { psql "$DB2" -qAt -v ON_ERROR_STOP=1 -c "$1"; }
else
  DB="sqlite:///$W/walk.db"
  DB2="sqlite:///$W/types.db"
  sql() { sqlite3 "$W/walk.db" "$1"; }
  sql2() { sqlite3 "$W/types.db" "$1"; }
fi
cleanup() {
  [ "$KIND" = postgresql ] && psql "$DORM_TEST_PG" -qAt -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE; DROP SCHEMA IF EXISTS ${SCHEMA}_2 CASCADE" >/dev/null 2>&1
  rm -rf "$W"
}

n=0
fail() { echo "FAIL [$KIND] $*"; echo "--- last output:"; cat "$W/out" "$W/err" 2>/dev/null | tail -n 30; exit 1; }
ok() { n=$((n + 1)); }
# run EXPECTED_STATUS command...: output in $W/out, $W/err
run() {
  want=$1; shift
  "$@" >"$W/out" 2>"$W/err"
  got=$?
  [ "$got" = "$want" ] || fail "exit $got (wanted $want): $*"
  ok
}
has() { grep -q -- "$1" "$W/$2" || fail "'$1' not in $2"; ok; }
hasnt() { grep -q -- "$1" "$W/$2" && fail "'$1' unexpectedly in $2"; ok; }
eq() { [ "$1" = "$2" ] || fail "got '$1', wanted '$2' ($3)"; ok; }

models() { cat > models.json; }
dorm() { "$DORM" "$@"; }

# One step: makemigrations, sqlmigrate in both dialects (forwards and
# backwards), migrate, showmigrations.  $1: the migration's name prefix.
step() {
  run 0 dorm makemigrations
  has "$1" out
  name=$(ls migrations | grep "^$1" | sed 's/\.json$//')
  [ -n "$name" ] || fail "no migration $1"
  run 0 dorm sqlmigrate --dialect sqlite "$name"
  has "BEGIN;" out
  run 0 dorm sqlmigrate --dialect postgresql "$name"
  run 0 dorm sqlmigrate --dialect postgresql --backwards "$name"
  run 0 dorm sqlmigrate --dialect sqlite --backwards "$name"
  run 0 dorm migrate --db "$DB"
  has "Applying $name... OK" err
  run 0 dorm showmigrations --db "$DB"
  has "\[X\] $name" out
  hasnt "\[ \]" out
}

count() { dorm query --db "$DB" "$1.count()"; }

# ---- 1. initial models -----------------------------------------------------
models <<'EOF'
{"models": [
  {"name": "Author", "fields": [
    {"name": "name", "type": "varchar", "max_length": 100},
    {"name": "email", "type": "varchar", "max_length": 254, "unique": true}]}
]}
EOF
run 0 dorm showmigrations --db "$DB"
has "(no migrations)" out
step 0001_initial
sql "INSERT INTO author (name, email) VALUES ('Ann', 'ann@x.org'), ('Bob', 'bob@x.org')"
eq "$(count Author)" 2 "rows after the initial migration"

# ---- 2. a nullable field -------------------------------------------------------
models <<'EOF'
{"models": [
  {"name": "Author", "fields": [
    {"name": "name", "type": "varchar", "max_length": 100},
    {"name": "email", "type": "varchar", "max_length": 254, "unique": true},
    {"name": "age", "type": "integer", "null": true}]}
]}
EOF
step 0002_author_age
sql "UPDATE author SET age = 30 WHERE name = 'Ann'"
eq "$(count Author)" 2 "rows after add_field"

# ---- 3. a field with a default (a rebuild on SQLite) ------------------------------
models <<'EOF'
{"models": [
  {"name": "Author", "fields": [
    {"name": "name", "type": "varchar", "max_length": 100},
    {"name": "email", "type": "varchar", "max_length": 254, "unique": true},
    {"name": "age", "type": "integer", "null": true},
    {"name": "bio", "type": "text", "default": "none yet"}]}
]}
EOF
step 0003_author_bio
eq "$(dorm query --db "$DB" 'Author.filter(bio="none yet").count()')" 2 "default filled the rows"
eq "$(dorm query --db "$DB" 'Author.filter(age=30).count()')" 1 "age kept through the rebuild"
eq "$(dorm query --db "$DB" --json 'Author.filter(age=12345).first()')" null "first() of no row is null"
eq "$(dorm query --db "$DB" 'Author.filter(age=12345).first()')" None "first() of no row is None"

# ---- 4. an index -------------------------------------------------------------------
models <<'EOF'
{"models": [
  {"name": "Author", "fields": [
    {"name": "name", "type": "varchar", "max_length": 100},
    {"name": "email", "type": "varchar", "max_length": 254, "unique": true},
    {"name": "age", "type": "integer", "null": true},
    {"name": "bio", "type": "text", "default": "none yet"}],
   "indexes": [{"fields": ["name", "age"]}]}
]}
EOF
step 0004_author_name_age

# ---- 5. a model with a foreign key ---------------------------------------------------
models <<'EOF'
{"models": [
  {"name": "Author", "fields": [
    {"name": "name", "type": "varchar", "max_length": 100},
    {"name": "email", "type": "varchar", "max_length": 254, "unique": true},
    {"name": "age", "type": "integer", "null": true},
    {"name": "bio", "type": "text", "default": "none yet"}],
   "indexes": [{"fields": ["name", "age"]}]},
  {"name": "Book", "fields": [
    {"name": "title", "type": "varchar", "max_length": 200},
    {"name": "author", "type": "foreign_key", "to": "Author", "on_delete": "cascade"},
    {"name": "tags", "type": "many_to_many", "to": "Tag"}]},
  {"name": "Tag", "fields": [
    {"name": "label", "type": "varchar", "max_length": 30, "unique": true}]}
]}
EOF
step 0005_tag_book
sql "INSERT INTO book (title, author_id) SELECT 'Ann''s book', id FROM author WHERE name = 'Ann'"
eq "$(count Book)" 1 "a book"
sql "INSERT INTO tag (label) VALUES ('poetry'), ('prose')"
sql "INSERT INTO book_tags (book_id, tag_id) SELECT b.id, t.id FROM book b, tag t WHERE t.label = 'poetry'"
eq "$(dorm query --db "$DB" 'Book.filter(tags__label="poetry").count()')" 1 "a tagged book"

# ---- 6. rename a field (asked for explicitly) --------------------------------------------
sed -e 's/"name", "type": "varchar", "max_length": 100/"full_name", "type": "varchar", "max_length": 100/' \
    -e 's/"fields": \["name", "age"\]/"fields": ["full_name", "age"]/' models.json > m2 && mv m2 models.json
run 0 dorm makemigrations --rename Author.name=full_name --name rename_author_name
has "Rename field name on Author to full_name" out
run 0 dorm sqlmigrate --dialect postgresql 0006
has 'RENAME COLUMN "name" TO "full_name"' out
run 0 dorm sqlmigrate --dialect sqlite 0006
run 0 dorm migrate --db "$DB"
run 0 dorm showmigrations --db "$DB"
has "\[X\] 0006_rename_author_name" out
eq "$(dorm query --db "$DB" 'Author.filter(full_name="Ann").count()')" 1 "renamed column kept its data"
eq "$(dorm query --db "$DB" 'Book.filter(author__full_name="Ann").count()')" 1 "foreign key kept"

# ---- 7. alter a type ----------------------------------------------------------------------
sed -e 's/"name": "age", "type": "integer"/"name": "age", "type": "bigint"/' models.json > m2 && mv m2 models.json
step 0007_alter_author_age
eq "$(dorm query --db "$DB" 'Author.filter(age__gte=30).count()')" 1 "altered column kept its data"
eq "$(count Book)" 1 "book kept through the rebuild of its target"

# ---- 8. drop a field -------------------------------------------------------------------------
sed -e 's/,\n* *{"name": "bio", "type": "text", "default": "none yet"}//' models.json > m2 && mv m2 models.json
python3 - <<'EOF' 2>/dev/null || sed -i '/"bio"/d; s/"null": true},$/"null": true}],/' models.json
import json
m = json.load(open("models.json"))
m["models"][0]["fields"] = [f for f in m["models"][0]["fields"] if f["name"] != "bio"]
json.dump(m, open("models.json", "w"), indent=1)
EOF
step 0008_remove_author_bio
eq "$(count Author)" 2 "rows after remove_field"
eq "$(count Book)" 1 "book after remove_field"
run 0 dorm query --db "$DB" --json 'Author.filter(email="ann@x.org").values("full_name", "age")'
has '"full_name": "Ann"' out
has '"age": 30' out
run 0 dorm query --db "$DB" 'Author.order_by("email")'
has "Bob" out
if [ "$KIND" = sqlite ]; then
  eq "$(sql 'PRAGMA foreign_key_check')" "" "foreign_key_check after the walk"
fi

# ---- no changes, inspectdb round trip -------------------------------------------------------
run 0 dorm makemigrations
has "No changes detected" out
run 0 dorm makemigrations --check
run 0 dorm inspectdb --db "$DB"
# the join table reads back as Book's many_to_many field, not a model
has '"type": "many_to_many"' out
hasnt '"BookTags"' out
mkdir rt && cp out rt/models.json && cp -r migrations rt/
(cd rt && "$DORM" makemigrations --check >"$W/out" 2>"$W/err"); st=$?
eq "$st" 0 "inspectdb output accepted by makemigrations --check"
has "No changes detected" out

# ---- zero and forward again ----------------------------------------------------------------------
run 0 dorm migrate --db "$DB" zero
has "Unapplying 0001_initial... OK" err
run 0 dorm showmigrations --db "$DB"
hasnt "\[X\]" out
run 0 dorm migrate --db "$DB" --plan
has "0008_remove_author_bio" out
run 0 dorm migrate --db "$DB"
run 0 dorm showmigrations --db "$DB"
hasnt "\[ \]" out
eq "$(count Author)" 0 "empty after zero and forward"
run 0 dorm migrate --db "$DB"
has "No migrations to apply" out
# backwards to a named target, forwards again
run 0 dorm migrate --db "$DB" 0005
has "Unapplying 0006_rename_author_name... OK" err
run 0 dorm showmigrations --db "$DB"
has "\[ \] 0006" out
has "\[X\] 0005" out
run 0 dorm migrate --db "$DB"

# ---- a failing migration changes nothing -------------------------------------------------------------
cat > migrations/0009_broken.json <<'EOF'
{"name": "0009_broken", "dependencies": ["0008_remove_author_bio"],
 "operations": [
   {"op": "add_field", "model": "Author", "field": {"name": "nick", "type": "text", "null": true}},
   {"op": "run_sql", "sql": "INSERT INTO no_such_table VALUES (1)", "reverse_sql": []}
 ]}
EOF
run 1 dorm migrate --db "$DB"
has "0009_broken failed at operation 2" err
has "nothing of it was applied" err
run 0 dorm showmigrations --db "$DB"
has "\[ \] 0009_broken" out
run 1 dorm query --db "$DB" 'Author.filter(nick=None).count()' --models /dev/null
run 0 dorm inspectdb --db "$DB"
hasnt '"nick"' out
rm migrations/0009_broken.json

# ---- malformed files and refused names, through the command ------------------------------------------
mkdir bad
printf '{"name": "0001_x", "operations": [\n' > bad/0001_x.json
run 1 dorm migrate --db "$DB" --migrations bad
has "bad/0001_x.json" err
has "malformed JSON" err
run 1 dorm makemigrations --migrations bad
has "bad/0001_x.json" err
printf '{"name": "0001_x", "dependencies": [], "operations": [{"op": "add_colum", "model": "A"}]}\n' > bad/0001_x.json
run 1 dorm showmigrations --db "$DB" --migrations bad
has "bad/0001_x.json:1:.*operation 1 (add_colum): unknown operation 'add_colum'" err
printf '{"name": "0001_x", "dependencies": ["0000_nope"], "operations": []}\n' > bad/0001_x.json
run 1 dorm migrate --db "$DB" --migrations bad --plan
has "unknown dependency '0000_nope'" err
printf '{"name": "0001_x", "dependencies": ["0002_y"], "operations": []}\n' > bad/0001_x.json
printf '{"name": "0002_y", "dependencies": ["0001_x"], "operations": []}\n' > bad/0002_y.json
run 1 dorm migrate --db "$DB" --migrations bad
has "dependency cycle" err
rm bad/0002_y.json
printf '{"name": "0001_x", "dependencies": [], "operations": [{"op": "create_model", "name": "A\\"; DROP TABLE author; --", "fields": []}]}\n' > bad/0001_x.json
run 1 dorm migrate --db "$DB" --migrations bad
has "invalid name" err
printf '{"models": [{"name": "Author", "fields": [{"name": "x\\"; DROP TABLE author; --", "type": "text"}]}]}\n' > bad/models.json
run 1 dorm makemigrations --models bad/models.json --migrations bad/none
has "bad/models.json" err
run 1 dorm sqlmigrate --dialect sqlite 0042
has "no migration named '0042'" err
eq "$(count Author)" 0 "nothing ran for the refused files"

# ---- two migrates at once apply each migration once ------------------------------------------------------
run 0 dorm migrate --db "$DB" zero
"$DORM" migrate --db "$DB" >"$W/a.out" 2>"$W/a.err" & pa=$!
"$DORM" migrate --db "$DB" >"$W/b.out" 2>"$W/b.err" & pb=$!
wait $pa; sa=$?
wait $pb; sb=$?
[ "$sa" = 0 ] && [ "$sb" = 0 ] || { cat "$W/a.err" "$W/b.err"; fail "concurrent migrates: $sa $sb"; }
ok
eq "$(sql 'SELECT COUNT(*) FROM dorm_migrations')" 8 "each migration recorded once"

# ---- two leaves: migrate refuses, names both, applies nothing -------------------------------------------
mkdir leaves && cp migrations/*.json leaves/
cat > leaves/0009_nick.json <<'EOF'
{"name": "0009_nick", "dependencies": ["0008_remove_author_bio"],
 "operations": [{"op": "add_field", "model": "Author", "field": {"name": "nick", "type": "text", "null": true}}]}
EOF
cat > leaves/0009_motto.json <<'EOF'
{"name": "0009_motto", "dependencies": ["0008_remove_author_bio"],
 "operations": [{"op": "add_field", "model": "Author", "field": {"name": "motto", "type": "text", "null": true}}]}
EOF
run 1 dorm migrate --db "$DB" --migrations leaves
has "conflicting migrations: 0009_motto and 0009_nick both end the history" err
has "nothing was applied" err
run 1 dorm migrate --db "$DB" --migrations leaves 0009_nick
has "0009_motto and 0009_nick" err
run 1 dorm migrate --db "$DB" --migrations leaves --plan
run 0 dorm showmigrations --db "$DB" --migrations leaves
has "\[ \] 0009_nick" out
has "\[ \] 0009_motto" out
run 0 dorm inspectdb --db "$DB"
hasnt '"nick"' out
hasnt '"motto"' out
run 1 dorm makemigrations --migrations leaves
has "0009_motto and 0009_nick" err
# on an empty database: not even the first migration, nor dorm_migrations
run 1 dorm migrate --db "$DB2" --migrations leaves
has "nothing was applied" err
if [ "$KIND" = sqlite ]; then
  [ -e "$W/types.db" ] && fail "a refused migrate created the database"
  ok
else
  run 0 dorm inspectdb --db "$DB2"
  has '"models": \[\]' out
fi
cat > leaves/0010_merge.json <<'EOF'
{"name": "0010_merge", "dependencies": ["0009_nick", "0009_motto"], "operations": []}
EOF
run 0 dorm migrate --db "$DB" --migrations leaves --plan
has "0009_nick" out

# ---- every field type: inspectdb reads back what migrate made ------------------------------------------
# A database dorm migrated, read by inspectdb, is what the migrations say:
# makemigrations --check against them detects no change.  Decimals keep
# max_digits and decimal_places (on SQLite in the declared type), a
# bigauto key stays one, a single-field model index and a db_index are one
# index, a unique single-field index stays a unique index, and two
# relations to one model get reverse names of their own.
mkdir types && cd types
models <<'EOF'
{"models": [
  {"name": "Author", "fields": [
    {"name": "name", "type": "varchar", "max_length": 100, "db_index": true},
    {"name": "email", "type": "varchar", "max_length": 254, "unique": true},
    {"name": "age", "type": "smallint", "null": true},
    {"name": "rank", "type": "integer", "default": 0},
    {"name": "followers", "type": "bigint", "default": 0},
    {"name": "rating", "type": "float", "null": true},
    {"name": "balance", "type": "decimal", "max_digits": 10, "decimal_places": 2, "default": "0.00"},
    {"name": "active", "type": "boolean", "default": true},
    {"name": "bio", "type": "text", "default": ""},
    {"name": "born", "type": "date", "null": true},
    {"name": "joined", "type": "datetime", "null": true},
    {"name": "wakes", "type": "time", "null": true},
    {"name": "uid", "type": "uuid", "null": true, "unique": true},
    {"name": "prefs", "type": "json", "null": true},
    {"name": "avatar", "type": "binary", "null": true},
    {"name": "code", "type": "varchar", "max_length": 8, "null": true},
    {"name": "country", "type": "varchar", "max_length": 2, "default": "US",
     "choices": [["US", "United States"], ["GB", "United Kingdom"]]}],
   "indexes": [{"fields": ["age"]}, {"fields": ["name", "age"]},
               {"name": "author_born_ix", "fields": ["born"]},
               {"fields": ["code"], "unique": true}],
   "unique_together": [["name", "born"]]},
  {"name": "Profile", "fields": [
    {"name": "id", "type": "bigauto", "primary_key": true},
    {"name": "author", "type": "one_to_one", "to": "Author", "on_delete": "cascade"},
    {"name": "site", "type": "varchar", "max_length": 200, "default": ""}]},
  {"name": "Tag", "fields": [
    {"name": "label", "type": "varchar", "max_length": 30, "primary_key": true}]},
  {"name": "Entry", "fields": [
    {"name": "id", "type": "bigauto", "primary_key": true},
    {"name": "author", "type": "foreign_key", "to": "Author", "on_delete": "cascade", "related_name": "entries"},
    {"name": "editor", "type": "foreign_key", "to": "Author", "on_delete": "set_null", "null": true, "related_name": "edited"},
    {"name": "parent", "type": "foreign_key", "to": "Entry", "on_delete": "do_nothing", "null": true, "related_name": "children"},
    {"name": "profile", "type": "foreign_key", "to": "Profile", "on_delete": "restrict", "null": true},
    {"name": "headline", "type": "varchar", "max_length": 255},
    {"name": "price", "type": "decimal", "max_digits": 6, "decimal_places": 3, "null": true},
    {"name": "status", "type": "varchar", "max_length": 10, "default": "draft",
     "choices": ["draft", "published"]},
    {"name": "score", "type": "integer", "db_index": true, "default": 0},
    {"name": "tags", "type": "many_to_many", "to": "Tag"},
    {"name": "related", "type": "many_to_many", "to": "Entry"}],
   "indexes": [{"fields": ["headline"]}, {"fields": ["status", "score"]}],
   "unique_together": [["author", "headline"]]}
]}
EOF
run 0 dorm makemigrations
run 0 dorm migrate --db "$DB2"
run 0 dorm inspectdb --db "$DB2"
hasnt "warning" err
has '"max_digits": 10' out
has '"decimal_places": 3' out
has '"type": "bigauto"' out
has '"related_name": "entry_author_set"' out
mkdir back && cp "$W/out" back/models.json && cp -r migrations back/
(cd back && "$DORM" makemigrations --check >"$W/out" 2>"$W/err"); st=$?
eq "$st" 0 "inspectdb output of every field type accepted by makemigrations --check"
has "No changes detected" out
# the index over age, whichever way inspectdb spells it, is the model
# index the migrations made: taking it out of the models drops it
python3 - back/models.json <<'EOF' || fail "could not edit back/models.json"
import json, sys
m = json.load(open(sys.argv[1]))
for mod in m["models"]:
    if mod["name"] == "Author":
        for f in mod["fields"]:
            if f["name"] == "age": f.pop("db_index", None)
        mod["indexes"] = [x for x in mod.get("indexes", []) if x.get("fields") != ["age"]]
json.dump(m, open(sys.argv[1], "w"), indent=1)
EOF
(cd back && "$DORM" makemigrations --dry-run >"$W/out" 2>"$W/err"); st=$?
eq "$st" 0 "makemigrations after dropping the age index"
has '"op": "remove_index", "model": "Author", "index": {"fields": \["age"\]}' out
# a decimal declared without precision (as dorm wrote it on SQLite before):
# read with a guessed precision and a warning, still valid models
if [ "$KIND" = sqlite ]; then
  sql2 'CREATE TABLE "legacy" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "amount" decimal NOT NULL)'
else
  sql2 'CREATE TABLE "legacy" ("id" integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "amount" numeric NOT NULL)'
fi
run 0 dorm inspectdb --db "$DB2"
has "legacy.amount: a decimal column without precision" err
hasnt "does not map onto valid models" err
has '"decimal_places": 5' out
cd "$W"

# ---- --fake, --help, usage errors ------------------------------------------------------------------------
run 0 dorm migrate --db "$DB" 0007 --fake
has "FAKED" err
run 0 dorm showmigrations --db "$DB"
has "\[ \] 0008" out
run 0 dorm migrate --db "$DB" --fake
for c in makemigrations migrate sqlmigrate showmigrations inspectdb query; do
  run 0 dorm $c --help
  has "usage: dorm $c" out
  run 2 dorm $c --no-such-option
done
run 2 dorm
run 2 dorm frobnicate
run 0 dorm --version
# the library's version (dorm_version()), as include/dorm/version.h says it
v=$(sed -n 's/^#define DORM_VERSION_\(MAJOR\|MINOR\|PATCH\) //p' "$VERSION_H" | paste -sd.)
eq "$(cat "$W/out")" "dorm $v" "dorm --version"
run 2 dorm makemigrations --name 'bad name'
# one option parser for every command (tools/cli_opts.c): --opt=value,
# repeatable options, flags take no value, numbers are digits in range,
# and every mistake exits 2 naming the command, with its usage line
mkdir -p opts && cat > opts/models.json <<'EOF'
{"models": [{"name": "Pen", "fields": [{"name": "ink", "type": "varchar", "max_length": 9},
                                       {"name": "nib", "type": "integer"}]}]}
EOF
(cd opts && "$DORM" makemigrations --models=models.json --migrations=m >"$W/out" 2>"$W/err") || fail "makemigrations --opt=value"
has "m/0001_initial.json" out
sed -i 's/"ink"/"colour"/; s/"nib"/"tip"/' opts/models.json
(cd opts && "$DORM" makemigrations --migrations m --dry-run --rename Pen.ink=colour --rename=Pen.nib=tip >"$W/out" 2>"$W/err") || fail "two --rename"
has "Rename field ink on Pen to colour" out
has "Rename field nib on Pen to tip" out
run 2 dorm migrate --plan=1
has "dorm migrate: --plan takes no value" err
has "usage: dorm migrate" err
run 2 dorm migrate --db
has "dorm migrate: --db needs a value" err
run 2 dorm migrate 0001 0002
has "dorm migrate: one target only" err
run 2 dorm sqlmigrate --backwards
has "dorm sqlmigrate: which migration?" err
run 2 dorm query --sql -x
has "dorm query: unknown option '-x'" err
run 2 dorm inspectdb extra
has "dorm inspectdb: unexpected argument 'extra'" err
run 2 dorm makemigrations --rename Pen.ink
has "dorm makemigrations: --rename 'Pen.ink': expected MODEL.OLD=NEW" err
run 2 dorm serve --port=65536
has "dorm serve: --port '65536': expected a whole number from 0 to 65535" err
has "usage: dorm serve" err
run 0 dorm serve --help
has "--max-connections N  *connections at once" out
run 0 dorm makemigrations -h
has "--rename-model OLD=NEW  *the model OLD was renamed NEW (repeatable)" out
run 1 dorm showmigrations --db="$DB" --migrations=nope
has "migrations folder 'nope' does not exist" err
run 0 dorm query --sql 'Author.filter(Q(age__gte=18) | ~Q(full_name__startswith="A")).order_by("-age")[0:10]'
has "LIMIT" out
run 1 dorm query --sql 'Author.filter(agee=1)'
has "unknown field 'agee'" err

# hostile input: a slice bound is range-checked before i+1 is computed
run 1 dorm query --sql 'Author[9223372036854775807]'
has "slice index 9223372036854775807 is too large" err
run 1 dorm query --sql 'Author[2:99999999999999999999]'
has "too large" err
run 0 dorm query --sql 'Author[9223372036854775806]'
has "LIMIT" out

# secrets: no error path that takes a URL prints its password (--db,
# DATABASE_URL, the replicas, dorm serve at startup); numbers are checked
# whole (pool_size=000000000000005junk is not 5)
for u in 'postgresql://app:hunter2@[::1/app' \
         'postgresql:/app:hunter2@db.example/app?sslmode=require' \
         'postgres://app:hun%74er2@db/app?nosuch=1' \
         'host=db password=hunter2 nosuchkeyword=1' \
         'mysql://app:hunter2@db/app' 'sqlite://app:hunter2@db/x.db' \
         'postgresql://app:hunter2@db/app?pool_size=000000000000005junk'; do
  run 1 dorm query --db "$u" 'Author.count()'
  hasnt hunter2 err
  hasnt 'hun%74er2' err
  run 1 env DATABASE_URL="$u" "$DORM" migrate
  hasnt hunter2 err
  hasnt 'hun%74er2' err
  run 1 dorm serve --db "$u" --port 0
  hasnt hunter2 err
  hasnt 'hun%74er2' err
done
run 1 dorm query --db 'postgresql://db/app?pool_size=000000000000005junk' 'Author.count()'
has "pool_size=000000000000005junk: expected 1 to 1000" err
run 1 env DATABASE_REPLICA_URLS='postgresql://r:hunter2@[::1/app' "$DORM" query --db 'postgresql://app@db/app' 'Author.count()'
hasnt hunter2 err

# no silent no-ops: a migrations folder that does not exist is an error
# naming it, and creates nothing; a read of a SQLite file that does not
# exist creates nothing and says what to do
run 1 dorm migrate --db "sqlite:///$W/new.db" --migrations nope
has "migrations folder 'nope' does not exist" err
[ -e "$W/new.db" ] && fail "migrate --migrations nope created the database"
ok
run 1 dorm showmigrations --db "$DB" --migrations nope
has "migrations folder 'nope' does not exist" err
# the default folder not made yet: nothing to apply, and a note of why
mkdir -p "$W/nomig"
(cd "$W/nomig" && "$DORM" migrate --db "sqlite:///$W/nomig/x.db" >"$W/out" 2>"$W/err") || fail "migrate without a migrations folder"
has "No migrations to apply" out
has "there is no 'migrations' folder here; \`dorm makemigrations\` writes" err
run 1 dorm query --db "sqlite:///$W/new.db" 'Author.count()'
has "SQLite database '$W/new.db' does not exist (did you run \`dorm migrate\`?)" err
[ -e "$W/new.db" ] && fail "query created the database"
ok
run 1 dorm inspectdb --db "sqlite:///$W/new.db"
has "SQLite database '$W/new.db' does not exist" err
[ -e "$W/new.db" ] && fail "inspectdb created the database"
ok
run 0 dorm showmigrations --db "sqlite:///$W/new.db"
has "\[ \] 0001" out
[ -e "$W/new.db" ] && fail "showmigrations created the database"
ok
: > "$W/empty.db"
run 1 dorm query --db "sqlite:///$W/empty.db" 'Author.count()'
has "no such table.*did you run" err
# serve's numbers are digits only
run 2 dorm serve --port ' 5'
run 2 dorm serve --port -1
run 2 dorm serve --pool 99999999999999999999999

# ---- dorm query: nested Q() and F() arithmetic -------------------------------------------------------
# Writers and novels on a database of their own (a schema on PostgreSQL).
# Every expected answer is Django 3.2's on the same rows (models
# mirroring these tables, managed=False).
mkdir qx
cat > qx/models.json <<'EOF'
{"models": [
  {"name": "Writer", "fields": [
    {"name": "name", "type": "varchar", "max_length": 50},
    {"name": "age", "type": "integer", "null": true}]},
  {"name": "Novel", "fields": [
    {"name": "title", "type": "varchar", "max_length": 100},
    {"name": "writer", "type": "foreign_key", "to": "Writer", "on_delete": "cascade", "related_name": "novels"},
    {"name": "editor", "type": "foreign_key", "to": "Writer", "null": true, "on_delete": "set_null", "related_name": "edited"},
    {"name": "pages", "type": "integer", "null": true},
    {"name": "in_print", "type": "boolean", "default": false},
    {"name": "price", "type": "decimal", "max_digits": 8, "decimal_places": 2, "null": true},
    {"name": "tags", "type": "many_to_many", "to": "Tag"}]},
  {"name": "Tag", "table": "ntag", "fields": [
    {"name": "name", "type": "varchar", "max_length": 50}]}
]}
EOF
if [ "$KIND" = postgresql ]; then
  trap 'psql "$DORM_TEST_PG" -qAt -c "DROP SCHEMA IF EXISTS ${SCHEMA}_qx CASCADE" >/dev/null 2>&1; cleanup' EXIT INT TERM
  psql "$DORM_TEST_PG" -qAt -c "CREATE SCHEMA ${SCHEMA}_qx" >/dev/null || exit 1
  QDB="$DORM_TEST_PG options='-csearch_path=${SCHEMA}_qx'"
  qsql() { psql "$QDB" -qAt -v ON_ERROR_STOP=1 -c "$1"; }
else
  QDB="sqlite:///$W/qx.db"
  qsql() { sqlite3 "$W/qx.db" "$1"; }
fi
QX="--models qx/models.json"
run 0 dorm makemigrations $QX --migrations qx/migrations
run 0 dorm migrate --migrations qx/migrations --db "$QDB"
qsql "INSERT INTO writer (id, name, age) VALUES (1, 'Ann', 30), (2, 'Bob', NULL), (3, 'Cid', 45), (4, 'Dee', 20);
INSERT INTO novel (id, title, writer_id, editor_id, pages, in_print, price) VALUES
  (1, 'A1', 1, 3, 100, true, 10.00), (2, 'A2', 1, NULL, 700, false, 25.50),
  (3, 'B1', 2, 1, 50, true, NULL), (4, 'C1', 3, 3, 900, true, 40.00),
  (5, 'C2', 3, NULL, NULL, false, 5.00), (6, 'D1', 4, 2, 40, false, 12.00),
  (7, 'C3', 3, 4, 95, true, 30.00);
INSERT INTO ntag (id, name) VALUES (1, 'sf'), (2, 'poetry'), (3, 'crime');
INSERT INTO novel_tags (novel_id, tag_id) VALUES (1, 1), (1, 2), (2, 2), (4, 1), (4, 3), (7, 3), (6, 2);" || fail "seeding the novels"
# ids EXPR: the ids of its rows, in order, with repeats
ids() {
  "$DORM" query $QX --db "$QDB" "$1.values(\"id\").order_by(\"id\")" >"$W/out" 2>"$W/err" || fail "dorm query $1"
  awk '/^ *[0-9]+ *$/ { printf "%s%s", s, $1; s = " " }' "$W/out"
}
qx() { eq "$(ids "$1")" "$2" "$1"; }
# F() arithmetic on the right of a lookup, across a foreign key, with
# Python's precedence, unary minus and SQL's integer division
qx 'Novel.filter(pages__gt=F("writer__age") * 2)' "1 2 4 7"
qx 'Novel.exclude(pages__lt=F("writer__age") * 3)' "1 2 4 5"
qx 'Novel.filter(pages__gt=-F("id") * 2 + (F("writer__age") - 3) / 2)' "1 2 4 6 7"
qx 'Novel.filter(pages__gte=F("writer__age") / 7 * 10)' "1 2 4 6 7"
qx 'Novel.filter(pages__gt=-F("writer__age") * -5)' "2 4"
qx 'Novel.filter(price__gt=F("pages") / 10)' "6 7"
qx 'Novel.filter(pages__lt=F("writer__age") - F("editor__age") * -3)' "1 7"
qx 'Novel.filter(pages__in=[100, 700], pages__gt=F("writer__age") - -5)' "1 2"
# across a multi-valued relation; under exclude F() names the outer row
qx 'Writer.filter(novels__pages__gt=F("age") * 10)' "1 3"
qx 'Writer.exclude(novels__pages__gt=F("age") * 10)' "2 4"
qx 'Writer.exclude(edited__pages__gt=F("age") + 60)' "1 2"
# Q() taking Q expressions, ANDed with its keywords; double negation
qx 'Novel.filter(Q(~Q(pages__gt=100) | Q(in_print=True), writer__age__gte=30))' "1 4 5 7"
qx 'Novel.exclude(Q(~Q(pages__gt=100) | Q(in_print=True), writer__age__gte=30))' "2 3 6"
qx 'Novel.filter(~Q(~Q(editor__age__gt=25)))' "1 3 4"
qx 'Novel.exclude(~Q(~Q(editor__age__gt=25)))' "2 5 6 7"
qx 'Novel.filter(Q(Q(pages__gt=50) | Q(editor=None), ~Q(tags__name="poetry")))' "4 5 7"
qx 'Novel.exclude(Q(tags__name="sf") | ~Q(tags__name="crime"), pages__gt=F("id"))' "5 7"
qx 'Writer.exclude(Q(~Q(novels__pages__gt=500), age__lt=40))' "1 2 3"
qx 'Writer.filter(Q(~Q(~Q(novels__in_print=True)), novels__pages__gt=90))' "1 1 3 3"
# the order of the arguments ties a negated lookup to an earlier one
qx 'Writer.filter(Q(novels__pages__lt=100), ~Q(novels__pages__gte=649))' "2 3 4"
qx 'Writer.filter(~Q(novels__pages__gte=649), Q(novels__pages__lt=100))' "2 4"
qx 'Writer.exclude(Q(Q(novels__pages__lt=100), ~Q(novels__pages__gte=649)))' "1 3"
# an empty Q() is no condition, under |, ~ and exclude too
qx 'Novel.filter(Q() | Q(pages__gt=50))' "1 2 4 7"
qx 'Novel.filter(~Q(), Q(), pages__gt=50,)' "1 2 4 7"
qx 'Novel.exclude(Q())' "1 2 3 4 5 6 7"
# values() with no field keys a foreign key by its attname, as Django's
# {'id': 3, ..., 'writer_id': 2, 'editor_id': 1}; qs[n] is one object, and
# past the end Django's IndexError
run 0 dorm query $QX --db "$QDB" --json 'Novel.filter(id=3).values()'
has '"writer_id": 2' out
has '"editor_id": 1' out
hasnt '"writer":' out
hasnt '"tags"' out
run 0 dorm query $QX --db "$QDB" --json 'Novel.order_by("id").values("title")[2]'
eq "$(tr -d ' \n' < "$W/out")" '{"title":"B1"}' "qs[n] is an object"
run 1 dorm query $QX --db "$QDB" --json 'Novel.order_by("id")[7]'
has "Novel\[7\]: no row at index 7" err
# keywords come after the Q expressions, sorted by name, as in Django
run 0 dorm query $QX --sql 'Novel.filter(~Q(title="x"), pages=1, in_print=True)'
has 'WHERE NOT ("novel"."title" = ?) AND "novel"."in_print" = ? AND "novel"."pages" = ?' out
# errors name what was wrong and where
run 1 dorm query $QX --sql 'Novel.filter(pages__gt=1 + 2)'
has "'+' between two values without F(): write the value it comes to at column 26" err
run 1 dorm query $QX --sql 'Novel.filter(pages__gt=F("writer__agee") * 2)'
has "field path 'writer__agee': model 'Writer' has no field 'agee' (did you mean 'age'?) at column 24" err
run 1 dorm query $QX --sql 'Novel.filter(pages__gt=F("id") + "x")'
has "only numbers combine with F() (not a text) at column 32" err
run 1 dorm query $QX --sql 'Novel.filter(pages__gt=F(id))'
has "F() takes a field path in double quotes" err
run 1 dorm query $QX --sql 'Novel.filter(pages__gt=F("id") // 2)'
has "'//' is not supported" err
run 1 dorm query $QX --sql 'Novel.filter(pages=1, Q(id=2))'
has "positional argument follows keyword argument at column 23" err
run 1 dorm query $QX --sql 'Novel.filter(Q(pages=1, pages=2))'
has "keyword argument repeated: pages at column 25" err
run 1 dorm query $QX --sql 'Novel.filter(Q(~Q(pages=1) | Q(id=2), id=3)'
has "expected ')' at the end" err
# nesting: 200 levels parse, deeper is refused (65,000 used to crash)
deep() { awk -v n="$1" -v a="$2" -v z="$3" -v m="$4" 'BEGIN {
  s = ""; e = ""; for (i = 0; i < n; i++) { s = s a; e = e z }; print s m e }'; }
run 0 dorm query $QX --sql "Novel.filter($(deep 199 '(' ')' 'Q(id=1)'))"
run 0 dorm query $QX --sql "Novel.filter($(deep 199 '~' '' 'Q(id=1)'))"
run 0 dorm query $QX --sql "Novel.filter($(deep 199 'Q(' ')' 'id=1'))"
run 0 dorm query $QX --sql "Novel.filter(pages=$(deep 100 '-(' ')' 'F("id")'))"
run 1 dorm query $QX --sql "Novel.filter($(deep 200 '~' '' 'Q(id=1)'))"
has "expression nested too deeply (more than 200 levels) at column" err
run 1 dorm query $QX --sql "Novel.filter($(deep 65000 '(' ')' 'Q(id=1)'))"
has "nested too deeply" err
run 1 dorm query $QX --sql "Novel.filter(pages=$(deep 65000 '(' ')' 'F("id")'))"
has "nested too deeply" err
run 1 dorm query $QX --sql "Novel.filter(pages__in=$(deep 65000 '[' ']' '1'))"
has "nested too deeply" err

echo "ok    test_cli.sh [$KIND]: $n checks"
exit 0
