# autodeploy - top-level Makefile. Every set-up step lives here, so a fresh
# machine needs only `make check` (tests) or `make demo` (the main job).
#
#   make deps         Debian packages, two Salt venvs, FerretDB (idempotent)
#   make              library, tools
#   make check        every test (C units, ASan/UBSan, fuzz smoke, Python + real Salt,
#                     the fault suite)
#   make check-compat the integration tests against the Salt 3006 LTS too
#   make demo         the mission end to end (DEMO_ARGS=--keep leaves it running,
#                     --verbose prints the bus); make demo-stop stops a kept one
#   make bench        benchmarks (not part of check); results in bench/results/
#   make fuzz         libFuzzer on the decoder, the config loaders, DingTalk's push and the event
#                     handlers (against a FerretDB it starts), FUZZ_SECS each (default 60)
#   make check-fresh  a clean Debian 12 root (debootstrap): clone, then `make check`
#                     and `make demo` as its first commands (tests/fresh/check-fresh.sh)

SHELL := /bin/bash
VERSION := 0.1.0
PREFIX ?= /usr/local

# Pinned versions (README "Versions"). 3008.5 is on PyPI but needs
# certifi>=2026.10.23, which the package registry reachable here does not
# serve; 3008.4 is the newest 3008.x that installs.
SALT_VERSION      := 3008.4
SALT_LTS_VERSION  := 3006.29
FERRETDB_VERSION  := v1.24.2
PYTEST_VERSION    := 9.2.0
PYZMQ_VERSION     := 27.3.0
PYMONGO_VERSION   := 4.20.1
AIOSMTPD_VERSION  := 1.4.6
# the official Alibaba Cloud ECS SDK, for the autodeploy_aliyun order runner
ALIYUN_ECS_VERSION := 7.11.8

DEPS  := .deps
VENV  := $(DEPS)/venv3008
VENV6 := $(DEPS)/venv3006
PY    := $(VENV)/bin/python
FERRETDB := $(DEPS)/bin/ferretdb
KAFKA_LIBS := $(DEPS)/kafka/libs

APT_PKGS := build-essential pkg-config clang libclang-rt-14-dev \
  libzmq3-dev libmsgpack-dev libcurl4-openssl-dev libmongoc-dev libbson-dev \
  libjansson-dev libssl-dev python3-venv python3-dev iproute2 procps prometheus prometheus-node-exporter prometheus-process-exporter \
  librdkafka-dev openjdk-17-jre-headless maven libmicrohttpd-dev chromium tzdata libfaketime

.PHONY: all deps lib tools check check-c check-py check-compat check-faults demo bench bench-load fuzz \
  fuzz-short fuzz-corpus test-c test-asan check-exports check-fresh demo-stop clean

all: lib tools

DEPS_APT := $(DEPS)/apt.stamp
include libautodeploy/lib.mk
include bench/bench.mk
include packaging/packaging.mk

# ---- set-up -----------------------------------------------------------------
deps: $(DEPS)/apt.stamp $(VENV)/.stamp $(VENV6)/.stamp $(FERRETDB) $(KAFKA_LIBS)/.stamp

