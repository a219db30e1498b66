# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench ui clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## The whole chain offline: demo collection -> tiny model -> build -> UI command.
demo: $(STAMP)
	$(PY) -m demo

## Every test, the slow end-to-end ones included (chromium is installed for the browser test, and
## PostgreSQL for the catalog tests, which start a private server; without either, those tests skip).
test: $(STAMP)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq postgresql-15 >/dev/null) || true
	$(PY) -m pytest -q

## Everything but the slow end-to-end checks.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m 'not slow and not gpu'

bench: $(STAMP)
	$(PY) bench/embed_throughput.py
	$(PY) bench/query_latency.py
	$(PY) bench/demo_render.py
	$(PY) bench/readers_load.py
	$(PY) bench/build_write_path.py

ui: $(STAMP)
	$(VENV)/bin/streamlit run ui/app.py

clean:
	rm -rf var .pytest_cache
