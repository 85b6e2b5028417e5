"""bwsk/_core.pyi must not drift from the compiled module: same functions, same parameters."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from bwsk import _core

STUB = Path(__file__).resolve().parents[1] / "bwsk" / "_core.pyi"


def _stub_signatures() -> dict[str, list[str]]:
    tree = ast.parse(STUB.read_text())
    functions = [f for f in tree.body if isinstance(f, ast.FunctionDef)]
    return {f.name: [a.arg for a in f.args.args] for f in functions}


def _native_parameters(fn) -> list[str]:
    """Parameter names from pybind11's signature line, e.g. 'app(fun: int, arg: int) -> int'."""
    first = fn.__doc__.splitlines()[0]
    inside = first[first.index("(") + 1 : first.rindex(") ->")]
    depth, params, current = 0, [], ""
    for ch in inside:  # split on top-level commas only (types contain brackets)
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            params.append(current)
            current = ""
            continue
        current += ch
    params.append(current)
    return [re.split(r"[:=]", p)[0].strip() for p in params if p.strip()]


def test_stub_lists_exactly_the_native_functions():
    native = {n for n in dir(_core) if not n.startswith("_") and callable(getattr(_core, n))}
    assert set(_stub_signatures()) == native


def test_stub_parameters_match_the_native_ones():
    for name, params in _stub_signatures().items():
        assert _native_parameters(getattr(_core, name)) == params, name
