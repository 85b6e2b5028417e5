"""bwsk.analyze: catalogue facts per node, the native recoverability fixpoint for S, lifted
and executed witnesses for K, deciding conditions for gray; per node, block and model."""

from __future__ import annotations

import contextlib
import functools
import gc
from typing import Any

import numpy as np

from bwsk.analysis import residual
from bwsk.analysis.execute import Runner, StepRunner
from bwsk.analysis.inverse import Facts, InverseProgram, recover
from bwsk.analysis.result import Analysis, NodeVerdict
from bwsk.analysis.witness import Sample, find_witness, replay
from bwsk.catalogue import Judgement, judge_all, spectral
from bwsk.errors import BwskError, UnsupportedModelError
from bwsk.ir import Graph

SEED = 0


def load(model: Any, input_shapes: dict | None) -> Graph:
    if isinstance(model, Graph):
        return model
    try:
        from bwsk.load import load_model
    except ImportError:
        load_model = None
    if load_model is not None:
        return load_model(model, input_shapes=input_shapes) if input_shapes else load_model(model)
    from bwsk.frontends.onnx import load_onnx

    return load_onnx(model, input_shapes)


def node_verdicts(graph: Graph, judgements: list[Judgement]) -> list[NodeVerdict]:
    return [
        NodeVerdict(
            n.name,
            n.op,
            j.verdict,
            j.reason,
            j.erased_dims,
            list(j.conditions),
            j.bijective,
            j.well_conditioned,
        )
        for n, j in zip(graph.nodes, judgements, strict=False)
    ]


def replay_k(graph: Graph, judgements: list[Judgement], plan: tuple[int, int]) -> Analysis | None:
    """K for a graph structurally equal to one proved K by the lifted witness ``plan`` (same
    signature and per-node facts, hence not S either), when the plan's witness, lifted
    through this graph's weights, collides here; None otherwise (prove it in full)."""
    with np.errstate(all="ignore"):
        search = replay(graph, judgements, StepRunner(graph), Sample(graph, SEED), plan)
    if search.witness is None:
        return None
    analysis = Analysis(graph.name, graph, "K", search.reason, [], witness=search.witness)
    analysis.extra["witness_plan"] = plan
    return analysis


def _blocking(graph: Graph, judgements: list[Judgement], known: set[str]) -> list[str]:
    """Conditions of the non-S nodes where recovery stopped (an output known, an input not)."""
    out = []
    for node, j in zip(graph.nodes, judgements, strict=False):
        if j.verdict == "S" or not any(o in known for o in node.outputs):
            continue
        if all(x in known or graph.is_const(x) for x in node.inputs if x):
            continue
        out += [f"{node.name}: {c}" for c in j.conditions] or [f"{node.name}: {j.reason}"]
    return out


def prove(
    graph: Graph,
    judgements: list[Judgement],
    runner: Runner | None = None,
    budget: list[int] | None = None,
    per_node: bool = True,
) -> Analysis:
    """The verdict of ``graph`` as a function of its variable inputs (``per_node``: with a
    verdict per node, which block verdicts do not carry)."""
    judgements = judgements if isinstance(judgements, Facts) else Facts(judgements)
    nodes = node_verdicts(graph, judgements) if per_node else []
    rec = recover(graph, judgements, set(graph.outputs))
    if all(n in rec.known for n in graph.inputs):
        program = InverseProgram(
            graph, judgements, rec.steps, list(graph.outputs), list(graph.inputs)
        )
        flags = [judgements[k] for k, s in rec.steps if s >= 0]
        analysis = Analysis(
            graph.name,
            graph,
            "S",
            "every input is recovered from the outputs",
            nodes,
            inverse=program,
        )
        analysis.extra.update(
            bijective=all(j.bijective for j in flags) and bool(graph.inputs),
            well_conditioned=all(j.well_conditioned for j in flags),
            inverse_steps=program.describe(),
        )
        return analysis
    runner = runner or Runner(graph)
    with np.errstate(all="ignore"):
        search = find_witness(graph, judgements, runner, Sample(graph, SEED), budget)
    if search.witness is not None:
        analysis = Analysis(graph.name, graph, "K", search.reason, nodes, witness=search.witness)
        analysis.extra.update(witness_failures=search.failures, witness_plan=search.plan)
        return analysis
    conditions = _blocking(graph, judgements, rec.known)
    lost = [n for n in graph.inputs if n not in rec.known]
    reason = f"not proved: {len(lost)} input(s) not recovered ({', '.join(lost[:3])})"
    analysis = Analysis(graph.name, graph, "GRAY", reason, nodes, conditions=conditions)
    analysis.extra["witness_failures"] = search.failures
    return analysis


def _one_blas_thread():
    """Rank certificates are many mid-sized factorizations: OpenBLAS threads only spin
    against each other (5x slower under load), so BLAS runs single-threaded here."""
    return _blas_controller().limit(limits=1, user_api="blas")


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """One scan of the loaded BLAS libraries per process (a scan per call cost 1.6 ms)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def _no_cycle_collection():
    """The analysis frees its garbage by reference counting (a 96-layer model leaves six
    cyclic objects), yet its allocations trigger full collections that rescan the model, its
    graph and weights, a cost growing with depth per collection: the cycle collector pauses
    for the duration (and stays as the caller left it)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def analyze(model: Any, *, weights: bool = True, input_shapes: dict | None = None) -> Analysis:
    """Prove where ``model`` (anything bwsk.load accepts, or a Graph) is injective."""
    graph = load(model, input_shapes)
    with _one_blas_thread(), _no_cycle_collection(), spectral.session():
        return _analyze(graph, weights)


def _analyze(graph: Graph, weights: bool) -> Analysis:
    judgements = judge_all(graph, weights)
    residuals = residual.upgrade(graph, judgements, weights)
    judgements = Facts(judgements)  # final from here on: their codes are made once
    try:
        runner = Runner(graph)
    except UnsupportedModelError:
        runner = None
    analysis = prove(graph, judgements, runner)
    analysis.extra["weights"] = weights
    _attach_blocks(analysis, judgements, residuals)
    analysis.lower_later(_lower_term)
    return analysis


def _attach_blocks(analysis: Analysis, judgements: list[Judgement],
                   residuals: dict[int, list[int]]) -> None:
    try:
        from bwsk.analysis.blocks import block_verdicts
    except ImportError:
        return
    analysis.blocks = block_verdicts(analysis.graph, judgements, residuals)


def _lower_term(analysis: Analysis):
    """The model's normalized term; None, with the reason in extra["term"], when it fails."""
    try:
        from bwsk.lower import lower

        return lower(analysis.graph)
    except ImportError:
        analysis.extra["term"] = "lowering not available"
    except BwskError as exc:
        analysis.extra["term"] = f"lowering failed: {exc}"
    return None


def inverse(model: Any):
    """The inverse program of ``model`` (outputs -> inputs); BwskError unless the verdict is S."""
    analysis = model if isinstance(model, Analysis) else analyze(model)
    if analysis.verdict != "S":
        raise BwskError(f"no inverse: verdict {analysis.verdict}: {analysis.reason}")
    return analysis.inverse
