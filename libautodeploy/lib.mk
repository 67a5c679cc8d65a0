# libautodeploy/lib.mk - how the library, its tools and its C tests build.
# Included by the top-level Makefile; paths are relative to the repo root.
#
# src/<stage>/ follows the data path (docs/architecture.md); tests/<stage>/
# mirrors it. Objects carry their real header dependencies (-MMD -MP).

LIB_DIR  := libautodeploy
LIB_SRCS := $(wildcard $(LIB_DIR)/src/*/*.c)
PUB_HDRS := $(wildcard $(LIB_DIR)/include/*.h $(LIB_DIR)/include/autodeploy/*.h)
PKGS     := libzmq msgpack libcurl jansson libmongoc-1.0 libcrypto rdkafka libmicrohttpd

# pkg-config runs when a recipe first needs the flags, not when make reads
# this file: on a fresh machine the -dev packages arrive with `make deps`,
# which runs before any compile (the order-only $(DEPS_APT) below). A make
# that expanded them at parse time built its whole first run with no flags.
PKG_CFLAGS = $(eval PKG_CFLAGS := $(call ad_pkg,--cflags))$(PKG_CFLAGS)
PKG_LIBS   = $(eval PKG_LIBS := $(call ad_pkg,--libs) -lm)$(PKG_LIBS)
ad_pkg = $(or $(shell pkg-config $(1) $(PKGS) 2>/dev/null),$(error pkg-config $(1) $(PKGS) failed: are the -dev packages installed? run `make deps`))
# The apt stamp, when the top-level Makefile defines it (bench.mk alone: none).
DEPS_APT ?=

CC      ?= cc
WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wstrict-prototypes -Wno-format-truncation -Wno-unknown-warning-option
BASE_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(WARN) -I$(LIB_DIR)/include -I$(LIB_DIR)/src $(PKG_CFLAGS)
OPT     ?= -O2 -g
LIB_CFLAGS = $(BASE_CFLAGS) $(OPT) -fPIC -fvisibility=hidden -DAD_BUILDING_LIBRARY

B := build
LIB_OBJS := $(patsubst $(LIB_DIR)/src/%.c,$(B)/obj/%.o,$(LIB_SRCS))

$(B)/obj/%.o: $(LIB_DIR)/src/%.c $(LIB_DIR)/lib.mk | $(DEPS_APT)
	@mkdir -p $(@D)
	$(CC) $(LIB_CFLAGS) -MMD -MP -c $< -o $@

$(B)/tests $(B)/bin $(B)/asan $(B)/fuzz:
	mkdir -p $@

$(B)/libautodeploy.so.0: $(LIB_OBJS)
	$(CC) -shared -Wl,-soname,libautodeploy.so.0 -o $@ $^ $(PKG_LIBS) -lpthread
$(B)/libautodeploy.so: $(B)/libautodeploy.so.0
	ln -sf libautodeploy.so.0 $@
$(B)/libautodeploy.a: $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^
$(B)/autodeploy.pc: $(LIB_DIR)/autodeploy.pc.in
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

lib: $(B)/libautodeploy.so $(B)/libautodeploy.a $(B)/autodeploy.pc

# Tools link the shared library, as users do.
$(B)/bin/autodeploy-events: $(LIB_DIR)/tools/autodeploy_events.c $(LIB_DIR)/tools/master_conf.c $(LIB_DIR)/tools/master_conf.h $(PUB_HDRS) $(B)/libautodeploy.so | $(B)/bin
	$(CC) $(BASE_CFLAGS) $(OPT) -o $@ $(LIB_DIR)/tools/autodeploy_events.c $(LIB_DIR)/tools/master_conf.c -L$(B) -lautodeploy $(PKG_LIBS) -Wl,-rpath,'$$ORIGIN/..'

# The simulator and the metrics probe drive internal (ad__) code, so they
# link the static library, as the C tests do.
$(B)/bin/autodeploy-simulate: $(LIB_DIR)/tools/autodeploy_simulate.c $(B)/libautodeploy.a | $(B)/bin
	$(CC) $(BASE_CFLAGS) $(OPT) -MMD -MP -o $@ $< $(B)/libautodeploy.a $(PKG_LIBS) -lpthread
$(B)/bin/autodeploy-metrics: $(LIB_DIR)/tools/autodeploy_metrics.c $(B)/libautodeploy.a | $(B)/bin
	$(CC) $(BASE_CFLAGS) $(OPT) -MMD -MP -o $@ $< $(B)/libautodeploy.a $(PKG_LIBS) -lpthread

tools: $(B)/bin/autodeploy-events $(B)/bin/autodeploy-simulate $(B)/bin/autodeploy-metrics

# C unit tests (tests/<stage>/test_*.c) link the static library so they can
# reach internal symbols. Named by file: build/tests/test_decoder.
C_TEST_SRCS := $(wildcard $(LIB_DIR)/tests/*/test_*.c)
C_TESTS     := $(notdir $(basename $(C_TEST_SRCS)))
TEST_CFLAGS  = $(BASE_CFLAGS) -I$(LIB_DIR)/tests
vpath test_%.c $(sort $(dir $(C_TEST_SRCS)))

