"""Pretrained vectors the student's character and bigram embeddings start from.

A source maps a character (or bigram) to a vector, or to nothing:

* ``lac``: the 128-d character vectors of Baidu's LAC-small, the lexical-analysis model jieba
  ships (``jieba/lac_small``), read from its Paddle files (:func:`read_lod_tensor`). Only rows
  LAC trained are used, and a character is first mapped as LAC's reader mapped text
  (:func:`lac_candidates`);
* ``teacher``: the teacher's input embeddings (its character rows);
* a word2vec file, text or binary (:func:`read_word2vec`): what Lattice LSTM, SoftLexicon and
  NCRF++ users have (e.g. ``gigaword_chn.all.a2b.uni.ite50.vec``, Tencent's embeddings).

:func:`initial_table` turns a source into an embedding matrix for a vocabulary. A source wider
than the embedding is projected onto its principal components; a narrower one fills the first
columns and the rest start at zero. Rows are scaled to unit standard deviation, as a fresh
``nn.Embedding``; entries the source lacks start random. The matrix is copied into the
student's weights: a trained student never reads the source again.
"""

from __future__ import annotations

import struct
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill.artifacts import member_dirs, read_config, read_model_dir, sha256_file
from distill.errors import DistillError

Lookup = Callable[[str], "np.ndarray | None"]


@dataclass(frozen=True)
class VectorSource:
    name: str
    """``lac``, ``teacher`` or a file's path."""
    dim: int
    lookup: Lookup
    sha256: str
    """Of the file(s) the vectors came from."""
    chars: str = ""
    """The single characters it holds a vector for: a student's vocabulary takes them all, so a
    character unseen in training still starts from its vector."""


# ---- Paddle LoDTensor files (LAC's parameters) ------------------------------------------------

# Paddle's VarType codes for the element types a parameter file may hold.
_PADDLE_DTYPES = {2: np.int32, 3: np.int64, 4: np.float16, 5: np.float32, 6: np.float64}


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _tensor_desc(desc: bytes) -> tuple[int, list[int]]:
    """(data type, dims) of a protobuf ``TensorDesc``: field 1 the type, field 2 the dims."""
    dtype, dims, at = None, [], 0
    while at < len(desc):
        key, at = _varint(desc, at)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(desc, at)
            if field == 1:
                dtype = value
            elif field == 2:
                dims.append(value - (1 << 64) if value >= 1 << 63 else value)
        elif wire == 2:  # length-delimited: packed dims, or a field we skip
            size, at = _varint(desc, at)
            end = at + size
            while field == 2 and at < end:
                value, at = _varint(desc, at)
                dims.append(value)
            at = end
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
    if dtype is None:
        raise ValueError("the tensor description names no data type")
    return dtype, dims


def read_lod_tensor(path: Path) -> np.ndarray:
    """A tensor saved by Paddle's ``save_persistables``.

    Layout: uint32 version, uint64 LoD level and per level a uint64 byte count and its offsets,
    uint32 tensor version, int32 length of a protobuf ``TensorDesc``, the description, then the
    raw little-endian elements.
    """
    data = Path(path).read_bytes()
    try:
        at = 4
        (levels,) = struct.unpack_from("<Q", data, at)
        at += 8
        for _ in range(levels):
            (size,) = struct.unpack_from("<Q", data, at)
            at += 8 + size
        at += 4  # tensor version
        (desc_size,) = struct.unpack_from("<i", data, at)
        at += 4
        code, dims = _tensor_desc(data[at : at + desc_size])
        at += desc_size
    except (struct.error, ValueError) as err:
        raise DistillError(f"{path}: not a Paddle LoDTensor file ({err})") from None
    if code not in _PADDLE_DTYPES:
        raise DistillError(f"{path}: Paddle data type {code} is not one of the float or int types read here")
    dtype = np.dtype(_PADDLE_DTYPES[code]).newbyteorder("<")
    count = int(np.prod(dims)) if dims else 1
    if len(data) - at != count * dtype.itemsize:
        raise DistillError(f"{path}: {len(data) - at} bytes of data for a {dims} {dtype.name} tensor")
    return np.frombuffer(data, dtype=dtype, count=count, offset=at).reshape(dims).astype(dtype.newbyteorder("="))


# ---- LAC-small --------------------------------------------------------------------------------

LAC_UNTRAINED = 0.1
"""LAC's embedding rows started Uniform(-0.1, 0.1); a row still inside that bound was never trained."""

