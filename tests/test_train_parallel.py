"""`bwsk train --parallel dp|tp|sp|pp` on 2 gloo ranks trains the curve of one process.

Same seed, same global batch, dropout 0: every axis must reproduce the one-process loss
curve and validation/test losses within 1e-4 (relative). GPipe's loss is the mean of the
microbatch losses, which equals the whole-batch mean for equal microbatches.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest
from train_helpers import launch_ranks, one_thread, torchrun, wikitext_slice  # noqa: F401

from bwsk.cli import main

pytestmark = [pytest.mark.dist, pytest.mark.usefixtures("one_thread")]

STEPS = 8
ARGS = ["--layers", "2", "--d-model", "32", "--heads", "4", "--seq-len", "16", "--batch-size",
        "4", "--max-steps", str(STEPS), "--eval-every", "4", "--checkpoint-every", "2",
        "--warmup-steps", "2", "--dropout", "0", "--no-progress"]
REL = 1e-4


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    return wikitext_slice(tmp_path_factory.mktemp("data"), 120, 10, 10)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> dict:
    """The one-process run (in this process: the entry point without torchrun)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(["train", *ARGS, "--data", data, "--out", str(out)]) == 0
    return _results(out)


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def _assert_same_run(got: dict, want: dict) -> None:
    assert got["steps"] == want["steps"] == STEPS
    assert got["curves"]["train_loss"] == pytest.approx(want["curves"]["train_loss"], rel=REL)
    assert [e["val_loss"] for e in got["curves"]["val"]] == pytest.approx(
        [e["val_loss"] for e in want["curves"]["val"]], rel=REL)
    for key in ("val_loss", "test_loss"):
        assert got[key] == pytest.approx(want[key], rel=REL)


NAMES = {"dp": "data", "tp": "tensor", "sp": "sequence", "pp": "pipeline"}


def _assert_parallel_outputs(out: Path, run, axis: str) -> None:
    """plan.json of the axis, its summary printed once, the result printed once."""
    assert _results(out)["world_size"] == 2 and _results(out)["parallel"]["axis"] == axis
    plan = json.loads((out / "plan.json").read_text())
    assert plan["schema"] == "bwsk.plan/1" and plan["world_size"] == 2
    assert [a["axis"] for a in plan["axes"]] == [NAMES[axis]]
    assert run.stderr.count(f"\n{NAMES[axis]}  ") == 1
    assert run.stdout.count('"final_loss"') == 1


@pytest.mark.slow
@pytest.mark.parametrize("axis", ["tp", "sp"])  # dp: test_train_dist.py; pp: the resumed run below
def test_each_axis_trains_the_one_process_curve(tmp_path, data, reference, axis):
    out = tmp_path / axis
    run = torchrun([*ARGS, "--parallel", axis, "--data", data, "--out", str(out)])
    assert run.returncode == 0, _why(run)
    _assert_same_run(_results(out), reference)
    _assert_parallel_outputs(out, run, axis)


def _why(run) -> str:
    """The lines of a failed launch that say why (not torchrun's summary or warnings)."""
    keys = ("error", "terminate", "exception", "abort", "traceback", "file ")
    return "\n".join(line for line in run.stderr.splitlines()
                     if any(k in line.lower() for k in keys))[-6000:]


def _kill_after_first_checkpoint(args: list[str], out: Path) -> int:
    procs = launch_ranks(args, out.parent / "logs")
    latest = out / "checkpoints" / "latest.json"
    try:
        while not latest.exists():
            assert all(p.poll() is None for p in procs), "a rank ended before a checkpoint"
            time.sleep(0.005)
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=60)
    return json.loads(latest.read_text())["step"]


@pytest.mark.slow
@pytest.mark.parametrize("axis, extra", [("tp", []), ("pp", ["--microbatches", "2"])])
def test_killed_run_resumes_to_the_curve_and_loads_in_one_process(tmp_path, data, reference,
                                                                  axis, extra):
    out = tmp_path / axis
    args = [*ARGS, "--parallel", axis, *extra, "--data", data, "--out", str(out)]
    killed_at = _kill_after_first_checkpoint(args, out)
    assert 0 < killed_at < STEPS
    single = tmp_path / "single"
    shutil.copytree(out, single)

    resumed = torchrun([*args, "--resume"])
    assert resumed.returncode == 0, _why(resumed)
    _assert_same_run(_results(out), reference)
    _assert_parallel_outputs(out, resumed, axis)

    # the checkpoint holds the unsharded model and optimizer: one process continues it
    assert main(["train", *ARGS, "--data", data, "--out", str(single), "--resume"]) == 0
    _assert_same_run(_results(single), reference)


@pytest.mark.parametrize("extra, message", [
    (["--parallel", "tp"], "--parallel tp needs several processes: launch with torchrun"),
    (["--parallel", "pp", "--microbatches", "3"],
     "--batch-size 4 is not divisible into 3 microbatches"),
    (["--microbatches", "2"], "--microbatches applies to --parallel pp"),
    (["--parallel", "sp", "--mode", "reversible"], "--mode reversible rewrites its blocks"),
])
def test_bad_parallel_settings_are_one_line_errors(tmp_path, capsys, monkeypatch, data, extra,
                                                   message):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert main(["train", *ARGS, *extra, "--data", data, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bwsk: error: ") and message in err[0], err


@pytest.mark.slow
def test_tp_with_heads_not_divisible_by_the_ranks_is_a_one_line_error_on_each(tmp_path, data):
    out = tmp_path / "x"
    args = [*ARGS, "--heads", "3", "--d-model", "24", "--parallel", "tp", "--data", data,
            "--out", str(out)]
    procs = launch_ranks(args, tmp_path / "logs")
    assert [p.wait(timeout=300) for p in procs] == [2, 2]
    for rank in range(2):
        err = (tmp_path / "logs" / f"rank{rank}.err").read_text()
        lines = [line for line in err.splitlines() if "error" in line.lower()]
        assert lines == ["bwsk: error: 3 attention heads are not divisible by world size 2: "
                         "the tensor axis cannot shard them"], err
        assert "Traceback" not in err


@pytest.mark.parametrize("axis", ["tp", "sp", "pp"])
def test_model_parallel_axes_refuse_architectures_they_were_not_verified_on(axis):
    import torch

    from bwsk.errors import TrainingError
    from bwsk.train.distributed import World
    from bwsk.train.models import build_model
    from bwsk.train.parallel import build_engine

    model = build_model("opt-350m", 50, layers=1, d_model=16, heads=2, dropout=0.0)
    with pytest.raises(TrainingError, match=f"--parallel {axis} is built and verified for GPT-2"):
        build_engine(model, World(rank=0, size=2), axis, batch=4, seq_len=8,
                     example=torch.zeros(4, 8, dtype=torch.long), microbatches=2, loss_fn=None)
