"""Training acceptance on the bundled WikiText-2 protocol: conventional vs reversible vs
recompute for a small GPT-2 from scratch, same seed, same batches, same steps.

Checks (exit status 1 if one fails):
- reversible test perplexity within 2 % of conventional;
- recompute's loss curve bitwise equal to conventional's (CPU, fp32);
- the whole run within 10 minutes (reported; the machine may be shared).

    .venv/bin/python bench/bench_train.py [--steps 200] [--out out/bench-train]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

from bwsk.train.compare import compare
from bwsk.train.config import TrainConfig

LIMIT_S = 600


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--out", default="out/bench-train")
    ap.add_argument("--with-analyzed", action="store_true", help="also run analyzed mode")
    ap.add_argument("--threads", default="1", help="OMP threads per run (the CI machine is "
                    "shared by parallel jobs, where spinning OpenMP threads cost far more)")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = args.threads
    cfg = TrainConfig(arch="gpt2", layers=4, d_model=args.d_model, heads=4, seq_len=args.seq_len,
                      batch_size=args.batch_size, max_steps=args.steps,
                      eval_every=max(1, args.steps // 2), checkpoint_every=args.steps,
                      seed=0, out=args.out).validate()
    t0 = time.perf_counter()
    modes = ("conventional", "recompute", "reversible")
    table = compare(cfg, (*modes, "analyzed") if args.with_analyzed else modes)
    elapsed = time.perf_counter() - t0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(table)
    print(f"CPU time of the runs: {children.ru_utime + children.ru_stime:.0f} s "
          f"(wall {elapsed:.0f} s; more wall than CPU means the machine was shared)")
    docs = {d["mode"]: d for d in json.loads((Path(args.out) / "compare.json").read_text())}
    return report(docs, Path(args.out), elapsed)


def report(docs: dict, out: Path, elapsed: float) -> int:
    conv, rev = docs["conventional"], docs["reversible"]
    failures = [f"{m}: {d['error']}" for m, d in docs.items() if "error" in d]
    if failures:
        print("\n".join(failures))
        return 1
    curves = {m: json.loads((out / m / "results.json").read_text())["curves"]["train_loss"]
              for m in ("conventional", "recompute")}
    gap = rev["test_perplexity"] / conv["test_perplexity"] - 1
    checks = {
        f"reversible test ppl within 2 % of conventional ({gap:+.2%})": abs(gap) <= 0.02,
        "recompute loss curve bitwise equal to conventional":
            curves["recompute"] == curves["conventional"],
        f"whole run within {LIMIT_S} s ({elapsed:.0f} s)": elapsed <= LIMIT_S,
    }
    for mode in ("recompute", "reversible", "analyzed"):
        if mode in docs and "error" not in docs[mode]:
            saved = 1 - docs[mode]["saved_activation_bytes"] / conv["saved_activation_bytes"]
            print(f"{mode}: saved-for-backward bytes {saved:.1%} below conventional")
    for name, ok in checks.items():
        print(f"[{'ok' if ok else 'FAIL'}] {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