# CJK punctuation as LAC's reader mapped it before looking characters up (baidu/lac's q2b.dic);
# full-width ASCII forms are covered by NFKC.
LAC_PUNCTUATION = {
    "。": ".",
    "、": ",",
    "“": '"',
    "”": '"',
    "‘": "'",
    "’": "'",
    "《": "<",
    "》": ">",
    "〈": "<",
    "〉": ">",
    "【": "[",
    "】": "]",
    "〔": "(",
    "〕": ")",
    "「": '"',
    "」": '"',
    "『": '"',
    "』": '"',
    "～": "~",
}


def lac_candidates(char: str) -> list[str]:
    """Spellings of ``char`` to try in LAC's vocabulary, in order: itself, its punctuation mapping,
    its NFKC form, and their lower case (LAC read text half-width and lower-cased)."""
    nfkc = unicodedata.normalize("NFKC", char)
    found = [char, LAC_PUNCTUATION.get(char, char), nfkc, char.lower(), nfkc.lower()]
    return list(dict.fromkeys(c for c in found if len(c) == 1))


def lac_directory() -> Path:
    try:
        import jieba
    except ImportError:
        raise DistillError("--char-vectors lac reads jieba's LAC model: pip install jieba") from None
    return Path(jieba.__file__).parent / "lac_small"


def lac_source(directory: Path | None = None) -> VectorSource:
    """LAC-small's trained character vectors (``directory``: a ``lac_small`` folder; default jieba's)."""
    directory = Path(directory) if directory is not None else lac_directory()
    words, weights = directory / "word.dic", directory / "model_baseline" / "word_emb"
    for path in (words, weights):
        if not path.is_file():
            raise DistillError(f"{path} is missing: LAC's character vectors come from jieba's lac_small folder")
    table = read_lod_tensor(weights)  # [V, 128]
    rows: dict[str, int] = {}
    for number, line in enumerate(words.read_text(encoding="utf-8").split("\n"), 1):
        if not line:
            continue
        index, _, char = line.partition("\t")
        if not index.isdigit() or not char:
            raise DistillError(f"{words}, line {number}: expected 'id<TAB>character', found {line!r}")
        if len(char) == 1 and int(index) < len(table) and np.abs(table[int(index)]).max() > LAC_UNTRAINED:
            rows[char] = int(index)

    def lookup(char: str) -> np.ndarray | None:
        for candidate in lac_candidates(char):
            if candidate in rows:
                return table[rows[candidate]]
        return None

    return VectorSource("lac", table.shape[1], lookup, sha256_file(words, weights), "".join(rows))


# ---- a teacher's input embeddings ---------------------------------------------------------------


def teacher_source(teacher_dir: Path) -> VectorSource:
    """The character rows of a teacher's input embedding table (an ensemble lends its first
    member's)."""
    members = member_dirs(teacher_dir, read_config(teacher_dir))
    if members:
        teacher_dir = members[0]
    config, weights = read_model_dir(teacher_dir)
    name = config.get("input_embedding")
    if name not in weights:
        raise DistillError(f"{teacher_dir} names no character embedding table among its weights: not a teacher?")
    table = weights[name]  # [V_teacher, H]
    char_to_id = {c: i for c, i in config["char_vocab"]["char_to_id"].items() if len(c) == 1}

    def lookup(char: str) -> np.ndarray | None:
        return table[char_to_id[char]] if char in char_to_id else None

    sha256 = sha256_file(Path(teacher_dir) / "model.safetensors")
    return VectorSource("teacher", table.shape[1], lookup, sha256, "".join(sorted(char_to_id)))


# ---- word2vec files -----------------------------------------------------------------------------


def read_word2vec(path: Path, keep: Callable[[str], bool] = lambda entry: True) -> VectorSource:
    """Vectors of a word2vec file, text (``word v1 v2 ...`` per line, with or without the
    ``count dim`` header line) or binary (a ``count dim`` header line, then per entry the word,
    a space and ``dim`` little-endian float32). ``keep``: which entries to hold (files of
    millions of words are common; what a student cannot use is not held)."""
    path = Path(path)
    if not path.is_file():
        raise DistillError(f"{path}: no such vector file")
    with open(path, "rb") as stream:
        head = stream.readline()
        rest = stream.read(1 << 16)
    header = head.split()
    binary = len(header) == 2 and all(h.isdigit() for h in header) and _looks_binary(rest)
    vectors = _read_binary(path, keep) if binary else _read_text(path, keep)
    if not vectors:
        raise DistillError(f"{path}: no vectors read (or none for this corpus's entries)")
    dim = len(next(iter(vectors.values())))
    chars = "".join(sorted(entry for entry in vectors if len(entry) == 1))
    return VectorSource(str(path), dim, vectors.get, sha256_file(path), chars)


