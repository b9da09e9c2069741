# Two commands matter: `make run` brings Apiary up with embedded defaults, `make test` runs ruff and the suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PG_TEST_URL ?= postgresql+psycopg2://postgres@127.0.0.1:5432/test

.PHONY: run test lint format install system-deps browser-deps bench-deps bench bench-predict mutants clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed system-deps

# The function sandbox needs bubblewrap and libseccomp; installed when missing and we may use apt-get.
system-deps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -qq bubblewrap >/dev/null 2>&1 || (apt-get update -qq >/dev/null && apt-get install -y -qq bubblewrap >/dev/null)); \
	  else echo "bubblewrap (bwrap) is missing: install it with your package manager (Debian: apt-get install bubblewrap)"; exit 1; fi; }
	@ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -qq libseccomp2 >/dev/null 2>&1 || (apt-get update -qq >/dev/null && apt-get install -y -qq libseccomp2 >/dev/null)); \
	  else echo "libseccomp2 is missing: install it with your package manager (Debian: apt-get install libseccomp2)"; exit 1; fi; }

# The console's browser tests drive Debian's Chromium through Playwright.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null)); \
	  else echo "chromium is missing: install it with your package manager (Debian: apt-get install chromium)"; exit 1; fi; }

run: install
	$(BIN)/python -m app.supervisor

lint: $(BIN)/.installed
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The suite runs on SQLite, then again on PostgreSQL when one answers at 127.0.0.1:5432.
test: install browser-deps bench-deps lint
	$(BIN)/pytest -q
	@if $(BIN)/python -c "import sqlalchemy as sa; sa.create_engine('$(PG_TEST_URL)').connect().close()" 2>/dev/null; then \
	  echo "PostgreSQL answers: running the suite again against it"; \
	  TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/pytest -q; \
	else echo "PostgreSQL not reachable at 127.0.0.1:5432: skipped the PostgreSQL run"; fi

# The serving benchmark drives its load with hey (Debian package `hey`), installed when missing and we may use apt-get.
bench-deps:
	@command -v hey >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -qq hey >/dev/null 2>&1 || (apt-get update -qq >/dev/null && apt-get install -y -qq hey >/dev/null)); \
	  else echo "hey is missing: install it with your package manager (Debian: apt-get install hey)"; exit 1; fi; }

# `make bench BENCH_ARGS="--seconds 5"` for a shorter run; the figures go to bench/results/serving.json.
BENCH_ARGS ?=
bench: install bench-deps
	$(BIN)/python bench/serving.py $(BENCH_ARGS)

# The older model-only benchmark (serving route vs in-process scoring routes): bench/results/predict.json.
bench-predict: install
	$(BIN)/python bench/predict.py

# Named mutants of the code behind the README's promises; each must be killed by its tests (slow: on demand).
mutants: install
	$(BIN)/python -m tests.mutants

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