$(B)/tests/%: %.c $(B)/libautodeploy.a | $(B)/tests
	$(CC) $(TEST_CFLAGS) $(OPT) -MMD -MP -o $@ $< $(B)/libautodeploy.a $(PKG_LIBS) -lpthread

test-c: $(addprefix $(B)/tests/,$(C_TESTS))
	@set -e; for t in $(C_TESTS); do AD_TEST_DATA=tests/data $(B)/tests/$$t; done
	@python3 $(LIB_DIR)/check_api.py domains
	@python3 $(LIB_DIR)/check_api.py layers

# The same tests under AddressSanitizer + UBSan: the library is compiled once
# with the sanitizers into build/asan/libautodeploy.a, and every test links it.
SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
ASAN_CC ?= clang
ASAN_CFLAGS = $(BASE_CFLAGS) -O1 -g $(SAN) -DAD_BUILDING_LIBRARY
ASAN_OBJS := $(patsubst $(LIB_DIR)/src/%.c,$(B)/asan/obj/%.o,$(LIB_SRCS))

$(B)/asan/obj/%.o: $(LIB_DIR)/src/%.c $(LIB_DIR)/lib.mk | $(DEPS_APT)
	@mkdir -p $(@D)
	$(ASAN_CC) $(ASAN_CFLAGS) -MMD -MP -c $< -o $@
$(B)/asan/libautodeploy.a: $(ASAN_OBJS)
	rm -f $@ && ar rcs $@ $^
$(B)/asan/%: %.c $(B)/asan/libautodeploy.a
	$(ASAN_CC) $(ASAN_CFLAGS) -I$(LIB_DIR)/tests -MMD -MP -o $@ $< $(B)/asan/libautodeploy.a $(PKG_LIBS) -lpthread

test-asan: $(addprefix $(B)/asan/,$(C_TESTS))
	@set -e; for t in $(C_TESTS); do \
	  AD_TEST_DATA=tests/data ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(B)/asan/$$t; \
	done

