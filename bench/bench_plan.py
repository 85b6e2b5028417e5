"""Time `bwsk plan gpt2 --world-size 8` (analysis only), split into its stages.

The target is 5 s end to end on an idle 2-core machine; the per-axis search itself
(bwsk._core.calm_search) is a small part of it, tracing the model is most of it.
"""

from __future__ import annotations

import time


def main() -> None:
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    from bwsk.frontends.torch import graph_of
    from bwsk.parallel.analysis import axis_report
    from bwsk.parallel.api import build_module

    module, example = build_module("gpt2", batch=8, seq_len=128)
    t1 = time.perf_counter()
    graph = graph_of(module, example)
    t2 = time.perf_counter()
    totals = {}
    for axis in ("data", "sequence", "pipeline"):  # 12 heads: the tensor axis needs P | 12
        start = time.perf_counter()
        entry = axis_report(graph, axis, 8)
        totals[axis] = (time.perf_counter() - start, entry["totals"]["bytes_per_step"])
    t3 = time.perf_counter()
    start = time.perf_counter()
    tensor = axis_report(graph, "tensor", 4)
    totals["tensor (P=4)"] = (time.perf_counter() - start, tensor["totals"]["bytes_per_step"])
    print(f"gpt2: {len(graph.nodes)} nodes; build {t1 - t0:.2f} s, trace {t2 - t1:.2f} s, "
          f"plan 3 axes {t3 - t2:.2f} s; total {t3 - t0:.2f} s wall, "
          f"{time.process_time() - cpu0:.2f} s CPU (target <= 5 s)")
    for axis, (secs, nbytes) in totals.items():
        print(f"  {axis:14s} {secs:6.3f} s  {nbytes / 2**20:10.1f} MiB per step")


if __name__ == "__main__":
    main()
