# Two commands do everything on a fresh machine, each setting up what it needs first:
#   make demo   - the sender-to-receiver demo on the shipped weights
#   make test   - the whole test suite (what .ci/run calls)
VENV   ?= .venv
PY     := $(VENV)/bin/python
AELINK := $(VENV)/bin/aelink
PYTHON ?= python3

.PHONY: setup data tools test demo lint clean chromium
setup: $(VENV)/.installed data

# torch is pinned and installed first: 2.13.0 is the CPU build on our machines; anything looser
# makes pip fetch a CUDA build of several GB.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[train,dev]'
	touch $@

# Verifies the MNIST files in $$AELINK_DATA_DIR (or ./data/mnist); downloads the missing ones.
data: $(VENV)/.installed
	$(AELINK) data fetch

# `aelink bench serve` (and its test) drive the services with the compiled load generator `hey`, and
# training builds its fused kernels with a C++ compiler (g++): Debian packages, installed here when
# missing and apt-get can (as root); otherwise a note, and the tests that need them skip.
# $(call apt_tool,COMMAND,PACKAGE,NOTE): install PACKAGE when COMMAND is missing, else print NOTE
apt_tool = command -v $(1) >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -qq $(2) >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $(2) >/dev/null; }; }; } || \
	  echo "note: $(3)" >&2
tools:
	@$(call apt_tool,hey,hey,the load generator hey is not installed (apt-get install -y hey); aelink bench serve needs it)
	@$(call apt_tool,c++,g++,no C++ compiler (apt-get install -y g++); training runs without its fused kernels)

# The tests also run the optional parts: the Keras peer of `aelink bench train` (tensorflow-cpu, the
# `peer` extra) and Fashion-MNIST through the same loader (Debian's dataset-fashion-mnist, as root).
test: setup tools chromium $(VENV)/.peer
	@[ -d /usr/share/datasets/fashion-mnist ] || { [ "$$(id -u)" = 0 ] && export DEBIAN_FRONTEND=noninteractive && \
	  { apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	    { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; }; }; } || \
	  echo "note: dataset-fashion-mnist is not installed; its loader test will skip" >&2
	$(PY) -m pytest -q

$(VENV)/.peer: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[peer]'
	touch $@

demo: setup
	$(AELINK) demo

# The browser tests drive Debian's Chromium (never a downloaded one). Installed when missing, as root or
# with password-less sudo; otherwise those tests skip and say why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	  elif sudo -n true 2>/dev/null; then sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	  else echo "no chromium and no root: the browser tests (tests/web) will skip"; fi; }

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache
