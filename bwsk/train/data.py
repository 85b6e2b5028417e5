"""WikiText-2 splits, a word-level vocabulary, and the batches the loop consumes.

Batches are a pure function of (seed, step), so a resumed run sees exactly the batches
an uninterrupted run would have seen, and DDP ranks can slice one global batch.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from bwsk.errors import DataError

BUNDLED = Path(__file__).resolve().parent.parent / "data" / "wikitext-2"
UNK, EOS = "<unk>", "<eos>"
SPLITS = ("train", "valid", "test")
TRAIN_FRACTION = 0.9


@dataclass
class Splits:
    """Lines of text per split, plus where they came from (for results.json)."""

    train: list[str]
    valid: list[str]
    test: list[str]
    source: str


def load_splits(data_dir: str | None = None) -> Splits:
    """The bundled protocol (train/val = 90/10 % of valid.txt, test = test.txt) or a DIR
    holding train.txt, valid.txt and test.txt."""
    if data_dir is None:
        valid = _read_lines(BUNDLED / "valid.txt")
        cut = int(len(valid) * TRAIN_FRACTION)
        return Splits(valid[:cut], valid[cut:], _read_lines(BUNDLED / "test.txt"),
                      "bundled WikiText-2 protocol (train/val = 90/10 % of valid.txt, "
                      "test = test.txt)")
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"--data {data_dir}: not a directory")
    files = {s: root / f"{s}.txt" for s in SPLITS}
    lines = {s: _read_lines(p) for s, p in files.items()}
    return Splits(lines["train"], lines["valid"], lines["test"], str(root))


def _read_lines(path: Path) -> list[str]:
    """Read one split with the ``datasets`` text loader (local files, works offline)."""
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"data file is empty: {path}")
    import datasets

    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset("text", data_files={"split": str(path)}, split="split")
    except Exception as exc:  # the loader's errors are many and unexported
        raise DataError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    lines = list(ds["text"])
    if not any(line.strip() for line in lines):
        raise DataError(f"data file has no words: {path}")
    return lines


class Vocab:
    """Word-level vocabulary of the training split; unseen words map to ``<unk>``."""

    def __init__(self, words: list[str]):
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}

    @classmethod
    def build(cls, lines: list[str]) -> Vocab:
        counts = Counter(w for line in lines for w in line.split())
        counts.pop(UNK, None)
        counts.pop(EOS, None)
        # frequency order, ties alphabetical: the same text always gives the same ids
        ordered = sorted(counts, key=lambda w: (-counts[w], w))
        return cls([UNK, EOS, *ordered])

    def __len__(self) -> int:
        return len(self.words)

    @property
    def eos_id(self) -> int:
        return self.index[EOS]

    def encode_words(self, lines: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, word_start): with a word vocabulary every token starts a word."""
        ids = self.encode(lines)
        return ids, torch.ones(len(ids), dtype=torch.bool)

    def encode(self, lines: list[str]) -> torch.Tensor:
        """One stream of ids; every line ends in <eos> (the usual WikiText convention)."""
        unk, eos = self.index[UNK], self.index[EOS]
        ids: list[int] = []
        for line in lines:
            ids.extend(self.index.get(w, unk) for w in line.split())
            ids.append(eos)
        return torch.tensor(ids, dtype=torch.long)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.words))

    @classmethod
    def load(cls, path: Path) -> Vocab:
        try:
            words = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read vocabulary {path}: {exc}") from exc
        if not isinstance(words, list) or UNK not in words or EOS not in words:
            raise DataError(f"{path} is not a bwsk vocabulary")
        return cls(words)


class SubwordVocab:
    """A checkpoint's own tokenizer (e.g. GPT-2's BPE), fed one WikiText word at a time.

    Each word is encoded as `` word`` (with its leading space) and each line ends in the
    tokenizer's end-of-text token, so subword pieces never straddle two WikiText words:
    summing the pieces' NLL per word gives a perplexity per word-level token, comparable
    with the word-vocabulary runs.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        if tokenizer.eos_token_id is None:
            raise DataError("the checkpoint's tokenizer has no end-of-text token")

    @classmethod
    def load(cls, path: Path) -> SubwordVocab:
        from transformers import AutoTokenizer

        try:
            return cls(AutoTokenizer.from_pretrained(str(path), local_files_only=True))
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(f"{path}: no usable tokenizer files for fine-tuning with the "
                            f"model's own vocabulary ({type(exc).__name__})") from exc

    def __len__(self) -> int:
        return len(self.tokenizer)

    def encode_words(self, lines: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        split = [line.split() for line in lines]
        pieces = self.tokenizer([" " + w for words in split for w in words],
                                add_special_tokens=False)["input_ids"]
        ids: list[int] = []
        starts: list[bool] = []
        it = iter(pieces)
        for words in split:
            for _ in words:
                sub = next(it)
                if not sub:  # a word the tokenizer maps to nothing is not predicted
                    continue
                ids.extend(sub)
                starts.extend([True] + [False] * (len(sub) - 1))
            ids.append(self.tokenizer.eos_token_id)
            starts.append(True)
        return torch.tensor(ids, dtype=torch.long), torch.tensor(starts)


class TrainBatches:
    """Non-overlapping windows of ``seq_len + 1`` tokens, reshuffled every epoch."""

    def __init__(self, stream: torch.Tensor, seq_len: int, batch_size: int, seed: int):
        self.stream, self.seq_len, self.batch_size, self.seed = stream, seq_len, batch_size, seed
        n_windows = (len(stream) - 1) // seq_len
        self.steps_per_epoch = n_windows // batch_size
        if self.steps_per_epoch == 0:
            raise DataError(f"training split has {len(stream)} tokens: too few for one batch "
                            f"of {batch_size} x {seq_len + 1}")
        self.n_windows = n_windows

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets), each [batch, seq_len], for global step ``step``."""
        epoch, k = divmod(step, self.steps_per_epoch)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(self.n_windows, generator=gen)
        starts = order[k * self.batch_size:(k + 1) * self.batch_size] * self.seq_len
        offsets = torch.arange(self.seq_len + 1)
        windows = self.stream[starts[:, None] + offsets[None, :]]
        return windows[:, :-1], windows[:, 1:]


def eval_windows(stream: torch.Tensor, seq_len: int, batch_size: int):
    """Yield (inputs, targets) covering every token after the first exactly once."""
    n_pred = len(stream) - 1
    full = n_pred // seq_len
    for b in range(0, full, batch_size):
        starts = torch.arange(b, min(b + batch_size, full)) * seq_len
        offsets = torch.arange(seq_len + 1)
        windows = stream[starts[:, None] + offsets[None, :]]
        yield windows[:, :-1], windows[:, 1:]
    tail = stream[full * seq_len:]
    if len(tail) > 1:
        yield tail[None, :-1], tail[None, 1:]
