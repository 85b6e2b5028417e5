"""Type conversions, shape queries, quantization and the ops left gray by design."""

from __future__ import annotations

import numpy as np
import onnx

from bwsk.catalogue.base import Ctx, Judgement, collision, entry, gray, injective, set_first


def _np_dtype(name: str):
    try:
        return np.dtype(name)
    except TypeError:
        return None


# Exact embeddings of one dtype's values into another's (every value representable).
_WIDER = {
    "bool": {
        "bool",
        "int8",
        "uint8",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "float16",
        "bfloat16",
        "float32",
        "float64",
    },
    "int8": {"int8", "int16", "int32", "int64", "float16", "float32", "float64"},
    "uint8": {
        "uint8",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "float16",
        "float32",
        "float64",
    },
    "int16": {"int16", "int32", "int64", "float32", "float64"},
    "uint16": {"uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"},
    "int32": {"int32", "int64", "float64"},
    "uint32": {"uint32", "int64", "uint64", "float64"},
    "float16": {"float16", "float32", "float64"},
    "bfloat16": {"bfloat16", "float32", "float64"},
    "float32": {"float32", "float64"},
    "float64": {"float64"},
    "int64": {"int64"},
    "uint64": {"uint64"},
}

_PAIRS = [
    (0.25, 0.5),
    (2.0**40, 2.0**40 + 0.5),
    (1e6, 2e6),
    (2.0**24, 2.0**24 + 1),
    (1.0, 2.0),
    (-1.0, 255.0),
    (1.0, 1.0 + 2.0**-10),
]


def _target_dtype(ctx: Ctx) -> str | None:
    if ctx.node.op == "cast_like":
        value = ctx.graph.values.get(ctx.node.inputs[1])
        return None if value is None else value.dtype
    to = ctx.attr("to")
    if to is None:
        return None
    if isinstance(to, str):
        return to
    return onnx.helper.tensor_dtype_to_np_dtype(int(to)).name if int(to) != 16 else "bfloat16"


@entry("cast cast_like", "1..2", "S iff the target type represents every source value")
def _cast(ctx: Ctx) -> Judgement:
    src = ctx.graph.values[ctx.node.inputs[0]].dtype
    dst = _target_dtype(ctx)
    if dst is None:
        return gray(ctx, "cast to an unknown type", "target type known")
    if dst in _WIDER.get(src, ()):
        return injective(
            ctx,
            f"{src} embeds exactly in {dst}",
            lambda s, ins, outs: np.asarray(outs[0]).astype(src),
            bijective=src == dst,
        )
    s_np, d_np = _np_dtype(src), _np_dtype(dst)
    for va, vb in _PAIRS if s_np is not None and d_np is not None else []:
        a, b = np.array([va, vb]).astype(s_np)
        with np.errstate(all="ignore"):
            if a != b and a.astype(d_np) == b.astype(d_np) and abs(float(a) - float(b)) >= 1e-3:
                return collision(
                    ctx,
                    f"cast {src} -> {dst} merges {a} and {b}",
                    lambda ins, rng, a=a, b=b: set_first(ins, 0, a, b),
                )
    return gray(ctx, f"cast {src} -> {dst}", "target type represents every source value")


@entry("dropout", "1..3", "in inference dropout is the identity")
def _dropout(ctx: Ctx) -> Judgement:
    mode = ctx.const(2) if ctx.present(2) else np.array(False)
    if mode is None or bool(np.ravel(mode)[0]):
        return gray(ctx, "dropout in training mode is random", "dropout in inference mode")
    return injective(
        ctx,
        "dropout in inference is the identity",
        lambda s, ins, outs: outs[0],
        bijective=True,
        needs=[0],
    )


@entry("bit_cast", "1", "reinterprets the bits of a same-width type: a bijection")
def _bitcast(ctx: Ctx) -> Judgement:
    src = ctx.graph.values[ctx.node.inputs[0]].dtype
    return injective(
        ctx,
        "bit reinterpretation is a bijection",
        lambda s, ins, outs: np.asarray(outs[0]).view(src),
        bijective=True,
    )


