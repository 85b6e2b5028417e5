"""Benchmark of the native rewriting core (prints a table; asserts nothing about time).

1. The abstraction of a 200,000-layer residual chain h_{k+1} = add h_k (f_k h_k), built
   through build() and normalized (about a million nodes).
2. A random well-typed term of about a million nodes: a chain of values, each a small random
   combinator/lambda function of earlier values, so every node hides redexes.
3. Side by side with the pure-Python reference normalizer (tests/oracle.py), whose results
   must agree: a 100,005-node chain with one beta-redex per layer (20,000 layers), the
   residual chain of 1. at 25,000 layers (abstraction only), and the random generator at
   about 100,000 nodes (the oracle needs a minute or two on it). The target compares the two
   normalizers alone; the ratio with record conversion in and out is printed beside it.

Targets: <= 2 s per million-node normalization, <= 100 store bytes per node, >= 30x the oracle
on the 100k-node term (CPU seconds: the machine may be shared).
Each run uses fresh primitive names, so the store's memoized normal forms never help.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from bwsk.term import build, export, store_stats  # noqa: E402


def residual_chain(layers: int, tag: str) -> list[tuple]:
    """Records of \\x. h_n with h_{k+1} = add h_k (f_k h_k)."""
    records: list[tuple] = [("prim", f"add_{tag}", ""), ("prim", "x", "")]
    h = 1
    for k in range(layers):
        records += [("prim", f"f{k}_{tag}", ""), ("app", len(records), h), ("app", 0, h)]
        records.append(("app", len(records) - 1, len(records) - 2))
        h = len(records) - 1
    records.append(("lam", "x", h))
    return records


def redex_chain(layers: int, tag: str) -> list[tuple]:
    """Records of \\x. h_n with h_{k+1} = (\\y. add y (f_k y)) h_k: one beta-redex per layer."""
    records: list[tuple] = [("prim", f"add_{tag}", ""), ("prim", "x", ""), ("prim", "y", "")]
    h = 1
    for k in range(layers):
        records += [("prim", f"f{k}_{tag}", ""), ("app", 0, 2)]
        records += [("app", len(records) - 2, 2)]
        records += [("app", len(records) - 2, len(records) - 1)]
        records += [("lam", "y", len(records) - 1)]
        records += [("app", len(records) - 1, h)]
        h = len(records) - 1
    records.append(("lam", "x", h))
    return records


class RandomTyped:
    """Random simply typed terms over o (values), o->o (F) and o->o->o (G) as records."""

    def __init__(self, seed: int, tag: str):
        self.rng, self.records, self.atoms = random.Random(seed), [], {}
        self.tag = tag
        self.values = [self.atom("prim", f"c_{tag}", "")]

    def atom(self, *rec) -> int:
        if rec not in self.atoms:
            self.atoms[rec] = self.add(rec)
        return self.atoms[rec]

    def add(self, rec: tuple) -> int:
        self.records.append(rec)
        return len(self.records) - 1

    def app(self, f: int, *xs: int) -> int:
        for x in xs:
            f = self.add(("app", f, x))
        return f

    def value(self) -> int:
        return self.values[-self.rng.randint(1, min(len(self.values), 50))]

    def fun(self, depth: int) -> int:  # type o -> o
        r, c = self.rng.random(), self.atom
        if depth == 0 or r < 0.25:
            return self.app(c("prim", f"f{self.rng.randrange(300)}_{self.tag}", ""))
        if r < 0.40:
            return self.app(c("B",), self.fun(depth - 1), self.fun(depth - 1))
        if r < 0.55:
            return self.app(c("S",), self.fun2(depth - 1), self.fun(depth - 1))
        if r < 0.65:
            return self.app(c("W",), self.fun2(depth - 1))
        if r < 0.75:
            return self.app(c("C",), self.fun2(depth - 1), self.value())
        if r < 0.85:
            return self.app(c("K",), self.value()) if r < 0.78 else c("I",)
        x = c("prim", "x", "")  # \x. g (F x) v
        inner = self.app(self.fun(depth - 1), x)
        return self.add(("lam", "x", self.app(self.fun2(depth - 1), inner, self.value())))

    def fun2(self, depth: int) -> int:  # type o -> o -> o
        r, c = self.rng.random(), self.atom
        if depth == 0 or r < 0.4:
            return c("prim", f"g{self.rng.randrange(300)}_{self.tag}", "")
        if r < 0.6:
            return self.app(c("C",), self.fun2(depth - 1))
        if r < 0.8:
            return self.app(c("B",), self.fun2(depth - 1), self.fun(depth - 1))
        return self.app(c("K",), self.fun(depth - 1))

    def step(self) -> None:
        r, prev = self.rng.random(), self.values[-1]
        if r < 0.6:
            v = self.app(self.fun(3), prev)
        elif r < 0.9:
            v = self.app(self.fun2(3), prev, self.value())
        else:  # #i/2 <prev, v>
            pair = self.app(self.atom("tuple", 2), prev, self.value())
            v = self.app(self.atom("proj", self.rng.randrange(2), 2), pair)
        self.values.append(v)

    def generate(self, nodes: int) -> list[tuple]:
        while len(self.records) < nodes:
            self.step()
        return self.records


def timed(fn):
    """(result, wall seconds, CPU seconds of the process) of fn(): the machine may be shared."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def core_row(name: str, records: list[tuple]) -> tuple:
    term, t_build, _ = timed(lambda: build(records))
    (nf, stats), t_nf, cpu_nf = timed(term.normalize_with_stats)
    return (name, term.size, t_build, t_nf, cpu_nf, nf.size, sum(stats.values()))


