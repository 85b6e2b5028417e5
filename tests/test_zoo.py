"""The zoo of seed architectures and load_model's dispatch on whatever the user names."""

from __future__ import annotations

from pathlib import Path

import pytest

from bwsk import zoo
from bwsk.errors import UnsupportedModelError
from bwsk.load import load_model

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(UnsupportedModelError, match="valid names: gpt2, bert-base, t5-small, "
                                                   "opt-350m, switch-base-8"):
        load_model("gpt-17")


def test_onnx_inputs_need_no_torch():
    assert load_model(EXAMPLES / "coupling.onnx").inputs == ["x1", "x2"]
    proto = (EXAMPLES / "coupling.onnx").read_bytes()
    assert load_model(proto).outputs == ["y1", "y2"]
    with pytest.raises(UnsupportedModelError, match="unknown option 'layer'"):
        load_model("gpt2", layer=2)


def test_seed_configs():
    pytest.importorskip("transformers")
    opt = zoo.config("opt-350m")  # facebook/opt-350m's config.json
    assert (opt.hidden_size, opt.ffn_dim, opt.num_hidden_layers, opt.num_attention_heads,
            opt.word_embed_proj_dim, opt.vocab_size, opt.max_position_embeddings,
            opt.do_layer_norm_before, opt.use_cache) == (1024, 4096, 24, 16, 512, 50272, 2048,
                                                         False, False)
    assert not zoo.config("opt-350m", layers=2, d_model=64).do_layer_norm_before
    t5 = zoo.config("t5-small", layers=2, d_model=64, heads=4)
    assert (t5.num_layers, t5.num_decoder_layers, t5.d_kv, t5.d_ff) == (2, 2, 16, 256)
    switch = zoo.config("switch-base-8", layers=4)
    assert switch.num_sparse_encoder_layers == 1 and switch.num_experts == 8
    with pytest.raises(UnsupportedModelError, match="not divisible"):
        zoo.config("t5-small", d_model=64, heads=5)


def test_small_models_and_inputs():
    pytest.importorskip("transformers")
    model, inputs = zoo.build_model("gpt2", layers=2, d_model=32, heads=2, vocab=50)
    assert not model.training and model.config.n_layer == 2
    assert tuple(inputs["input_ids"].shape) == (1, 8)
    again, _ = zoo.build_model("gpt2", layers=2, d_model=32, heads=2, vocab=50)
    assert (model.lm_head.weight == again.lm_head.weight).all()  # deterministic weights
    _, t5_inputs = zoo.build_model("t5-small", layers=1, d_model=32, heads=2, vocab=50)
    opt, _ = zoo.build_model("opt-350m", layers=1, d_model=64, heads=2, vocab=50)
    decoder = opt.model.decoder  # post-LN: no final LayerNorm; embeddings projected in and out
    assert decoder.final_layer_norm is None and decoder.project_in.in_features == 32
    assert decoder.project_out.out_features == 32
    assert set(t5_inputs) == {"input_ids", "decoder_input_ids"}


def test_checkpoint_directory(tmp_path):
    pytest.importorskip("transformers")
    model, _ = zoo.build_model("bert-base", layers=1, d_model=32, heads=2, vocab=60)
    model.save_pretrained(tmp_path)
    loaded, _ = zoo.build_model(tmp_path)
    assert type(loaded) is type(model)
    assert (loaded.cls.predictions.decoder.weight == model.cls.predictions.decoder.weight).all()
    graph = load_model(tmp_path)
    assert graph.inputs == ["input_ids"]
    assert any(v.startswith("bert.encoder.layer.0.") for v in graph.values)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UnsupportedModelError, match=r"not a transformers checkpoint|model_type"):
        zoo.build_model(tmp_path)


def test_load_model_from_module_and_zoo_name():
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    graph = load_model(torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Tanh()))
    assert [n.op for n in graph.nodes] == ["matmul", "add", "tanh"]
    gpt2 = load_model("gpt2", layers=1, d_model=32, heads=2, vocab=50,
                      input_shapes={"input_ids": (2, 5)})
    assert "transformer.h.0.mlp.c_fc.weight" in gpt2.values
    assert gpt2.values["input_ids"].shape == (2, 5)
    with pytest.raises(UnsupportedModelError, match="not an input"):
        load_model("gpt2", layers=1, d_model=32, heads=2, vocab=50, input_shapes={"x": (1,)})
    with pytest.raises(UnsupportedModelError, match="cannot load a int"):
        load_model(3)
