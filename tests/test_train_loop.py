"""The training loop on a tiny corpus: results, modes, refusals and failure handling."""

from __future__ import annotations

import json
import math

import pytest
import torch
from train_helpers import one_thread, wikitext_slice  # noqa: F401 (fixture)

from bwsk.cli import main
from bwsk.errors import DataError, TrainingError, UnsupportedModelError
from bwsk.train import TrainConfig, Trainer
from bwsk.train.data import BUNDLED

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_data(root):
    return wikitext_slice(root, 150, 30, 30)


def tiny(tmp_path, **kw) -> TrainConfig:
    base = dict(layers=2, d_model=32, heads=2, seq_len=16, batch_size=4, max_steps=6,
                eval_every=3, checkpoint_every=3, warmup_steps=2, progress=False,
                data=tiny_data(tmp_path / "data"), out=str(tmp_path / "run"))
    base.update(kw)
    return TrainConfig(**base)


def test_conventional_run_writes_results_plot_and_checkpoint(tmp_path):
    summary = Trainer(tiny(tmp_path)).run()
    out = tmp_path / "run"
    doc = json.loads((out / "results.json").read_text())
    for key in ("mode", "experiment", "steps", "epochs", "final_loss", "val_perplexity",
                "test_perplexity", "saved_activation_bytes", "peak_rss_bytes",
                "train_time_s", "tokens_per_s"):
        assert key in doc
    assert doc["steps"] == 6 and doc["stopped"] == "max_steps"
    assert math.isclose(doc["test_perplexity"], math.exp(doc["test_loss"]))
    assert len(doc["curves"]["train_loss"]) == 6 and len(doc["curves"]["val"]) == 2
    assert doc["saved_activation_bytes"] > 0
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "checkpoints" / "step-0000006" / "model.safetensors").is_file()
    assert summary["test_perplexity"] == doc["test_perplexity"]


@pytest.mark.parametrize("mode", ["recompute", "analyzed"])
def test_function_preserving_modes_give_the_bitwise_same_curve_with_fewer_saved_bytes(
        tmp_path, mode):
    conv = Trainer(tiny(tmp_path, out=str(tmp_path / "a"))).run()
    other = Trainer(tiny(tmp_path, out=str(tmp_path / "b"), mode=mode)).run()
    curves = [json.loads((tmp_path / d / "results.json").read_text())["curves"]["train_loss"]
              for d in ("a", "b")]
    assert curves[0] == curves[1]
    assert other["test_loss"] == conv["test_loss"]
    assert other["saved_activation_bytes"] < conv["saved_activation_bytes"]
    if mode == "recompute":
        assert other["mode_info"]["recomputed_blocks"] == 2
    else:  # boundaries at the sublayers the catalogue proves erasing
        info = other["mode_info"]
        assert info["segments_per_block"] == ["ln_1", "attn", "ln_2", "mlp"]
        assert any(op.startswith("layernorm") for op in info["k_ops"]["ln_1"])
        assert any(op.startswith("softmax") for op in info["k_ops"]["attn"])


def test_memory_budget_recomputes_only_as_many_blocks_as_needed(tmp_path):
    probe = Trainer(tiny(tmp_path, mode="recompute", out=str(tmp_path / "p")))
    info = probe.mode_info
    budget = (info["unplanned_saved_bytes"] + info["planned_saved_bytes"]) // 2
    half = Trainer(tiny(tmp_path, mode="recompute", memory_budget=budget,
                        out=str(tmp_path / "h")))
    assert half.mode_info["recomputed_blocks"] == 1
    assert half.mode_info["planned_saved_bytes"] <= budget
    with pytest.raises(TrainingError, match="memory-budget"):
        Trainer(tiny(tmp_path, mode="recompute", memory_budget=1000, out=str(tmp_path / "z")))


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(tiny(tmp_path, max_steps=8, checkpoint_every=2))
    step = trainer._step

    def poisoned(k):
        if k == 3:  # after the step-2 checkpoint
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))
        return step(k)

    trainer._step = poisoned
    with pytest.raises(TrainingError, match="loss is nan at step 4"):
        trainer.run()
    ckpt = tmp_path / "run" / "checkpoints"
    assert json.loads((ckpt / "latest.json").read_text())["step"] == 2
    resumed = Trainer(tiny(tmp_path, max_steps=8, checkpoint_every=2, resume=True))
    resumed.resume()
    assert all(torch.isfinite(p).all() for p in resumed.model.parameters())


def test_an_existing_run_is_never_overwritten_without_resume(tmp_path):
    Trainer(tiny(tmp_path)).run()
    before = (tmp_path / "run" / "results.json").read_bytes()
    with pytest.raises(TrainingError, match="already holds a training run"):
        Trainer(tiny(tmp_path))
    assert (tmp_path / "run" / "results.json").read_bytes() == before


def test_corrupt_checkpoint_on_resume_is_a_training_error(tmp_path):
    Trainer(tiny(tmp_path)).run()
    weights = tmp_path / "run" / "checkpoints" / "step-0000006" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(TrainingError, match="corrupt checkpoint"):
        Trainer(tiny(tmp_path, resume=True)).run()


