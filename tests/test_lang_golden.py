"""The golden corpus: one term per file in tests/golden/terms, its expected normal form (or
error) in ``-- expect:`` / ``-- error:`` header lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bwsk.errors import BwskError
from bwsk.lang import parse_file, print_term

CASES = sorted((Path(__file__).parent / "golden" / "terms").glob("*.bwsk"))


def header(path: Path, key: str) -> str | None:
    lines = [line.split(":", 1)[1].strip() for line in path.read_text("utf-8").splitlines()
             if line.startswith(f"-- {key}:")]
    return "\n".join(lines) if lines else None


def test_corpus_is_there():
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path):
    expected, error = header(path, "expect"), header(path, "error")
    assert (expected is None) != (error is None), f"{path.name}: give exactly one expectation"
    if error is not None:
        with pytest.raises(BwskError, match=re.escape(error)):
            parse_file(path).normalize()
        return
    normal = parse_file(path).normalize()
    assert print_term(normal) == expected
    assert normal.normalize() == normal