# libFuzzer targets: the frame and event decoder, seeded from the captures
# of real masters (tests/data/salt3006, salt3008: every *.bin is one frame
# stream as the master sent it); the configuration loaders, seeded from
# $(LIB_DIR)/fuzz/config_seeds (every key table at its default, and the
# hand-read objects); DingTalk's push, seeded from $(LIB_DIR)/fuzz/dingtalk_seeds
# (a frame that opens, and an `encrypt` text); the event handlers, against a
# FerretDB that fuzz/with_ferretdb.sh starts on loopback for the run and
# stops after it, however it ends (FERRETDB: the binary `make deps` built),
# seeded from $(LIB_DIR)/fuzz/events_seeds.
FUZZ_SECS ?= 60
FUZZ_CONFIG_SECS ?= $(FUZZ_SECS)
FUZZ_DINGTALK_SECS ?= $(FUZZ_CONFIG_SECS)
FUZZ_EVENTS_SECS ?= $(FUZZ_SECS)
FUZZ_SEEDS := $(wildcard tests/data/salt3006/*.bin tests/data/salt3008/*.bin)
FUZZ_CONFIG_SEEDS := $(wildcard $(LIB_DIR)/fuzz/config_seeds/*.json)
FUZZ_FLAGS = $(BASE_CFLAGS) -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -DAD_BUILDING_LIBRARY -MMD -MP
$(B)/fuzz/fuzz_%: $(LIB_DIR)/fuzz/fuzz_%.c $(LIB_SRCS) | $(B)/fuzz $(DEPS_APT)
	clang $(FUZZ_FLAGS) -o $@ $< $(LIB_SRCS) $(PKG_LIBS) -lpthread
fuzz-corpus: | $(B)/fuzz
	@test -n "$(FUZZ_SEEDS)" || { echo "fuzz-corpus: no seed captures under tests/data/salt300{6,8}"; exit 1; }
	@test -n "$(FUZZ_CONFIG_SEEDS)" || { echo "fuzz-corpus: no seeds under $(LIB_DIR)/fuzz/config_seeds"; exit 1; }
	@mkdir -p $(B)/fuzz/corpus $(B)/fuzz/config_corpus && for f in $(FUZZ_SEEDS); do \
	  cp "$$f" "$(B)/fuzz/corpus/$$(basename $$(dirname $$f))-$$(basename $$f)"; done
	@cp $(FUZZ_CONFIG_SEEDS) $(B)/fuzz/config_corpus/
	@mkdir -p $(B)/fuzz/dingtalk_corpus && cp $(LIB_DIR)/fuzz/dingtalk_seeds/*.bin $(B)/fuzz/dingtalk_corpus/
	@mkdir -p $(B)/fuzz/events_corpus && cp $(LIB_DIR)/fuzz/events_seeds/*.bin $(B)/fuzz/events_corpus/
	@echo "fuzz-corpus: $(words $(FUZZ_SEEDS)) seeds from real-master captures, $(words $(FUZZ_CONFIG_SEEDS)) configurations"
fuzz: $(B)/fuzz/fuzz_decoder $(B)/fuzz/fuzz_config $(B)/fuzz/fuzz_dingtalk $(B)/fuzz/fuzz_events fuzz-corpus
	$(B)/fuzz/fuzz_decoder -max_total_time=$(FUZZ_SECS) -max_len=262144 -rss_limit_mb=1024 $(B)/fuzz/corpus
	$(B)/fuzz/fuzz_config -max_total_time=$(FUZZ_CONFIG_SECS) -max_len=16384 -rss_limit_mb=1024 $(B)/fuzz/config_corpus
	$(B)/fuzz/fuzz_dingtalk -max_total_time=$(FUZZ_DINGTALK_SECS) -max_len=4096 -rss_limit_mb=1024 $(B)/fuzz/dingtalk_corpus
	FERRETDB=$(FERRETDB) $(LIB_DIR)/fuzz/with_ferretdb.sh $(B)/fuzz/fuzz_events \
	  -max_total_time=$(FUZZ_EVENTS_SECS) -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1 $(B)/fuzz/events_corpus
fuzz-short:
	$(MAKE) --no-print-directory fuzz FUZZ_SECS=20 FUZZ_CONFIG_SECS=15 FUZZ_DINGTALK_SECS=10 FUZZ_EVENTS_SECS=15

# Exported symbols must be exactly the documented API (jansson's check-exports):
# nm -D == exports.txt == the AD_EXPORT declarations == the functions
# docs/api.md names; no jansson in the public headers; error domains from
# AD_DOMAIN_MAP only (check_api.py).
check-exports: $(B)/libautodeploy.so
	@nm -D --defined-only $(B)/libautodeploy.so.0 | awk '$$2 ~ /^[TDRBVW]$$/ {print $$3}' | sort > $(B)/exports.txt
	@grep -h '^AD_EXPORT' $(LIB_DIR)/include/autodeploy/*.h | sed 's/(.*//; s/.*[ *]//' | sort > $(B)/declared.txt
	@sort $(LIB_DIR)/exports.txt | diff -u - $(B)/exports.txt
	@diff -u $(B)/declared.txt $(B)/exports.txt && echo "exports: OK ($$(wc -l < $(B)/exports.txt) symbols, all declared AD_EXPORT in the public headers)"
	@! grep -nE '\bjson_t\b|jansson\.h' $(PUB_HDRS) || { echo "check-exports: jansson in a public header (it is Requires.private)"; exit 1; }
	@python3 $(LIB_DIR)/check_api.py docs $(B)/exports.txt
	@python3 $(LIB_DIR)/check_api.py domains
	@python3 $(LIB_DIR)/check_api.py layers

-include $(wildcard $(B)/obj/*/*.d $(B)/asan/obj/*/*.d $(B)/tests/*.d $(B)/asan/*.d $(B)/bin/*.d $(B)/fuzz/*.d)

# The dashboard page is embedded with .incbin (src/serve/dashboard.c).
$(B)/obj/serve/dashboard.o: $(LIB_DIR)/src/serve/dashboard.html