def test_resume_refuses_a_different_configuration(tmp_path):
    Trainer(tiny(tmp_path)).run()
    with pytest.raises(TrainingError, match="--lr"):
        Trainer(tiny(tmp_path, resume=True, lr=0.5)).run()


@pytest.mark.parametrize(("kw", "error", "match"), [
    ({"seq_len": 2048}, TrainingError, "exceeds the model's context of 1024"),
    ({"arch": "bert-base"}, UnsupportedModelError, "causal language model"),
    ({"arch": "nope"}, UnsupportedModelError, "unknown architecture"),
    ({"d_model": 30, "heads": 4}, TrainingError, "not divisible"),
    ({"mode": "reversible", "experiment": "finetune"}, TrainingError, "scratch"),
])
def test_bad_configurations_are_refused(tmp_path, kw, error, match):
    with pytest.raises(error, match=match):
        Trainer(tiny(tmp_path, **kw))


def test_cli_reports_bad_input_in_one_line_with_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["train", "--out", str(blocker / "sub"), "--max-steps", "1"]) == 2
    assert main(["train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not writable" in err[0] and "not a directory" in err[1]


def test_missing_data_is_a_data_error(tmp_path):
    data = tmp_path / "d"
    tiny_data(data)
    (data / "test.txt").unlink()
    with pytest.raises(DataError, match=r"test\.txt"):
        Trainer(tiny(tmp_path, data=str(data)))


def tiny_checkpoint(root, lines):
    """A save_pretrained GPT-2 with its own byte-level BPE tokenizer, built offline."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(lines, vocab_size=300, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>")
    tok.save_pretrained(root)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=len(tok),
                               n_positions=64, bos_token_id=tok.eos_token_id,
                               eos_token_id=tok.eos_token_id)).save_pretrained(root)
    return str(root)


def test_finetune_keeps_the_checkpoints_tokenizer_and_reports_per_word_perplexity(tmp_path):
    lines = (BUNDLED / "valid.txt").read_text().splitlines()[:150]
    ckpt = tiny_checkpoint(tmp_path / "ckpt", lines)
    trainer = Trainer(tiny(tmp_path, arch=ckpt, experiment="finetune", layers=None,
                           d_model=None, heads=None, mode="recompute"))
    assert len(trainer.vocab) == 300
    test_lines = (tmp_path / "data" / "test.txt").read_text().splitlines()
    words = sum(len(line.split()) + 1 for line in test_lines)
    assert trainer.n_words["test"] == words - 1  # every word after the first, once
    assert len(trainer.streams["test"]) > words  # BPE splits words into pieces
    summary = trainer.run()
    assert "NLL summed per word" in summary["perplexity_unit"]
    assert math.isclose(summary["test_perplexity"], math.exp(trainer.evaluate("test")))


@pytest.mark.parametrize(("kw", "match"), [
    ({"arch": "gpt2", "experiment": "finetune", "layers": None, "d_model": None,
      "heads": None}, "needs pretrained weights"),
    ({"experiment": "finetune"}, "size overrides"),
])
def test_finetune_refusals(tmp_path, kw, match):
    with pytest.raises((TrainingError, UnsupportedModelError), match=match):
        Trainer(tiny(tmp_path, **kw))


def test_early_stopping_fires_after_patience_evaluations_without_improvement(tmp_path):
    trainer = Trainer(tiny(tmp_path, max_steps=30, eval_every=2, patience=2))
    vals = iter([5.0, 4.0, 4.5, 4.2, 3.0, 3.0])
    real = trainer.evaluate
    trainer.evaluate = lambda split: next(vals) if split == "valid" else real(split)
    summary = trainer.run()
    # best 4.0 at step 4; no improvement at steps 6 and 8 -> stop at step 8
    assert summary["stopped"] == "early_stopping" and summary["steps"] == 8


def test_bf16_autocast_trains_with_finite_losses(tmp_path):
    summary = Trainer(tiny(tmp_path, precision="bf16")).run()
    assert math.isfinite(summary["final_loss"]) and summary["precision"] == "bf16"


def test_compare_command_reproduces_the_configuration(tmp_path):
    from bwsk.cli import build_parser
    from bwsk.train.compare import command, format_table

    cfg = tiny(tmp_path, lr=3e-4, precision="bf16", memory_budget=12345)
    argv = command(cfg, "recompute", tmp_path / "x")
    assert argv[1:4] == ["-m", "bwsk", "train"]
    args = build_parser().parse_args(argv[3:])
    again = TrainConfig(**{k: v for k, v in vars(args).items()
                           if k in TrainConfig.__dataclass_fields__})
    assert again.to_dict() == dict(cfg.to_dict(), mode="recompute", out=str(tmp_path / "x"))
    table = format_table([{"mode": "analyzed", "error": "bwsk: error: no"}])
    assert "refused: bwsk: error: no" in table
