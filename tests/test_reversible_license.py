"""coupling_graph + license_coupling on hand-built block graphs (no torch export needed)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("bwsk.reversible")

from bwsk.errors import TrainingError
from bwsk.ir import Graph, Node, Value
from bwsk.reversible.license import coupling_graph, license_coupling

REGIONS = (("F", ("ln_1", "attn")), ("G", ("ln_2", "mlp")))
SHAPE = (2, 3, 4)


def _block(nodes: list[Node], out: str) -> Graph:
    names = {x for n in nodes for x in (*n.inputs, *n.outputs) if x}
    values = {x: Value(x, SHAPE) for x in names}
    for x in ("w", "b"):
        values[x] = Value(x, (4,), const=np.ones(4, np.float32))
    return Graph("Block", ["x"], [out], values, nodes)


def _ln(name, x, y, scope):
    return Node(name, "layernorm", [x, "w", "b"], [y], {"axis": -1, "epsilon": 1e-5}, scope=scope)


def _pre_ln(extra: list[Node] | None = None, out: str = "y") -> Graph:
    return _block([
        _ln("ln1", "x", "a", "ln_1"), Node("att", "tanh", ["a"], ["f"], scope="attn"),
        Node("add1", "add", ["f", "x"], ["h"]),
        _ln("ln2", "h", "c", "ln_2"), Node("mlp", "relu", ["c"], ["g"], scope="mlp.act"),
        Node("add2", "add", ["h", "g"], ["y"]), *(extra or [])], out)


def test_pre_ln_block_becomes_a_licensed_coupling():
    graph = coupling_graph(_pre_ln(), REGIONS)
    assert [(n.name, n.inputs) for n in graph.nodes] == [
        ("F", ["x2"]), ("add1", ["F.out", "x1"]), ("G", ["h.s1"]), ("add2", ["x2", "G.out"])]
    assert graph.outputs == ["h.s1", "y.s2"]
    lic = license_coupling(graph)
    assert lic.inverse_steps[0] == "run G (opaque) forward" and "solve add1" in str(lic)


def test_post_norm_on_the_stream_is_refused_by_the_proof():
    graph = coupling_graph(_pre_ln([_ln("post", "y", "z", "ln_post")], out="z"), REGIONS)
    with pytest.raises(TrainingError, match=r"blocked by layernorm \(ln_post\)"):
        license_coupling(graph)


def test_gated_merge_is_refused_by_the_proof():
    nodes = _pre_ln().nodes
    nodes[-1] = Node("gate", "mul", ["h", "g"], ["y"])  # y = h * G(h): zero gate erases h
    with pytest.raises(TrainingError, match=r"blocked by mul"):
        license_coupling(coupling_graph(_block(nodes, "y"), REGIONS))


@pytest.mark.parametrize(("nodes", "message"), [
    ([Node("pre", "neg", ["x"], ["x0"]), _ln("ln1", "x0", "a", "ln_1"),
      Node("att", "tanh", ["a"], ["f"], scope="attn"), Node("add1", "add", ["f", "x0"], ["h"]),
      _ln("ln2", "h", "c", "ln_2"), Node("mlp", "relu", ["c"], ["g"], scope="mlp"),
      Node("add2", "add", ["h", "g"], ["y"])], "acts before any sublayer"),
    ([_ln("ln1", "x", "a", "ln_1"), Node("att", "tanh", ["a"], ["f"], scope="attn"),
      Node("add1", "add", ["f", "x"], ["h"]), _ln("ln2", "h", "c", "ln_2"),
      Node("mlp", "relu", ["c"], ["g"], scope="mlp"), Node("add2", "add", ["x", "g"], ["y"])],
     "uses x besides the stream"),
    ([_ln("ln1", "x", "a", "ln_1"), Node("att", "tanh", ["a"], ["f"], scope="attn"),
      Node("add1", "add", ["f", "x"], ["h"]), _ln("ln2", "h", "c", "ln_2"),
      Node("mlp", "add", ["c", "x"], ["g"], scope="mlp"), Node("add2", "add", ["h", "g"], ["y"])],
     "must read one stream value"),
])
def test_blocks_that_are_not_a_chain_of_stages(nodes, message):
    with pytest.raises(TrainingError, match=message):
        coupling_graph(_block(nodes, "y"), REGIONS)
