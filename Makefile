# Two commands matter: `make demo` and `make test`. Everything installs into .venv from the lock.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8420
WEB_PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck fake-stripe bench bench-quick bench-chaos embedded-stop clean

$(STAMP): requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	@touch $(STAMP)

install: $(STAMP)

# When `make demo` began (before the install), so the demo can say how long its first start took.
MAKE_STARTED := $(shell date +%s)

demo: install
	@WEB_PORT=$(WEB_PORT) STRIPE_PORT=$(PORT) MAKE_STARTED=$(MAKE_STARTED) bash scripts/demo.sh

test: install
	@bash scripts/test.sh $(ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy .

fake-stripe: install
	$(PY) scripts/fake_stripe.py --port $(PORT)

bench: install
	$(PY) -m bench

bench-quick: install
	$(PY) -m bench --quick

# The chaos scenario (issue 15): faults injected into Stripe calls and a worker killed, then the invariants.
bench-chaos: install
	$(PY) -m bench --only chaos

# Stops the embedded PostgreSQL and Redis under var/ if a bare manage.py command started them.
embedded-stop: install
	$(PY) -m config.embedded stop

clean: embedded-stop
	rm -rf $(VENV)
