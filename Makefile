# Set-up, tests, benchmarks and checks. Every target installs what it needs itself.
#   make test    the test suite (CPU; Triton kernels through the interpreter), without the
#                slow tests: training runs and multi-process suites
#   make test-slow  the slow tests alone (CI runs both)
#   make bench   the main job: the kernel microbenchmarks on this machine's device
#   make lint    ruff
#   make install-torchrec  the TorchRec extra (recperf.torchrec)
#   make test-torchrec     the TorchRec tests, with the extra installed (slow ones: test-slow)
#   make cuda-check   compile every CUDA source for sm_90a with nvcc (no GPU needed)
#   make triton-check every Triton launch of the GPU benchmarks and tests, compiled for sm_90a
#   make triton-new   the same and the kernels' interpreter tests on the newest Triton

VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch (from this machine's local wheel when present); a GPU machine
# can point this at its own torch, e.g. TORCH_SPEC="torch==2.11.0".
TORCH_SPEC ?= torch==2.13.0
# The Triton of the GPU machines: tests use no newer Triton API than this.
TRITON_SPEC ?= triton==3.6.0
# The newest Triton, in a venv of its own over $(VENV)'s torch and recperf (a .pth file
# appends $(VENV)'s site-packages after its own, so its triton wins): kernels/ must stay
# correct from the floor (TRITON_SPEC) to this one.
TRITON_NEW_SPEC ?= triton
VENV_NEW ?= .venv-triton-new
NATIVE := $(wildcard csrc/*.cpp csrc/*/*.cpp csrc/*/*/*.cpp csrc/*/*.cu csrc/*/*.cuh csrc/*/*.h csrc/*/*/*.h csrc/sources.txt setup.py pyproject.toml)

.PHONY: install install-torchrec test test-torchrec test-slow bench lint cuda-check triton-check triton-new clean torch-spec

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.torch: | $(PY)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)" "$(TRITON_SPEC)"
	touch $@

# The extension is built against the torch installed above (no build isolation).
$(VENV)/.installed: $(VENV)/.torch $(NATIVE)
	$(PY) -m pip install --quiet setuptools wheel ninja
	$(PY) -m pip install --quiet --no-build-isolation -e ".[test,dev]"
	touch $@

install: $(VENV)/.installed

# torchrec names the CUDA fbgemm-gpu as a dependency and it overwrites fbgemm-gpu-cpu's
# fbgemm_gpu/ folder: the CPU build first, torchrec without dependencies, then the rest,
# all with torch held at the version the extension was built against.
TORCHREC_DEPS := tensordict "torchmetrics==1.0.3" tqdm pyre-extensions iopath
$(VENV)/.torchrec: $(VENV)/.installed
	$(PY) -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/torch-constraint.txt
	$(PY) -m pip install --quiet -c $(VENV)/torch-constraint.txt "fbgemm-gpu-cpu==1.8.0"
	$(PY) -m pip install --quiet --no-deps "torchrec==1.8.0"
	$(PY) -m pip install --quiet -c $(VENV)/torch-constraint.txt $(TORCHREC_DEPS)
	$(PY) -c "import torchrec, recperf._C"
	touch $@

install-torchrec: $(VENV)/.torchrec

test: install
	$(PY) -m pytest -q -m "not slow"

# Named apart: a tests/torchrec folder would shadow the torchrec package on pytest's path.
test-torchrec: install-torchrec
	$(PY) -m pytest -q -m "not slow" tests/torchrec_integration

test-slow: install
	$(PY) -m pytest -q -m slow --timeout 1500

bench: install
	$(VENV)/bin/recperf bench

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

cuda-check: install
	PATH="$(abspath $(VENV))/bin:$$PATH" tools/check_cuda_sources.sh

triton-check: install
	$(PY) tools/check_triton_sources.py

$(VENV_NEW)/.installed: $(VENV)/.installed
	python3 -m venv $(VENV_NEW)
	$(VENV_NEW)/bin/python -m pip install --quiet --no-deps --upgrade "$(TRITON_NEW_SPEC)"
	base=$$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])"); \
	new=$$($(VENV_NEW)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])"); \
	echo "import site; site.addsitedir('$$base')" > "$$new/zz-recperf-base.pth"
	touch $@

# Only the tests that run kernels/ (their ids name the triton backend).
triton-new: $(VENV_NEW)/.installed
	$(VENV_NEW)/bin/python -c "import triton; print('newest triton:', triton.__version__)"
	$(VENV_NEW)/bin/python -m pytest -q -p no:cacheprovider tests/ops tests/nn -k triton
	$(VENV_NEW)/bin/python tools/check_triton_sources.py

torch-spec:
	@echo "$(TORCH_SPEC)"

clean:
	rm -rf build *.egg-info recperf/*.so $(VENV) $(VENV_NEW)
