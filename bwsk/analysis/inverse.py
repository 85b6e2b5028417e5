"""Recoverability: the native fixpoint over catalogue facts, and the inverse program it yields
(forward steps recompute values from known ones, inverse steps solve a node for an input)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bwsk import _core
from bwsk.catalogue import NO, Judgement, run_node
from bwsk.errors import BwskError
from bwsk.ir import Graph


@dataclass
class Recovery:
    known: set[str]
    steps: list[tuple[int, int]]  # (node index, input slot or -1 for a forward run)


def recover(
    graph: Graph, judgements: list[Judgement], known: set[str], nodes: list[int] | None = None
) -> Recovery:
    """Every value recoverable from ``known`` (plus constants) using the given nodes."""
    chosen = range(len(graph.nodes)) if nodes is None else nodes
    ids: dict[str, int] = {}  # value ids in order of first use (setdefault: no call per use)
    in_off, in_ids, in_rec, out_off, out_ids, out_need, slots = [0], [], [], [0], [], [], []
    for k in chosen:
        node, j = graph.nodes[k], judgements[k]
        rec, needs = j.recover, (0,) if j.needs is None else j.needs
        present = [i for i, x in enumerate(node.inputs) if x]
        slots.append(present)
        for i in present:
            in_ids.append(ids.setdefault(node.inputs[i], len(ids)))
            in_rec.append(rec[i] if i < len(rec) else NO)
        for i, o in enumerate(node.outputs):
            if o:
                out_ids.append(ids.setdefault(o, len(ids)))
                out_need.append(int(i in needs))
        in_off.append(len(in_ids))
        out_off.append(len(out_ids))
    start = [ids.setdefault(n, len(ids)) for n in known]
    given = set(start)
    values = graph.values  # only the constants these nodes read: blocks share the model's
    start += [
        v for name, v in ids.items()
        if v not in given and name in values and values[name].const is not None
    ]
    flags, steps = _core.prove_recoverable(
        len(ids), in_off, in_ids, in_rec, out_off, out_ids, out_need, start
    )
    names = list(ids)
    order = list(chosen)
    return Recovery(
        {names[i] for i, f in enumerate(flags) if f} | set(known),
        [(order[k], -1 if s < 0 else slots[k][s]) for k, s in steps],
    )


class InverseProgram:
    """Outputs in, inputs out: ``program(*outputs)`` or ``program({name: array})``."""

    def __init__(
        self,
        graph: Graph,
        judgements: list[Judgement],
        steps: list[tuple[int, int]],
        known: list[str],
        wanted: list[str],
    ):
        self.graph, self.judgements, self.steps = graph, judgements, steps
        self.known, self.wanted = known, wanted

    def __call__(self, *args, **kwargs) -> dict[str, np.ndarray]:
        feeds = (
            dict(args[0])
            if len(args) == 1 and isinstance(args[0], dict)
            else dict(zip(self.known, args, strict=False))
        )
        feeds.update(kwargs)
        missing = [n for n in self.known if n not in feeds]
        if missing:
            raise BwskError(f"inverse program needs output {missing[0]!r}")
        env = {k: np.asarray(v) for k, v in feeds.items()}
        with np.errstate(all="ignore"):
            self._run(env)
        return {n: env[n] for n in self.wanted}

    def _run(self, env: dict) -> None:
        for k, slot in self.steps:
            node = self.graph.nodes[k]
            ins = [self._value(env, x) if x else None for x in node.inputs]
            if slot < 0:
                outs = run_node(self.graph, node, ins)
                env.update({o: v for o, v in zip(node.outputs, outs, strict=False) if o})
            else:
                outs = [env.get(o) if o else None for o in node.outputs]
                env[node.inputs[slot]] = np.asarray(self.judgements[k].invert(slot, ins, outs))

    def _value(self, env: dict, name: str):
        """A known value or a constant (looked up lazily: a block shares the model's values)."""
        if name in env:
            return env[name]
        return self.graph.values[name].const if self.graph.is_const(name) else None

    def describe(self) -> list[str]:
        """One line per step, for reports."""
        lines = []
        for k, slot in self.steps:
            node = self.graph.nodes[k]
            if slot < 0:
                lines.append(f"run {node.name} ({node.op}) forward")
            else:
                lines.append(f"solve {node.name} ({node.op}) for {node.inputs[slot]}")
        return lines