def _looks_binary(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start < len(sample) - 4  # a character cut at the sample's end is still text
    return False


def _read_text(path: Path, keep: Callable[[str], bool]) -> dict[str, np.ndarray]:
    vectors: dict[str, np.ndarray] = {}
    dim = None
    with open(path, encoding="utf-8", errors="strict") as stream:
        try:
            for number, line in enumerate(stream, 1):
                fields = line.rstrip("\n").rstrip(" ").split(" ")
                if number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
                    dim = int(fields[1])
                    continue
                if not fields or fields == [""]:
                    continue
                word, values = fields[0], fields[1:]
                dim = dim or len(values)
                if len(values) != dim:
                    raise DistillError(f"{path}, line {number}: expected a word and {dim} numbers, found {len(values)}")
                if not keep(word):
                    continue
                try:
                    vectors[word] = np.array(values, dtype=np.float32)
                except ValueError:
                    raise DistillError(f"{path}, line {number}: {word!r} has a value that is not a number") from None
        except UnicodeDecodeError:
            raise DistillError(f"{path}, line {number}: not UTF-8 text (nor a binary word2vec file)") from None
    return vectors


def _read_binary(path: Path, keep: Callable[[str], bool]) -> dict[str, np.ndarray]:
    data = Path(path).read_bytes()
    newline = data.index(b"\n")
    count, dim = (int(x) for x in data[:newline].split())
    at, vectors = newline + 1, {}
    for entry in range(1, count + 1):
        while at < len(data) and data[at : at + 1] in (b"\n", b" "):
            at += 1
        space = data.find(b" ", at)
        if space < 0 or space + 1 + 4 * dim > len(data):
            raise DistillError(f"{path}: entry {entry} of {count} is cut short (a truncated binary word2vec file?)")
        try:
            word = data[at:space].decode("utf-8")
        except UnicodeDecodeError:
            raise DistillError(f"{path}: entry {entry} of {count}: its word is not UTF-8") from None
        at = space + 1
        if keep(word):
            vectors[word] = np.frombuffer(data, dtype="<f4", count=dim, offset=at).astype(np.float32)
        at += 4 * dim
    return vectors


# ---- from a source to an embedding matrix -----------------------------------------------------


def bigram_source(chars: VectorSource) -> VectorSource:
    """Bigram vectors as the mean of their two characters' (a bigram with a character the source
    lacks, or with the end mark, has none)."""

    def lookup(bigram: str) -> np.ndarray | None:
        first, second = chars.lookup(bigram[0]), chars.lookup(bigram[1])
        return None if first is None or second is None else (first + second) / 2

    return VectorSource(f"{chars.name} (characters averaged)", chars.dim, lookup, chars.sha256)


@dataclass(frozen=True)
class InitialTable:
    weights: np.ndarray
    """[num_rows, dim] float32: row 0 (padding) zero, row 1 (unknown) random."""
    found: int
    """Entries of the vocabulary the source had a vector for."""

    def coverage(self, source: VectorSource) -> dict:
        """What a student's config records of where its embedding started."""
        total = len(self.weights) - 2
        return {
            "source": source.name,
            "sha256": source.sha256,
            "found": self.found,
            "entries": total,
            "coverage": round(self.found / max(1, total), 4),
        }


def char_source(name: str, teacher_dir: Path | None) -> VectorSource | None:
    """The source ``--char-vectors`` names: ``none``, ``lac``, ``teacher`` (the cache's teacher) or
    a word2vec file (its single characters)."""
    if name == "none":
        return None
    if name == "lac":
        return lac_source()
    if name == "teacher":
        if teacher_dir is None:
            raise DistillError("--char-vectors teacher needs a cache (it names the teacher whose embeddings to use)")
        return teacher_source(teacher_dir)
    return read_word2vec(Path(name), keep=lambda entry: len(entry) == 1)


def initial_table(entries: Iterable[str], source: VectorSource, dim: int, rng: np.random.Generator) -> InitialTable:
    """Embedding rows for ``entries`` (row i + 2 is entry i; 0 padding, 1 unknown) from ``source``."""
    entries = list(entries)
    rows, vectors = [], []
    for i, entry in enumerate(entries):
        vector = source.lookup(entry)
        if vector is not None:
            rows.append(i + 2)
            vectors.append(vector)
    out = rng.standard_normal((len(entries) + 2, dim)).astype(np.float32)
    out[0] = 0.0
    if len(vectors) < 2:
        return InitialTable(out, len(vectors))
    known = np.stack(vectors).astype(np.float64)  # [found, source dim]
    centered = known - known.mean(0)
    if known.shape[1] > dim:  # onto the principal components
        _, _, components = np.linalg.svd(centered, full_matrices=False)
        centered = centered @ components[:dim].T
    projected = np.zeros((len(vectors), dim))
    projected[:, : centered.shape[1]] = centered
    out[rows] = projected / (projected[:, : centered.shape[1]].std() + 1e-8)
    return InitialTable(out, len(vectors))
