# One command per job. `make run` and `make test` work on a fresh Debian
# machine: they install what is missing (apt packages need root or sudo),
# create .venv, build the Cython modules and go.

VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP := $(VENV)/.installed

.PHONY: run stop status test test-quick bench lint build clean ci system-deps

system-deps:
	@missing=""; \
	python3 -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	[ -e "$$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ] || missing="$$missing python3-dev"; \
	command -v cc >/dev/null || missing="$$missing build-essential"; \
	command -v redis-cli >/dev/null || missing="$$missing redis-tools"; \
	command -v redis-benchmark >/dev/null || missing="$$missing redis-tools"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v iptables >/dev/null || missing="$$missing iptables"; \
	command -v fusermount3 >/dev/null || missing="$$missing fuse3"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml setup.py
	$(MAKE) system-deps
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q 'cython>=3.0,<4' 'setuptools>=68' wheel
	$(PY) -m pip install -q --no-build-isolation -e '.[dev]'
	touch $(STAMP)

build: $(STAMP)
	$(PY) setup.py -q build_ext --inplace

# A local 3-node cluster in ./cluster (client ports 9000-9002, cluster
# ports 10000-10002), started in the background; `make stop` stops it.
run: build
	$(VENV)/bin/prez-cluster start 3

stop:
	$(VENV)/bin/prez-cluster stop

status:
	$(VENV)/bin/prez-cluster status

# The whole suite: unit, simulation and integration tests with real servers,
# then each benchmark once as a smoke test (no timing gate).
test: build
	$(PY) -m pytest tests -q
	$(PY) -m pytest bench -q --benchmark-disable

test-quick: build
	PREZ_NO_SERVERS=1 $(PY) -m pytest tests -q -m 'not integration'

bench: build
	$(PY) -m pytest bench --benchmark-autosave -s

lint: $(STAMP)
	$(VENV)/bin/ruff check prez tests bench
	$(VENV)/bin/mypy prez

clean:
	rm -rf build prez/_core/*.c prez/_core/*.so prez/_core/*.html

ci: test
