"""Parse a ~1 MB term file (18,000 nested lets, a residual chain) with the Lark LALR grammar.

Target: <= 5 s for text -> Term on an unloaded machine. Prints sizes and the time of each
stage (Lark tree, records, native build) and of printing the term back.
"""

from __future__ import annotations

import sys
import time

from bwsk.lang.grammar import lark_parser
from bwsk.lang.parser import parse_records
from bwsk.lang.printer import print_term
from bwsk.term import build

LAYERS = 18_000


def residual_chain(layers: int) -> str:
    """``let h1 = add h0 (gelu (matmul[w=%h.0.mlp.w] h0)) in`` ... ``in h<layers>``."""
    lines = [
        f"let h{k + 1} = add h{k} (gelu (matmul[w=%h.{k}.mlp.w] h{k})) in"
        for k in range(layers)
    ]
    return "\\h0.\n" + "\n".join(lines) + f"\nh{layers}\n"


def _timed(fn, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> int:
    text = residual_chain(LAYERS)
    lark_parser()  # the tables are built once per process; not part of the parse time
    _, lark_wall, lark_cpu = _timed(lark_parser().parse, text)
    records, parse_wall, parse_cpu = _timed(parse_records, text, "<bench>")
    term, build_wall, build_cpu = _timed(build, records)
    printed, print_wall, print_cpu = _timed(print_term, term)
    print(f"input: {len(text) / 1e6:.2f} MB, {LAYERS} nested lets, {text.count(chr(10))} lines")
    print(f"term: {term.size} DAG nodes from {len(records)} records")
    print(f"{'stage':<28}{'wall s':>8}{'cpu s':>8}")
    rows = [("lark tree only", lark_wall, lark_cpu),
            ("text -> records", parse_wall, parse_cpu),
            ("records -> Term (build)", build_wall, build_cpu),
            ("text -> Term", parse_wall + build_wall, parse_cpu + build_cpu),
            ("print_term", print_wall, print_cpu)]
    for name, wall, cpu in rows:
        print(f"{name:<28}{wall:>8.2f}{cpu:>8.2f}")
    print(f"target: text -> Term <= 5 s; printed text {len(printed) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
