"""Collision witnesses for whole graphs: a node's local collision lifted to the graph inputs
through the invertible prefix, then checked by running the real model."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from bwsk.analysis.dominators import PostDominators
from bwsk.analysis.execute import Runner, StepRunner, evaluate, random_inputs
from bwsk.analysis.inverse import InverseProgram, recover
from bwsk.analysis.result import Witness
from bwsk.catalogue import NO, Judgement
from bwsk.errors import BwskError
from bwsk.ir import Graph

RTOL, ATOL, MIN_DIFF = 1e-4, 1e-5, 1e-3
MAX_TRIES = 6  # lifted candidates executed per graph (each costs two model runs)
MAX_PREFIXES = 12  # prefix inversions tried per graph (each walks the prefix: linear cost)


@dataclass
class Search:
    witness: Witness | None
    reason: str
    failures: list[str]
    plan: tuple[int, int] | None = None  # (node, collision option) of a lifted witness


class Sample:
    """A search's base inputs and generator, drawn on first use (most block searches end on
    structure alone); the draws come in the same order whenever they happen."""

    def __init__(self, graph: Graph, seed: int):
        self.graph, self.seed = graph, seed
        self._drawn: tuple[dict, np.random.Generator] | None = None

    def __call__(self) -> tuple[dict, np.random.Generator]:
        if self._drawn is None:  # default_rng(seed) without hashing the seed every time
            rng = np.random.Generator(np.random.PCG64(_seed_sequence(self.seed)))
            self._drawn = (random_inputs(self.graph, rng), rng)
        return self._drawn


@functools.lru_cache(maxsize=8)
def _seed_sequence(seed: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed)  # generate_state leaves it as it was: shareable


_CANNOT_RUN = (
    BwskError,
    ValueError,
    IndexError,
    TypeError,
    KeyError,
    ArithmeticError,
    np.linalg.LinAlgError,
)


def close(p, q, rtol: float, atol: float, equal_nan: bool = True) -> bool:
    """np.allclose(p, q, rtol, atol, equal_nan), answered without it (a tenth of its
    cost on small arrays) when every difference is finite and within tolerance: there the
    two tests are the same formula; anything else takes np.allclose's own path."""
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: left to np.allclose
        gap = np.abs(p - q)
        if (gap <= atol + rtol * np.abs(q)).all() and np.isfinite(gap).all():
            return True
    return bool(np.allclose(p, q, rtol=rtol, atol=atol, equal_nan=equal_nan))


def verify(runner: Runner, graph: Graph, a: dict, b: dict, envs=None) -> str | None:
    """None when ``a`` and ``b`` differ by >= MIN_DIFF and map alike; else why not. ``envs``:
    values a StepRunner already computed from a and b (its run resumes from them)."""
    for n in graph.inputs:
        if np.shape(a[n]) != np.shape(b[n]):
            return f"input {n} changes shape"
        if any(np.asarray(x).dtype.kind in "fc" and not np.isfinite(x).all() for x in (a[n], b[n])):
            return f"input {n} is not finite"
    diff = max(
        (
            float(
                np.max(
                    np.abs(np.asarray(a[n], np.float64) - np.asarray(b[n], np.float64)), initial=0.0
                )
            )
            for n in graph.inputs
        ),
        default=0.0,
    )
    if not diff >= MIN_DIFF:
        return f"inputs differ by only {diff:.3g}"
    if envs is not None and isinstance(runner, StepRunner):
        a, b = envs
    ya, yb = runner(a), runner(b)
    for name, p, q in zip(graph.outputs, ya, yb, strict=False):
        p, q = np.asarray(p), np.asarray(q)
        if p.shape != q.shape or not close(
            p.astype(np.float64), q.astype(np.float64), RTOL, ATOL
        ):
            return f"output {name} differs"
    return None


def _checked(runner: Runner, graph: Graph, a: dict, b: dict) -> str | None:
    try:
        return verify(runner, graph, a, b)
    except BwskError as exc:  # the model cannot be executed here: the witness stays unverified
        return str(exc)


def ancestors(graph: Graph, names: set[str], last: int | None = None) -> tuple[set[str], list[int]]:
    """Values and node indices upstream of ``names`` (inclusive of the values). ``last``: no
    producer of ``names`` comes after this node, so the walk starts there (a candidate early
    in a deep model then costs its prefix, not the whole model)."""
    seen, nodes = set(names), []
    seen.discard("")
    for k in range(len(graph.nodes) - 1 if last is None else last, -1, -1):
        node = graph.nodes[k]
        if not seen.isdisjoint(node.outputs):
            nodes.append(k)
            seen.update(node.inputs)
            seen.discard("")  # an omitted input names no value (nor an omitted output)
    return seen, nodes[::-1]


