# bench/bench.mk - how the benchmarks build. Included by the top-level
# Makefile (whose `bench` target runs `bench-build`, then
# `$(PY) bench/run_events.py`). Also usable on its own from the repo root:
#   make -f bench/bench.mk bench-build
# Paths are relative to the repo root.

# On its own, take the library's rules (and B, PKG_*, BASE_CFLAGS) from lib.mk.
ifndef LIB_SRCS
include libautodeploy/lib.mk
endif

# Listed, not globbed: other benchmarks may add their own programs here.
BENCH_SRCS := bench/bench_events.c bench/replay_server.c
BENCH_HDRS := bench/bench.h
BENCH_OPT  ?= -O2 -g
BENCH_CFLAGS = $(BASE_CFLAGS) -Ibench $(BENCH_OPT)

.PHONY: bench-build
bench-build: $(B)/bench/bench_events $(B)/bench/bench_placement $(B)/bench/bench_purchase \
             $(B)/bench/bench_usage $(B)/bench/bench_store_ceiling

$(B)/bench:
	mkdir -p $@

# Links the static library, so the bench measures exactly this tree's code.
$(B)/bench/bench_events: $(BENCH_SRCS) $(BENCH_HDRS) bench/bench.mk $(B)/libautodeploy.a | $(B)/bench
	$(CC) $(BENCH_CFLAGS) -o $@ $(BENCH_SRCS) $(B)/libautodeploy.a $(PKG_LIBS) -lpthread

# One placement cycle against the naive scan (bench/run_placement.py).
# Internal symbols (ad__place), so it links the static library like the C tests.
$(B)/bench/bench_placement: bench/bench_placement.c bench/bench.mk $(B)/libautodeploy.a | $(B)/bench
	$(CC) $(BENCH_CFLAGS) -o $@ bench/bench_placement.c $(B)/libautodeploy.a $(PKG_LIBS) -lpthread

# The daily purchase plan (bench/run_purchase.py): internal symbols too.
$(B)/bench/bench_purchase: bench/bench_purchase.c bench/bench.mk $(B)/libautodeploy.a | $(B)/bench
	$(CC) $(BENCH_CFLAGS) -o $@ bench/bench_purchase.c $(B)/libautodeploy.a $(PKG_LIBS) -lpthread

# The engine's cost per 1,000 service samples (bench/run_usage.py): internal symbols.
$(B)/bench/bench_usage: bench/bench_usage.c bench/bench.mk $(B)/libautodeploy.a | $(B)/bench
	$(CC) $(BENCH_CFLAGS) -o $@ bench/bench_usage.c $(B)/libautodeploy.a $(PKG_LIBS) -lpthread

.PHONY: bench-usage
bench-usage: $(B)/bench/bench_usage
	$(PY) bench/run_usage.py

# The store's ceiling for job returns (bench/bench_returns.py): libmongoc only,
# none of the library.
$(B)/bench/bench_store_ceiling: bench/bench_store_ceiling.c bench/bench.mk | $(B)/bench
	$(CC) $(BENCH_CFLAGS) -o $@ bench/bench_store_ceiling.c $(PKG_LIBS)

.PHONY: bench-placement bench-purchase
bench-purchase: $(B)/bench/bench_purchase
	$(PY) bench/run_purchase.py

bench-placement: $(B)/bench/bench_placement
	$(PY) bench/run_placement.py
