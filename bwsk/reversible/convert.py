"""``convert``: a pre-LN residual transformer rebuilt as licensed two-stream couplings.

For GPT-2 each block ``h = x + attn(ln_1(x)); y = h + mlp(ln_2(h))`` becomes the coupling
``y1 = x1 + F(x2), y2 = x2 + G(y1)`` with ``F = attn∘ln_1`` and ``G = mlp∘ln_2`` (the
Reformer construction) run by :class:`RevSequential`. Stream 1 starts as the embeddings,
stream 2 as zeros, and the output is the sum of the two streams, so ``y1 + y2 = e + ΣF + ΣG``
has the residual stream's form with the embedding weighted as in the original model.
(Starting both streams at ``e`` and averaging halves every sublayer's contribution
against the embedding: GPT-2 4x128, 150 steps, trained to +7.5 % test perplexity against
conventional; this start, -0.3 %.) Keeping ``d_model`` lets the final LayerNorm and the
tied LM head be reused (Reformer concatenates instead).

This is a different function from the original model: it is for training from scratch.
Before anything is rebuilt, every distinct block's coupling graph is proved S by the
analysis (``bwsk.reversible.license``); a block the proof engine cannot license is refused
with the operation that blocks recovery.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from bwsk.errors import TrainingError
from bwsk.reversible.license import License, coupling_graph, license_coupling
from bwsk.reversible.sequential import RevSequential

GPT2_REGIONS = (("F", ("ln_1", "attn")), ("G", ("ln_2", "mlp")))


@dataclass
class Conversion:
    """What ``convert`` did: the reversible model and one license per distinct block."""

    model: nn.Module
    couplings: int
    licenses: list[License] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.couplings} couplings licensed S; " + "; ".join(map(str, self.licenses))


class _Sublayer(nn.Module):
    """F or G of a GPT-2 coupling: a LayerNorm, then attention (causal) or the MLP."""

    def __init__(self, norm: nn.Module, body: nn.Module, config=None):
        super().__init__()
        self.norm, self.body = norm, body
        self.config = config  # set for attention: the causal mask follows its implementation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        if self.config is None:
            return self.body(h)
        from transformers.masking_utils import create_causal_mask

        positions = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
        mask = create_causal_mask(config=self.config, inputs_embeds=x, attention_mask=None,
                                  past_key_values=None, position_ids=positions)
        return self.body(h, attention_mask=mask)[0]


class ReversibleGPT2Model(nn.Module):
    """GPT-2's embeddings and final LayerNorm around a RevSequential of its blocks."""

    def __init__(self, gpt2: nn.Module, exact: bool = False):
        super().__init__()
        self.config = gpt2.config
        self.wte, self.wpe, self.drop, self.ln_f = gpt2.wte, gpt2.wpe, gpt2.drop, gpt2.ln_f
        self.stack = RevSequential([(_Sublayer(b.ln_1, b.attn, gpt2.config),
                                     _Sublayer(b.ln_2, b.mlp)) for b in gpt2.h], exact=exact)

    def get_input_embeddings(self) -> nn.Module:
        return self.wte

    def forward(self, input_ids=None, past_key_values=None, attention_mask=None,
                token_type_ids=None, position_ids=None, inputs_embeds=None, use_cache=None,
                **kwargs):
        from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions

        _refuse_unsupported(past_key_values, attention_mask, kwargs)
        x = self.wte(input_ids) if inputs_embeds is None else inputs_embeds
        if position_ids is None:
            position_ids = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
        x = x + self.wpe(position_ids)
        if token_type_ids is not None:
            x = x + self.wte(token_type_ids)
        x = self.drop(x)
        y1, y2 = self.stack(x, torch.zeros_like(x))
        hidden = self.ln_f(y1 + y2)
        return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=hidden)


def _refuse_unsupported(past_key_values, attention_mask, kwargs) -> None:
    if past_key_values is not None:
        raise TrainingError("the reversible GPT-2 keeps no key/value cache (training only)")
    if attention_mask is not None and not bool(attention_mask.bool().all()):
        raise TrainingError("the reversible GPT-2 supports causal attention without padding")
    if kwargs.get("encoder_hidden_states") is not None:
        raise TrainingError("the reversible GPT-2 has no cross-attention")


def _gpt2_body(model: nn.Module) -> tuple[nn.Module, bool]:
    """The GPT2Model inside ``model`` and whether it sits under an LM head."""
    from transformers import GPT2LMHeadModel, GPT2Model

    if isinstance(model, GPT2LMHeadModel):
        return model.transformer, True
    if isinstance(model, GPT2Model):
        return model, False
    raise TrainingError(f"convert rebuilds GPT-2 (GPT2Model, GPT2LMHeadModel); "
                        f"{type(model).__name__} is not supported")


def license_blocks(blocks: nn.ModuleList, d_model: int) -> list[License]:
    """Prove the coupling of each distinct block class S (identical classes share a proof)."""
    from bwsk.frontends.torch import graph_of

    licenses: dict[type, License] = {}
    for block in blocks:
        if type(block) in licenses:
            continue
        was_training = block.training
        try:
            graph = graph_of(block.eval(), (torch.zeros(1, 4, d_model),))
        finally:
            block.train(was_training)
        licenses[type(block)] = license_coupling(coupling_graph(graph, GPT2_REGIONS))
    return list(licenses.values())


def convert(model: nn.Module, exact: bool = False) -> Conversion:
    """Rebuild GPT-2 as licensed couplings; an LM-head model is converted in place.

    Returns a Conversion whose ``model`` is ``model`` itself (its ``transformer`` replaced)
    for GPT2LMHeadModel, or a new ReversibleGPT2Model sharing the weights for GPT2Model.
    """
    body, has_head = _gpt2_body(model)
    if getattr(body.config, "add_cross_attention", False):
        raise TrainingError("convert: GPT-2 with cross-attention is not a two-sublayer block")
    licenses = license_blocks(body.h, body.config.n_embd)
    rev = ReversibleGPT2Model(body, exact=exact)
    if has_head:
        model.transformer = rev
        return Conversion(model, len(body.h), licenses)
    return Conversion(rev, len(body.h), licenses)