def versus_oracle(records: list[tuple]) -> tuple[float, float, float, float] | None:
    """CPU seconds (core normalize, oracle normalize, core end to end, oracle end to end):
    normalization alone on each side's own representation, and records in -> records out."""
    try:
        from oracle import Oracle, run_deep
    except ImportError as exc:
        print(f"\nPython reference normalizer missing (tests/oracle.py): {exc}")
        return None
    term, _, c_build = timed(lambda: build(records))
    nf, _, c_nf = timed(term.normalize)
    core_records, _, c_export = timed(lambda: export(nf).records)
    oracle = Oracle(10_000_000)
    o_term, _, o_in = timed(lambda: run_deep(oracle.from_records, records))
    o_nf, _, o_norm = timed(lambda: run_deep(oracle.nf, o_term))
    o_records, _, o_out = timed(lambda: run_deep(oracle.to_records, o_nf))
    if build(o_records) != build(core_records):
        raise SystemExit("core and oracle disagree on the normal form")
    return c_nf, o_norm, c_build + c_nf + c_export, o_in + o_norm + o_out


def main() -> None:
    seed = time.time_ns() % 1_000_000  # fresh names: no memoized normal form can help
    rows = [
        core_row("residual chain, 200k layers", residual_chain(200_000, f"r{seed}")),
        core_row("random well-typed", RandomTyped(1, f"t{seed}").generate(1_350_000)),
    ]
    print(f"{'term':<28} {'nodes':>9} {'build s':>8} {'normalize s':>12} {'(cpu s)':>8} "
          f"{'nf nodes':>9} {'rewrites':>9}")
    for name, size, t_build, t_nf, cpu_nf, nf_size, fired in rows:
        print(f"{name:<28} {size:>9,} {t_build:>8.2f} {t_nf:>12.2f} {cpu_nf:>8.2f} "
              f"{nf_size:>9,} {fired:>9,}")
    stats = store_stats()
    print(f"\nstore: {stats['nodes']:,} nodes, {stats['bytes']:,} bytes, "
          f"{stats['bytes'] / stats['nodes']:.1f} bytes/node (target <= 100)")
    print("\nside by side with the oracle (CPU s): normalization alone, and records in -> out")
    for name, records, target in [
            ("redex chain, 20k layers", redex_chain(20_000, f"o{seed}"), " (target >= 30x)"),
            ("residual chain, 25k layers", residual_chain(25_000, f"o{seed}"), " (no rewrites)"),
            ("random well-typed", RandomTyped(2, f"o{seed}").generate(120_000),
             " (target >= 30x)")]:
        times = versus_oracle(records)
        if times is None:
            return
        c_nf, o_nf, c_all, o_all = times
        print(f"  {name:<28} {build(records).size:>8,} nodes   normalize: core {c_nf:.3f} s, "
              f"oracle {o_nf:.2f} s, {o_nf / c_nf:.0f}x{target}   "
              f"in->out: {o_all / c_all:.0f}x")

if __name__ == "__main__":
    main()
