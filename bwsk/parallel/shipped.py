"""Shape-only traced graphs of zoo models, shipped as package data for a cold plan without torch.

Importing torch and transformers alone costs more than the whole plan of GPT-2, so the
graphs of the seed architectures at their default sizes (the input shapes ``bwsk plan``
uses by default) ship in ``traces/``. They are the models' architecture, an input, never a
plan result: weight data is stripped (shapes, dtypes and parameter sizes stay), and a slow
test traces afresh and checks the shipped file is identical, so it cannot drift silently.
Regenerate with ``python -m bwsk.parallel.shipped``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import pickle
from pathlib import Path

from bwsk.ir import Graph

TRACES = Path(__file__).resolve().parent / "traces"
# name -> the (batch, seq_len) shipped: `bwsk plan NAME --world-size P` defaults to batch P,
# seq_len 128; every seed at P=8, GPT-2 (issue 5) also at P=2 and 4
SHIPPED = {"gpt2": [(2, 128), (4, 128), (8, 128)], "bert-base": [(8, 128)],
           "t5-small": [(8, 128)], "opt-350m": [(8, 128)], "switch-base-8": [(8, 128)]}


def path_for(name: str, batch: int, seq_len: int) -> Path:
    return TRACES / f"{name}-b{batch}-t{seq_len}.pkl.gz"


def load(name: str, sizes: dict | None, batch: int, seq_len: int) -> Graph | None:
    """The shipped graph for ``name`` at default sizes and this input shape, else None."""
    if sizes or (batch, seq_len) not in SHIPPED.get(name, []):
        return None
    try:
        with gzip.open(path_for(name, batch, seq_len), "rb") as f:
            graph = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
        return None  # not installed with the package: trace instead
    return graph if isinstance(graph, Graph) else None


def fingerprint(graph: Graph) -> str:
    """A digest of everything the planner reads: nodes, value shapes and dtypes, small
    constants, the module's head count, parameter facts and module names."""
    source = graph.source
    parts = [graph.name, graph.inputs, graph.outputs,
             [[n.name, n.op, n.inputs, n.outputs, repr(sorted(n.attrs.items())), n.source_op,
               n.scope] for n in graph.nodes],
             [[v.name, repr(v.shape), v.dtype,
               None if v.const is None else [str(v.const.dtype), v.const.shape,
                                             v.const.tobytes().hex()]]
              for v in graph.values.values()],
             [source.config.n_head, repr(source.named_parameters(False)),
              repr(source.named_parameters()), [m for m, _ in source.named_modules()]]]
    return hashlib.sha256(json.dumps(parts, default=repr).encode()).hexdigest()


def trace(name: str, batch: int, seq_len: int) -> Graph:
    """A fresh shape-only trace of zoo model ``name`` (imports torch and transformers)."""
    from bwsk.parallel.api import build_graph
    from bwsk.parallel.cache import light

    graph, module = build_graph(name, batch=batch, seq_len=seq_len)
    return light(graph, module)


def regenerate() -> None:
    """Write every shipped graph from a fresh trace."""
    TRACES.mkdir(exist_ok=True)
    for name, shapes in SHIPPED.items():
        for batch, seq_len in shapes:
            path = path_for(name, batch, seq_len)
            data = pickle.dumps(trace(name, batch, seq_len), protocol=5)
            with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
                f.write(data)
            print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    regenerate()
