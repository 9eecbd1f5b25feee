# Video2Act developer entry points. Everything runs from a venv made by
# scripts/setup.sh (no ROS install needed); see README.md.
SHELL := /bin/bash
ENV := source scripts/env.sh
DURATION ?= 30

.PHONY: setup run test test-fast lint bench clean

setup:
	bash scripts/setup.sh

# The simulated arm closed-loop with both nodes, each its own process.
run: setup
	$(ENV) && python -m video2act_eval.demo --params config/video2act.yaml --duration $(DURATION)

test: setup
	$(ENV) && python -m pytest -q -p no:cacheprovider

# The core's tests alone, for a quick loop while developing: no node
# processes over DDS, no simulated episodes, no training.
test-fast: setup
	$(ENV) && python -m pytest -q -p no:cacheprovider -m "not dds and not sim and not training"

lint: setup
	$(ENV) && ruff check . && ruff format --check .

bench: setup
	$(ENV) && python scripts/bench_latency.py

clean:
	rm -rf build install log runs
