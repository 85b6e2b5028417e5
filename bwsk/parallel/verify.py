"""Hold a plan to the engines: run each axis on real ranks and measure what they send.

``run_rank`` is the body of one gloo process: it builds the model, a one-process
reference (same seed, whole batch), applies one axis of the plan with the torch engine,
runs forward and backward and an optimizer step, and returns the outputs, gradients and
the collectives it saw per phase. tests/test_parallel_dist.py compares them with the report.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bwsk.parallel.measure import CommLog, ddp_byte_logger


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))


def logits_of(out) -> torch.Tensor:
    return out.logits if hasattr(out, "logits") else out


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    from torch.distributed.tensor import DTensor

    out = {}
    for name, p in model.named_parameters():
        if p.grad is not None:
            g = p.grad.full_tensor() if isinstance(p.grad, DTensor) else p.grad
            out[name] = g.detach().clone()
    return out


def _summary(log: CommLog, phase: str | None = None) -> dict:
    counts: Counter = Counter()
    nbytes: Counter = Counter()
    for r in log.records:
        ph = phase or r.phase
        counts[(ph, r.collective)] += 1
        nbytes[(ph, r.collective)] += r.bytes
    return {"counts": dict(counts), "bytes": dict(nbytes)}


def reference(build: Callable, ids, targets, loss_fn=lm_loss) -> dict:
    model = build()
    logits = logits_of(model(ids))
    loss = loss_fn(logits, targets)
    loss.backward()
    return {"logits": logits.detach(), "loss": loss.detach(), "grads": _grads(model)}


def run_tensor(build, axis_plan, mesh, ids, targets) -> dict:
    """Tensor or sequence parallel: DTensor collectives logged per phase."""
    from bwsk.parallel.engines import apply, settle_gradients

    model = apply(build(), axis_plan, mesh)
    log = CommLog()
    with log:
        logits = logits_of(model(ids))
        loss = lm_loss(logits, targets)
        loss.backward()
    optim_log = CommLog()
    with optim_log:  # partial gradients (LayerNorm under SP) reduced to where the weight lives
        settle_gradients(model.parameters())
    fwd_bwd, optim = _summary(log), _summary(optim_log, "optim")
    return {"logits": logits.detach(), "grads": _grads(model),
            "counts": {**fwd_bwd["counts"], **optim["counts"]},
            "bytes": {**fwd_bwd["bytes"], **optim["bytes"]}}


def run_data(build, axis_plan, mesh, ids, targets, loss_fn=lm_loss) -> dict:
    """DDP on this rank's slice of the batch; gradient buckets logged by a comm hook."""
    from bwsk.parallel.engines import apply

    rank, world = mesh.get_local_rank(), mesh.size()
    model = apply(build(), axis_plan, mesh)
    buckets: list[int] = []
    model.register_comm_hook(None, ddp_byte_logger(buckets))
    local_ids, local_t = ids.chunk(world)[rank], targets.chunk(world)[rank]
    logits = logits_of(model(local_ids))
    loss_fn(logits, local_t).backward()
    return {"logits": logits.detach(), "grads": _grads(model.module), "buckets": buckets}


def run_pipeline(build, axis_plan, mesh, ids, targets, microbatches: int) -> dict:
    """GPipe over the plan's cuts; every point-to-point send logged with its bytes."""
    import torch.distributed.pipelining.schedules as sched

    from bwsk.parallel.engines import apply

    sends: list[int] = []
    original = sched._batch_p2p

    def logged(ops, desc=None):
        sends.extend((op.tensor.numel() * op.tensor.element_size(), tuple(op.tensor.shape),
                      str(op.tensor.dtype)) for op in ops if op.op is torch.distributed.isend)
        return original(ops, desc)

    model = build()
    run = apply(model, axis_plan, mesh, example_inputs=(ids,), microbatches=microbatches,
                loss_fn=lm_loss)
    sched._batch_p2p = logged
    try:
        losses: list = []
        if mesh.get_local_rank() == 0:
            run.schedule.step(ids)
        else:
            run.schedule.step(target=targets, losses=losses)
    finally:
        sched._batch_p2p = original
    grads = {n.removeprefix("model."): p.grad.detach().clone()
             for n, p in run.stage_module.named_parameters() if p.grad is not None}
    loss = torch.stack(losses).mean() if losses else None
    return {"sends": sends, "grads": grads, "loss": loss}


def init(rank: int, world: int, port: int):
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    return init_device_mesh("cpu", (world,))


def tiny_gpt2(tied: bool = False, vocab: int = 64) -> nn.Module:
    """A 2-layer GPT-2 (E=32, 4 heads, vocab 64), dropout 0, the same on every rank;
    every parameter trainable, position embeddings included, as in real training. With
    ``tied``, lm_head is the token table, as in real GPT-2."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=vocab, n_positions=16,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=False,
                        tie_word_embeddings=tied)
    return GPT2LMHeadModel(config)


def tied_gpt2() -> nn.Module:
    return tiny_gpt2(tied=True)


def linear_gpt2(tied: bool = False) -> nn.Module:
    from bwsk.parallel.hf import conv1d_to_linear

    return conv1d_to_linear(tiny_gpt2(tied))


def linear_tied_gpt2() -> nn.Module:
    return linear_gpt2(tied=True)


ODD_VOCAB = 63  # like GPT-2's 50257: no rank count divides it, so the table splits by hidden size


def odd_tied_gpt2() -> nn.Module:
    return tiny_gpt2(tied=True, vocab=ODD_VOCAB)


def linear_odd_tied_gpt2() -> nn.Module:
    from bwsk.parallel.hf import conv1d_to_linear

    return conv1d_to_linear(odd_tied_gpt2())


def bn_mlp() -> nn.Module:
    """An MLP with BatchNorm in training mode: its batch statistics mix the samples."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
