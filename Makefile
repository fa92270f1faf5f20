# position-monitor: `make run` starts the daemon on the simulator, `make test` checks everything.
# The first Python 3.11 or newer on PATH builds the venv; `make PYTHON=python3.12 ...` picks one.
PYTHON ?= $(firstword $(foreach candidate,python3.13 python3.12 python3.11 python3,\
	$(shell $(candidate) -c 'import sys; print(sys.version_info >= (3, 11) or "")' 2>/dev/null \
		| grep -q True && echo $(candidate))))
VENV := .venv
BIN := $(VENV)/bin
# Named after the interpreter, so a venv made by another Python is rebuilt rather than reused.
STAMP := $(VENV)/.installed-$(notdir $(PYTHON))
BENCH_STAMP := $(VENV)/.bench-installed
# Errors still show; progress bars, per-package notes and the build backend's notices do not.
PIP := $(BIN)/python -m pip --quiet --quiet --disable-pip-version-check --no-input

.PHONY: setup run test lint format bench lock clean

setup: $(STAMP)

# The venv is kept only if its interpreter is $(PYTHON)'s version and pip runs in it: a half-made
# venv (an interrupted first run, a missing python3-venv) is built again.
$(STAMP): pyproject.toml requirements-dev.lock
	@if [ -z "$(PYTHON)" ]; then \
		echo "position-monitor needs Python 3.11 or newer and found none on PATH: install it" \
			"(Debian and Ubuntu: sudo apt-get install python3.11 python3.11-venv)" \
			"and run: make PYTHON=python3.11 $(or $(MAKECMDGOALS),setup)" >&2; \
		exit 1; \
	fi
	@want="$$($(PYTHON) -c 'import sys; print(sys.version)')"; \
	have="$$($(BIN)/python -c 'import sys; print(sys.version)' 2>/dev/null)"; \
	if [ "$$want" != "$$have" ] || ! $(BIN)/python -m pip --version >/dev/null 2>&1; then \
		rm -rf $(VENV) && \
		$(PYTHON) -m venv $(VENV) || { \
			rm -rf $(VENV); \
			echo "$(PYTHON) -m venv failed; on Debian and Ubuntu: sudo apt-get install" \
				"python$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv" >&2; \
			exit 1; }; \
	fi
	@echo "Installing position-monitor and its pinned dependencies into $(VENV) ($$($(PYTHON) -V))"
	@$(PIP) install --upgrade pip
	@$(PIP) install --require-hashes --no-deps -r requirements-dev.lock
	@$(PIP) install --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed*
	@touch $(STAMP)

run: setup
	$(BIN)/position-monitor run --config rules.yaml

test: lint
	$(BIN)/position-monitor test rules_test.yaml
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/bandit -q -r monitor
	$(BIN)/hadolint Dockerfile

# Benchmarks against references measured in the same run; the last line of output is JSON and
# the exit status is 1 when a target is missed. A few minutes; see README, "Performance".
bench: setup $(BENCH_STAMP)
	$(BIN)/python -m benchmarks

$(BENCH_STAMP): $(STAMP)
	@$(PIP) install -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

# Re-pins every dependency (and setuptools, which builds the package) to its newest release
# within pyproject.toml's ranges, with hashes: requirements.lock for the image,
# requirements-dev.lock for the venv and CI. See README, "Updating the dependency lock".
lock: setup
	$(BIN)/pip-compile --quiet --upgrade --generate-hashes --allow-unsafe --strip-extras \
		--all-build-deps --no-emit-index-url --no-emit-find-links \
		--output-file requirements.lock pyproject.toml
	$(BIN)/pip-compile --quiet --upgrade --generate-hashes --allow-unsafe --strip-extras \
		--all-build-deps --no-emit-index-url --no-emit-find-links --extra dev \
		--output-file requirements-dev.lock pyproject.toml

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
