# perfpipe: make setup | demo | test | stop | clean
# Everything runs on this machine and listens on 127.0.0.1 only (see scripts/*.sh for the env knobs).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV     := .venv
PERFPIPE := $(VENV)/bin/perfpipe
PYTHON   := $(VENV)/bin/python
# Extra pytest arguments, e.g. make test PYTEST_ARGS='-k gates -x'
PYTEST_ARGS ?=
# Profile for make demo
DEMO_PROFILE ?= quick

.PHONY: help setup demo test stop clean influxd-start demo-start

help:
	@echo "make setup   install apt packages (influxdb), uv and the .venv (idempotent)"
	@echo "make demo    setup + start influxd and the demo target, then the quick pipeline against it"
	@echo "make test    setup + pytest (tests start their own influxd/demo target)"
	@echo "make stop    stop the demo target and influxd started here (pidfiles in ./run)"
	@echo "make clean   stop + remove ./run and ./log (keeps ./data)"

setup:
	@bash scripts/setup.sh

influxd-start:
	@bash scripts/influxd.sh start

demo-start:
	@bash scripts/demo.sh start

demo: setup influxd-start demo-start
	@echo "== perfpipe run pipeline --target demo --profile $(DEMO_PROFILE)"; \
	rc=0; $(PERFPIPE) run pipeline --target demo --profile $(DEMO_PROFILE) || rc=$$?; \
	echo; echo "== influxd $$(bash scripts/influxd.sh url), demo target $$(bash scripts/demo.sh url): still running; 'make stop' stops them"; \
	exit $$rc

test: setup
	@rc=0; $(PYTHON) -m pytest -q $(PYTEST_ARGS) || rc=$$?; \
	if [[ $$rc == 5 ]]; then echo "pytest collected no tests (exit 5): that is a failure"; fi; \
	exit $$rc

stop:
	@bash scripts/demo.sh stop
	@bash scripts/influxd.sh stop

clean: stop
	rm -rf run log
