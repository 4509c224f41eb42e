"""What a device run needs, checked in a few seconds before it spends its minutes: the
Python modules the build, the GPU tests and the benchmarks import, the build tools, nvcc
and the GPU. Prints one line per missing piece and exits 1 if any is missing.

    python bench/preflight.py          (bench/device_check.sh runs it first)
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

# module -> what needs it
MODULES = {
    "torch": "everything",
    "triton": "the triton backend",
    "numpy": "recperf",
    "rich": "recperf bench",
    "tqdm": "recperf bench",
    "matplotlib": "recperf bench --plot",
    "setuptools": "the build (pip install --no-build-isolation)",
    "wheel": "the build",
    "pytest": "the GPU tests",
    "xdist": "the GPU tests' -n 4 (pytest-xdist)",
    "pytest_timeout": "the GPU tests (pytest-timeout, pyproject's timeout)",
    "hypothesis": "the GPU tests (imported by the CPU test helpers)",
}


def missing(find_module=importlib.util.find_spec, which=shutil.which, gpu=None) -> list[str]:
    """Each missing piece, named with what needs it (empty: ready)."""
    out = [f"Python module {m} ({why})" for m, why in MODULES.items() if find_module(m) is None]
    for tool, why in (("ninja", "the build"), ("nvcc", "the CUDA kernels' build")):
        if which(tool) is None:
            out.append(f"{tool} on PATH ({why})")
    if not any(which(cc) for cc in ("c++", "g++", "clang++")):
        out.append("a C++ compiler (c++, g++ or clang++) on PATH (the build)")
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not include.exists():
        out.append(f"Python headers ({include}; the build)")
    reason = (gpu or _gpu_missing)(which)
    if reason:
        out.append(f"the GPU ({reason})")
    return out


def _gpu_missing(which) -> str | None:
    if which("nvidia-smi") is None:
        return "no nvidia-smi on PATH"
    try:
        listed = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"nvidia-smi -L failed: {exc}"
    if "GPU" not in listed:
        return "nvidia-smi lists no GPU"
    if importlib.util.find_spec("torch") is not None:
        import torch

        if not torch.cuda.is_available():
            return "torch.cuda.is_available() is False"
    return None


def main() -> int:
    problems = missing()
    for p in problems:
        print(f"preflight: missing {p}")
    print("preflight: ready" if not problems else f"preflight: {len(problems)} missing, stop")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
