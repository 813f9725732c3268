# dorm — GNU make build.  No other build system.
#
#   make            libdorm.a, libdorm.so and the dorm command (build/)
#   make test       install what is missing, then every test: plain build,
#                   ASan+UBSan build, and valgrind over the plain build
#   make test-quick the edit loop: the plain build, and the tests run with
#                   no PostgreSQL and no sanitizers or valgrind (what needs
#                   a server is skipped: docs/testing.md)
#   make bench      build and run the benchmarks (bench/)
#   make fuzz       build the libFuzzer harnesses of fuzz/ with clang and
#                   run each for FUZZ_SECONDS (default 60)
#   make demo       the example app on the embedded default (SQLite)
#   make oracle N=5000   N random queries checked against Django 3.2
#                   (fresh seeds; tests/oracle/, docs/oracle.md)
#   make install PREFIX=/usr/local  (DESTDIR too): headers, libdorm.a,
#                   libdorm.so.MAJOR.MINOR.PATCH with its soname link
#                   libdorm.so.MAJOR and libdorm.so, dorm, dorm.pc
#
# Source files are found by wildcard: a new .c in a layer's folder (or a
# folder under it, as backends/pg/) is part of the library, a new tests/test_*.c is a new test program, a new
# bench/bench_*.c a new benchmark.

CC       ?= cc
PREFIX   ?= /usr/local
BUILD    ?= build
SAN      ?= 0
PKGS     := libuv jansson sqlite3 libpq

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CSTD     := -std=c11 -D_GNU_SOURCE
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lpthread -lm

ifeq ($(SAN),1)
  BUILD  := build-san
  OPT    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
  SANLD  := -fsanitize=address,undefined
else ifeq ($(SAN),thread)
  BUILD  := build-tsan
  OPT    := -O1 -g -fsanitize=thread
  SANLD  := -fsanitize=thread
else ifeq ($(SAN),fuzz)
  # the libFuzzer harnesses (make fuzz): clang, coverage for the fuzzer
  # in every object, ASan+UBSan; the harnesses link -fsanitize=fuzzer
  BUILD  := build-fuzz
  CC     := clang
  OPT    := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
  SANLD  := -fsanitize=address,undefined
else
  OPT    ?= -O2 -g
  SANLD  :=
endif

CFLAGS_ALL = $(CSTD) $(WARN) $(OPT) -fPIC -Iinclude -I. $(PKG_CFLAGS) $(CFLAGS)
LDLIBS_ALL = $(SANLD) $(PKG_LIBS) $(LDFLAGS)

# the version, as include/dorm/version.h says it: libdorm.so.$(VERSION)
# is installed with the soname libdorm.so.$(VERSION_MAJOR)
version_part = $(shell sed -n 's/^.define DORM_VERSION_$(1) \([0-9]*\)$$/\1/p' include/dorm/version.h)
VERSION_MAJOR := $(call version_part,MAJOR)
VERSION       := $(VERSION_MAJOR).$(call version_part,MINOR).$(call version_part,PATCH)
SONAME        := libdorm.so.$(VERSION_MAJOR)

# a layer's sources: its folder and the folders under it (backends/pg/...)
LIB_DIRS  := base schema query reactor_glue backends migrate http
tree_src   = $(shell find $(1) -name '*.c' 2>/dev/null)
# The query compiler's files come first, in call order: a static link
# loads the archive's members in this order, so a program's hot path
# (build, compile, emit) sits together in memory rather than among cold
# objects (see -falign-functions below).
HOT_SRC   := $(addprefix query/,builder.c compile.c select.c where.c \
               exclude.c joins.c columns.c lookups.c paths.c sql.c quote.c)
