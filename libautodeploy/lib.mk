# libautodeploy/lib.mk - how the library, its tools and its C tests build.
# Included by the top-level Makefile; paths are relative to the repo root.

LIB_SRCS := $(wildcard libautodeploy/src/*.c)
LIB_HDRS := $(wildcard libautodeploy/include/*.h libautodeploy/include/autodeploy/*.h libautodeploy/src/*.h)
PKGS     := libzmq msgpack libcurl jansson libmongoc-1.0 libcrypto
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm

CC      ?= cc
WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wstrict-prototypes -Wno-format-truncation -Wno-unknown-warning-option
BASE_CFLAGS := -std=gnu11 -D_GNU_SOURCE $(WARN) -Ilibautodeploy/include -Ilibautodeploy/src $(PKG_CFLAGS)
OPT     ?= -O2 -g
LIB_CFLAGS := $(BASE_CFLAGS) $(OPT) -fPIC -fvisibility=hidden -DAD_BUILDING_LIBRARY

B := build
LIB_OBJS := $(patsubst libautodeploy/src/%.c,$(B)/obj/%.o,$(LIB_SRCS))

$(B)/obj/%.o: libautodeploy/src/%.c $(LIB_HDRS) libautodeploy/lib.mk | $(B)/obj
	$(CC) $(LIB_CFLAGS) -c $< -o $@

$(B)/obj $(B)/tests $(B)/bin $(B)/asan $(B)/fuzz:
	mkdir -p $@

$(B)/libautodeploy.so.0: $(LIB_OBJS)
	$(CC) -shared -Wl,-soname,libautodeploy.so.0 -o $@ $^ $(PKG_LIBS) -lpthread
$(B)/libautodeploy.so: $(B)/libautodeploy.so.0
	ln -sf libautodeploy.so.0 $@
$(B)/libautodeploy.a: $(LIB_OBJS)
	ar rcs $@ $^
$(B)/autodeploy.pc: libautodeploy/autodeploy.pc.in
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

lib: $(B)/libautodeploy.so $(B)/libautodeploy.a $(B)/autodeploy.pc

# Tools link the shared library, as users do.
$(B)/bin/autodeploy-events: libautodeploy/tools/autodeploy_events.c libautodeploy/tools/master_conf.c libautodeploy/tools/master_conf.h $(LIB_HDRS) $(B)/libautodeploy.so | $(B)/bin
	$(CC) $(BASE_CFLAGS) $(OPT) -o $@ libautodeploy/tools/autodeploy_events.c libautodeploy/tools/master_conf.c -L$(B) -lautodeploy $(PKG_LIBS) -Wl,-rpath,'$$ORIGIN/..'

# The simulator drives internal code (ad__simulate), so it links the static
# library, as the C tests do.
$(B)/bin/autodeploy-simulate: libautodeploy/tools/autodeploy_simulate.c $(LIB_HDRS) $(B)/libautodeploy.a | $(B)/bin
	$(CC) $(BASE_CFLAGS) $(OPT) -o $@ libautodeploy/tools/autodeploy_simulate.c $(B)/libautodeploy.a $(PKG_LIBS) -lpthread

# The metrics probe reaches internal (ad__) symbols: it links the static library.
$(B)/bin/autodeploy-metrics: libautodeploy/tools/autodeploy_metrics.c $(LIB_HDRS) $(B)/libautodeploy.a | $(B)/bin
	$(CC) $(BASE_CFLAGS) $(OPT) -o $@ libautodeploy/tools/autodeploy_metrics.c $(B)/libautodeploy.a $(PKG_LIBS) -lpthread

tools: $(B)/bin/autodeploy-events $(B)/bin/autodeploy-simulate $(B)/bin/autodeploy-metrics

# C unit tests link the static library so they can reach internal symbols.
C_TESTS := $(patsubst libautodeploy/tests/%.c,%,$(wildcard libautodeploy/tests/test_*.c))
$(B)/tests/%: libautodeploy/tests/%.c libautodeploy/tests/harness.h $(B)/libautodeploy.a | $(B)/tests
	$(CC) $(BASE_CFLAGS) $(OPT) -o $@ $< $(B)/libautodeploy.a $(PKG_LIBS) -lpthread

test-c: $(addprefix $(B)/tests/,$(C_TESTS))
	@set -e; for t in $(C_TESTS); do AD_TEST_DATA=tests/data $(B)/tests/$$t; done

# The same tests, library and all, under AddressSanitizer + UBSan.
SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
ASAN_CC ?= clang
test-asan: | $(B)/asan
	@set -e; for t in $(C_TESTS); do \
	  $(ASAN_CC) $(BASE_CFLAGS) -O1 -g $(SAN) -DAD_BUILDING_LIBRARY -o $(B)/asan/$$t \
	    libautodeploy/tests/$$t.c $(LIB_SRCS) $(PKG_LIBS) -lpthread; \
	  AD_TEST_DATA=tests/data ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(B)/asan/$$t; \
	done

# libFuzzer target for the frame and event decoder, seeded from fixtures.
FUZZ_SECS ?= 60
$(B)/fuzz/fuzz_decoder: libautodeploy/fuzz/fuzz_decoder.c $(LIB_SRCS) $(LIB_HDRS) | $(B)/fuzz
	clang $(BASE_CFLAGS) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -DAD_BUILDING_LIBRARY -o $@ libautodeploy/fuzz/fuzz_decoder.c $(LIB_SRCS) $(PKG_LIBS) -lpthread
fuzz-corpus: | $(B)/fuzz
	mkdir -p $(B)/fuzz/corpus && cp tests/data/salt*/*.bin tests/data/frames/*.bin $(B)/fuzz/corpus/ 2>/dev/null || true
fuzz: $(B)/fuzz/fuzz_decoder fuzz-corpus
	$(B)/fuzz/fuzz_decoder -max_total_time=$(FUZZ_SECS) -max_len=262144 -rss_limit_mb=1024 $(B)/fuzz/corpus
fuzz-short:
	$(MAKE) fuzz FUZZ_SECS=20

# Exported symbols must be exactly the documented API (jansson's check-exports).
check-exports: $(B)/libautodeploy.so
	@nm -D --defined-only $(B)/libautodeploy.so.0 | awk '$$2 == "T" {print $$3}' | sort > $(B)/exports.txt
	@grep -h '^AD_EXPORT' libautodeploy/include/autodeploy/*.h | sed 's/(.*//; s/.*[ *]//' | sort > $(B)/declared.txt
	@sort libautodeploy/exports.txt | diff -u - $(B)/exports.txt
	@diff -u $(B)/declared.txt $(B)/exports.txt && echo "exports: OK ($$(wc -l < $(B)/exports.txt) symbols, all declared AD_EXPORT in the public headers)"
