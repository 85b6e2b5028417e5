"""Time `bwsk plan gpt2 --world-size 8` (analysis only): a cold run and a warm one.

The cold run imports torch and transformers, builds GPT-2 (no weight init) and traces it
with torch.export; the warm run reads the shape-only graph cached by the cold one
(bwsk.parallel.cache) and only searches. The imports are timed first on their own: they
are the floor of any cold run that builds the model with transformers. The per-axis
search (bwsk._core.calm_search) is timed separately.
"""

from __future__ import annotations

import os
import tempfile
import time


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    os.environ["BWSK_CACHE"] = tempfile.mkdtemp(prefix="bwsk-bench-")
    from bwsk.parallel import plan
    from bwsk.parallel.analysis import axis_report

    def run():
        return plan("gpt2", 8, batch=8, seq_len=128)

    def imports():
        import torch  # noqa: F401
        import transformers

        return transformers.GPT2LMHeadModel

    _, imp_wall, imp_cpu = timed(imports)
    _, cold_wall, cold_cpu = timed(run)
    report, warm_wall, warm_cpu = timed(run)
    graph = report["_graph"]
    print(f"bwsk plan gpt2 --world-size 8 ({len(graph.nodes)} nodes, axes "
          f"{', '.join(a['axis'] for a in report['axes'])}; "
          f"skipped {', '.join(s['axis'] for s in report['skipped']) or 'none'}):")
    print(f"  imports (torch, transformers): {imp_wall:6.2f} s wall, {imp_cpu:6.2f} s CPU")
    print(f"  cold (build + trace + plan):   {cold_wall:6.2f} s wall, {cold_cpu:6.2f} s CPU"
          f"  (the cold command is these two lines; target <= 5 s)")
    print(f"  warm (cached graph + plan):    {warm_wall:6.2f} s wall, {warm_cpu:6.2f} s CPU")
    for axis, world in (("data", 8), ("sequence", 4), ("tensor", 4), ("pipeline", 8)):
        entry, wall, _ = timed(lambda a=axis, w=world: axis_report(graph, a, w))
        print(f"  search {axis:9s} P={world}: {wall:6.3f} s, "
              f"{entry['totals']['bytes_per_step'] / 2**20:9.1f} MiB per step")


if __name__ == "__main__":
    main()
