"""Shape-only graphs of zoo models, cached on disk: a plan depends on shapes, not weights.

Tracing GPT-2 costs seconds (building the model, torch.export); the plan itself costs a
fraction of one. The traced graph is stored without its weight data, with the few facts
about the module the planner reads (head count, trainable parameters, module names), under
a key of the model name, sizes, input shape and the frontend's source files.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bwsk.ir import Graph

VERSION = 4  # 2: parameters are not folded; 3: tied weights stay tied; 4: recorded capture


@dataclass(frozen=True)
class ParamFact:
    """What the planner reads of a parameter: its size and whether it trains."""

    count: int
    itemsize: int
    requires_grad: bool

    def numel(self) -> int:
        return self.count

    def element_size(self) -> int:
        return self.itemsize


@dataclass(frozen=True)
class HeadsConfig:
    n_head: int | None


class ShapeSource:
    """Stands in for the traced module: its config's head count, parameters and modules."""

    def __init__(self, module):
        config = getattr(module, "config", None)
        heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None)
        self.config = HeadsConfig(heads)
        def fact(p) -> ParamFact:
            return ParamFact(p.numel(), p.element_size(), p.requires_grad)

        self._all = [(n, fact(p)) for n, p in module.named_parameters(remove_duplicate=False)]
        self._unique = [(n, fact(p)) for n, p in module.named_parameters()]
        self._modules = [name for name, _ in module.named_modules()]

    def named_parameters(self, remove_duplicate: bool = True):
        return list(self._unique if remove_duplicate else self._all)

    def parameters(self):
        return [f for _, f in self._unique]

    def named_modules(self):
        return [(name, None) for name in self._modules]


def cache_dir() -> Path:
    root = os.environ.get("BWSK_CACHE") or Path.home() / ".cache" / "bwsk"
    return Path(root) / "plan"


def key(name: str, sizes: dict | None, batch: int, seq_len: int) -> str:
    from importlib.metadata import version

    frontend = Path(__file__).resolve().parents[1] / "frontends"
    stamps = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                    for p in frontend.glob("*.py"))
    text = json.dumps([VERSION, name, sorted((sizes or {}).items()), batch, seq_len,
                       version("torch"), version("transformers"), stamps])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def load(k: str) -> Graph | None:
    path = cache_dir() / f"{k}.pkl"
    try:
        with path.open("rb") as f:
            graph = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
        return None
    return graph if isinstance(graph, Graph) else None


def light(graph: Graph, module) -> Graph:
    """The graph without weight data (shapes stay in Value.shape), its module as facts."""
    values = {}
    for name, v in graph.values.items():
        stripped = v.const if v.const is None or v.const.size <= 64 else np.empty(0, v.const.dtype)
        values[name] = type(v)(v.name, v.shape, v.dtype, stripped)
    return Graph(graph.name, list(graph.inputs), list(graph.outputs), values, list(graph.nodes),
                 source=ShapeSource(module))


def store(k: str, graph: Graph, module) -> None:
    """Write the shape-only graph; best effort."""
    path = cache_dir() / f"{k}.pkl"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            pickle.dump(light(graph, module), f)
        tmp.replace(path)
    except (OSError, pickle.PicklingError, TypeError):
        tmp.unlink(missing_ok=True)  # a cache miss next time, nothing worse
