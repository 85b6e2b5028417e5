"""The seed architectures, built offline from transformers config classes (random weights).

``build_model("gpt2", layers=2)`` gives a small variant; a path to a local checkpoint
directory loads pretrained weights instead (``from_pretrained``, never downloading).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bwsk.errors import UnsupportedModelError


@dataclass(frozen=True)
class Arch:
    """How one seed is built: its config class, model class and size-attribute names."""

    config: str
    model: str
    base: dict[str, Any]
    layers: tuple[str, ...]
    d_model: str
    heads: str
    ffn: str | None = None  # set to 4 * d_model when d_model is overridden
    kv: str | None = None  # per-head size, d_model // heads
    sparse: tuple[str, ...] = ()  # numbers of sparse (expert) layers, kept ~1/4 of the layers


SEEDS: dict[str, Arch] = {
    "gpt2": Arch("GPT2Config", "GPT2LMHeadModel", {}, ("n_layer",), "n_embd", "n_head",
                 ffn="n_inner"),
    "bert-base": Arch("BertConfig", "BertForMaskedLM", {}, ("num_hidden_layers",),
                      "hidden_size", "num_attention_heads", ffn="intermediate_size"),
    "t5-small": Arch("T5Config", "T5ForConditionalGeneration", {},
                     ("num_layers", "num_decoder_layers"), "d_model", "num_heads", ffn="d_ff",
                     kv="d_kv"),
    # facebook/opt-350m: unlike the other OPT sizes, post-LN (no final LayerNorm) and a
    # 512-wide embedding projected in and out of the 1024-wide stream
    "opt-350m": Arch("OPTConfig", "OPTForCausalLM",
                     {"hidden_size": 1024, "ffn_dim": 4096, "num_hidden_layers": 24,
                      "num_attention_heads": 16, "word_embed_proj_dim": 512,
                      "do_layer_norm_before": False, "vocab_size": 50272,
                      "max_position_embeddings": 2048},
                     ("num_hidden_layers",), "hidden_size", "num_attention_heads", ffn="ffn_dim"),
    "switch-base-8": Arch("SwitchTransformersConfig", "SwitchTransformersForConditionalGeneration",
                          {}, ("num_layers", "num_decoder_layers"), "d_model", "num_heads",
                          ffn="d_ff", kv="d_kv",
                          sparse=("num_sparse_encoder_layers", "num_sparse_decoder_layers")),
}

# model_type of a checkpoint's config.json -> the seed whose model class loads it
_MODEL_TYPES = {"gpt2": "gpt2", "bert": "bert-base", "t5": "t5-small", "opt": "opt-350m",
                "switch_transformers": "switch-base-8"}

SEQ_LEN = 8
_SPECIAL_TOKENS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")


def names() -> list[str]:
    return list(SEEDS)


def build_model(name: str | Path, *, layers: int | None = None, d_model: int | None = None,
                heads: int | None = None, vocab: int | None = None, seq_len: int = SEQ_LEN,
                **config_overrides: Any):
    """(model in eval mode, example inputs as a kwargs dict) for a seed name or checkpoint."""
    path = Path(name)
    if str(name) not in SEEDS and path.is_dir():
        model = _from_checkpoint(path)
    else:
        arch = seed(str(name))
        import torch
        import transformers

        cfg = config(str(name), layers=layers, d_model=d_model, heads=heads, vocab=vocab,
                     **config_overrides)
        with torch.random.fork_rng():  # the same random weights every time, RNG untouched
            torch.manual_seed(0)
            model = getattr(transformers, arch.model)(cfg)
    model.eval()
    return model, example_inputs(model, seq_len)


def config(name: str, *, layers: int | None = None, d_model: int | None = None,
           heads: int | None = None, vocab: int | None = None, **overrides: Any):
    """The transformers config of seed ``name`` with the size overrides applied."""
    arch = seed(name)
    import transformers

    kwargs = _config_kwargs(arch, layers, d_model, heads, vocab, overrides)
    return getattr(transformers, arch.config)(**kwargs)


def seed(name: str) -> Arch:
    """The seed called ``name``, or an error listing the valid names."""
    if name not in SEEDS:
        raise UnsupportedModelError(
            f"unknown model {name!r}; valid names: {', '.join(SEEDS)} (or an .onnx file or a "
            "checkpoint directory)")
    return SEEDS[name]


def _config_kwargs(arch: Arch, layers, d_model, heads, vocab, extra) -> dict[str, Any]:
    kw = dict(arch.base, use_cache=False)
    if layers is not None:
        kw.update({key: int(layers) for key in arch.layers})
        kw.update({key: max(1, int(layers) // 4) for key in arch.sparse})
    if d_model is not None:
        kw[arch.d_model] = int(d_model)
        if arch.ffn:
            kw[arch.ffn] = 4 * int(d_model)
        if "word_embed_proj_dim" in kw:
            kw["word_embed_proj_dim"] = int(d_model) // 2  # keep project_in/out
    if heads is not None:
        kw[arch.heads] = int(heads)
    if arch.kv and (d_model is not None or heads is not None):
        default = _default_config(arch)
        dm = kw.get(arch.d_model, getattr(default, arch.d_model))
        nh = kw.get(arch.heads, getattr(default, arch.heads))
        if dm % nh:
            raise UnsupportedModelError(f"d_model {dm} is not divisible by heads {nh}")
        kw[arch.kv] = dm // nh
    if vocab is not None:
        kw["vocab_size"] = int(vocab)
        default = _default_config(arch)
        for key in _SPECIAL_TOKENS:  # keep special token ids inside a smaller vocabulary
            token = getattr(default, key, None)
            if isinstance(token, int) and token >= int(vocab):
                kw[key] = int(vocab) - 1
    kw.update(extra)
    return kw


def _default_config(arch: Arch):
    import transformers

    return getattr(transformers, arch.config)()


def _from_checkpoint(path: Path):
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UnsupportedModelError(f"{path} is not a transformers checkpoint: "
                                    f"{str(exc).splitlines()[0]}") from None
    seed = _MODEL_TYPES.get(config.model_type)
    if seed is None:
        raise UnsupportedModelError(
            f"{path}: model_type {config.model_type!r} is not supported; supported: "
            f"{', '.join(_MODEL_TYPES)}")
    arch = SEEDS[seed]
    config.use_cache = False
    model = getattr(transformers, arch.model).from_pretrained(
        path, config=config, local_files_only=True)
    return model


def example_inputs(model, seq_len: int = SEQ_LEN) -> dict[str, Any]:
    """Deterministic token ids of shape (1, seq_len); encoder-decoders get decoder ids too."""
    from bwsk.frontends.torch_export import token_inputs

    return token_inputs(model.config, seq_len)
