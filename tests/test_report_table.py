"""The terminal summary: certificate lines, counts, erasure points, deduplicated blocks."""

from __future__ import annotations

from rich.console import Console
from test_report_common import toy_analysis

from bwsk.analysis import Analysis
from bwsk.ir import Graph
from bwsk.report import print_summary


def _text(analysis: Analysis) -> str:
    console = Console(record=True, width=140, file=open("/dev/null", "w"))  # noqa: SIM115
    print_summary(analysis, console)
    console.file.close()
    return console.export_text()


def test_k_summary_has_counts_witness_erasures_and_deduplicated_blocks():
    text = _text(toy_analysis(layers=3))
    assert "verdict K" in text and "13 primitive ops" in text
    assert "53.8 %" in text  # 7 of 13 ops are K
    assert "collision witness" in text and "x[2, 4] max|a-b|=5" in text
    assert "3 × h.0" in text and "h.1" not in text.split("blocks")[1]
    erasures = text.split("top erasure points")[1].split("undecided")[0]
    assert "(7 of 7 K nodes)" in erasures
    assert erasures.index("3 × h.0/add") < erasures.index("head/softmax") \
        < erasures.index("3 × h.0/relu")  # most erased dims first, unknown last
    assert [line.split("│")[3].strip() for line in erasures.splitlines()
            if "│" in line] == ["4", "1", "?"]


def test_s_and_gray_certificates():
    assert "left-inverse program available" in _text(toy_analysis(verdict="S"))
    gray = _text(toy_analysis(verdict="GRAY"))
    assert "would be decided by: W has full column rank" in gray
    assert "undecided (GRAY) ops" in gray and "matmul" in gray


def test_markup_in_names_is_printed_literally():
    analysis = toy_analysis()
    analysis.nodes[-1].name = "[bold]head[/bold]"
    assert "[bold]head[/bold]" in _text(analysis)


def test_empty_model_prints_zero_ratios():
    empty = Analysis("empty", Graph("empty", [], [], {}, []), "S", "no ops", [])
    text = _text(empty)
    assert "0 primitive ops" in text and "0.0 %" in text


def test_long_condition_lists_are_cut_in_the_terminal_only():
    analysis = toy_analysis(verdict="GRAY")
    analysis.conditions = [f"W{i} has full column rank" for i in range(40)]
    text = " ".join(_text(analysis).split())  # undo line wrapping
    assert "W4 has full column rank; … and 35 more" in text and "W5 " not in text
