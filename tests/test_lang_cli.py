"""``bwsk term ...``: results on stdout, errors as file:line:col + caret and exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bwsk.cli import main


@pytest.mark.parametrize(("text", "normal"), [
    ("S (K f) (K g)", "K (f g)"),
    ("S K K", "I"),
    ("\\x. f x", "f"),
])
def test_normalize_text(capsys, text, normal):
    assert main(["term", "normalize", text]) == 0
    assert capsys.readouterr().out == normal + "\n"


def test_file_operand_print_and_stats(tmp_path, capsys):
    path = tmp_path / "block.bwsk"
    path.write_text("-- a residual block\n\\x. add x (gelu (matmul[w=%w] x))\n", "utf-8")
    assert main(["term", "print", str(path)]) == 0
    assert capsys.readouterr().out == "\\x. add x (gelu (matmul[w=%w] x))\n"
    assert main(["term", "normalize", "--stats", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "S add (B gelu matmul[w=%w])\n"
    for field in ("dag size:", "tree size:", "rules fired:", "normalize time:"):
        assert field in captured.err
    assert main(["term", "parse", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: ok, ")


def test_syntax_error_in_a_file_exits_2_with_caret(tmp_path, capsys):
    path = tmp_path / "bad.bwsk"
    path.write_text("let a = f x\nin g (a\n", "utf-8")
    assert main(["term", "parse", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"bwsk: error: {path}:2:8: unexpected end of input")
    assert err[1:] == ["  in g (a", "         ^"]


@pytest.mark.parametrize(("args", "message"), [
    (["term", "normalize", "<a, b> c"], "<term>:1:8: cannot apply a tuple"),
    (["term", "normalize", "let a = f a in a"], "cyclic let: a -> a"),
    (["term", "print", ""], "empty term"),
])
def test_bad_terms_exit_2(capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_non_utf8_file_exits_2(tmp_path, capsys):
    path = tmp_path / "latin1.bwsk"
    path.write_bytes("f caf\xe9".encode("latin-1"))
    assert main(["term", "parse", str(path)]) == 2
    assert "not valid UTF-8" in capsys.readouterr().err


def test_help_everywhere(capsys):
    for args in (["term", "--help"], ["term", "normalize", "--help"], ["term", "parse", "-h"]):
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == 0
    assert "--stats" in capsys.readouterr().out


def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "bwsk", "term", "normalize", "S (K f) (K g)"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout == "K (f g)\n"
    bad = subprocess.run([sys.executable, "-m", "bwsk", "term", "parse", "f )"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == ["bwsk: error: <term>:1:3: unexpected ')'; expected end of "
                                       "input", "  f )", "    ^"]


def _doc_examples():
    """``bwsk term ACTION "TEXT"  # ... -> RESULT`` lines of the README and docs."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r'bwsk term (\w+) "([^"]*)"\s*#.*-> (.+)$')
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for line in doc.read_text("utf-8").splitlines():
            match = pattern.search(line)
            if match:
                yield match.groups()


@pytest.mark.parametrize(("action", "text", "result"), list(_doc_examples()))
def test_documented_examples(capsys, action, text, result):
    assert main(["term", action, text]) == 0
    assert capsys.readouterr().out.strip() == result.strip()


def test_dash_reads_standard_input(monkeypatch, capsys):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("-- from a pipe\nB f I\n"))
    assert main(["term", "normalize", "-"]) == 0
    assert capsys.readouterr().out == "f\n"
