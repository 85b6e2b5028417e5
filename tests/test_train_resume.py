"""Interrupted runs (SIGKILL after a checkpoint, or Ctrl-C) resume to the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from train_helpers import wikitext_slice

STEPS = 120


def _data(root):
    return wikitext_slice(root, 150, 10, 10)


def _cmd(data, out, *extra):
    return [sys.executable, "-m", "bwsk", "train", "--layers", "2", "--d-model", "32",
            "--heads", "2", "--seq-len", "16", "--batch-size", "4", "--max-steps", str(STEPS),
            "--eval-every", "50", "--checkpoint-every", "5", "--warmup-steps", "5",
            "--dropout", "0.1", "--no-progress", "--data", data, "--out", str(out), *extra]


# one thread per process: the suite shares two cores, where OpenMP spinning is ruinous
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _interrupt_after_first_checkpoint(cmd, out, sig, log) -> int:
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=ENV)
        latest = out / "checkpoints" / "latest.json"
        while not latest.exists():
            assert proc.poll() is None, log.read_text()
            time.sleep(0.01)
        proc.send_signal(sig)
        return proc.wait(timeout=120)


def _result(out):
    doc = json.loads((out / "results.json").read_text())
    return doc["curves"]["train_loss"], doc["test_loss"], doc["val_loss"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    data = _data(root / "data")
    subprocess.run(_cmd(data, root / "run"), check=True, capture_output=True, env=ENV)
    return data, _result(root / "run")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, reference, sig):
    data, expected = reference
    out = tmp_path / "run"
    log = tmp_path / "stderr.txt"
    status = _interrupt_after_first_checkpoint(_cmd(data, out), out, sig, log)
    stopped_at = json.loads((out / "checkpoints" / "latest.json").read_text())["step"]
    assert 0 < stopped_at < STEPS, "the run must really have been interrupted"
    if sig == signal.SIGINT:
        # Ctrl-C: a checkpoint at the step reached, exit status 130, no results yet
        assert status == 130, log.read_text()
        assert not (out / "results.json").exists()
    else:
        assert status == -signal.SIGKILL
    resumed = subprocess.run(_cmd(data, out, "--resume"), capture_output=True, text=True,
                             env=ENV)
    assert resumed.returncode == 0, resumed.stderr
    assert _result(out) == expected
    assert not any(p.name.startswith(".tmp") for p in (out / "checkpoints").iterdir())


def test_resume_without_a_checkpoint_is_refused(tmp_path):
    data = _data(tmp_path / "data")
    run = subprocess.run(_cmd(data, tmp_path / "empty", "--resume"), capture_output=True,
                         text=True, env=ENV)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"bwsk: error: --resume: no checkpoint in {tmp_path / 'empty' / 'checkpoints'}"]
    assert os.listdir(tmp_path / "empty") == []
