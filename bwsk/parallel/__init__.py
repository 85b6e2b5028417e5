"""Parallelism: where a sharded model needs no coordination and where it must sync.

``plan(model, world_size)`` returns the ``bwsk.plan/1`` report (per axis: a module plan,
the shard-local ops and the sync points with collectives and bytes); ``apply`` runs one
axis of it with PyTorch's engines (DDP, tensor/sequence parallel, pipelining).
"""

from __future__ import annotations

from bwsk.parallel.api import apply_plan as apply
from bwsk.parallel.api import build_graph, parallelize, plan

__all__ = ["apply", "build_graph", "parallelize", "plan"]
