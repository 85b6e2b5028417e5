"""``bwsk plan MODEL --world-size P``: per axis, where a sharded model must synchronize."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bwsk.errors import PlanError


def register(subparsers: argparse._SubParsersAction) -> None:
    from bwsk.parallel.problem import AXES
    from bwsk.zoo import names

    parser = subparsers.add_parser(
        "plan", help="plan sharding: shard-local ops and sync points per parallel axis",
        description="For each axis (data, sequence, tensor, pipeline) search the sharding "
        "with the fewest collective bytes and report every sync point: where, phase, "
        "collective, shape, bytes and count per step. CALM-inspired: an op that acts on each "
        "shard independently needs no coordination.")
    parser.add_argument("model", metavar="MODEL", help=f"a zoo name ({'|'.join(names())}) "
                        "or a local transformers checkpoint directory")
    parser.add_argument("--world-size", type=int, required=True, metavar="P")
    parser.add_argument("--axis", action="append", choices=AXES, metavar="AXIS",
                        help=f"one of {', '.join(AXES)} (repeatable; default: all)")
    parser.add_argument("--batch", type=int, default=None, metavar="B",
                        help="sequences per step (default: the world size)")
    parser.add_argument("--seq-len", type=int, default=128, metavar="T")
    parser.add_argument("--dtype", default=None, help="float32 (default), bfloat16, float16")
    parser.add_argument("--microbatches", type=int, default=None, metavar="M",
                        help="pipeline microbatches (default: the world size)")
    parser.add_argument("--layers", type=int, default=None, help="override the layer count")
    parser.add_argument("--d-model", type=int, default=None, help="override the hidden size")
    parser.add_argument("--heads", type=int, default=None, help="override the head count")
    parser.add_argument("--vocab", type=int, default=None, help="override the vocabulary")
    parser.add_argument("--json", metavar="PATH", help="write the report (schema bwsk.plan/1)")
    parser.add_argument("--dot", metavar="PATH", help="write the segments and sync points "
                        "as .dot (and .svg when Graphviz 'dot' is installed), one per axis")
    parser.add_argument("--check", metavar="PLAN.json",
                        help="check a plan file against the model's modules")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from bwsk.parallel.api import plan, to_json
    from bwsk.parallel.render import print_report, write_dot

    batch = args.batch or max(args.world_size, 1)
    sizes = {k: v for k, v in (("layers", args.layers), ("d_model", args.d_model),
                                ("heads", args.heads), ("vocab", args.vocab)) if v}
    check = (lambda module: check_plan_file(Path(args.check), module)) if args.check else None
    report = plan(args.model, args.world_size, args.axis, batch=batch, seq_len=args.seq_len,
                  dtype=args.dtype, microbatches=args.microbatches, sizes=sizes,
                  name=str(args.model), check=check)
    graph = report["_graph"]
    console = Console()
    print_report(report, batch * args.seq_len, console)
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(report), indent=1) + "\n")
        console.print(f"wrote {args.json}")
    if args.dot:
        for message in write_dot(graph, report, Path(args.dot)):
            console.print(message)
    return 0


def check_plan_file(path: Path, module) -> None:
    """A plan file must be bwsk.plan/1 and name only modules the model has."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PlanError(f"cannot read plan file {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != "bwsk.plan/1":
        raise PlanError(f"{path} is not a bwsk.plan/1 file")
    have = {name for name, _ in module.named_modules()} if module is not None else set()
    for axis in data.get("axes", []):
        missing = sorted(set(axis.get("plan", {})) - have)
        if missing:
            raise PlanError(f"{path}: axis {axis.get('axis')} names modules the model does not "
                            f"have: {', '.join(missing[:5])}")
