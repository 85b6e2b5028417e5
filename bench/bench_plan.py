"""Time `bwsk plan gpt2 --world-size 8` (analysis only): cold from the shipped graph, traced, warm.

The cold run is the real command in a fresh process with an empty BWSK_CACHE: it reads the
shape-only graph shipped in bwsk/parallel/traces and imports neither torch nor transformers.
A non-default shape (--seq-len 64) has no shipped graph: its first run imports torch and
transformers, builds GPT-2 (no weight init) and traces it; its second reads the graph cached
by the first (bwsk.parallel.cache). The per-axis search (bwsk._core.calm_search) is timed
separately, in this process.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time


def command(*args: str, cache: str) -> tuple[float, float]:
    """(wall, CPU) seconds of `bwsk plan gpt2 --world-size 8 ARGS` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bwsk", "plan", "gpt2", "--world-size", "8", *args],
                   check=True, stdout=subprocess.DEVNULL, env={**os.environ, "BWSK_CACHE": cache})
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    cache = tempfile.mkdtemp(prefix="bwsk-bench-")
    rows = [("cold, shipped graph (empty cache; target <= 5 s)", command(cache=cache)),
            ("--seq-len 64, traced (imports torch)", command("--seq-len", "64", cache=cache)),
            ("--seq-len 64, warm (cached graph)", command("--seq-len", "64", cache=cache))]
    print("bwsk plan gpt2 --world-size 8, each a fresh process:")
    for label, (wall, cpu) in rows:
        print(f"  {label:50s} {wall:6.2f} s wall, {cpu:6.2f} s CPU")
    from bwsk.parallel import plan
    from bwsk.parallel.analysis import axis_report

    graph = plan("gpt2", 8, batch=8, seq_len=128)["_graph"]
    print(f"search per axis ({len(graph.nodes)} nodes):")
    for axis, world in (("data", 8), ("sequence", 4), ("tensor", 4), ("pipeline", 8)):
        wall = time.perf_counter()
        entry = axis_report(graph, axis, world)
        wall = time.perf_counter() - wall
        print(f"  {axis:9s} P={world}: {wall:6.3f} s, "
              f"{entry['totals']['bytes_per_step'] / 2**20:9.1f} MiB per step")


if __name__ == "__main__":
    main()
