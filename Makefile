# paretolab: `make demo` installs everything and runs the demo campaign;
# `make test` installs everything and runs the tests (what CI runs).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch 2.13.0: these machines hold its CPU build on disk; elsewhere pip takes PyPI's
# default build for the platform (CUDA on Linux x86_64). Override to pick another, e.g.
#   make TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0

export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: install demo demo-molecules test test-fast lint benchmark benchmark-gfn benchmark-mogfn benchmark-opgfn benchmark-molecules benchmark-suite benchmark-peers-env benchmark-scale check-poli clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt scripts/build_botorch_extension.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	@# constraints.txt: the exact, tested versions (pyproject.toml has compatible ranges)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@# BoTorch's qLogNEHVI kernel is compiled once here, never inside a campaign or a test;
	@# a compile that hangs fails the install after 15 minutes instead of hanging runs.
	timeout 900 $(BIN)/python scripts/build_botorch_extension.py
	touch $@

demo: install
	$(BIN)/paretolab run campaigns/branin_currin.yaml

# the three-objective molecular campaign (QED, SA, similarity to celecoxib; about 3 min)
demo-molecules: install
	$(BIN)/paretolab run campaigns/molecules.yaml

# the browser test drives Debian's chromium through Playwright (apt, about a minute, once;
# Playwright downloads no browser)
CHROMIUM ?= /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# the suite runs on PYTEST_WORKERS processes (pytest-xdist), whole test files per worker
PYTEST_WORKERS ?= 2
PYTEST := CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "make test needs $(CHROMIUM) (Debian's chromium) for the browser test: install it, or set CHROMIUM=/path/to/chromium"; exit 1; }
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium \
	  || { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }

test: install $(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(PYTEST)

# the fast tier for the inner loop (under 2 minutes on 2 cores): unit tests with fakes, real
# stores and small real fits; no Prefect server, no campaign subprocesses (`make test` runs all)
test-fast: install
	$(PYTEST) -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

benchmark: install
	$(BIN)/python benchmarks/round_overhead.py

# MinMax GP fit times at 500/2,000/5,000 molecules and held-out quality against RBF
benchmark-molecules: install
	$(BIN)/python benchmarks/molecular_proxy.py

# our GFlowNet vs torchgfn (creates benchmarks/.venv-torchgfn; about 20 min on 2 cores)
benchmark-gfn: install
	TORCH_SPEC="$(TORCH_SPEC)" $(BIN)/python benchmarks/gfn_throughput.py --jobs 2

# the MOGFN paper's synthetic tasks (about 15 min on 2 cores)
benchmark-mogfn: install
	$(BIN)/python benchmarks/mogfn_paper.py --grid-steps 2000 --ngram-steps 1000

# OP-GFN vs MOGFN-PC on the OP-GFN paper's HyperGrid, three seeds (about 20 min on 2 cores)
benchmark-opgfn: install
	$(BIN)/python benchmarks/opgfn_paper.py --steps 1000 --seeds 0 1 2 --jobs 2

# the quality suite: shipped tasks x our generators x peers (BoTorch qLogNEHVI over a
# mutation pool; pymoo NSGA-II; Ax on grids), then plots and tables (hours on 2 cores;
# benchmarks/README.md "Quality suite")
benchmark-suite: install benchmark-peers-env
	$(BIN)/python benchmarks/suite.py
	$(BIN)/python benchmarks/report.py benchmarks/results/quality.jsonl

# pymoo (NSGA-II) and Ax for the peers, in their own environment (never project
# dependencies); it sees the project's packages through a .pth file, with the same
# numpy/scipy/torch/BoTorch versions pinned
benchmark-peers-env: benchmarks/.venv-peers/.installed

benchmarks/.venv-peers/.installed: $(VENV)/.installed
	test -x benchmarks/.venv-peers/bin/python || $(PYTHON) -m venv benchmarks/.venv-peers
	$(BIN)/python -m pip freeze --exclude-editable > benchmarks/.venv-peers/constraints.txt
	benchmarks/.venv-peers/bin/python -m pip install --quiet -c benchmarks/.venv-peers/constraints.txt pymoo==0.6.2 ax-platform==1.3.1
	echo "import site; site.addsitedir('$$($(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")')" \
	  > "$$(benchmarks/.venv-peers/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/paretolab-main-venv.pth"
	touch $@

# a round's cost at 1k/10k/100k measured candidates and pools of 1k/10k, the bounded
# proxy's held-out quality, the store at 1M rows and hypervolume tracking vs moocore
benchmark-scale: install
	$(BIN)/python benchmarks/round_scale.py
	$(BIN)/python benchmarks/store_and_hypervolume_scale.py

# poli black boxes through PoliOracle, from a separate numpy<2 environment (about 1 min)
check-poli: install
	test -x benchmarks/.venv-poli/bin/python || $(PYTHON) -m venv benchmarks/.venv-poli
	benchmarks/.venv-poli/bin/python -m pip install --quiet "numpy<2" poli-core==1.3.1
	$(BIN)/python scripts/check_poli.py --python benchmarks/.venv-poli/bin/python

clean:
	rm -rf $(VENV) .prefect runs benchmarks/.venv-torchgfn benchmarks/.venv-poli benchmarks/.venv-peers
