"""``bwsk term parse|normalize|print``: the term language by hand.

The operand is a file when such a file exists (its path is then the source name in error
messages), else it is the term text itself.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

_ACTIONS = {
    "parse": "check that a term parses; report its size",
    "normalize": "print the normal form (combinator rules, projections, pairing)",
    "print": "print a term in canonical form, sharing made explicit with let",
}


def register(subparsers) -> None:
    term = subparsers.add_parser(
        "term", help="parse, normalize or print terms of the combinator language",
        description="Work with terms of the bwsk combinator language (docs/term-language.md).")
    actions = term.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, help_text in _ACTIONS.items():
        p = actions.add_parser(name, help=help_text, description=help_text[0].upper() +
                               help_text[1:] + ".")
        p.add_argument("term", metavar="FILE-or-TEXT",
                       help="a .bwsk file, '-' for standard input, or the term text itself")
        p.add_argument("--stats", action="store_true",
                       help="also print DAG size, tree size, rules fired and time (to stderr)")
        p.set_defaults(func=run)


def read_operand(operand: str) -> tuple[str, str]:
    """(text, source name) of a command-line operand."""
    from bwsk.lang.parser import read_source

    if operand == "-":
        return sys.stdin.read(), "<stdin>"
    path = Path(operand)
    try:
        is_file = path.is_file()
    except OSError:  # e.g. a term text too long to be a file name
        is_file = False
    if is_file:
        return read_source(path), operand
    return operand, "<term>"


def run(args: argparse.Namespace) -> int:
    from bwsk.lang import parse, print_term

    text, source = read_operand(args.term)
    start = time.perf_counter()
    term = parse(text, source)
    parsed = time.perf_counter()
    fired: dict[str, int] = {}
    if args.action == "normalize":
        term, fired = term.normalize_with_stats()
    done = time.perf_counter()
    if args.action == "parse":
        print(f"{source}: ok, {term.size} nodes ({term.tree_size} as a tree)")
    else:
        print(print_term(term))
    if args.stats:
        _print_stats(term, fired, parsed - start, done - parsed, args.action == "normalize")
    return 0


def _print_stats(term, fired: dict[str, int], parse_s: float, norm_s: float,
                 normalized: bool) -> None:
    err = sys.stderr
    print(f"dag size: {term.size} nodes", file=err)
    print(f"tree size: {term.tree_size} nodes", file=err)
    print(f"parse time: {parse_s * 1e3:.1f} ms", file=err)
    if not normalized:
        return
    print(f"normalize time: {norm_s * 1e3:.1f} ms", file=err)
    total = sum(fired.values())
    print(f"rules fired: {total}", file=err)
    for rule, count in sorted(fired.items(), key=lambda kv: -kv[1]):
        if count:
            print(f"  {count:>8}  {rule}", file=err)