@entry("shape size", "1", "depends only on the static shape: every two inputs collide")
def _shape(ctx: Ctx) -> Judgement:
    return collision(
        ctx,
        f"{ctx.node.op} ignores the values",
        lambda ins, rng: set_first(ins, 0, 1.0, 2.0),
        ctx.numel(0),
    )


@entry("constant", "0", "no input: vacuously injective")
def _constant(ctx: Ctx) -> Judgement:
    return injective(ctx, "a constant has no argument", None, bijective=False)


@entry("quantize_linear dynamic_quantize_linear", "1..3", "rounding to a grid merges neighbours")
def _quantize(ctx: Ctx) -> Judgement:
    scale = ctx.const(1) if ctx.present(1) else None
    step = float(np.min(np.abs(scale))) if scale is not None and np.size(scale) else 1.0
    return collision(
        ctx,
        "quantization rounds to the nearest grid point",
        lambda ins, rng: set_first(ins, 0, 0.0, min(step / 4, 0.25) if step / 4 >= 1e-3 else 1e9),
    )


@entry("dequantize_linear", "2..3", "(q - zero_point) * scale: S iff scale has no zeros")
def _dequantize(ctx: Ctx) -> Judgement:
    scale = ctx.const(1)
    if ctx.var_slots != [0] or scale is None:
        return gray(ctx, "dequantize with variable scale", "constant scale without zeros")
    if np.any(scale == 0):
        return gray(ctx, "dequantize scale has zeros", "scale without zeros")
    zp = ctx.const(2) if ctx.present(2) else None
    src = ctx.graph.values[ctx.node.inputs[0]].dtype
    axis = int(ctx.attr("axis", 1))

    def inv(s, ins, outs):
        y = np.asarray(outs[0], np.float64)
        shp = [1] * y.ndim
        if np.ndim(scale) == 1:
            shp[axis] = -1
        q = y / np.reshape(scale, shp) + (0 if zp is None else np.reshape(zp, shp))
        return np.round(q).astype(src)

    return injective(ctx, "dequantization is affine with nonzero scale", inv)


_STOCHASTIC = "bernoulli multinomial random_normal random_normal_like random_uniform "
_STOCHASTIC += "random_uniform_like"
_SEQUENCES = "concat_from_sequence sequence_at sequence_construct sequence_empty sequence_erase "
_SEQUENCES += "sequence_insert sequence_length split_to_sequence optional optional_get_element "
_SEQUENCES += "optional_has_element"
_STRINGS = "string_concat string_normalizer string_split regex_full_match tf_idf_vectorizer "
_STRINGS += "image_decoder"
_GENERATORS = "constant_of_shape eye_like range one_hot blackman_window hamming_window "
_GENERATORS += "hann_window mel_weight_matrix"
_MIXERS = "affine_grid grid_sample roi_align dft stft einsum attention rotary_embedding lrn "
_MIXERS += "swi_glu q_linear_conv q_linear_mat_mul mat_mul_integer "
_MIXERS += "negative_log_likelihood_loss softmax_cross_entropy_loss"
_RECURRENT = "rnn gru lstm causal_conv_with_state linear_attention"
_DYNAMIC = "non_zero unique non_max_suppression"
_WHY_GRAY = {
    "stochastic: the output is random, not a function of the input": _STOCHASTIC,
    "control flow over subgraphs: needs the subgraph's own analysis": "if loop scan sequence_map",
    "sequence/optional values are outside the tensor semantics": _SEQUENCES,
    "string ops: values are not real tensors": _STRINGS,
    "generators from sizes/shapes: the input is a shape, not data": _GENERATORS,
    "recurrent cells: injectivity depends on the unrolled dynamics": _RECURRENT,
    "data-dependent output shapes: collisions change the output shape": _DYNAMIC,
    "geometry/spectral ops with several interacting arguments": _MIXERS,
}
GRAY_BY_DESIGN: dict[str, str] = {
    atom: why for why, atoms in _WHY_GRAY.items() for atom in atoms.split()
}
