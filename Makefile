# Two commands do everything on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
export DATA_DIR ?= $(CURDIR)/.data
export PORT ?= 5000

.PHONY: run test bench lint install clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

## Run the product: embedded Postgres + Redis (unless DATABASE_URL/REDIS_URL), demo tenant, web + worker.
run: install
	$(BIN)/python -m app.runner

## Run the whole test suite against real Postgres and Redis.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile $(PYTEST_ARGS)

## Print benchmark figures beside same-run baselines (needs wrk, installed from Debian if missing).
bench: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(DATA_DIR)
