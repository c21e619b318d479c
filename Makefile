# make lab   - build the local lab of Debian hosts and converge the cluster into it
# make test  - lint, unit tests, then the lab tests (installs everything it needs first)
# make down  - tear the default lab down, leaving nothing behind
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LAB := $(BIN)/lab
INVENTORY ?= inventory/lab
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

# Debian packages for the lab (debootstrap, nspawn, proxy, port forwarding), the app's tests, and
# python3-apt (tests/unit/test_packages_installed.py runs the apt module on this machine).
APT_PACKAGES := debootstrap systemd-container tinyproxy socat iproute2 openssh-client chromium \
	python3-apt \
	$(shell cat app/apt-packages.txt 2>/dev/null)
REQUIREMENTS := requirements.txt app/requirements.txt app/requirements-test.txt
CLUSTER_TESTS := $(wildcard tests/converge tests/infra tests/e2e)
YAML_PATHS := $(wildcard site.yml playbooks roles inventory)
# Python beyond Ansible YAML: the lab, tests, app, bench, tools, the strategy stub (plugins/), and
# the roles' filter plugins.
FILTER_PLUGINS := $(wildcard roles/*/filter_plugins/*.py)
ROLE_SCRIPTS := $(wildcard roles/*/files/*.py)
PY_PATHS := lab tests app bench tools plugins $(FILTER_PLUGINS) $(ROLE_SCRIPTS)

.PHONY: help setup apt venv lab test lint unit lab-test cluster-test gcs-test down status bench

help:
	@echo "make lab    build the lab and converge the cluster (http://localhost:8080)"
	@echo "make test   lint, unit tests, lab tests"
	@echo "make down   tear the lab down"
	@echo "make bench  measure installer and cluster into docs/benchmarks.md (about two hours)"

setup: apt venv

apt:
	@missing=$$(dpkg-query -W -f='$${Package} $${db:Status-Status}\n' $(APT_PACKAGES) 2>/dev/null \
		| awk '$$2 != "installed" {print $$1}'; \
		for p in $(APT_PACKAGES); do dpkg-query -W $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "== installing Debian packages: $$(echo $$missing)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: $(REQUIREMENTS) pyproject.toml
	@echo "== creating $(VENV) with pinned requirements"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --disable-pip-version-check $(addprefix -r ,$(REQUIREMENTS))
	@$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

lab: setup
	$(LAB) -i $(INVENTORY) up
	$(BIN)/ansible-playbook -i $(INVENTORY) site.yml
	@url=$$($(LAB) -i $(INVENTORY) url); echo; echo "The cluster is up: $$url"; \
	echo "Admin login: $$url/admin/  user admin, password" \
		"$$(cat $(INVENTORY)/credentials/django_admin_password.txt)"

down: venv
	$(LAB) -i $(INVENTORY) down

status: venv
	$(LAB) -i $(INVENTORY) status

lint: setup
	$(BIN)/ruff check $(PY_PATHS)
	$(BIN)/ruff format --check $(PY_PATHS)
	$(BIN)/mypy lab tools plugins $(FILTER_PLUGINS) $(ROLE_SCRIPTS)
	@if [ -n "$(YAML_PATHS)" ]; then $(BIN)/yamllint -s $(YAML_PATHS); fi
	@if [ -f site.yml ]; then \
		$(BIN)/ansible-playbook -i $(INVENTORY) --syntax-check site.yml && \
		$(BIN)/ansible-lint --profile production site.yml playbooks roles; fi

# promtool alone, from Debian's prometheus package: installing the package would start a Prometheus
# daemon on this machine. The alert rules' unit tests need it (tests/unit/test_alert_rules.py).
$(BIN)/promtool: | $(VENV)/.installed
	@echo "== extracting promtool from Debian's prometheus package into $(BIN)"
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cd "$$tmp" && \
	{ apt-get download -qq prometheus 2>/dev/null || \
		{ apt-get update -qq && apt-get download -qq prometheus; }; } && \
	dpkg-deb -x prometheus_*.deb root && \
	install -m 0755 root/usr/bin/promtool $(CURDIR)/$@

unit: setup $(BIN)/promtool
	$(BIN)/python -m pytest tests/unit -q
	cd app && ../$(BIN)/python -m pytest -q

lab-test: setup
	$(BIN)/python -m pytest tests/lab -q

# $(call on_lab,INVENTORY,TESTS): bring that lab up, run the tests on it (they converge it once),
# and tear it down after if this target brought it up. The slowest tests are listed: the suite's
# time is watched (README: Two commands).
define on_lab
	@was_up=$$($(LAB) -i $(1) status | grep -c ' running' || true); \
	$(LAB) -i $(1) up && LAB_INVENTORY=$(1) $(BIN)/python -m pytest $(2) -q --durations=15; rc=$$?; \
	if [ "$$was_up" = 0 ]; then $(LAB) -i $(1) down; fi; exit $$rc
endef

# Every cluster test, on the default lab (SeaweedFS).
cluster-test: setup
	$(call on_lab,$(INVENTORY),$(CLUSTER_TESTS))

# Media and static files in Google Cloud Storage, emulated on a host of its own (inventory/lab-gcs):
# converge and idempotence, a missing bucket, every tier's checks, and the balancer's tests (shared
# media included). `--check --diff` and the parts run alone (--tags) are left to the default lab:
# five minutes of CI's ninety.
GCS_INVENTORY := inventory/lab-gcs
GCS_TESTS := tests/converge/test_idempotence.py tests/converge/test_missing_bucket.py tests/infra \
	tests/e2e/test_balancer.py \
	--deselect tests/converge/test_idempotence.py::test_check_diff_on_a_converged_cluster_reports_nothing \
	--deselect tests/converge/test_idempotence.py::test_one_part_alone_runs_and_changes_nothing
gcs-test: setup
	$(call on_lab,$(GCS_INVENTORY),$(GCS_TESTS))

test: lint unit lab-test cluster-test gcs-test

# Benchmarks: rebuilds the default lab several times; numbers go to docs/benchmarks.md.
bench: setup
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python bench/run.py