$(DEPS)/apt.stamp: Makefile
	@mkdir -p $(DEPS)
	@missing=$$(for p in $(APT_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

# One venv per Salt line; salt-ext is installed editable so its salt.loader
# entry point is registered in both.
$(VENV)/.stamp: Makefile salt-ext/pyproject.toml
	@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check 'salt==$(SALT_VERSION)' \
	  'pytest==$(PYTEST_VERSION)' 'pyzmq==$(PYZMQ_VERSION)' 'pymongo==$(PYMONGO_VERSION)' 'aiosmtpd==$(AIOSMTPD_VERSION)' cherrypy \
	  'alibabacloud-ecs20140526==$(ALIYUN_ECS_VERSION)'
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps -e salt-ext
	@touch $@
$(VENV6)/.stamp: Makefile salt-ext/pyproject.toml
	@test -x $(VENV6)/bin/python || python3 -m venv $(VENV6)
	$(VENV6)/bin/pip install -q --disable-pip-version-check 'salt==$(SALT_LTS_VERSION)' \
	  'pytest==$(PYTEST_VERSION)' 'pyzmq==$(PYZMQ_VERSION)' 'pymongo==$(PYMONGO_VERSION)' 'aiosmtpd==$(AIOSMTPD_VERSION)' cherrypy \
	  'alibabacloud-ecs20140526==$(ALIYUN_ECS_VERSION)'
	$(VENV6)/bin/pip install -q --disable-pip-version-check --no-deps -e salt-ext
	@touch $@

# FerretDB's own cmd, `go install`ed from the module proxy, panics at start
# (its generated version.txt is missing there), so packaging/ferretdb wraps
# the embeddable package of the same release (see its main.go).
$(FERRETDB): packaging/ferretdb/main.go packaging/ferretdb/go.mod packaging/ferretdb/go.sum
	@command -v go >/dev/null || { echo "make deps: Go is needed to build FerretDB (go install)"; exit 1; }
	cd packaging/ferretdb && GOBIN=$(abspath $(DEPS)/bin) go install .
	@touch $@

# The Kafka broker tests/test_kafka.py runs (KRaft, one node, on the
# machine's Java): kafka_2.13 and its runtime jars from Maven Central, once.
$(KAFKA_LIBS)/.stamp: tests/kafka/pom.xml | $(DEPS)/apt.stamp
	mvn -q -B -f tests/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime \
	  -DoutputDirectory=$(abspath $(KAFKA_LIBS))
	@touch $@

# ---- tests ------------------------------------------------------------------
PYTEST = $(VENV)/bin/pytest -q -p no:cacheprovider
check: deps lib tools
	$(MAKE) --no-print-directory test-c
	$(MAKE) --no-print-directory test-asan
	$(MAKE) --no-print-directory check-exports
	$(MAKE) --no-print-directory fuzz-short
	$(MAKE) --no-print-directory check-py
	$(MAKE) --no-print-directory check-faults

check-py: deps lib tools
	AD_LIB=$(abspath $(B)/libautodeploy.so) AD_BIN=$(abspath $(B)/bin) \
	  SALT_VENV=$(abspath $(VENV)) $(PYTEST) --ignore=tests/faults tests/

# The fault-injection suite (docs/reliability.md, "Faults"): store killed,
# engine killed, master restarted, notifier hung, spool disk full or
# read-only, clock jumps. Needs root for the spool's tmpfs (skipped without).
check-faults: deps lib tools
	AD_LIB=$(abspath $(B)/libautodeploy.so) AD_BIN=$(abspath $(B)/bin) \
	  SALT_VENV=$(abspath $(VENV)) $(PYTEST) tests/faults/

check-compat: deps lib tools
	AD_LIB=$(abspath $(B)/libautodeploy.so) AD_BIN=$(abspath $(B)/bin) \
	  SALT_VENV=$(abspath $(VENV6)) $(VENV6)/bin/pytest -q -p no:cacheprovider \
	  --ignore=tests/faults tests/

# The README's two commands as the first commands on a clean Debian 12 root.
check-fresh:
	tests/fresh/check-fresh.sh

# ---- demo and bench ---------------------------------------------------------
demo: deps lib tools
	$(PY) tests/demo.py $(DEMO_ARGS)
# Stop what `make demo DEMO_ARGS=--keep` left running.
demo-stop:
	@if [ -x $(PY) ]; then $(PY) tests/demo.py --stop; else echo "no demo environment"; fi

bench: deps lib tools bench-build
	$(PY) bench/run_events.py
	AD_LIB=$(abspath $(B)/libautodeploy.so) $(VENV6)/bin/python bench/bench_returns.py
	$(MAKE) bench-placement
	$(MAKE) bench-purchase
	$(MAKE) bench-usage
	AD_LIB=$(abspath $(B)/libautodeploy.so) $(PY) bench/bench_register.py --also 5000 --with-3006
	$(MAKE) --no-print-directory bench-load
	$(PY) bench/report.py

# Job returns through a real master's request server until the master gives
# (bench/bench_load.py, docs/reliability.md "Load"): about 10 minutes.
bench-load: deps lib tools
	AD_LIB=$(abspath $(B)/libautodeploy.so) $(PY) bench/bench_load.py

clean:
	rm -rf $(B)
