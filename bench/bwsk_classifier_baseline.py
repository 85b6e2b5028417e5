"""The published BWSK classifier, re-created for comparison (DESIGN.md §1).

It walks a PyTorch model's leaf modules (``named_modules``) and looks each module's type up
in a hand-written table with hand-set confidences: weights-bearing maps (Linear, Conv1D,
Embedding) and normalisations count as information-preserving (S); Dropout and activations
count as erasing (K); anything the table does not know is gray. Nothing is proved, shapes
and weights are ignored. On this machine's transformers it reproduces the model cards'
ratios for GPT-2 small, BERT-base and T5-small exactly, and OPT-350M with its real
config (do_layer_norm_before=False), which is how the table was pinned.

Used by ``bench_analyze.py``; runnable alone: ``python bench/bwsk_classifier_baseline.py``.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

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
