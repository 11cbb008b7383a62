# One command each, on a fresh machine:  `make quick` (set up, then run the main job on the
# quick profile) and `make test` (set up, then run the test suite).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_LOG := $(VENV)/pip.log

# one install at a time into the one venv, whatever -j says
.NOTPARALLEL:

.PHONY: setup quick paper paper-report reproduce test bench browser readme-figure explore-figure clean-venv

# pip byte-compiles what it installs one file at a time, which takes about as long as the install
# itself; installed with --no-compile, the packages (and sysa_core, installed in place) are compiled
# afterwards on every core instead (test folders left out: nothing imports them; a file that does
# not compile is left as pip leaves it). Compiled once here, because a process never writes bytecode
# where PYTHONDONTWRITEBYTECODE is set, and would compile what it imports every time (a source
# changed since is compiled again in memory, as always).
COMPILE = $(PY) -m compileall -qq -j 0 -x 'site-packages/.*/tests?/' "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" sysa_core || true

# $(call install,DESCRIPTION,PIP-TARGET): the virtual environment, with pip installing PIP-TARGET
# into it (no commas in either argument)
define install
	python3 -m venv $(VENV)
	@echo "installing $(1) into $(VENV) (log: $(PIP_LOG))"
	@$(PY) -m pip install -q --upgrade pip 2>$(PIP_LOG) || (cat $(PIP_LOG); exit 1)
	@$(PY) -m pip install -q --no-compile -e "$(2)" 2>>$(PIP_LOG) || (cat $(PIP_LOG); exit 1)
	@$(COMPILE)
endef

$(VENV)/.installed: pyproject.toml
	$(call install,sysa and its dependencies,.)
	@touch $@

# `make test` installs what the tests need besides (pytest, xdist, selenium, Dask) in the same go
$(VENV)/.installed-test: pyproject.toml
	$(call install,sysa with its dependencies and the test dependencies,.[test])
	@touch $(VENV)/.installed $@

setup: $(VENV)/.installed

quick: setup
	$(VENV)/bin/sysa run --profile quick

paper: setup
	$(VENV)/bin/sysa run --profile paper

# the shipped study (data/paper): every report re-made from its trained weights, without training,
# each metric checked against the shipped one -> data/runs/paper-study/index.html
paper-report: setup
	$(VENV)/bin/sysa study report

# the original's four published files, fetched from their pinned commit (sha256 checked, cached),
# evaluated beside its published table
reproduce: setup
	$(VENV)/bin/sysa reproduce

# figures/quick_outputs.png: the output of seed 1 of the quick run for the test pulses
readme-figure: quick
	$(PY) -c 'import numpy as np; from sysa_core import config; from sysa_core.pipeline import plots; \
	  a = dict(np.load("data/runs/quick/seed_1/analysis.npz")); \
	  plots.save(plots.evaluation(a, "quick profile, seed 1: output for each test pulse", \
	    config.resolve("quick").task.Nt_ms), "figures/quick_outputs.png")'

# figures/explore.png: the explorer in a real JupyterLab on seed 1 of the quick run (its browser test's screenshot)
explore-figure: $(VENV)/.installed-test quick browser
	SYSA_EXPLORE_CHECKPOINT=$(CURDIR)/data/runs/quick/seed_1/sys_A1_state.pth \
	SYSA_EXPLORE_SCREENSHOT=$(CURDIR)/figures/explore.png \
	  $(PY) -m pytest -q -p no:cacheprovider tests/test_explore.py -k jupyterlab

bench: setup
	$(PY) -m sysa_core.bench

# Debian's Chromium and ChromeDriver, for the test that opens the reports in a real browser.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing Debian's chromium and chromium-driver"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

test: $(VENV)/.installed-test browser
	$(PY) -m pytest -q -n auto --dist worksteal

clean-venv:
	rm -rf $(VENV)
