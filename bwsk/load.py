"""One entry point from whatever the user names to the graph IR.

An .onnx file, a ModelProto, a zoo name (``gpt2``), a transformers checkpoint directory or
an ``nn.Module``. ONNX inputs never import torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bwsk.errors import UnsupportedModelError
from bwsk.ir import Graph

_ZOO_OPTIONS = ("layers", "d_model", "heads", "vocab", "seq_len")


def load_model(spec: Any, *, input_shapes: dict[str, tuple[int, ...]] | None = None,
               example_inputs: Any = None, **zoo_options: Any) -> Graph:
    """The graph of ``spec``; ``input_shapes`` binds ONNX dims, ``example_inputs`` feeds
    torch.export, ``layers``/``d_model``/``heads``/``vocab``/``seq_len`` size a zoo model."""
    unknown = sorted(set(zoo_options) - set(_ZOO_OPTIONS))
    if unknown:
        raise UnsupportedModelError(f"unknown option {unknown[0]!r}; options: "
                                    f"input_shapes, example_inputs, {', '.join(_ZOO_OPTIONS)}")
    if _is_onnx(spec):
        return _onnx(spec, input_shapes)
    if isinstance(spec, (str, os.PathLike)):
        return _named(spec, input_shapes, example_inputs, zoo_options)
    if _is_module(spec):
        from bwsk.frontends.torch import graph_of

        return graph_of(spec, example_inputs)
    raise UnsupportedModelError(
        f"cannot load a {type(spec).__name__}: give an .onnx path, a ModelProto, a zoo name, "
        "a checkpoint directory or a torch.nn.Module")


def _is_onnx(spec: Any) -> bool:
    if isinstance(spec, (bytes, bytearray)):
        return True
    if type(spec).__name__ == "ModelProto":
        return True
    return isinstance(spec, (str, os.PathLike)) and str(spec).lower().endswith(".onnx")


def _onnx(spec: Any, input_shapes) -> Graph:
    from bwsk.frontends.onnx import load_onnx

    return load_onnx(bytes(spec) if isinstance(spec, bytearray) else spec, input_shapes)


def _is_module(spec: Any) -> bool:
    try:
        import torch
    except ImportError:
        return False
    return isinstance(spec, torch.nn.Module)


def _named(spec, input_shapes, example_inputs, zoo_options) -> Graph:
    from bwsk import zoo

    path = Path(spec)
    if path.is_dir() and (path / "model.onnx").is_file() and not (path / "config.json").exists():
        return _onnx(path / "model.onnx", input_shapes)
    if path.is_file():
        return _onnx(path, input_shapes)  # not named .onnx: let the ONNX reader judge it
    if str(spec) not in zoo.SEEDS and not path.is_dir():
        zoo.seed(str(spec))  # raises the error listing the valid names
    from bwsk.frontends.torch import graph_of

    model, inputs = zoo.build_model(spec, **zoo_options)
    if example_inputs is None and input_shapes:
        example_inputs = _reshaped(inputs, input_shapes)
    return graph_of(model, example_inputs if example_inputs is not None else inputs)


def _reshaped(inputs: dict, shapes: dict[str, tuple[int, ...]]) -> dict:
    """The example token ids tiled to the shapes the user asked for (``input_ids=2,16``)."""
    import torch

    out = dict(inputs)
    for name, shape in shapes.items():
        if name not in inputs:
            raise UnsupportedModelError(
                f"input_shapes names {name!r}, not an input of the model (inputs: "
                f"{', '.join(inputs)})")
        if len(shape) != inputs[name].dim() or any(int(d) < 1 for d in shape):
            raise UnsupportedModelError(
                f"input_shapes[{name!r}] must be {inputs[name].dim()} positive sizes")
        flat = inputs[name].reshape(-1)
        count = int(torch.tensor(shape).prod())
        out[name] = flat.repeat(-(-count // flat.numel()))[:count].reshape(tuple(shape))
    return out
