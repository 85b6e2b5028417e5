"""DDP over gloo (the default axis under torchrun): two ranks compute the gradient one
process gets on the whole batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from train_helpers import wikitext_slice

from bwsk.train import TrainConfig, Trainer

TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
ENV = dict(os.environ, OMP_NUM_THREADS="1")

RANK_SCRIPT = textwrap.dedent("""
    import sys, torch
    from bwsk.train import TrainConfig, Trainer
    cfg = TrainConfig(**eval(sys.argv[1]))
    trainer = Trainer(cfg)
    x, y = (trainer.world.shard(t) for t in trainer.batches.batch(0))
    trainer._loss(trainer.net, x, y).backward()
    grads = {n: p.grad for n, p in trainer.model.named_parameters()}
    torch.save({"rows": x, "grads": grads}, sys.argv[2] + f".{trainer.world.rank}")
    trainer.world.close()
""")


def _data(root: Path) -> str:
    return wikitext_slice(root, 120, 10, 10)


def _config(tmp_path: Path, out: str) -> dict:
    return dict(layers=2, d_model=32, heads=2, seq_len=16, batch_size=4, max_steps=2,
                eval_every=2, checkpoint_every=2, progress=False, dropout=0.0,
                data=_data(tmp_path / f"data-{out}"), out=str(tmp_path / out))


@pytest.mark.dist
def test_two_gloo_ranks_give_the_gradient_of_one_process_on_the_whole_batch(tmp_path):
    cfg = _config(tmp_path, "ddp")
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    subprocess.run([TORCHRUN, "--nproc_per_node=2", "--standalone", str(script), repr(cfg),
                    str(tmp_path / "grads")], check=True, env=ENV, capture_output=True)
    ranks = [torch.load(tmp_path / f"grads.{r}", weights_only=True) for r in (0, 1)]

    single = Trainer(TrainConfig(**_config(tmp_path, "single")))
    x, y = single.batches.batch(0)
    assert torch.equal(torch.cat([r["rows"] for r in ranks]), x)  # the ranks split the batch
    single._loss(single.net, x, y).backward()
    for name, p in single.model.named_parameters():
        for r in ranks:
            torch.testing.assert_close(r["grads"][name], p.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.dist
@pytest.mark.slow
def test_torchrun_trains_end_to_end_and_only_rank_0_writes(tmp_path):
    cfg = _config(tmp_path, "run")
    args = ["--layers", "2", "--d-model", "32", "--heads", "2", "--seq-len", "16",
            "--batch-size", "4", "--max-steps", "4", "--eval-every", "2", "--no-progress",
            "--data", cfg["data"], "--out", cfg["out"]]
    run = subprocess.run([TORCHRUN, "--nproc_per_node=2", "--standalone", "-m", "bwsk",
                          "train", *args], env=ENV, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert doc["world_size"] == 2 and doc["steps"] == 4
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "checkpoints", "loss.png", "plan.json", "results.json"]
    assert doc["parallel"]["axis"] == "dp"  # the default with several processes
