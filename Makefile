# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FLASK := $(BIN)/flask --app wsgi

.PHONY: run test install bench lint clean-db

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Embedded PostgreSQL under instance/ unless DATABASE_URL is set; Ctrl-C stops both.
run: $(STAMP)
	BATON_ENV=development $(FLASK) db upgrade
	BATON_ENV=development $(FLASK) demo
	BATON_ENV=development exec $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

# TEST_DATABASE_URL when set, else an embedded PostgreSQL the suite starts and removes.
test: $(STAMP)
	BATON_ENV=test $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check app bench tests config.py wsgi.py gunicorn.conf.py

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# Remove the development database (stop `make run` first).
clean-db:
	rm -rf instance/pgdata instance/demo-credentials.json
