"""The native core under AddressSanitizer and UBSan: csrc/tests/core_selftest.cpp, built
with -DBWSK_SANITIZE=ON in its own build directory (build/asan, reused between runs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "asan"

pytestmark = pytest.mark.asan


def _tools() -> tuple[str, str]:
    cmake = shutil.which("cmake")
    cxx = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if cmake is None or cxx is None:
        pytest.skip("the sanitizer build needs cmake and a C++ compiler on PATH")
    return cmake, cxx


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    output = f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{output}"
    return proc


def test_core_selftest_is_clean_under_asan_and_ubsan():
    cmake, cxx = _tools()
    import pybind11

    configure = [
        cmake, "-S", str(ROOT), "-B", str(BUILD), "-DBWSK_SANITIZE=ON", "-DBWSK_WITH_TORCH=OFF",
        "-DSKBUILD_PROJECT_NAME=bwsk", "-DSKBUILD_PROJECT_VERSION=0.0.0",
        f"-DPython_EXECUTABLE={sys.executable}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
        f"-DCMAKE_CXX_COMPILER={cxx}",
    ]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    if not (BUILD / "CMakeCache.txt").exists():
        _run(configure)
    _run([cmake, "--build", str(BUILD), "--target", "core_selftest", "-j", "2"])
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    proc = _run([str(BUILD / "core_selftest")], env=env, timeout=300)
    assert "checks passed" in proc.stdout
