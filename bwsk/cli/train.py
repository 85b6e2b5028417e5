"""``bwsk train``: train a causal LM on WikiText-2 in one mode, or ``--compare`` all modes."""

from __future__ import annotations

import argparse
import json
import os

from bwsk.errors import TrainingError
from bwsk.train.config import EXPERIMENTS, MODES, PARALLEL, PRECISIONS, TrainConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on WikiText-2 (conventional, recompute, "
                       "reversible or analyzed)",
                       description="Train a causal language model on the bundled WikiText-2 "
                       "protocol (or --data DIR) and write results.json, checkpoints and "
                       "loss.png to --out. Under torchrun the run is sharded over gloo along "
                       "--parallel (default dp); checkpoints always hold the unsharded model.")
    p.add_argument("--arch", default="gpt2", help="zoo name (gpt2, opt-350m) or a local "
                   "transformers checkpoint directory")
    for flag in ("--layers", "--d-model", "--heads"):
        p.add_argument(flag, type=int, help="size override")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8, help="global batch (dp splits it over "
                   "ranks; tp, sp and pp feed it whole)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="out/train", help="directory for results.json, "
                   "checkpoints/ and loss.png")
    p.add_argument("--mode", choices=MODES, default="conventional")
    p.add_argument("--experiment", choices=EXPERIMENTS, default="scratch")
    p.add_argument("--data", help="directory with train.txt, valid.txt, test.txt "
                   "(default: the bundled WikiText-2 protocol)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-steps", type=int, default=20)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--patience", type=int, default=0, help="stop after this many evaluations "
                   "without validation improvement (0: never)")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="bf16 = bfloat16 autocast on CPU")
    p.add_argument("--memory-budget", type=int, help="recompute mode: bytes of activations "
                   "saved per step to stay under")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--parallel", choices=PARALLEL, help="under torchrun: dp = data parallel "
                   "(DDP, the default with several processes), tp = tensor parallel (Megatron "
                   "column/row pairs), sp = sequence parallel (tp plus sharded LayerNorm "
                   "regions), pp = pipeline (GPipe over the planned stage cuts); planned by "
                   "bwsk.parallel, summary on stderr and plan.json in --out")
    p.add_argument("--microbatches", type=int, help="--parallel pp: microbatches per step "
                   "(default: one per process; must divide --batch-size)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--compare", action="store_true", help="run every mode (each in its own "
                   "process, into --out/MODE) and write one table and one plot")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    fields = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}
    cfg = TrainConfig(**fields).validate()
    if args.compare:
        if cfg.parallel:
            raise TrainingError("--compare runs each mode in its own single process; it does "
                                "not combine with --parallel")
        from bwsk.train.compare import compare

        table = compare(cfg)
        print(table)
        return 0
    from bwsk.train.loop import train

    summary = train(cfg)
    if os.environ.get("RANK", "0") != "0":  # under torchrun the result is printed once
        return 0
    print(json.dumps({k: summary[k] for k in ("mode", "steps", "final_loss", "val_perplexity",
                                              "test_perplexity", "saved_activation_bytes",
                                              "tokens_per_s")}, indent=2))
    return 0
