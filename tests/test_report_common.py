"""Hand-built analyses for the report tests (independent of the proof engine), and the
atomic-write helper every report file goes through."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bwsk.analysis import Analysis, BlockVerdict, NodeVerdict, Witness
from bwsk.errors import BwskError
from bwsk.ir import Graph, Node, Value
from bwsk.report.files import atomic_write_text


def layered_graph(layers: int = 2, width: int = 4) -> Graph:
    """x -> [matmul(W_i) -> relu -> add(residual)] * layers -> softmax, with scopes h.i."""
    values = {"x": Value("x", (2, width)), "bias": Value("bias", (width,), const=np.ones(width))}
    nodes, prev = [], "x"
    for i in range(layers):
        w = f"h.{i}.w"
        values[w] = Value(w, (width, width), const=np.eye(width, dtype=np.float32))
        values[f"wt{i}"] = Value(f"wt{i}", (width, width))
        nodes.append(Node(f"h.{i}/transpose", "transpose", [w], [f"wt{i}"], scope=f"h.{i}"))
        for name, op, ins in ((f"h.{i}/mm", "matmul", [prev, f"wt{i}"]),
                              (f"h.{i}/relu", "relu", [f"h.{i}/mm:0"]),
                              (f"h.{i}/add", "add", [prev, f"h.{i}/relu:0"])):
            out = f"{name}:0"
            values[out] = Value(out, (2, width))
            nodes.append(Node(name, op, ins, [out], scope=f"h.{i}"))
        prev = f"h.{i}/add:0"
    values["y"] = Value("y", (2, width))
    nodes.append(Node("head/softmax", "softmax", [prev], ["y"], {"axis": -1}, scope="head"))
    return Graph("toy", ["x"], ["y"], values, nodes)


def _node_verdict(node: Node) -> NodeVerdict:
    if node.op == "relu":
        return NodeVerdict(node.name, node.op, "K", "relu: two negatives collide")
    if node.op == "softmax":
        return NodeVerdict(node.name, node.op, "K", "softmax: x and x+c collide", erased_dims=1,
                           conditions=[])
    if node.op == "add":
        return NodeVerdict(node.name, node.op, "K", "add of two variables", erased_dims=4)
    if node.op == "matmul":
        return NodeVerdict(node.name, node.op, "GRAY", "rank not checked",
                           conditions=["W has full column rank"])
    return NodeVerdict(node.name, node.op, "S", "permutation", bijective=True)


def toy_analysis(layers: int = 2, verdict: str = "K", with_blocks: bool = True) -> Analysis:
    graph = layered_graph(layers)
    blocks = []
    if with_blocks:
        for i in range(layers):
            names = [n.name for n in graph.nodes if n.scope == f"h.{i}"]
            blocks.append(BlockVerdict(f"h.{i}", "layer", names, "S", "residual coupling",
                                       repeat_of=None if i == 0 else "h.0"))
    a = np.full((2, 4), 1.0, dtype=np.float32)
    b = a + np.float32(5.0)  # softmax is shift-invariant
    witness = Witness({"x": a}, {"x": b}) if verdict == "K" else None
    conditions = ["W has full column rank"] if verdict == "GRAY" else []
    return Analysis("toy", graph, verdict, "softmax collides x and x+c",
                    [_node_verdict(n) for n in graph.nodes], blocks, conditions, witness,
                    inverse=(lambda y: y) if verdict == "S" else None, term="\\x. softmax x")


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "r.json"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert os.listdir(target.parent) == ["r.json"]  # no temporary left behind


def test_atomic_write_to_directory_is_user_error(tmp_path):
    with pytest.raises(BwskError, match="is a directory"):
        atomic_write_text(tmp_path, "x")


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    target.write_text("old")

    def boom(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["r.json"]


def test_written_files_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
