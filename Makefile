# Makefile - top level of pg_paxos
#
#   make            check Debian packages, build core/, extension/ and agent/
#   make install    install the extension into the PostgreSQL of $(PG_CONFIG)
#                   (paxosd and paxosctl run from agent/build/)
#   make fuzz       fuzz the agent's request parsers for 5 minutes
#   make test       deps, build, install, then every test tier; the last
#                   line is "N passed, N failed"
#   make demo       start a local 3-node cluster (scripts/demo.sh)
#   make demo-stop  stop it
#   make bench      paxos_append throughput and latency (bench/)
#   make bench-bank pgbench bank workload: PostgreSQL, streaming
#                   replication, pg_paxos (bench/pgbench_bank.py)
#   make bench-failover  kill -9 the leader 20 times, time the failover
#                   (bench/failover_bench.py)
#   make bench-catchup   stop a node, write 200k rows, restart it: how
#                   fast it catches up (bench/catchup_bench.py)
#   make clean
#
# PostgreSQL 15 is found through pg_config; override with PG_CONFIG=...

PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) \
                         pg_config)
export PG_CONFIG

PYTHON = /usr/bin/python3
BENCH_ARGS ?=
BENCH_BANK_ARGS ?=
BENCH_FAILOVER_ARGS ?=
BENCH_CATCHUP_ARGS ?=

.PHONY: all deps core extension agent install test demo demo-stop bench \
	bench-bank bench-failover bench-catchup fuzz clean

all: deps core extension agent

deps:
	@scripts/install-deps.sh

core: deps
	@if [ -f core/Makefile ]; then \
		$(MAKE) -C core; \
	else \
		echo "core: no core/Makefile yet, nothing to build"; \
	fi

# The extension compiles the core sources itself; building it after core
# keeps the two from writing the same objects at once under make -j.
extension: deps core
	$(MAKE) -C extension

# paxosd and paxosctl (agent/Makefile); tests and the demo run them from
# agent/build/, so installing them elsewhere is optional
agent: deps
	$(MAKE) -C agent PG_CONFIG=$(PG_CONFIG)

fuzz: deps
	$(MAKE) -C agent fuzz

install: all
	$(MAKE) -C extension install

test: install
	@tests/run_all.sh

# demo.sh start checks packages, builds and installs by itself (quietly).
demo:
	@scripts/demo.sh start

demo-stop:
	@scripts/demo.sh stop

bench: install
	$(PYTHON) bench/append_bench.py $(BENCH_ARGS)

bench-failover: install
	$(PYTHON) bench/failover_bench.py $(BENCH_FAILOVER_ARGS)

bench-catchup: install
	$(PYTHON) bench/catchup_bench.py $(BENCH_CATCHUP_ARGS)

bench-bank: install
	$(PYTHON) bench/pgbench_bank.py $(BENCH_BANK_ARGS)

clean:
	@for d in core extension agent tests/unit; do \
		if [ -f $$d/Makefile ]; then $(MAKE) -C $$d clean || exit 1; fi; \
	done
	rm -rf tests/cluster/__pycache__ bench/__pycache__ .pytest_cache \
		tests/cluster/.pytest_cache tests/agent/__pycache__ \
		tests/agent/artifacts
