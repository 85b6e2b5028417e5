"""Compile-only check of the CUDA kernels with nvcc, for machines without a GPU or CUDA torch."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NVCC = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if Path("/usr/local/bin/nvcc").exists()
                                 else None)


@pytest.mark.skipif(NVCC is None, reason="nvcc not found on PATH or at /usr/local/bin/nvcc")
def test_cuda_kernels_compile(tmp_path):
    obj = tmp_path / "nvcc_check.o"
    cmd = [NVCC, "-std=c++17", f"-I{ROOT / 'csrc'}", "-c", str(ROOT / "csrc/rev/nvcc_check.cu"),
           "-o", str(obj)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    # Device code was generated for every functor the torch wrapper launches.
    syms = subprocess.run(["nm", "-C", str(obj)], capture_output=True, text=True).stdout
    for functor in ("Couple<1>", "Couple<-1>", "CoupleFixed<1>", "CoupleFixed<-1>", "Quantize",
                    "Dequantize<float>", "Dequantize<double>"):
        assert functor in syms, f"no kernel instantiated for {functor}"
