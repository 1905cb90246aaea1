# tcpwise: two commands do everything on a fresh Debian machine.
#   make demo   set up .venv, install, run the flagship demo
#   make test   set up, install the system packages the suite needs, run the whole suite
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSSTAMP := .sysdeps.installed
# System packages: nftables (lab faults), tshark (pcap validation, trace benchmark), tcptrace (trace benchmark),
# chromium (HTML report and SVG layout browser tests, docs-img screenshots), fonts-noto-cjk (the CJK font the
# SVG/HTML name: Chinese renders as boxes without it), iproute2 (namespaces), tcpdump (bench captures),
# procps (sysctl), nginx and haproxy (the ladder's real-software keep-alive race reproducers; nginx is also a
# probe reference target), curl and netcat-openbsd (stack interop tests: kernel clients and servers), gcc and
# python3-dev (trace's optional C extensions; installed before the venv, which builds them).
APT_PACKAGES := nftables tshark tcptrace chromium fonts-noto-cjk iproute2 tcpdump procps nginx haproxy curl \
  netcat-openbsd gcc python3-dev

.PHONY: demo test bench lint venv sysdeps clean docs-img

$(STAMP): pyproject.toml setup.py $(wildcard src/tcpwise/trace/*.c)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,dev]'
	touch $(STAMP)

venv: $(STAMP)

sysdeps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "make: need root to apt-get install$$missing" >&2; exit 2; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

demo: sysdeps venv
	$(BIN)/tcpwise demo

# The native extensions are built by the venv's install; if that ran before a compiler was there (make lint
# first), build them now.
NATIVE_OK := $(BIN)/python -c "import sys; from tcpwise.trace import native; sys.exit(not all(map(native.load, native.MODULES)))"

test: sysdeps venv
	@$(NATIVE_OK) 2>/dev/null || $(BIN)/pip install -q --no-deps -e .
	@set +e; $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests - failing" >&2; exit 1; fi; exit $$rc

bench: sysdeps venv
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The README picture and docs/img (the busiest diagrams as SVG and as Chromium screenshots), regenerated from the
# renderer; tests/render/test_docs_img.py fails when they are stale.
docs-img: venv sysdeps
	$(BIN)/python tools/docs_img.py

# The lint gate (.ci/run runs it before the tests): ruff lint and format, mypy --strict over all of src, and the
# layer contracts (import-linter, configured in pyproject.toml).
lint: venv
	$(BIN)/ruff check src tests bench tools examples
	$(BIN)/ruff format --check src tests bench tools examples
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