def _prefix(
    graph: Graph, judgements: list[Judgement], k: int, pdom: PostDominators | None
) -> InverseProgram | None:
    """The inverse of what feeds node k (None when its inputs are graph inputs); raises
    when the prefix does not determine the graph inputs it depends on. Without ``pdom`` the
    inputs' independence is taken as checked (on a structurally equal graph)."""
    node = graph.nodes[k]
    var = [node.inputs[i] for i in graph.variable_inputs(node)]
    if set(var) <= set(graph.inputs):
        return None
    if pdom is not None:
        _independent(pdom, node.name, var)
    up, prefix = ancestors(graph, set(var), k - 1)
    sources = [n for n in graph.inputs if n in up]
    first = next((n for n in sources if n not in var), None)  # the first one not given
    if first is not None and _stuck(graph, judgements, first, prefix):
        raise BwskError(f"prefix of {node.name} does not determine {first}")
    rec = recover(graph, judgements, set(var), prefix)
    lost = [n for n in sources if n not in rec.known]
    if lost:
        raise BwskError(f"prefix of {node.name} does not determine {lost[0]}")
    return InverseProgram(graph, judgements, rec.steps, var, sources)


def _stuck(graph: Graph, judgements: list[Judgement], x: str, prefix: list[int]) -> bool:
    """True when no node of ``prefix`` that reads graph input x can solve for it: x is then
    never recovered (it is no node's output), and the fixpoint need not run to say so."""
    for k in prefix:
        node = graph.nodes[k]
        if x in node.inputs:
            rec = judgements[k].recover
            if any(y == x and i < len(rec) and rec[i] != NO for i, y in enumerate(node.inputs)):
                return False
    return True


def _independent(pdom: PostDominators, node: str, var: list[str]) -> None:
    """Raise unless the node's variable inputs depend on disjoint graph inputs: a left inverse
    recovers the inputs from one of two dependent values and ignores the other, so a local
    collision such as (x, r(x)) vs (2x, r(x)/2) need not be reachable from any input."""
    owned = 0
    for v in dict.fromkeys(var):
        mask = pdom.sources.get(v, 0)
        if owned & mask:
            shared = next(n for i, n in enumerate(pdom.graph.inputs) if (owned & mask) >> i & 1)
            raise BwskError(f"inputs of {node} both depend on {shared}: not independently settable")
        owned |= mask


def _reaches(graph: Graph, k: int, local: list, lifted: dict) -> dict:
    """Raise unless the lifted inputs really produce the local collision values at node k;
    the values computed on the way (for a StepRunner to resume from)."""
    node = graph.nodes[k]
    var = {node.inputs[i] for i in graph.variable_inputs(node)}
    got = evaluate(graph, lifted, var)
    for i, x in enumerate(node.inputs):
        if x in var and not close(
            np.asarray(got[x], np.float64), np.asarray(local[i], np.float64), 1e-5, 1e-6, False
        ):
            raise BwskError(f"lifted inputs do not reproduce the collision at {node.name}")
    return got


def _lift(
    graph: Graph,
    k: int,
    collide,
    program: InverseProgram | None,
    base: dict,
    env: dict,
    rng,
) -> tuple[dict, dict, list[dict]]:
    """Graph inputs a, b whose values at node k's inputs are the local collision ``collide``,
    and the values computed from each on the way to node k."""
    node = graph.nodes[k]
    var = [node.inputs[i] for i in graph.variable_inputs(node)]
    sources = [n for n in graph.inputs if n in var]
    env.update(evaluate(graph, env, set(var)))
    ins = [env.get(x) if x else None for x in node.inputs]
    local_a, local_b = collide(ins, rng)
    pair, envs = [], []
    for local in (local_a, local_b):
        feeds = {x: local[i] for i, x in enumerate(node.inputs) if x in var}
        lifted = program(feeds) if program else {n: feeds[n] for n in sources}
        pair.append({**base, **{n: np.asarray(v).astype(base[n].dtype) for n, v in lifted.items()}})
        envs.append(_reaches(graph, k, local, pair[-1]))
    return pair[0], pair[1], envs


