# The two commands of the README, and their parts. Everything runs from a local venv that
# the first target creates, so a fresh machine needs only python3 (>= 3.11).
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
SEEDS   ?= 0:2000
NODES   ?= 3:7
BIG_SEEDS ?= 0:50
BIG_NODES ?= 16:20
JOBS    ?= 2

.PHONY: demo sim-demo test venv warm sweep unit bench clean nemesis soak

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Compile the jitted core once, in one process, before parallel workers load the cache.
warm: venv
	$(VPY) -m coroproc.ringproc.warm

# Main job: a real local cluster (3 daemons on loopback) with a CPG client per node, live
# progress, a node killed and restarted, an engine restarted, a checked summary.
demo: warm
	$(VPY) -m coroproc.demo

# The same protocol in the deterministic simulator, under seeded faults.
sim-demo: warm
	$(VPY) -m coroproc.sim --seed 17 --nodes 5 --print-memberships
	$(VPY) -m coroproc.sim --seeds 0:12 --nodes 3:7 --progress

sweep: warm
	$(VPY) -m coroproc.sim --seeds $(SEEDS) --nodes $(NODES) --jobs $(JOBS)
	$(VPY) -m coroproc.sim --seeds $(BIG_SEEDS) --nodes $(BIG_NODES) --jobs $(JOBS)

unit: warm
	$(VPY) -m pytest -n $(JOBS) -q

# The test command: seed sweeps first (they print their own summary), pytest last.
test: sweep unit

bench: warm
	$(VPY) bench/bench_core.py
	$(VPY) bench/bench_shm.py

clean:
	rm -rf $(VENV) build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Seeded fault injection on real clusters in network namespaces (root): the CI schedule,
# and the long soak whose result is recorded in bench/results/soak.md.
SOAK_SEED ?= 7
SOAK_MINUTES ?= 30
nemesis: warm
	$(VPY) -m pytest -n 2 tests/nemesis
soak: warm
	$(VPY) bench/soak.py --minutes $(SOAK_MINUTES) --faults-min 200 --nodes 5 --seed $(SOAK_SEED)
