# genaudit: the two commands are `make demo` and `make test`; each sets up what it needs.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTO_SRC := protos

.PHONY: demo test lint protos bench bench-gpu system-deps venv clean

# Debian packages the tests need: Redis (broker), Prometheus + promtool (scrape and rule tests).
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[worker,dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/python scripts/demo.py

test: venv system-deps
	$(BIN)/ruff check services tests benchmarks scripts
	$(BIN)/pytest -q

lint: venv
	$(BIN)/ruff check services tests benchmarks scripts

# Stubs of protos/genaudit/v1 into services/genaudit/api/v1 (committed; tests/unit/test_api_stubs.py fails on drift).
protos: venv
	$(BIN)/python $(PROTO_SRC)/generate.py services

bench: venv
	$(BIN)/python benchmarks/bench_metrics_cpu.py

# On a GPU machine: rarity+PRDC at N = 50k/200k vs the matmul ceiling, extraction throughput vs forward,
# batch detection images/s vs the detector nets' forward.
bench-gpu: venv
	$(BIN)/python benchmarks/bench_gpu.py
	$(BIN)/python benchmarks/bench_detect.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
