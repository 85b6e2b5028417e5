"""The WikiText-2 protocol, the word vocabulary and the batches the loop consumes."""

from __future__ import annotations

import pytest
import torch

from bwsk.errors import DataError
from bwsk.train.data import BUNDLED, EOS, UNK, TrainBatches, Vocab, eval_windows, load_splits


def test_bundled_protocol_splits_valid_90_10_and_keeps_test_whole():
    splits = load_splits()
    valid = (BUNDLED / "valid.txt").read_text().splitlines()
    test = (BUNDLED / "test.txt").read_text().splitlines()
    assert len(splits.train) == int(len(valid) * 0.9) == 3384
    assert splits.train + splits.valid == valid
    assert splits.test == test
    vocab = Vocab.build(splits.train)
    ids = vocab.encode(splits.train)
    # the README's ~196k train tokens: the words plus one <eos> per line
    assert len(ids) == sum(len(line.split()) for line in splits.train) + len(splits.train)
    assert 190_000 < len(ids) < 200_000


def test_vocab_is_frequency_ordered_deterministic_and_maps_unseen_words_to_unk():
    lines = ["b a a", " c b a ", ""]
    vocab = Vocab.build(lines)
    assert vocab.words == [UNK, EOS, "a", "b", "c"]
    ids = vocab.encode(["a zzz", ""]).tolist()
    assert ids == [2, 0, 1, 1]  # a, <unk>, <eos>, then an empty line is just <eos>
    assert Vocab.build(list(reversed(lines))).words == vocab.words


def test_vocab_round_trips_through_json(tmp_path):
    vocab = Vocab.build(["x y z y"])
    vocab.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json").words == vocab.words
    (tmp_path / "bad.json").write_text('{"not": "a list"}')
    with pytest.raises(DataError, match="not a bwsk vocabulary"):
        Vocab.load(tmp_path / "bad.json")


def test_train_batches_are_a_function_of_step_and_shift_targets_by_one():
    stream = torch.arange(1000)
    a = TrainBatches(stream, seq_len=10, batch_size=4, seed=3)
    b = TrainBatches(stream, seq_len=10, batch_size=4, seed=3)
    x, y = a.batch(7)
    assert x.shape == y.shape == (4, 10)
    assert torch.equal(y, x + 1)  # stream is arange: the target is the next token
    assert torch.equal(x, b.batch(7)[0])
    # one epoch visits every window once
    seen = torch.cat([a.batch(s)[0][:, 0] for s in range(a.steps_per_epoch)])
    assert len(set(seen.tolist())) == a.steps_per_epoch * 4
    assert not torch.equal(a.batch(0)[0], a.batch(a.steps_per_epoch)[0])  # reshuffled


def test_eval_windows_predict_every_token_after_the_first_exactly_once():
    stream = torch.arange(103)
    targets = torch.cat([y.flatten() for _, y in eval_windows(stream, seq_len=10, batch_size=3)])
    assert targets.tolist() == list(range(1, 103))


@pytest.mark.parametrize("problem", ["missing", "empty", "blank"])
def test_bad_data_dirs_are_one_line_data_errors(tmp_path, problem):
    for name in ("train", "valid", "test"):
        (tmp_path / f"{name}.txt").write_text("a b c\n")
    target = tmp_path / "valid.txt"
    if problem == "missing":
        target.unlink()
    elif problem == "empty":
        target.write_text("")
    else:
        target.write_text("\n  \n")
    with pytest.raises(DataError, match=r"valid\.txt") as info:
        load_splits(str(tmp_path))
    assert "\n" not in str(info.value)


def test_data_that_is_too_small_for_one_batch_is_refused():
    with pytest.raises(DataError, match="too few"):
        TrainBatches(torch.arange(20), seq_len=10, batch_size=4, seed=0)
