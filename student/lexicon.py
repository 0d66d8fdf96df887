"""SoftLexicon features (Ma et al., 2020): which dictionary words each character begins, continues,
ends or is, weighted by how often the words occur.

For each character the words of the sentence found in the lexicon fall into four sets: B (words
it begins), M (words it is inside), E (words it ends) and S (itself as a one-character word).
Each set becomes one vector, ``4 / Z * sum(z(w) * e(w))`` over its words, with ``z(w)`` the word's
frequency and ``Z`` the frequencies summed over all four sets of that character. A word's vector
``e(w)`` is the mean of its characters' embeddings (the student's own, trained with it), so a word
contributes ``z(w) / len(w)`` to each of its characters: :meth:`Lexicon.weights` gives these
weights by offset from the character, and the network (``model.BiLstmCrf``) turns them and its
character embeddings into the four vectors.

The lexicon is jieba's ``dict.txt`` (349,046 words with frequencies), words of at most
:data:`MAX_WORD` characters (98% of it). Words are looked up as 64-bit keys made from their code
points, in one sorted array (about 3 MB for the whole lexicon, saved with the student), with the
sentences' substrings hashed the same way in a few numpy operations per word length.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill.errors import DistillError

MAX_WORD = 4
"""Longest word matched; a character's weights span offsets -(MAX_WORD - 1) .. MAX_WORD - 1."""
OFFSETS = 2 * MAX_WORD - 1
SETS = 4  # B, M, E, S
_B, _M, _E, _S = range(SETS)
TENSORS = ("features.lexicon_keys", "features.lexicon_frequencies")
"""Names of the lexicon's arrays in a student's ``model.safetensors``, beside the network's weights."""
_BASE = np.uint64(0x110000)  # one more than the largest code point


def word_keys(codes: np.ndarray, length: int) -> np.ndarray:
    """[N - length + 1] uint64 keys of the ``length``-character substrings of ``codes`` (code
    points): sum of code * BASE^(position from the end), modulo 2^64. Exact up to three characters;
    longer words wrap, and two of them could share a key (about one chance in 10^13 per pair)."""
    codes = codes.astype(np.uint64)
    keys = np.zeros(len(codes) - length + 1, dtype=np.uint64)
    for k in range(length):
        keys = keys * _BASE + codes[k : len(codes) - length + 1 + k]  # wraps modulo 2^64, as intended
    return keys


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


@dataclass
class Lexicon:
    keys: np.ndarray
    """[V] uint64 word keys, sorted."""
    frequencies: np.ndarray
    """[V] float32, the frequency of each key's word."""
    sha256: str = ""
    """Of the dictionary file it was read from."""

    @classmethod
    def read(cls, path: Path) -> Lexicon:
        """A jieba-format dictionary: ``word frequency [tag]`` per line."""
        path = Path(path)
        keys: list[int] = []
        frequencies: list[float] = []
        raw = path.read_bytes()
        for number, line in enumerate(raw.decode("utf-8-sig").splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2 or not fields[1].isdigit():
                raise DistillError(f"{path}, line {number}: expected 'word frequency [tag]', found {line!r}")
            word = fields[0]
            if len(word) <= MAX_WORD and int(fields[1]) > 0:
                keys.append(int(word_keys(_code_points(word), len(word))[0]))
                frequencies.append(float(fields[1]))
        if not keys:
            raise DistillError(f"{path}: no word of at most {MAX_WORD} characters with a positive frequency")
        return cls.from_arrays(np.array(keys, dtype=np.uint64), np.array(frequencies, dtype=np.float32))._signed(
            hashlib.sha256(raw).hexdigest()
        )

    @classmethod
    def from_arrays(cls, keys: np.ndarray, frequencies: np.ndarray) -> Lexicon:
        """Sorted by key; a key listed twice keeps its largest frequency."""
        order = np.lexsort((-frequencies, keys))
        keys, frequencies = keys[order], frequencies[order]
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        return cls(keys[first], frequencies[first].astype(np.float32))

    def _signed(self, sha256: str) -> Lexicon:
        self.sha256 = sha256
        return self

    def frequency(self, keys: np.ndarray) -> np.ndarray:
        """[N] float32 frequencies of ``keys`` (0 for words not in the lexicon)."""
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[at] == keys, self.frequencies[at], 0.0).astype(np.float32)

    def weights(self, codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """[N, SETS, OFFSETS] float32 weights for the code points of texts joined end to end
        (``lengths`` [B] of them): entry ``[i, s, MAX_WORD - 1 + d]`` is how much the character
        at ``i + d`` counts in the vector of set ``s`` (B, M, E, S) of character ``i``."""
        n = len(codes)
        if n == 0:
            return np.zeros((0, SETS, OFFSETS), dtype=np.float32)
        ends = np.repeat(np.cumsum(lengths), lengths)  # [N]: where each character's text ends
        left = ends - np.arange(n)  # [N]: characters from this one to its text's end
        padded = np.concatenate([codes, np.zeros(MAX_WORD - 1, dtype=codes.dtype)])
        cells, shares = [], []  # flat indices into [N, SETS, OFFSETS], and what each adds there
        for length in range(1, MAX_WORD + 1):
            found = self.frequency(word_keys(padded[: n + length - 1], length)) * (left >= length)  # [N]
            starts = np.flatnonzero(found)  # [W]: where a word of this length starts
            inside = np.arange(length)  # k: a character's place in the word; j: a character it averages
            sets = np.full(length, _M)
            sets[0], sets[-1] = _B, _E
            if length == 1:
                sets[0] = _S
            position = starts[:, None, None] + inside[None, :, None]  # [W, k, 1]
            offset = inside[None, None, :] - inside[None, :, None] + MAX_WORD - 1  # [1, k, j]
            cell = (position * SETS + sets[None, :, None]) * OFFSETS + offset  # [W, k, j]
            cells.append(cell.ravel())
            shares.append(np.repeat(found[starts] / length, length * length))
        flat = np.bincount(np.concatenate(cells), np.concatenate(shares), minlength=n * SETS * OFFSETS)
        out = flat.reshape(n, SETS, OFFSETS).astype(np.float32)
        total = out.sum(axis=(1, 2))  # [N]: Z, every word's frequency once (its shares add up to it)
        out *= np.where(total > 0, SETS / np.maximum(total, 1e-30), 0.0)[:, None, None]
        return out

    def to_tensors(self) -> dict[str, np.ndarray]:
        return {TENSORS[0]: self.keys, TENSORS[1]: self.frequencies}

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], sha256: str) -> Lexicon:
        return cls(tensors[TENSORS[0]], tensors[TENSORS[1]], sha256)


def jieba_dictionary() -> Path:
    try:
        import jieba
    except ImportError:
        raise DistillError("--lexicon reads jieba's dictionary: pip install jieba") from None
    return Path(jieba.__file__).parent / "dict.txt"
