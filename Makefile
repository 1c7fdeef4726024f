# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FLASK := $(BIN)/flask --app wsgi
PIP := $(BIN)/python -m pip --disable-pip-version-check
# Every install takes the versions the suite was run with (refresh them with `make lock`).
CONSTRAINTS := constraints.txt

.PHONY: run test test-quick install install-prod lock flask bench lint clean-db

$(STAMP): setup.cfg pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c $(CONSTRAINTS) -e '.[dev,embedded]'
	touch $(STAMP)

install: $(STAMP)

# Production from a checkout (README "Production"): no test tools, no embedded PostgreSQL.
install-prod:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -c $(CONSTRAINTS) -e .

# Re-resolve every dependency to the newest allowed by setup.cfg, then run `make test`.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,embedded]'
	( echo "# Tested versions of every dependency: make install and CI install with -c."; \
	  echo "# Regenerate with 'make lock' (newest versions setup.cfg allows), then make test."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable --all \
	    | grep -v -i -E '^(pip|setuptools|wheel)==' ) > $(CONSTRAINTS)
	rm -rf .lock-venv

# An operator command with the settings `make run` uses, e.g. make flask ARGS="tenants list".
flask: $(STAMP)
	@BATON_ENV=development $(FLASK) $(ARGS)

# Where `make run` listens, e.g. make run BIND=127.0.0.1:8001; the demo's issuer follows
# (BATON_BASE_URL, unless set), and so do the curl examples (through the demo credentials).
BIND ?= 127.0.0.1:8000
BATON_BASE_URL ?= http://$(BIND)

# Embedded PostgreSQL under instance/ unless DATABASE_URL is set; Ctrl-C stops both.
run: $(STAMP)
	BATON_ENV=development $(FLASK) db upgrade
	BATON_ENV=development BATON_BASE_URL=$(BATON_BASE_URL) $(FLASK) demo
	BATON_ENV=development BATON_BASE_URL=$(BATON_BASE_URL) \
	  exec $(BIN)/gunicorn -c gunicorn.conf.py --bind $(BIND) wsgi:app

# TEST_DATABASE_URL when set, else an embedded PostgreSQL the suite starts and removes.
test: $(STAMP)
	BATON_ENV=test $(BIN)/python -m pytest $(PYTEST_ARGS)

# The quick tier while developing: no live gunicorn, no slow test (CI still runs everything).
test-quick: $(STAMP)
	BATON_ENV=test $(BIN)/python -m pytest -m "not slow and not live" $(PYTEST_ARGS)

# Style and types: ruff everywhere, mypy over the application (settings in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check app bench tests config.py wsgi.py gunicorn.conf.py
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# Remove the development database (stop `make run` first).
clean-db:
	rm -rf instance/pgdata instance/demo-credentials.json
