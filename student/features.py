"""The student's inputs: character ids, and optionally character bigrams and jieba word positions.

* characters: every character of the training text (labeled and unlabeled) gets a row; others
  read as ``<unk>``;
* bigrams (``--bigrams``): the pair of each character and the next (the last character pairs
  with an end mark), kept when seen at least ``min_count`` times;
* word positions (``--jieba``): the B/M/E/S position of each character in jieba's segmentation
  of the sentence, the "softword" feature of the Chinese NER literature.

Id 0 is padding and id 1 unknown in each vocabulary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

PAD, UNK = 0, 1
END = "\x03"
SEG_IDS = {"B": 1, "M": 2, "E": 3, "S": 4}


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


def _quiet_jieba() -> None:
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)


@dataclass
class Featurizer:
    """Turns text into the student's input arrays; its vocabularies are saved with the student."""

    chars: list[str]
    """Row i + 2 of the character embedding is ``chars[i]``."""
    bigram_list: list[str] | None = None
    jieba: bool = False

    def __post_init__(self) -> None:
        self.char_index = {c: i + 2 for i, c in enumerate(self.chars)}
        self.bigram_index = {b: i + 2 for i, b in enumerate(self.bigram_list)} if self.bigram_list is not None else None
        if self.jieba:
            _quiet_jieba()

    @property
    def num_chars(self) -> int:
        return len(self.chars) + 2

    @property
    def num_bigrams(self) -> int:
        return len(self.bigram_list) + 2 if self.bigram_list is not None else 0

    @classmethod
    def build(
        cls, texts: Iterable[str], use_bigrams: bool = False, use_jieba: bool = False, min_bigram_count: int = 2
    ) -> Featurizer:
        texts = list(texts)
        chars = sorted({c for t in texts for c in t})
        bigram_list = None
        if use_bigrams:
            counts = Counter(b for t in texts for b in bigrams(t))
            bigram_list = sorted(b for b, n in counts.items() if n >= min_bigram_count)
        return cls(chars, bigram_list, use_jieba)

    def encode(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``{'chars': [B, T], 'bigrams': [B, T]?, 'words': [B, T]?, 'lengths': [B]}`` int64, padded with 0."""
        lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        longest = int(lengths.max()) if len(texts) else 0
        out = {"chars": np.zeros((len(texts), longest), dtype=np.int64), "lengths": lengths}
        get = self.char_index.get
        for row, text in enumerate(texts):
            out["chars"][row, : len(text)] = [get(c, UNK) for c in text]
        if self.bigram_index is not None:
            out["bigrams"] = np.zeros_like(out["chars"])
            get_bigram = self.bigram_index.get
            for row, text in enumerate(texts):
                out["bigrams"][row, : len(text)] = [get_bigram(b, UNK) for b in bigrams(text)]
        if self.jieba:
            out["words"] = np.zeros_like(out["chars"])
            for row, text in enumerate(texts):
                out["words"][row, : len(text)] = word_positions(text)
        return out

    def to_config(self) -> dict:
        return {"chars": "".join(self.chars), "bigrams": self.bigram_list, "jieba": self.jieba}

    @classmethod
    def from_config(cls, record: dict) -> Featurizer:
        return cls(list(record["chars"]), record.get("bigrams"), bool(record.get("jieba")))
