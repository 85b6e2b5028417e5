"""Getting an ExportedProgram out of a module: default inputs, and routes around models that
``torch.export`` cannot trace as written.

Switch Transformers cannot be exported directly: its router re-assigns its classifier with
``.to(dtype)`` inside ``forward`` (export cannot swap parameters) and its experts loop over
the experts that were hit (a data-dependent shape). For export only, the router's ``.to``
becomes a no-op and the experts run densely: every expert on every token, weighted by the
router's dispatch mask (one-hot, capacity-limited) and probability. Tokens an expert does not
receive contribute exact zeros, so the function is unchanged (a test compares outputs).
Its encoder also needs an attention mask; an all-ones mask is built from the input ids.

T5's and Switch's layer norms are RMS norms written out (pow, mean, rsqrt, mul); for export
they call ``F.rms_norm``, the same function, so the graph holds one ``rmsnorm`` atom whose
injectivity (eps > 0) the catalogue proves, where the spelled-out chain stays gray.
"""

from __future__ import annotations

import contextlib
import types
from typing import Any

import torch

from bwsk.errors import UnsupportedModelError

SEQ_LEN = 8


CAPTURES = ("auto", "fx", "export")


def capture(module: torch.nn.Module, example_inputs: Any = None, how: str = "auto"):
    """(program, {placeholder name: parameter/buffer FQN}, route) for ``module`` in eval mode.

    ``how``: "fx" records one forward pass into a torch.fx graph (milliseconds; see
    ``torch_fx``), "export" uses torch.export, "auto" records when the recording captures the
    module faithfully, else exports."""
    if how not in CAPTURES:
        raise UnsupportedModelError(f"capture must be one of {', '.join(CAPTURES)}, not {how!r}")
    if not isinstance(module, torch.nn.Module):
        raise UnsupportedModelError(f"expected a torch.nn.Module, got {type(module).__name__}")
    args, kwargs = _as_args(example_inputs if example_inputs is not None
                            else default_inputs(module))
    if how != "export":
        from bwsk.frontends.torch_fx import Refused, capture_fx

        try:
            with _eval(module), export_routes(module):
                return (*capture_fx(module, args, kwargs), "fx")
        except Refused as why:
            if how == "fx":
                raise UnsupportedModelError(f"the fx recording cannot capture "
                                            f"{type(module).__name__}: {why}; use how='export'"
                                            ) from None
    return (*_export(module, args, kwargs), "export")


def export_module(module: torch.nn.Module, example_inputs: Any = None):
    """(ExportedProgram, {placeholder name: parameter/buffer FQN}) for ``module`` in eval mode."""
    if not isinstance(module, torch.nn.Module):
        raise UnsupportedModelError(f"expected a torch.nn.Module, got {type(module).__name__}")
    return _export(module, *_as_args(example_inputs if example_inputs is not None
                                     else default_inputs(module)))


def _export(module: torch.nn.Module, args: tuple, kwargs: dict):
    try:
        with _eval(module), export_routes(module), _no_stack_traces():
            exported = torch.export.export(module, args, kwargs, strict=False)
    except UnsupportedModelError:
        raise
    except Exception as exc:  # export raises many types; the user needs one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnsupportedModelError(
            f"torch.export failed on {type(module).__name__}: {first}") from None
    fqn_of = {}
    for spec in exported.graph_signature.input_specs:
        if spec.target is not None and spec.kind.name in ("PARAMETER", "BUFFER",
                                                          "CONSTANT_TENSOR"):
            fqn_of[spec.arg.name] = spec.target
    return exported, fqn_of


@contextlib.contextmanager
def _eval(module: torch.nn.Module):
    """Eval mode while capturing (dropout off, running statistics), the caller's mode after
    (each submodule's own: a model may keep some parts in training mode)."""
    modes = [(m, m.training) for m in module.modules() if m.training]
    for m, _ in modes:
        m.training = False
    try:
        yield
    finally:
        for m, was in modes:
            m.training = was


@contextlib.contextmanager
def _no_stack_traces():
    """Skip recording a Python stack trace per traced node: a quarter of export's time, and
    the frontend reads only ``nn_module_stack``."""
    config = torch.fx.config
    before = config.do_not_emit_stack_traces
    config.do_not_emit_stack_traces = True
    try:
        yield
    finally:
        config.do_not_emit_stack_traces = before


