# The two commands of the README: `make demo` and `make test`.
# Each installs what it needs (Debian packages, a virtualenv, the project) on a fresh Debian 12.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP_APT := .setup-apt.stamp
STAMP_VENV := $(VENV)/.installed.stamp

.PHONY: demo test test-fast bench fuzz setup clean check-fresh check-floors

setup: $(STAMP_APT) $(STAMP_VENV)

$(STAMP_APT): scripts/setup-debian.sh
	bash scripts/setup-debian.sh
	touch $@

$(STAMP_VENV): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# editable_mode=compat: the checkout's path in a .pth, as a normal install's site-packages
	# is, with no import hook; setuptools' default editable hook slows each import and makes
	# `cygnet up` start ~50 ms later than installed. Plain -e if setuptools drops compat.
	$(VENV)/bin/pip install -q -e '.[test,test-gui]' --config-settings editable_mode=compat \
		|| $(VENV)/bin/pip install -q -e '.[test,test-gui]'
	touch $@

demo: setup
	PYTHONPATH=. $(PY) scripts/demo.py

test: setup
	$(PY) -m pytest -q --timeout=600 --cov=ike --cov-report=term

# Cygnet against strongSwan, side by side in one run (bench/README: what is measured).
bench: setup
	$(PY) -m bench.run

# Pure unit tests: no root, no namespaces, no strongSwan, NetworkManager or VM (markers: pyproject).
FAST_MARKERS := not interop and not netns and not vm and not nm
test-fast: $(STAMP_VENV)
	$(PY) -m pytest -q -m '$(FAST_MARKERS)'

# The fresh-root lane (README: "A fresh machine"): `make demo` on a minimal Debian 12 root with
# nothing installed by hand; needs root and mmdebstrap (scripts/setup-debian.sh installs it).
check-fresh:
	bash scripts/check-fresh-machine.sh

# pyproject's dependency floors: the lowest allowed versions pass the unit tests (uv, throw-away venv).
check-floors:
	bash scripts/check-floors.sh

# Every fuzz target (tests/fuzz/target_*.py) for FUZZ_SECONDS each (or FUZZ_INPUTS inputs);
# reports inputs, crashes, hangs and peak memory; crashing inputs land in tests/fuzz/crashes/.
# FUZZ_ENGINE=atheris for coverage-guided runs (pip install '.[fuzz]'); FUZZ_TARGETS to pick.
FUZZ_SECONDS ?= 60
FUZZ_INPUTS ?= 1000000000
FUZZ_ENGINE ?= mutate
FUZZ_TARGETS ?=
fuzz: $(STAMP_VENV)
	$(PY) -m tests.fuzz.run $(FUZZ_TARGETS) --seconds $(FUZZ_SECONDS) --inputs $(FUZZ_INPUTS) --engine $(FUZZ_ENGINE)

clean:
	rm -rf $(VENV) $(STAMP_APT) .pytest_cache .coverage
