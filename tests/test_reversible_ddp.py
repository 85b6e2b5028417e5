"""RevSequential under DistributedDataParallel (gloo, 2 processes) matches one process."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("bwsk.reversible")

import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as tmp  # noqa: E402
from torch import nn  # noqa: E402

from bwsk.reversible import RevSequential  # noqa: E402

D, WORLD = 16, 2


def _model() -> RevSequential:
    torch.manual_seed(0)
    return RevSequential([(nn.Sequential(nn.LayerNorm(D), nn.Linear(D, D)),
                           nn.Sequential(nn.Linear(D, D), nn.Tanh())) for _ in range(3)])


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(4, 5, D, generator=g), torch.randn(4, 5, D, generator=g)


def _loss(model, x1, x2) -> torch.Tensor:
    y1, y2 = model(x1, x2)
    return (y1 * y2).mean()


def _worker(rank: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    try:
        model = nn.parallel.DistributedDataParallel(_model())
        x1, x2 = (t.chunk(WORLD)[rank] for t in _batch())
        _loss(model, x1, x2).backward()
        if rank == 0:
            torch.save([p.grad for p in model.module.parameters()], out)
    finally:
        dist.destroy_process_group()


@pytest.mark.dist
@pytest.mark.slow
def test_ddp_gradients_match_single_process(tmp_path):
    out = tmp_path / "grads.pt"
    tmp.spawn(_worker, args=(f"file://{tmp_path / 'init'}", str(out)), nprocs=WORLD)
    model = _model()
    _loss(model, *_batch()).backward()
    for got, want in zip(torch.load(out), (p.grad for p in model.parameters()), strict=True):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-7)