def _as_args(inputs: Any) -> tuple[tuple, dict]:
    if isinstance(inputs, dict):
        return (), dict(inputs)
    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs), {}
    raise UnsupportedModelError(
        "example_inputs must be a tensor, a tuple of tensors or a dict, not "
        f"{type(inputs).__name__}")


def token_inputs(config, seq_len: int = SEQ_LEN) -> dict[str, torch.Tensor]:
    """Deterministic token ids (1, seq_len); encoder-decoders get decoder ids too."""
    ids = (torch.arange(seq_len).reshape(1, seq_len) * 7 + 3) % config.vocab_size
    inputs = {"input_ids": ids}
    if getattr(config, "is_encoder_decoder", False):
        inputs["decoder_input_ids"] = ids.flip(-1).clone()
    return inputs


def default_inputs(module: torch.nn.Module) -> Any:
    """Token ids (1, 8) for a transformers model; else a batch of one for the first layer."""
    config = getattr(module, "config", None)
    if config is not None and hasattr(config, "vocab_size"):
        return token_inputs(config)
    generator = torch.Generator().manual_seed(0)
    for layer in module.modules():
        if isinstance(layer, torch.nn.Linear):
            return (torch.randn(1, layer.in_features, generator=generator),)
        if isinstance(layer, torch.nn.Embedding):
            return (torch.arange(SEQ_LEN).reshape(1, SEQ_LEN) % layer.num_embeddings,)
        if isinstance(layer, torch.nn.modules.conv._ConvNd):
            spatial = (16,) * len(layer.kernel_size)
            return (torch.randn(1, layer.in_channels, *spatial, generator=generator),)
    raise UnsupportedModelError(
        f"cannot guess an input for {type(module).__name__} (no Linear, Conv or Embedding "
        "layer); pass example_inputs")


@contextlib.contextmanager
def export_routes(module: torch.nn.Module):
    """Temporarily make known-untraceable transformers modules exportable, and RMS norms one
    op (see module doc). Both routes capture through them, so they give one graph."""
    try:
        from transformers.models.switch_transformers import modeling_switch_transformers as st
    except ImportError:  # transformers absent: nothing to patch
        yield
        return
    undo = []
    for sub in module.modules():
        if _is_rms_norm(sub):
            sub.forward = types.MethodType(_rms_norm, sub)
            undo.append((sub, "forward"))
        elif isinstance(sub, st.SwitchTransformersTop1Router):
            sub.classifier.to = types.MethodType(lambda self, *a, **k: self, sub.classifier)
            undo.append((sub.classifier, "to"))
        elif isinstance(sub, st.SwitchTransformersExperts):
            sub.forward = types.MethodType(_dense_experts, sub)
            undo.append((sub, "forward"))
    if undo and isinstance(module, st.SwitchTransformersPreTrainedModel):
        original = module.forward
        module.forward = types.MethodType(_with_ones_mask(original), module)
        undo.append((module, "forward"))
    try:
        yield
    finally:
        for obj, attr in undo:
            obj.__dict__.pop(attr, None)


def _is_rms_norm(sub: torch.nn.Module) -> bool:
    """T5LayerNorm and its copies (SwitchTransformersLayerNorm), float32 weights only: their
    forward is exactly rms_norm then (half weights add a cast)."""
    name = type(sub).__name__
    return (name in ("T5LayerNorm", "SwitchTransformersLayerNorm")
            and hasattr(sub, "variance_epsilon")
            and getattr(sub, "weight", None) is not None and sub.weight.dtype == torch.float32)


def _rms_norm(self, hidden_states):
    if hidden_states.dtype != torch.float32:
        return type(self).forward(self, hidden_states)
    return torch.nn.functional.rms_norm(hidden_states, (hidden_states.shape[-1],), self.weight,
                                        self.variance_epsilon)


def _dense_experts(self, hidden_states, selected_experts, routing_weights):
    """SwitchTransformersExperts.forward without data-dependent control flow."""
    out = torch.zeros_like(hidden_states)
    for index in range(self.num_experts):
        gate = selected_experts[:, 0, index : index + 1].to(hidden_states.dtype) * routing_weights
        out = out + self[f"expert_{index}"](hidden_states) * gate
    return out


def _with_ones_mask(forward):
    def patched(self, input_ids=None, attention_mask=None, **kwargs):
        if attention_mask is None and input_ids is not None:
            attention_mask = torch.ones_like(input_ids)
        return forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    return patched
