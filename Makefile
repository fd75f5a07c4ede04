# The README's commands. `make run` and `make test` work on a fresh machine with
# only Python 3.11: they create .venv when it is missing and install into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8081

.PHONY: run test bench lint fuzz soak attack cluster clean

$(STAMP): setup.cfg setup.py pyproject.toml fastim/ws/_speedups.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,lint]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m fastim serve --host $(HOST) --port $(PORT)

# The whole suite with a coverage report; fastim/ws must keep 95% of lines and branches.
# The suite writes bytecode (into the ignored __pycache__ folders) even where
# PYTHONDONTWRITEBYTECODE is set, as on the project's machines: otherwise every run
# compiles fastim again in each of the dozens of `python -m fastim serve` processes it
# starts (0.14 s each), and pytest rewrites every test module again (collecting took
# 5.7-8.8 s instead of 2.0 s).
SUITE_ENV := PYTHONDONTWRITEBYTECODE=
test: $(STAMP)
	$(SUITE_ENV) $(PY) -m pytest --cov --cov-report=term-missing:skip-covered $(PYTEST_ARGS)
	$(PY) -m coverage report --include='fastim/ws/*' --fail-under=95
	# fastim.ws again on its pure-Python masking, as where no C compiler was at install time
	$(SUITE_ENV) FASTIM_WS_SPEEDUPS=0 $(PY) -m pytest -q -p no:cacheprovider tests/ws/test_ws_frames.py \
		tests/ws/test_ws_protocol.py tests/ws/test_ws_asyncio.py

# The store at 10k and STORE_BENCH_ARGS' messages (docs/store.md); the issue's figures
# are from STORE_BENCH_ARGS='--messages 1000000' (seeding that takes minutes, once).
STORE_BENCH_ARGS ?= --messages 100000
# Message search: p50/p99, index size, the group commit with and without the indexer
# (docs/performance.md); the issue's size is SEARCH_BENCH_ARGS='--messages 1000000'.
SEARCH_BENCH_ARGS ?= --messages 100000
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[test,lint,bench]'
	$(PY) -m bench $(BENCH_ARGS)
	$(PY) -m bench.chat run $(CHAT_BENCH_ARGS)
	$(PY) -m bench.store $(STORE_BENCH_ARGS)
	$(PY) -m bench.search $(SEARCH_BENCH_ARGS)

# Coverage-guided fuzzing of every parser that takes outside input (docs/security.md),
# from the seed corpora in fuzz/corpus/; `python -m fuzz merge all` keeps what a run found
# that reaches new code, `python -m fuzz coverage` says what the corpora reach.
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	$(PY) -m fuzz all -max_total_time=$(FUZZ_SECONDS)

# The soak (docs/reliability.md): 10,000 connections at 150 messages/s for about 24 minutes
# with random drops on SQLite; e.g. SOAK_ARGS='--db mysql://root@127.0.0.1:3306/test' for
# MariaDB, SOAK_ARGS='--connections 2000 --rate 300 --duration 300' for a shorter run.
soak: $(STAMP)
	$(PY) -m soak $(SOAK_ARGS)

# A local cluster behind HAProxy (docs/scaling.md): CLUSTER_ARGS='--nodes 3 --port 8080'.
cluster: $(STAMP)
	$(PY) -m deploy.cluster $(CLUSTER_ARGS)

# The second outside attack replayed (docs/security.md): one line per attack, held or
# broken. By default against a fresh server of its own; against a running one on this
# machine: ATTACK_ARGS='--port 8081 --log server.log' (loopback only).
ATTACK_ARGS ?= --serve
attack: $(STAMP)
	$(PY) -m soak.attack $(ATTACK_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check fastim tests fuzz bench soak deploy
	$(PY) -m mypy --strict fastim

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .coverage htmlcov
