"""The published BWSK classifier, re-created for comparison (DESIGN.md §1).

It walks a PyTorch model's leaf modules (``named_modules``) and looks each module's type up
in a hand-written table with hand-set confidences: weights-bearing maps (Linear, Conv1D,
Embedding) and normalisations count as information-preserving (S); Dropout and activations
count as erasing (K); anything the table does not know is gray. Nothing is proved, shapes
and weights are ignored. On this machine's transformers it reproduces the model cards'
ratios for GPT-2 small, BERT-base, T5-small and OPT-350M (the zoo builds its real post-LN
config) exactly, which is how the table was pinned; Switch-Base-8 is not reproduced.

Also here: nn.Module twins of examples/ that torch.fx can trace, and ``time_model``, the
time per model of the published routes beside bwsk's. Used by ``bench_analyze.py``;
runnable alone: ``python bench/bwsk_classifier_baseline.py``.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

# type name -> (class, confidence); checked along the module's MRO, most specific first
TABLE: dict[str, tuple[str, float]] = {
    "Linear": ("S", 0.90), "Conv1D": ("S", 0.90), "Conv1d": ("S", 0.85),
    "Conv2d": ("S", 0.85), "Embedding": ("S", 0.95), "Identity": ("S", 1.00),
    "LayerNorm": ("S", 0.80), "BatchNorm1d": ("S", 0.75), "BatchNorm2d": ("S", 0.75),
    "GroupNorm": ("S", 0.75), "RMSNorm": ("S", 0.80),
    "Dropout": ("K", 0.95), "ReLU": ("K", 0.90), "GELU": ("K", 0.85), "Tanh": ("K", 0.70),
    "Sigmoid": ("K", 0.70), "ELU": ("K", 0.70), "SiLU": ("K", 0.80), "Softmax": ("K", 0.90),
    "MaxPool2d": ("K", 0.95), "AvgPool2d": ("K", 0.90),
}
# suffixes for framework-specific subclasses that do not inherit from the torch class
SUFFIXES: tuple[tuple[str, tuple[str, float]], ...] = (
    ("LayerNorm", ("S", 0.80)), ("Embedding", ("S", 0.90)),
    ("GELUActivation", ("K", 0.85)), ("Activation", ("K", 0.75)),
)


@dataclass
class Census:
    """Counts of S/K/gray leaf modules, as the model cards report them."""

    counts: Counter
    by_type: dict[str, tuple[str, float, int]]  # type -> (class, confidence, count)
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def ratio(self, key: str) -> float:
        return self.counts[key] / self.total if self.total else 0.0


def classify_type(cls: type) -> tuple[str, float]:
    """The table's answer for one module class: exact MRO match, then suffix, else gray."""
    for base in cls.__mro__:
        if base.__name__ in TABLE:
            return TABLE[base.__name__]
    for suffix, answer in SUFFIXES:
        if cls.__name__.endswith(suffix):
            return answer
    return ("GRAY", 0.50)


def classify(model) -> Census:
    """Leaf-module census of ``model`` (a ``torch.nn.Module``), timed."""
    start = time.perf_counter()
    counts: Counter = Counter()
    by_type: dict[str, tuple[str, float, int]] = {}
    for _, module in model.named_modules():
        if next(module.children(), None) is not None:
            continue
        verdict, confidence = classify_type(type(module))
        counts[verdict] += 1
        name = type(module).__name__
        by_type[name] = (verdict, confidence, by_type.get(name, ("", 0.0, 0))[2] + 1)
    return Census(counts, by_type, time.perf_counter() - start)


def classify_fx(model) -> Census:
    """The same table over the modules a ``torch.fx`` trace calls (the other published route).

    Raises whatever ``symbolic_trace`` raises: it fails on every transformers model here.
    """
    import torch.fx

    start = time.perf_counter()
    traced = torch.fx.symbolic_trace(model)
    modules = dict(traced.named_modules())
    counts: Counter = Counter()
    by_type: dict[str, tuple[str, float, int]] = {}
    for node in traced.graph.nodes:
        if node.op == "call_module":
            module = modules[node.target]
            verdict, confidence = classify_type(type(module))
            counts[verdict] += 1
            name = type(module).__name__
            by_type[name] = (verdict, confidence, by_type.get(name, ("", 0.0, 0))[2] + 1)
    return Census(counts, by_type, time.perf_counter() - start)


