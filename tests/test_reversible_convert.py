"""convert(): GPT-2 rebuilt as licensed couplings, refusals; plan_recompute(): budgets met."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("bwsk.reversible")

from torch import nn  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel, GPT2Model  # noqa: E402
from transformers.models.gpt2.modeling_gpt2 import GPT2Block  # noqa: E402

from bwsk.errors import TrainingError  # noqa: E402
from bwsk.reversible import convert  # noqa: E402
from bwsk.reversible.recompute import plan_recompute  # noqa: E402

VOCAB = 50


def _config(layers=2, dropout=0.1):
    return GPT2Config(n_layer=layers, n_embd=32, n_head=4, vocab_size=VOCAB, n_positions=32,
                      resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
                      bos_token_id=0, eos_token_id=0, use_cache=False)


def _ids(seed=0):
    return torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(seed))


def _param_grads(model, ids, seed=3):
    model.zero_grad()
    torch.manual_seed(seed)
    model(input_ids=ids, labels=ids).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.fixture(scope="module")
def converted():
    torch.manual_seed(0)
    model = GPT2LMHeadModel(_config())
    return model, convert(model)


def test_convert_licenses_every_coupling(converted):
    model, conversion = converted
    assert conversion.model is model and conversion.couplings == 2
    assert "S (inverse: run G" in str(conversion)
    assert len(model.transformer.stack) == 2


def test_converted_gradients_match_conventional_coupling_with_dropout(converted):
    model, _ = converted
    model.train()
    ids = _ids()
    rev = _param_grads(model, ids)
    stack = model.transformer.stack
    stack.forward = stack.conventional  # same coupled network, ordinary autograd
    try:
        conv = _param_grads(model, ids)
    finally:
        del stack.forward
    assert rev.keys() == conv.keys() and len(rev) == len(list(model.parameters()))
    # stream 2 starts at zero, so block 0's F reads a near-constant input and its gradients
    # (exactly zero for ln_1's weight) are round-off-sized: the floor follows the largest one
    floor = 1e-2 * max(g.abs().max() for g in conv.values())
    for name, g in conv.items():
        assert (rev[name] - g).abs().max() <= 1e-5 * g.abs().max().clamp_min(floor), name


def test_converted_model_is_causal(converted):
    model, _ = converted
    model.eval()
    a, b = _ids(), _ids()
    b[:, -1] = (b[:, -1] + 1) % VOCAB
    with torch.no_grad():
        la, lb = model(input_ids=a).logits, model(input_ids=b).logits
    assert torch.equal(la[:, :-1], lb[:, :-1]) and not torch.equal(la[:, -1], lb[:, -1])


def test_convert_plain_gpt2_model():
    conversion = convert(GPT2Model(_config(layers=1)))
    out = conversion.model(input_ids=_ids())
    assert out.last_hidden_state.shape == (2, 12, 32)


class _PostNormBlock(GPT2Block):
    """A GPT-2 block with a LayerNorm on the residual stream after it (post-LN style)."""

    def __init__(self, config, layer_idx=None):
        super().__init__(config, layer_idx)
        self.ln_post = nn.LayerNorm(config.n_embd)

    def forward(self, hidden_states, *args, **kwargs):
        return self.ln_post(super().forward(hidden_states, *args, **kwargs))


def test_convert_refuses_an_erasing_stream_naming_the_op():
    model = GPT2LMHeadModel(_config(layers=1))
    model.transformer.h[0] = _PostNormBlock(model.config, 0)
    with pytest.raises(TrainingError, match=r"blocked by layernorm \(ln_post\)"):
        convert(model)
    assert isinstance(model.transformer, GPT2Model)  # nothing rebuilt


def test_convert_refuses_other_architectures():
    with pytest.raises(TrainingError, match="not supported"):
        convert(nn.Linear(3, 3))


def test_recompute_plan_meets_budget_and_preserves_gradients():
    torch.manual_seed(0)
    plain = GPT2LMHeadModel(_config(layers=4))
    planned = GPT2LMHeadModel(_config(layers=4))
    planned.load_state_dict(plain.state_dict())
    ids = _ids()
    want = _param_grads(plain, ids)
    plan = plan_recompute(planned, ids, budget=1 << 62)
    assert plan.segments == [] and plan.saved_bytes == plan.baseline_bytes
    plan = plan_recompute(planned, ids, budget=plan.baseline_bytes // 2)
    assert 0 < len(plan.segments) < 4 and plan.saved_bytes <= plan.budget
    assert planned.state_dict().keys() == plain.state_dict().keys()
    got = _param_grads(planned, ids)
    assert all(torch.equal(got[n], want[n]) for n in want)  # the same function, bit for bit


def test_recompute_refuses_an_impossible_budget():
    with pytest.raises(TrainingError, match="below the"):
        plan_recompute(GPT2LMHeadModel(_config(layers=2)), _ids(), budget=100)
