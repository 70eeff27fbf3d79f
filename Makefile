# Two commands do everything on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
export DATA_DIR ?= $(CURDIR)/.data
export PORT ?= 5000

.PHONY: run test test-tools runtime-libs bench bench-scale lint install clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

## Run the product: embedded Postgres + Redis (unless DATABASE_URL/REDIS_URL), clamd where installed,
## demo tenant, web + worker.
run: install runtime-libs
	$(BIN)/python -m app.runner

## The one Debian library the product itself loads: libmagic, which tells a file's type from its bytes.
runtime-libs:
	@ldconfig -p | grep -q 'libmagic\.so\.1 ' || { echo "Installing libmagic1 from Debian"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    libmagic1; } >/tmp/tms-runtime-libs.log 2>&1 || { cat /tmp/tms-runtime-libs.log; exit 1; }; }

## Install what tests run for real from Debian when missing: clamd (virus scans), libmagic (file types),
## Chromium (UI tests). Their services stay stopped (tests start their own); policy-rc.d keeps freshclam
## from starting.
test-tools:
	@test -x /usr/sbin/clamd -a -x /usr/bin/clamscan -a -x /usr/bin/chromium \
	  -a -n "$$(ldconfig -p | grep 'libmagic\.so\.1 ')" || { \
	  echo "Installing clamav-daemon, clamav, libmagic1 and chromium from Debian for the tests"; \
	  if [ ! -e /usr/sbin/policy-rc.d ]; then trap 'rm -f /usr/sbin/policy-rc.d' EXIT; \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    clamav-daemon clamav libmagic1 chromium; } >/tmp/tms-test-tools.log 2>&1 || { cat /tmp/tms-test-tools.log; exit 1; }; }

## Run the whole test suite against real Postgres, Redis, S3 (moto), clamd and Chromium.
test: install test-tools
	$(BIN)/python -m pytest -q -n 2 --dist loadfile $(PYTEST_ARGS)

## Print benchmark figures beside same-run baselines (needs wrk, and Chromium for the UI rows, from Debian).
bench: install runtime-libs
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null)
	$(BIN)/python -m bench $(BENCH_ARGS)

## 10,000 tenants on one node (bench/scale.py): half an hour and ~7 GB of disk, deleted at the end.
bench-scale: install runtime-libs
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	$(BIN)/python -m bench --only scale $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(DATA_DIR)