def _options(graph: Graph, j: Judgement, k: int) -> list[tuple[list[int], str, object]]:
    """Node k's local collisions as (changed slots, why, collide): all variable inputs, or
    (pinned) one while the others agree."""
    slots = graph.variable_inputs(graph.nodes[k])
    return [(slots, j.reason, j.collide)] + [([s], why, c) for s, why, c in j.pinned if s in slots]


def candidates(graph: Graph, judgements: list[Judgement], pdom: PostDominators):
    """(node index, option, why, collide) for local collisions whose changed inputs reach the
    outputs only through their node."""
    for k, j in enumerate(judgements):
        if j.verdict != "K" or j.collide is None:
            continue
        node = graph.nodes[k]
        for option, (changed, why, collide) in enumerate(_options(graph, j, k)):
            if pdom.only_through(k, {node.inputs[i] for i in changed}):
                yield k, option, why, collide
                break


def _unused(graph: Graph, sample: Sample) -> tuple[dict, dict, str] | None:
    up, _ = ancestors(graph, set(graph.outputs))
    for name in graph.inputs:
        if name not in up:
            base = sample()[0]
            b = dict(base)
            b[name] = (np.asarray(base[name]) + 1).astype(base[name].dtype)
            return base, b, f"input {name} does not reach any output"
    return None


def find_witness(
    graph: Graph,
    judgements: list[Judgement],
    runner: Runner,
    sample: Sample,
    budget: list[int] | None = None,
) -> Search:
    """Unused inputs first, then lifted node collisions; ``budget`` (a shared one-element
    counter) caps the lifted attempts that get executed."""
    budget = budget if budget is not None else [MAX_TRIES]
    failures: list[str] = []
    unused = _unused(graph, sample)
    if unused is not None:
        a, b, why = unused
        problem = _checked(runner, graph, a, b)
        if problem is None:
            return Search(Witness(a, b), why, failures)
        failures.append(f"unused-input witness failed: {problem}")
    if budget[0] <= 0 or not any(j.verdict == "K" and j.collide is not None for j in judgements):
        return Search(None, "", failures)
    env: dict = {}  # values on the base inputs, shared by the attempts
    pdom = PostDominators(graph)
    for tries, (k, option, why, collide) in enumerate(candidates(graph, judgements, pdom)):
        if budget[0] <= 0 or tries >= MAX_PREFIXES:
            break
        witness, reason = _attempt(graph, judgements, runner, (k, why, collide), sample, env,
                                   pdom, budget)
        if witness is not None:
            return Search(witness, reason, failures, (k, option))
        failures.append(reason)
    return Search(None, "", failures)


def replay(
    graph: Graph,
    judgements: list[Judgement],
    runner: Runner,
    sample: Sample,
    plan: tuple[int, int],
) -> Search:
    """A structurally equal graph's witness plan (same signature and per-node facts) lifted
    and executed here: no search and no post-dominators, whose structural checks hold alike;
    the witness is still lifted through this graph's own weights and run on it."""
    k, option = plan
    j = judgements[k]
    options = _options(graph, j, k) if j.verdict == "K" and j.collide is not None else []
    if option >= len(options):
        return Search(None, "", [f"no collision option {option} at node {k}"])
    _, why, collide = options[option]
    witness, reason = _attempt(graph, judgements, runner, (k, why, collide), sample, {}, None,
                               None)
    if witness is None:
        return Search(None, "", [reason])
    return Search(witness, reason, [], plan)


def _attempt(graph, judgements, runner, candidate, sample, env, pdom, budget):
    """One lifted candidate (node, why, collide), executed: (witness, reason) or (None, why
    it failed); a ``budget`` is charged once the structural checks pass."""
    k, why, collide = candidate
    node = graph.nodes[k]
    try:
        program = _prefix(graph, judgements, k, pdom)
        if budget is not None:
            budget[0] -= 1
        base, rng = sample()
        if not env:
            env.update(base)
        a, b, envs = _lift(graph, k, collide, program, base, env, rng)
        problem = verify(runner, graph, a, b, envs)
    except _CANNOT_RUN as exc:  # an inverse step that cannot run: no witness
        problem = f"{type(exc).__name__}: {exc}"
    if problem is None:
        return Witness(a, b), f"collision at {node.name} ({node.op}): {why}"
    return None, f"witness at {node.name} ({node.op}) failed verification: {problem}"
