"""The student's inputs: character ids, and optionally character bigrams and jieba word positions.

* characters: every character of the training text (labeled and unlabeled) gets a row; others
  read as ``<unk>``;
* bigrams (``--bigrams``): the pair of each character and the next (the last character pairs
  with an end mark), kept when seen at least ``min_count`` times;
* word positions (``--jieba``): the B/M/E/S position of each character in jieba's segmentation
  of the sentence, the "softword" feature of the Chinese NER literature.

Id 0 is padding and id 1 unknown in each vocabulary. Encoding is vectorised: characters and
bigrams are looked up as code points (a bigram as one integer made of its two) in sorted numpy
arrays, not in dicts of strings, so a large bigram vocabulary costs 16 bytes an entry in a
serving process, and a batch is encoded in a few array operations.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

PAD, UNK = 0, 1
END = "\x03"
SEG_IDS = {"B": 1, "M": 2, "E": 3, "S": 4}
_CODE_POINTS = 0x110000


def bigrams(text: str) -> list[str]:
    return [a + b for a, b in zip(text, text[1:] + END)]


def word_positions(text: str) -> list[int]:
    """B/M/E/S ids of each character in jieba's segmentation (HMM off: dictionary words only)."""
    import jieba

    ids: list[int] = []
    for word in jieba.cut(text, HMM=False):
        if len(word) == 1:
            ids.append(SEG_IDS["S"])
        else:
            ids.extend([SEG_IDS["B"], *[SEG_IDS["M"]] * (len(word) - 2), SEG_IDS["E"]])
    return ids


def _code_points(text: str) -> np.ndarray:
    """[len(text)] int64 Unicode code points (a lone surrogate as its own code point, so an unknown
    character rather than an error)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64)


class _Lookup:
    """Ids of integer keys: a sorted key array searched in one vectorised call; absent keys read as UNK."""

    def __init__(self, keys: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        # [V + 1] sorted, then a key above any code point or bigram, so a search never runs off the end
        self.keys = np.append(keys[order], np.iinfo(np.int64).max)
        self.ids = np.append(order + 2, UNK).astype(np.int64)  # [V + 1]: key i of the vocabulary has id i + 2

    def __call__(self, keys: np.ndarray) -> np.ndarray:
        at = np.searchsorted(self.keys, keys)
        return np.where(self.keys[at] == keys, self.ids[at], UNK)


def _padded(ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """[B, T] ids, 0 past each text's end, from the [N] ids of the B texts joined."""
    longest = int(lengths.max()) if len(lengths) else 0
    if len(ids) == len(lengths) * longest:  # nothing to pad (a batch of one, or of equal lengths)
        return ids.reshape(len(lengths), longest)
    padded = np.zeros((len(lengths), longest), dtype=np.int64)
    padded[np.arange(longest)[None, :] < lengths[:, None]] = ids  # row-major order = the texts joined
    return padded


def _bigram_keys(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return first * _CODE_POINTS + second


def _quiet_jieba() -> None:
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)


@dataclass
class Featurizer:
    """Turns text into the student's input arrays; its vocabularies are saved with the student."""

    chars: str
    """Row i + 2 of the character embedding is ``chars[i]``."""
    bigram_pairs: str | None = None
    """Row i + 2 of the bigram embedding is ``bigram_pairs[2 * i : 2 * i + 2]``: one string, not a
    list of two-character strings, which would cost ~80 bytes an entry in a serving process."""
    jieba: bool = False

    def __post_init__(self) -> None:
        self._chars = _Lookup(_code_points(self.chars))
        self._bigrams = None
        if self.bigram_pairs is not None:
            pairs = _code_points(self.bigram_pairs).reshape(-1, 2)  # [V, 2]
            self._bigrams = _Lookup(_bigram_keys(pairs[:, 0], pairs[:, 1]))
        if self.jieba:
            _quiet_jieba()

    @functools.cached_property
    def char_index(self) -> dict[str, int]:
        """Embedding row of each character (training only: serving looks characters up in arrays)."""
        return {c: i + 2 for i, c in enumerate(self.chars)}

    @property
    def num_chars(self) -> int:
        return len(self.chars) + 2

    @property
    def num_bigrams(self) -> int:
        return len(self.bigram_pairs) // 2 + 2 if self.bigram_pairs is not None else 0

    @classmethod
    def build(
        cls, texts: Iterable[str], use_bigrams: bool = False, use_jieba: bool = False, min_bigram_count: int = 2
    ) -> Featurizer:
        texts = list(texts)
        chars = "".join(sorted({c for t in texts for c in t}))
        bigram_pairs = None
        if use_bigrams:
            counts = Counter(b for t in texts for b in bigrams(t))
            bigram_pairs = "".join(sorted(b for b, n in counts.items() if n >= min_bigram_count))
        return cls(chars, bigram_pairs, use_jieba)

    def encode(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``{'chars': [B, T], 'bigrams': [B, T]?, 'words': [B, T]?, 'lengths': [B]}`` int64, padded with 0."""
        lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        codes = _code_points("".join(texts))  # [N]
        out = {"chars": _padded(self._chars(codes), lengths), "lengths": lengths}
        if self._bigrams is not None:
            following = np.empty_like(codes)  # [N]: the next character's code point, END after a text's last
            following[:-1] = codes[1:]
            following[np.cumsum(lengths)[lengths > 0] - 1] = ord(END)
            out["bigrams"] = _padded(self._bigrams(_bigram_keys(codes, following)), lengths)
        if self.jieba:
            positions = [position for text in texts for position in word_positions(text)]
            out["words"] = _padded(np.array(positions, dtype=np.int64), lengths)
        return out

    def to_config(self) -> dict:
        return {"chars": self.chars, "bigrams": self.bigram_pairs, "jieba": self.jieba}

    @classmethod
    def from_config(cls, record: dict) -> Featurizer:
        return cls(record["chars"], record.get("bigrams"), bool(record.get("jieba")))
