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
from train_helpers import launch_ranks, torchrun, wikitext_slice

from bwsk.cli import main

pytestmark = pytest.mark.dist

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
    import torch

    out = tmp_path_factory.mktemp("ref") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", *ARGS, "--data", data, "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
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


@pytest.mark.slow
@pytest.mark.parametrize("axis", ["dp", "tp", "sp", "pp"])
def test_each_axis_trains_the_one_process_curve(tmp_path, data, reference, axis):
    out = tmp_path / axis
    extra = ["--microbatches", "2"] if axis == "pp" else []
    run = torchrun([*ARGS, "--parallel", axis, *extra, "--data", data, "--out", str(out)])
    assert run.returncode == 0, _why(run)
    doc = _results(out)
    _assert_same_run(doc, reference)
    assert doc["world_size"] == 2 and doc["parallel"]["axis"] == axis
    plan = json.loads((out / "plan.json").read_text())
    names = {"dp": "data", "tp": "tensor", "sp": "sequence", "pp": "pipeline"}
    assert plan["schema"] == "bwsk.plan/1" and plan["world_size"] == 2
    assert [a["axis"] for a in plan["axes"]] == [names[axis]]
    assert f"\n{names[axis]}  " in run.stderr  # the plan's summary, printed once
    assert run.stderr.count(f"\n{names[axis]}  ") == 1
    assert run.stdout.count('"final_loss"') == 1  # the result, printed once


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
def test_tp_killed_resumes_to_the_curve_and_its_checkpoint_loads_in_one_process(
        tmp_path, data, reference):
    out = tmp_path / "tp"
    args = [*ARGS, "--parallel", "tp", "--data", data, "--out", str(out)]
    killed_at = _kill_after_first_checkpoint(args, out)
    assert 0 < killed_at < STEPS
    single = tmp_path / "single"
    shutil.copytree(out, single)

    resumed = torchrun([*args, "--resume"])
    assert resumed.returncode == 0, _why(resumed)
    _assert_same_run(_results(out), reference)

    # the tp checkpoint holds the unsharded model: one process continues it
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
