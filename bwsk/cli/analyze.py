"""``bwsk analyze MODEL``: verdicts with certificates, the erasure map, a JSON report."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from rich.console import Console

from bwsk.errors import BwskError

_SHAPE = re.compile(r"^([^=\s]+)=(\d+(?:,\d+)*)$")


def register(subparsers: argparse._SubParsersAction) -> None:
    from bwsk.zoo import names

    parser = subparsers.add_parser(
        "analyze", help="prove where a model preserves (S) or erases (K) information",
        description="Decide, with a certificate, whether the model and each of its blocks "
        "and ops is injective (S), provably not (K, with a collision witness) or undecided "
        "(GRAY, with the condition that would decide it).")
    parser.add_argument("model", metavar="MODEL", help="an .onnx file, a zoo name "
                        f"({'|'.join(names())}) or a local transformers checkpoint directory")
    parser.add_argument("--json", metavar="PATH", help="write the report (schema bwsk.report/1)")
    parser.add_argument("--dot", metavar="PATH", help="write the erasure map: .dot/.gv, or "
                        ".svg/.png/.pdf (also writes the .dot; rendering needs Graphviz 'dot')")
    parser.add_argument("--term", action="store_true", help="print the normalized term")
    parser.add_argument("--no-weights", action="store_true",
                        help="skip weight-aware checks (matmul ranks); faster, more GRAY")
    parser.add_argument("--input-shape", action="append", default=[], metavar="NAME=D1,D2,...",
                        help="bind a dynamic input's shape, e.g. input_ids=1,16 (repeatable)")
    parser.add_argument("--quiet", action="store_true",
                        help="no summary or progress; only warnings and errors")
    parser.set_defaults(func=run)


def parse_input_shapes(items: list[str]) -> dict[str, tuple[int, ...]]:
    """``["x=1,3,224,224"]`` -> ``{"x": (1, 3, 224, 224)}``; malformed text is a user error."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        match = _SHAPE.match(item.strip())
        if match is None:
            raise BwskError(f"--input-shape {item!r}: expected NAME=D1,D2,... with integer dims")
        name, dims = match.group(1), tuple(int(d) for d in match.group(2).split(","))
        if name in shapes:
            raise BwskError(f"--input-shape {name!r} given twice")
        if 0 in dims:
            raise BwskError(f"--input-shape {item!r}: dimensions must be positive")
        shapes[name] = dims
    return shapes


def require_static_inputs(graph) -> None:
    """Verdicts are about one concrete input shape, so every dynamic dim must be bound."""
    from bwsk.report.json import variable_inputs

    for name in variable_inputs(graph):
        shape = graph.values[name].shape if name in graph.values else None
        if shape is None or not all(isinstance(d, int) for d in shape):
            dims = ",".join(str(d) if isinstance(d, int) else "N" for d in shape or ("N",))
            raise BwskError(f"input {name!r} has dynamic shape {shape}; bind it with "
                            f"--input-shape {name}={dims} (N = the size to analyse)")


def load_and_analyze(spec: str, weights: bool, shapes: dict[str, tuple[int, ...]],
                     console: Console):
    """Load MODEL and analyse it, showing progress on the (stderr) console."""
    from bwsk.analysis import analyze
    from bwsk.analysis.engine import load

    with console.status(f"loading {spec} …"):
        graph = load(spec, shapes or None)
    require_static_inputs(graph)
    with console.status("proving verdicts …" if weights else "proving verdicts (no weights) …"):
        return analyze(graph, weights=weights)


def run(args: argparse.Namespace) -> int:
    from bwsk.report import print_summary, write_dot, write_json
    from bwsk.report.render import DOT_SUFFIXES

    shapes = parse_input_shapes(args.input_shape)
    err = Console(stderr=True, quiet=args.quiet)
    analysis = load_and_analyze(args.model, not args.no_weights, shapes, err)
    if not args.quiet:
        print_summary(analysis)
    if args.term:
        print("no term available" if analysis.term is None else str(analysis.term))
    if args.json:
        err.print(f"wrote {write_json(analysis, args.json)}", highlight=False, markup=False)
    if args.dot:
        with err.status(f"drawing {args.dot} …"):
            out = write_dot(analysis, args.dot)
        if out.image_path is None and Path(args.dot).suffix.lower() not in DOT_SUFFIXES:
            print(f"bwsk: {out.message}", file=sys.stderr)  # shown even with --quiet
        else:
            err.print(out.message, highlight=False, markup=False)
    return 0
