# Targets named in the README. Everything runs from the project's .venv.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
# Tasks the tests queue without a worker land in a database of their own.
TEST_REDIS_URL ?= redis://127.0.0.1:6379/4

.PHONY: install demo test lint check-migrations typecheck bench bench-mitigation \
	bench-approval bench-dashboard

$(VENV)/.installed: pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev,demo]'
	# The demo script's own record of this install, so it need not repeat it.
	sha256sum pyproject.toml | cut -d' ' -f1 >$(VENV)/.bastion-demo-installed
	touch $@

install: $(VENV)/.installed

demo:
	./scripts/demo

test: install
	BASTION_DATABASE_URL=$${BASTION_DATABASE_URL:-$(TEST_DATABASE_URL)} \
	BASTION_REDIS_URL=$${BASTION_REDIS_URL:-$(TEST_REDIS_URL)} \
		$(PYTHON) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

check-migrations: install
	$(PYTHON) manage.py makemigrations --check --dry-run

typecheck: install
	$(VENV)/bin/mypy bastion watchers mitigations escalations audit

bench: install
	BASTION_DATABASE_URL=$${BASTION_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bastion_bench} \
		$(PYTHON) -m bench.evaluation_cycle $(BENCH_ARGS)

bench-mitigation: install
	BASTION_DATABASE_URL=$${BASTION_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bastion_bench} \
		$(PYTHON) -m bench.mitigation_latency $(BENCH_ARGS)

bench-approval: install
	BASTION_DATABASE_URL=$${BASTION_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bastion_bench} \
		$(PYTHON) -m bench.approval_latency $(BENCH_ARGS)

bench-dashboard: install
	BASTION_DATABASE_URL=$${BASTION_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/bastion_bench_dashboard} \
		$(PYTHON) -m bench.dashboard_latency $(BENCH_ARGS)