# --- time per model: the published approach beside bwsk ---------------------------------
def twins():
    """nn.Module twins of examples/ (a ResNet-like CNN, the coupling block) and a small MLP:
    models torch.fx can trace, so the published fx route runs. Deterministic weights."""
    import torch
    from torch import nn

    def conv_bn(c_in, c_out):
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                             nn.BatchNorm2d(c_out))

    class Basic(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.c1, self.r1, self.c2, self.r2 = conv_bn(c, c), nn.ReLU(), conv_bn(c, c), nn.ReLU()

        def forward(self, x):
            return self.r2(self.c2(self.r1(self.c1(x))) + x)

    class ResNetLike(nn.Module):
        def __init__(self, c=8, classes=10):
            super().__init__()
            self.stem, self.relu = conv_bn(3, c), nn.ReLU()
            self.layer1 = nn.Sequential(Basic(c), Basic(c))
            self.pool, self.gap = nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(c, classes)

        def forward(self, image):
            h = self.pool(self.layer1(self.relu(self.stem(image))))
            return self.fc(torch.flatten(self.gap(h), 1))

    def mlp(d, act):
        return nn.Sequential(nn.Linear(d, 2 * d), act, nn.Linear(2 * d, d))

    class Coupling(nn.Module):
        def __init__(self, d=8):
            super().__init__()
            self.F, self.G = mlp(d, nn.Tanh()), mlp(d, nn.ReLU())

        def forward(self, x1, x2):
            y1 = x1 + self.F(x2)
            return y1, x2 + self.G(y1)

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return {
            "resnet_like": (ResNetLike().eval(), (torch.randn(1, 3, 16, 16),)),
            "coupling": (Coupling().eval(), (torch.randn(1, 8), torch.randn(1, 8))),
            "mlp": (nn.Sequential(nn.Linear(16, 64), nn.Tanh(), nn.Linear(64, 64), nn.ReLU(),
                                  nn.Linear(64, 10)).eval(), (torch.randn(1, 16),)),
        }


def _best_seconds(fn, repeats: int) -> tuple[Any, float]:
    """fn's result and its best wall time over ``repeats`` runs, after one warm-up run when
    repeats > 1 (a single run is for big models). The minimum, as timeit advises: on a
    shared machine the other runs measure the neighbours too, the same for both sides."""
    result = fn() if repeats > 1 else None
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, min(times)


def _side_by_side(fns: dict[str, Any], repeats: int) -> dict[str, float]:
    """Best wall time of each function, the functions taking turns run by run: a slow spell
    of a shared machine falls on both sides alike (blocks of runs one after the other let
    it fall on one)."""
    for fn in fns.values():
        fn()  # warm-up
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def time_model(model, inputs, repeats: int = 9) -> dict[str, Any]:
    """Seconds per step for one model: the published lookups and bwsk's capture (the
    recording, or export where it cannot record), graph walk and analysis (weights skipped,
    and with weight checks). Where the published fx route runs, it and bwsk end to end
    (capture, walk, analysis without weights) are also timed taking turns ("fx lookup",
    "bwsk"); an fx failure is kept as text."""
    from bwsk.analysis import analyze
    from bwsk.frontends.torch import graph_of_program
    from bwsk.frontends.torch_export import capture

    def bwsk_end_to_end():
        program, names, _ = capture(model, inputs)
        return analyze(graph_of_program(model, program, names), weights=False)

    row: dict[str, Any] = {"lookup": _best_seconds(lambda: classify(model), repeats)[1]}
    try:
        classify_fx(model)
    except Exception as exc:  # the published route's failure is the result
        row["fx lookup"] = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    else:
        row.update(_side_by_side({"fx lookup": lambda: classify_fx(model),
                                  "bwsk": bwsk_end_to_end}, repeats))
    (program, names, route), row["capture"] = _best_seconds(
        lambda: capture(model, inputs), repeats)
    row["route"] = route
    graph, row["walk"] = _best_seconds(
        lambda: graph_of_program(model, program, names), repeats)
    if route == "fx":  # the recording; export beside it, on the same model
        row["export capture"] = _best_seconds(lambda: capture(model, inputs, "export"),
                                                repeats)[1]
    row["nodes"] = len(graph.nodes)
    for weights, key in ((False, "analyze"), (True, "analyze+weights")):
        analysis, row[key] = _best_seconds(lambda w=weights: analyze(graph, weights=w),
                                             repeats)
        row[f"{key} verdict"] = analysis.verdict
    return row


def main() -> None:
    import torch

    from bwsk.zoo import build_model, names

    for name in names():
        with torch.device("meta"):  # the table needs module types only, not weights
            model, _ = build_model(name)
        census = classify(model)
        ratios = " ".join(f"{k} {100 * census.ratio(k):5.1f} %" for k in ("S", "K", "GRAY"))
        print(f"{name:14s} {census.total:4d} leaf modules  {ratios}  "
              f"({1e3 * census.seconds:.2f} ms)")


if __name__ == "__main__":
    main()
