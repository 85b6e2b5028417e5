"""Reversible engine benchmark: memory, reconstruction drift, step time, and revlib side by side.

Model: pre-LN GPT-style couplings, F = LayerNorm + causal self-attention, G = LayerNorm + MLP.
  memory  bytes saved for backward (saved_tensors_hooks, every saved tensor counted) at
          2..32 blocks, and peak RSS of one 12-block training step in a fresh process;
  drift   max |inverse(forward(x)) - x| at 32 blocks, float vs exact mode, fp32 and bf16;
  time    median of N training steps (forward + backward), 12 blocks, d_model 256, seq 256,
          batch 4: conventional autograd, bwsk RevSequential (float, exact), revlib; one
          torch thread, CPU seconds of the stepping thread (robust to other processes) and
          wall seconds, variants round-robin.
Run: .venv/bin/python bench/bench_rev.py [--steps 5] [--json out/bench_rev.json]
     [--parts memory rss drift time]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from bwsk.reversible import RevSequential, ops

D, HEADS, SEQ, BATCH = 256, 4, 256, 4


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln, self.qkv, self.out = nn.LayerNorm(D), nn.Linear(D, 3 * D), nn.Linear(D, D)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(self.ln(x)).view(b, t, 3, HEADS, D // HEADS).permute(2, 0, 3, 1, 4)
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(y.transpose(1, 2).reshape(b, t, D))


class MLP(nn.Sequential):
    def __init__(self):
        super().__init__(nn.LayerNorm(D), nn.Linear(D, 4 * D), nn.GELU(), nn.Linear(4 * D, D))


def make_stack(depth: int, exact: bool = False) -> RevSequential:
    torch.manual_seed(0)
    return RevSequential([(Attention(), MLP()) for _ in range(depth)], exact=exact)


def make_revlib(stack: RevSequential):
    import revlib

    mods = [m for pair in zip(stack.f, stack.g, strict=True) for m in pair]
    return revlib.ReversibleSequential(*mods, split_dim=-1)


def runner(kind: str, depth: int):
    """A callable doing one forward pass of the `kind` variant, returning a scalar loss."""
    stack = make_stack(depth, exact=kind == "bwsk exact")
    x = torch.randn(BATCH, SEQ, D, requires_grad=True)
    if kind == "revlib":
        net = make_revlib(stack)
        return lambda: net(torch.cat([x, x], dim=-1)).square().mean()
    run = stack.conventional if kind == "conventional" else stack
    return lambda: sum(run(x, x)).square().mean()


KINDS = ("conventional", "bwsk float", "bwsk exact", "revlib")


def saved_bytes(kind: str, depth: int) -> int:
    loss_of, total = runner(kind, depth), 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss_of()
    return total


def step_times(kinds: tuple[str, ...], steps: int) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds of training steps per variant, taken round-robin.

    CPU seconds are those of this thread with torch on one thread (CPU autograd runs on the
    calling thread), so other processes on a loaded machine barely move them.
    """
    loss_of = {k: runner(k, 12) for k in kinds}
    times = {k: {"wall": [], "cpu": []} for k in kinds}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(steps + 1):  # the first round warms up
            for k in kinds:
                wall, cpu = time.perf_counter(), time.thread_time()
                loss_of[k]().backward()
                times[k]["cpu"].append(time.thread_time() - cpu)
                times[k]["wall"].append(time.perf_counter() - wall)
    finally:
        torch.set_num_threads(threads)
    return {k: {m: v[1:] for m, v in t.items()} for k, t in times.items()}


def _peak_rss_child(kind: str, queue) -> None:
    # VmHWM is this address space's high-water mark; ru_maxrss would carry over the parent's
    # peak across the spawn's exec.
    step_times((kind,), 1)
    status = Path("/proc/self/status").read_text().splitlines()
    queue.put(next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM")))


def peak_rss(kind: str) -> int:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_rss_child, args=(kind, queue))
    # Large blocks straight from mmap, so freed activations leave RSS and the high-water
    # mark reflects live memory rather than glibc's growing heap threshold.
    saved_env = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
    try:
        proc.start()
    finally:
        if saved_env is None:
            del os.environ["MALLOC_MMAP_THRESHOLD_"]
        else:
            os.environ["MALLOC_MMAP_THRESHOLD_"] = saved_env
    value = queue.get()
    proc.join()
    return value


@torch.no_grad()
def drift(exact: bool, bf16: bool) -> float:
    stack = make_stack(32, exact=exact).eval()
    x1, x2 = torch.randn(2, BATCH, SEQ, D)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        if exact:
            q1, q2 = ops.quantize(x1), ops.quantize(x2)
            r1, r2 = (ops.dequantize(q) for q in stack.inverse(*stack(q1, q2)))
        else:
            r1, r2 = stack.inverse(*stack(x1, x2))
    return max((r1 - x1).abs().max().item(), (r2 - x2).abs().max().item())


def table(title: str, header: list[str], rows: list[list]) -> None:
    cells = [header, *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for k, r in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
        if k == 0:
            print("  " + "  ".join("-" * w for w in widths))


def part_memory(args, out: dict) -> None:
    depths = (2, 4, 8, 16, 32)
    mem = {k: [saved_bytes(k, n) for n in depths] for k in KINDS}
    out["saved_bytes"] = {k: dict(zip(depths, v, strict=True)) for k, v in mem.items()}
    table("bytes saved for backward (MiB)", ["blocks", *KINDS],
          [[n, *(f"{mem[k][i] / 2**20:.1f}" for k in KINDS)] for i, n in enumerate(depths)])


def part_rss(args, out: dict) -> None:
    rss = {k: peak_rss(k) for k in KINDS}
    out["peak_rss_bytes_12_blocks"] = rss
    table("peak RSS of one 12-block training step (MiB, fresh process)", list(KINDS),
          [[f"{rss[k] / 2**20:.0f}" for k in KINDS]])


def part_drift(args, out: dict) -> None:
    drifts = {f"{m} {p}": drift(m == "exact", p == "bf16") for m in ("float", "exact")
              for p in ("fp32", "bf16")}
    out["drift_32_blocks"] = drifts
    table(f"max |inverse(forward(x)) - x| at 32 blocks (fixed-point step 2^-{ops.FRAC_BITS})",
          list(drifts), [[f"{v:.3g}" for v in drifts.values()]])


def part_time(args, out: dict) -> None:
    times = {k: {m: statistics.median(v) for m, v in t.items()}
             for k, t in step_times(KINDS, args.steps).items()}
    out["step_seconds_median"] = times
    base = times["conventional"]
    table(f"training step, 12 blocks, 1 thread (median of {args.steps})",
          ["variant", "cpu s", "vs conv", "wall s", "vs conv"],
          [[k, f"{t['cpu']:.3f}", f"{t['cpu'] / base['cpu']:.2f}x", f"{t['wall']:.3f}",
            f"{t['wall'] / base['wall']:.2f}x"] for k, t in times.items()])


PARTS = {"memory": part_memory, "rss": part_rss, "drift": part_drift, "time": part_time}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    args = ap.parse_args()
    out: dict = {"config": {"d_model": D, "heads": HEADS, "seq": SEQ, "batch": BATCH,
                            "threads": torch.get_num_threads()}}
    for part in args.parts:
        PARTS[part](args, out)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