LIB_SRC   := $(HOT_SRC) $(filter-out $(HOT_SRC),$(sort $(call tree_src,$(LIB_DIRS))))
TOOL_SRC  := $(sort $(call tree_src,tools))
TEST_SRC  := $(sort $(wildcard tests/test_*.c))
SUPP_SRC  := $(sort $(wildcard tests/support/*.c))
BENCH_SRC := $(sort $(wildcard bench/bench_*.c))
# the harnesses of fuzz/ (see "fuzzing" below)
FUZZ_NAMES   := models migrations query_expr http serve_input url rows
FUZZ_SECONDS ?= 60

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
# The library exports only what its public headers mark DORM_EXTERN
# (include/dorm/version.h); tests/exports.txt lists it, test_exports checks.
# The static library carries the same objects: the tests, tools and fuzz
# harnesses link it and still reach the internal dorm__ functions.
# Functions start on a cache line: the compile path runs through many
# small functions in several files, and where they happened to fall
# decided up to 15% of B1 through instruction-cache set conflicts
# (cachegrind: I1 misses 9.5 M unaligned, 1.3 M aligned, per 20,000-query
# run); aligned, it no longer depends on link order's luck.
$(LIB_OBJ): CFLAGS_ALL += -fvisibility=hidden -falign-functions=64
TOOL_OBJ  := $(TOOL_SRC:%.c=$(BUILD)/%.o)
SUPP_OBJ  := $(SUPP_SRC:%.c=$(BUILD)/%.o)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

# keep objects make would otherwise treat as intermediate and delete
.SECONDARY:

.PHONY: all lib tests benches test test-quick check bench demo oracle \
        install clean deps format fuzz fuzzers

all: lib $(BUILD)/dorm
lib: $(BUILD)/libdorm.a $(BUILD)/libdorm.so

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/libdorm.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/libdorm.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/dorm: $(TOOL_OBJ) $(BUILD)/libdorm.a
	$(CC) -o $@ $(TOOL_OBJ) $(BUILD)/libdorm.a $(LDLIBS_ALL)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(SUPP_OBJ) $(BUILD)/libdorm.a
	$(CC) -o $@ $< $(SUPP_OBJ) $(BUILD)/libdorm.a $(LDLIBS_ALL) -lcmocka

# test_alloc drives the tools' multi-step paths (serve's many_to_many
# steps) in-process: it links their objects but main's
TOOL_LIB_OBJ := $(filter-out $(BUILD)/tools/dorm.o,$(TOOL_OBJ))
$(BUILD)/tests/test_alloc: $(BUILD)/tests/test_alloc.o $(SUPP_OBJ) $(TOOL_LIB_OBJ) $(BUILD)/libdorm.a
	$(CC) -o $@ $< $(SUPP_OBJ) $(TOOL_LIB_OBJ) $(BUILD)/libdorm.a $(LDLIBS_ALL) -lcmocka

# test_exports reads the exports of the plain build's libdorm.so (the
# sanitizer builds' copy of the test reads the same one)
ifeq ($(SAN),0)
$(BUILD)/tests/test_exports: $(BUILD)/libdorm.so
endif

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/libdorm.a
	$(CC) -o $@ $< $(BUILD)/libdorm.a $(LDLIBS_ALL)

tests: $(TEST_BIN) $(BUILD)/dorm $(FUZZ_NAMES:%=$(BUILD)/tests/test_fuzz_%)
benches: $(BENCH_BIN)

# The README's test command: set-up from nothing, then the whole suite.
test: deps
	$(MAKE) --no-print-directory check

deps:
	@sh tools/install-deps.sh

# The edit loop: no server, no sanitizer builds (tests/run.sh quick).
test-quick:
	$(MAKE) --no-print-directory tests
	sh tests/run.sh quick

# the threaded tests also run under ThreadSanitizer (run.sh runs
# build-tsan/tests/* when present)
TSAN_TESTS := $(patsubst tests/%.c,%,$(wildcard tests/test_db_*.c)) \
              test_sqlite test_uv_glue test_atomic test_migrate_lib

# the suite's three builds use every core (JOBS=1 for one at a time)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

check:
	$(MAKE) --no-print-directory -j$(JOBS) tests
	$(MAKE) --no-print-directory -j$(JOBS) SAN=1 tests
	$(MAKE) --no-print-directory -j$(JOBS) SAN=thread $(TSAN_TESTS:%=build-tsan/tests/%)
	sh tests/run.sh

bench: deps
	$(MAKE) --no-print-directory OPT="-O2 -g -DNDEBUG" benches
	sh bench/run.sh

demo: deps
	$(MAKE) -s --no-print-directory all
	sh examples/demo.sh

# the differential test with fresh seeds (the suite runs fixed ones)
oracle: deps
	$(MAKE) -s --no-print-directory $(BUILD)/dorm
	sh tests/oracle/campaign.sh $(or $(N),2000)

# the example programs (examples/demo.sh builds them)
$(BUILD)/examples/%: $(BUILD)/examples/%.o $(BUILD)/libdorm.a
	$(CC) -o $@ $< $(BUILD)/libdorm.a $(LDLIBS_ALL)

# tests/test_blog.c and tests/test_readme.c run the example programs
# beside the tests
tests: $(BUILD)/examples/blog/server $(BUILD)/examples/blog/blog \
       $(BUILD)/examples/pg_example $(BUILD)/examples/migrate_at_startup

# ---- fuzzing (fuzz/, docs/testing.md) --------------------------------------
# Each harness fuzz/fuzz_<name>.c is built twice: as a libFuzzer binary
# (make fuzz: build-fuzz/fuzz/fuzz_<name>) and, with the normal compiler
# and fuzz/replay.c as main(), as build/tests/test_fuzz_<name>, which
# tests/run.sh runs like every test: it replays fuzz/corpus/<name> and
# fuzz/crashes/<name>.  FUZZ_TOOLS_<name>: the tools/ objects a harness
# tests besides the library.
# (FUZZ_NAMES is set with the sources above)
FUZZ_TOOLS_models      :=
FUZZ_TOOLS_migrations  :=
FUZZ_TOOLS_query_expr  := tools/query_expr.o
FUZZ_TOOLS_http        :=
FUZZ_TOOLS_serve_input := tools/serve/serve_input.o tools/serve/serve_m2m.o
FUZZ_TOOLS_url         := tools/cli.o
FUZZ_TOOLS_rows        :=

# a static pattern: only the replayers' objects (a plain pattern also
# matched build/fuzz/replay_<name>.d.o, which make then built to remake
# the included .d files)
$(FUZZ_NAMES:%=$(BUILD)/fuzz/replay_%.o): $(BUILD)/fuzz/replay_%.o: fuzz/replay.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DFUZZ_NAME='"$*"' -MMD -MP -c $< -o $@

define FUZZ_RULES
$(BUILD)/tests/test_fuzz_$(1): $(BUILD)/fuzz/fuzz_$(1).o $(BUILD)/fuzz/replay_$(1).o $(addprefix $(BUILD)/,$(FUZZ_TOOLS_$(1))) $(BUILD)/libdorm.a
	@mkdir -p $$(dir $$@)
	$$(CC) -o $$@ $$^ $$(LDLIBS_ALL)
$(BUILD)/fuzz/fuzz_$(1): $(BUILD)/fuzz/fuzz_$(1).o $(addprefix $(BUILD)/,$(FUZZ_TOOLS_$(1))) $(BUILD)/libdorm.a
	$$(CC) -fsanitize=fuzzer -o $$@ $$^ $$(LDLIBS_ALL)
endef
$(foreach n,$(FUZZ_NAMES),$(eval $(call FUZZ_RULES,$(n))))

fuzzers: $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)

# clang is needed here only (make test replays the corpus without it)
fuzz:
	@command -v clang >/dev/null 2>&1 || { \
	  echo "make fuzz: needs clang (apt-get install clang)" >&2; exit 1; }
	$(MAKE) --no-print-directory SAN=fuzz fuzzers
	sh fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_NAMES)

install: lib $(BUILD)/dorm
	install -d $(DESTDIR)$(PREFIX)/include/dorm $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/dorm.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/dorm/*.h $(DESTDIR)$(PREFIX)/include/dorm/
	install -m 644 $(BUILD)/libdorm.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libdorm.so $(DESTDIR)$(PREFIX)/lib/libdorm.so.$(VERSION)
	ln -sf libdorm.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libdorm.so
	install -m 755 $(BUILD)/dorm $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' dorm.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/dorm.pc

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san build-tsan build-fuzz

-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(SUPP_OBJ:.o=.d) $(TEST_BIN:=.d) $(BENCH_BIN:=.d)
-include $(wildcard $(BUILD)/examples/*.d $(BUILD)/examples/*/*.d)
-include $(wildcard $(BUILD)/fuzz/*.d)
