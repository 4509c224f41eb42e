"""Builds recperf._C, the compiled op library, with ninja.

Always the C++ CPU kernels; the CUDA kernels too when a CUDA build of torch and nvcc are
present, or when RECPERF_FORCE_CUDA=1, for TORCH_CUDA_ARCH_LIST (default 9.0a). The
sources come from csrc/sources.txt, the list CMakeLists.txt reads as well.
"""

import os
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent.resolve()


def read_sources(kinds: set[str]) -> list[str]:
    sources = []
    for line in (ROOT / "csrc" / "sources.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            kind, path = line.split()
            if kind in kinds:
                sources.append(path)
    return sources


def cuda_wanted() -> bool:
    if os.environ.get("RECPERF_FORCE_CUDA") == "1":
        return True
    if os.environ.get("RECPERF_NO_CUDA") == "1":
        return False
    import torch
    from torch.utils.cpp_extension import CUDA_HOME

    return torch.version.cuda is not None and CUDA_HOME is not None


def extension():
    from torch.utils.cpp_extension import CppExtension, CUDAExtension

    with_cuda = cuda_wanted()
    cxx_flags = ["-O3", "-fopenmp", "-Wno-psabi", "-DRECPERF_WITH_CUDA=" + str(int(with_cuda))]
    kwargs = dict(
        name="recperf._C",
        include_dirs=[str(ROOT / "csrc")],
        extra_link_args=["-fopenmp"],
    )
    if not with_cuda:
        return CppExtension(
            sources=read_sources({"cpu", "python"}), extra_compile_args={"cxx": cxx_flags}, **kwargs
        )
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0a")
    nvcc_flags = ["-O3", "-lineinfo", "--expt-relaxed-constexpr"]
    return CUDAExtension(
        sources=read_sources({"cpu", "python", "cuda", "cuda-binding"}),
        extra_compile_args={"cxx": cxx_flags, "nvcc": nvcc_flags},
        **kwargs,
    )


def build_ext_class():
    from torch.utils.cpp_extension import BuildExtension

    return BuildExtension.with_options(use_ninja=True)


setup(
    packages=[*find_packages(include=["recperf", "recperf.*"]), "recperf.kernels"],
    package_dir={"recperf.kernels": "kernels"},
    ext_modules=[extension()],
    cmdclass={"build_ext": build_ext_class()},
)
