"""Causal language models for training, built offline from transformers configs.

Only decoder-only (causal) architectures have a next-word perplexity; encoder and
encoder-decoder models (BERT, T5, Switch) are refused by name rather than trained
with a different objective under the same label.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bwsk.errors import TrainingError, UnsupportedModelError

CAUSAL_ARCHS = ("gpt2", "opt-350m")
NON_CAUSAL = ("bert-base", "t5-small", "switch-base-8")


class CausalLM(nn.Module):
    """A transformers causal LM seen as ``ids -> logits``, with its block list exposed."""

    def __init__(self, hf_model: nn.Module, arch: str):
        super().__init__()
        self.hf = hf_model
        self.arch = arch

    @property
    def context(self) -> int:
        cfg = self.hf.config
        return int(getattr(cfg, "n_positions", None) or cfg.max_position_embeddings)

    def blocks(self) -> nn.ModuleList:
        if self.arch == "gpt2":
            return self.hf.transformer.h
        return self.hf.model.decoder.layers

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.hf(input_ids=ids, use_cache=False).logits


# dropout settings per architecture, in its config's own names
_DROPOUT_KEYS = {"gpt2": ("resid_pdrop", "embd_pdrop", "attn_pdrop"),
                 "opt-350m": ("dropout", "attention_dropout")}


def build_model(arch: str, vocab_size: int, *, layers: int | None, d_model: int | None,
                heads: int | None, dropout: float) -> CausalLM:
    """Random weights (from the current torch seed) for a zoo architecture's config with
    the word vocabulary and the size overrides."""
    if arch in NON_CAUSAL:
        raise UnsupportedModelError(f"bwsk train needs a causal language model; {arch} is not "
                                    f"one (choose {' or '.join(CAUSAL_ARCHS)})")
    if arch not in CAUSAL_ARCHS:
        if Path(arch).exists():
            raise TrainingError(f"--arch {arch} is a checkpoint directory: use it with "
                                "--experiment finetune")
        raise UnsupportedModelError(f"unknown architecture {arch!r} (choose "
                                    f"{', '.join(CAUSAL_ARCHS)} or a local checkpoint "
                                    "directory)")
    import transformers

    from bwsk import zoo

    cfg = zoo.config(arch, layers=layers, d_model=d_model, heads=heads, vocab=vocab_size,
                     **dict.fromkeys(_DROPOUT_KEYS[arch], dropout))
    _check_heads(cfg.hidden_size, cfg.num_attention_heads)
    return CausalLM(getattr(transformers, zoo.seed(arch).model)(cfg), arch)


def load_pretrained(path: Path) -> CausalLM:
    """A transformers causal LM saved with ``save_pretrained`` (local files only)."""
    if path.name in CAUSAL_ARCHS + NON_CAUSAL and not path.exists():
        raise UnsupportedModelError(f"--experiment finetune needs pretrained weights: pass a "
                                    f"local checkpoint directory, not the zoo name {path.name} "
                                    "(zoo architectures are built with random weights)")
    if not (path / "config.json").is_file():
        raise UnsupportedModelError(f"{path}: no config.json (not a transformers checkpoint)")
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()
    try:
        hf = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UnsupportedModelError(f"cannot load {path}: {exc}".splitlines()[0]) from exc
    kind = hf.config.model_type
    if kind not in ("gpt2", "opt"):
        raise UnsupportedModelError(f"{path}: model type {kind!r} is not supported for training")
    return CausalLM(hf, "gpt2" if kind == "gpt2" else "opt-350m")


def _check_heads(d_model: int, heads: int) -> None:
    if d_model % heads:
        raise TrainingError(f"--d-model {d_model} is not divisible by --heads {heads}")


def check_context(model: CausalLM, seq_len: int) -> None:
    if seq_len > model.context:
        raise TrainingError(f"--seq-len {seq_len} exceeds the model's context of "
                            f"{model.context} positions")
