"""Pretrained vectors for the student: Paddle's LoDTensor files, LAC's vocabulary and its
normalisation, word2vec files, and the projection into an embedding."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distill.errors import DistillError
from distill.student.vectors import (
    LAC_UNTRAINED,
    VectorSource,
    initial_table,
    lac_candidates,
    lac_source,
    read_lod_tensor,
    read_word2vec,
)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def write_lod_tensor(path: Path, array: np.ndarray, code: int, lod: list[list[int]] = (), packed: bool = False) -> None:
    """A file in Paddle's LoDTensor layout, written from the layout's description, not the reader."""
    desc = b"\x08" + _varint(code)
    if packed:
        dims = b"".join(_varint(d) for d in array.shape)
        desc += b"\x12" + _varint(len(dims)) + dims
    else:
        desc += b"".join(b"\x10" + _varint(d) for d in array.shape)
    out = struct.pack("<I", 0) + struct.pack("<Q", len(lod))
    for level in lod:
        out += struct.pack("<Q", 8 * len(level)) + struct.pack(f"<{len(level)}Q", *level)
    out += (
        struct.pack("<I", 0)
        + struct.pack("<i", len(desc))
        + desc
        + array.astype(array.dtype.newbyteorder("<")).tobytes()
    )
    path.write_bytes(out)


@pytest.mark.parametrize(
    ("dtype", "code", "lod", "packed"),
    [(np.float32, 5, [], False), (np.float64, 6, [[0, 2, 3]], True), (np.int64, 3, [], False)],
)
def test_lod_tensor_reader_reads_the_layout(tmp_path, dtype, code, lod, packed):
    array = (np.arange(3 * 130).reshape(3, 130) - 7).astype(dtype)  # 130 > 127: a two-byte varint dim
    write_lod_tensor(tmp_path / "t", array, code, lod, packed)
    read = read_lod_tensor(tmp_path / "t")
    assert read.dtype == dtype and np.array_equal(read, array)


def test_lod_tensor_reader_refuses_a_truncated_file(tmp_path):
    write_lod_tensor(tmp_path / "t", np.ones((4, 4), np.float32), 5)
    (tmp_path / "t").write_bytes((tmp_path / "t").read_bytes()[:-3])
    with pytest.raises(DistillError, match="bytes of data for a"):
        read_lod_tensor(tmp_path / "t")
    (tmp_path / "u").write_bytes(b"\x00\x01")
    with pytest.raises(DistillError, match="not a Paddle LoDTensor"):
        read_lod_tensor(tmp_path / "u")


def test_lac_normalisation_reaches_half_width_lower_case_spellings():
    assert lac_candidates("，")[:2] == ["，", ","]  # NFKC makes the full-width comma ASCII
    assert "." in lac_candidates("。") and "," in lac_candidates("、")
    assert lac_candidates("Ａ") == ["Ａ", "A", "ａ", "a"]
    assert lac_candidates("Q") == ["Q", "q"]
    assert lac_candidates("《") == ["《", "<"]
    assert lac_candidates("张") == ["张"]
    assert all(len(c) == 1 for c in lac_candidates("…"))  # NFKC gives '...': not a character


def _fake_lac(directory: Path) -> np.ndarray:
    """A lac_small folder: 6 characters, two of whose rows are still at their untrained start."""
    (directory / "model_baseline").mkdir(parents=True)
    chars = ["张", ",", ".", "a", "，", "OOV"]
    rng = np.random.default_rng(0)
    table = rng.uniform(-LAC_UNTRAINED, LAC_UNTRAINED, (len(chars), 8)).astype(np.float32)
    table[:4] += np.sign(table[:4]) * 0.5  # 张 , . a trained; ， and OOV not
    (directory / "word.dic").write_text("".join(f"{i}\t{c}\n" for i, c in enumerate(chars)), encoding="utf-8")
    write_lod_tensor(directory / "model_baseline" / "word_emb", table, 5)
    return table


def test_lac_source_uses_trained_rows_through_the_normalisation(tmp_path):
    table = _fake_lac(tmp_path / "lac_small")
    source = lac_source(tmp_path / "lac_small")
    assert source.dim == 8 and set(source.chars) == {"张", ",", ".", "a"}
    assert np.array_equal(source.lookup("，"), table[1])  # its own row is untrained: the ASCII comma's
    assert np.array_equal(source.lookup("。"), table[2])
    assert np.array_equal(source.lookup("Ａ"), table[3]) and np.array_equal(source.lookup("A"), table[3])
    assert source.lookup("李") is None
    (tmp_path / "lac_small" / "word.dic").write_text("0\t张\nnot a line\n", encoding="utf-8")
    with pytest.raises(DistillError, match=r"word.dic, line 2: expected 'id<TAB>character'"):
        lac_source(tmp_path / "lac_small")


def test_the_bundled_lac_vectors_cover_cjk_punctuation_and_full_width_forms():
    source = lac_source()
    assert source.dim == 128 and len(source.chars) > 15000
    assert all(source.lookup(c) is not None for c in "，。、：；！？（）“”《》Ａａ１张北京")


def test_word2vec_text_with_and_without_header(tmp_path):
    (tmp_path / "h.vec").write_text("3 2\n张 1 2\n北 3 4\n北京 5 6\n", encoding="utf-8")
    (tmp_path / "n.vec").write_text("张 1 2 \n北 3 4\n", encoding="utf-8")  # trailing space, no header
    with_header = read_word2vec(tmp_path / "h.vec")
    assert with_header.dim == 2 and with_header.chars == "北张"
    assert np.array_equal(with_header.lookup("北京"), [5, 6])
    assert np.array_equal(read_word2vec(tmp_path / "n.vec").lookup("张"), [1, 2])
    only_chars = read_word2vec(tmp_path / "h.vec", keep=lambda entry: len(entry) == 1)
    assert only_chars.lookup("北京") is None and only_chars.sha256 == with_header.sha256


def test_word2vec_binary(tmp_path):
    entries = {"张": [1.5, -2.0, 0.25], "北京": [3.0, 4.0, 5.0]}
    body = b"".join(w.encode() + b" " + np.array(v, "<f4").tobytes() + b"\n" for w, v in entries.items())
    (tmp_path / "b.bin").write_bytes(b"2 3\n" + body)
    source = read_word2vec(tmp_path / "b.bin")
    assert source.dim == 3 and np.array_equal(source.lookup("张"), entries["张"])
    assert np.array_equal(source.lookup("北京"), entries["北京"])
    (tmp_path / "cut.bin").write_bytes(b"2 3\n" + body[:-8])
    with pytest.raises(DistillError, match="entry 2 of 2 is cut short"):
        read_word2vec(tmp_path / "cut.bin")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("张 1 2\n北 3\n", r"bad.vec, line 2: expected a word and 2 numbers, found 1"),
        ("2 2\n张 1 2\n北 x 4\n", r"bad.vec, line 3: '北' has a value that is not a number"),
        ("", "no vectors read"),
    ],
)
def test_malformed_word2vec_names_the_line(tmp_path, text, message):
    (tmp_path / "bad.vec").write_text(text, encoding="utf-8")
    with pytest.raises(DistillError, match=message):
        read_word2vec(tmp_path / "bad.vec")


def _source(vectors: dict[str, list[float]]) -> VectorSource:
    table = {k: np.array(v, np.float32) for k, v in vectors.items()}
    return VectorSource("test", len(next(iter(table.values()))), table.get, "0" * 64, "")


def test_initial_table_projects_wider_vectors_onto_their_principal_components():
    rng = np.random.default_rng(0)
    direction = rng.standard_normal(6)
    vectors = {c: list(direction * (i - 2) + 0.01 * rng.standard_normal(6)) for i, c in enumerate("abcde")}
    table = initial_table(["a", "b", "x", "c", "d", "e"], _source(vectors), 2, rng)
    weights = table.weights
    assert table.found == 5 and weights.shape == (8, 2) and np.all(weights[0] == 0)
    known = weights[[2, 3, 5, 6, 7], 0]  # along the main direction the five keep their order and spacing
    assert np.allclose(np.diff(known) / np.diff(known).mean(), 1, atol=0.05)
    assert np.abs(weights[[2, 3, 5, 6, 7], 1]).max() < 0.1 * np.abs(known).max()
    assert weights[[2, 3, 5, 6, 7]].std() == pytest.approx(1, abs=1e-3)


def test_initial_table_fills_the_first_columns_of_a_wider_embedding():
    table = initial_table(
        ["a", "b", "c"], _source({"a": [1, 0], "b": [0, 1], "c": [-1, -1]}), 4, np.random.default_rng(0)
    )
    assert np.all(table.weights[2:, 2:] == 0) and table.found == 3
    coverage = table.coverage(_source({"a": [1, 0]}))
    assert coverage == {"source": "test", "sha256": "0" * 64, "found": 3, "entries": 3, "coverage": 1.0}


def test_student_with_word2vec_vectors_records_their_coverage(tiny_teacher, tmp_path):
    from distill.student.config import StudentTrainConfig
    from distill.student.train import train_student

    (tmp_path / "chars.vec").write_text("".join(f"{c} {i} {i % 3} 1\n" for i, c in enumerate("张三李四北京")), "utf-8")
    (tmp_path / "bigrams.vec").write_text("张三 1 2\n北京 2 1\n", encoding="utf-8")
    out = tmp_path / "s"
    train_student(
        StudentTrainConfig(
            out=out,
            cache=tiny_teacher["cache"],
            epochs=1,
            hidden=8,
            embedding_dim=8,
            bigrams=True,
            bigram_dim=4,
            min_bigram_count=1,
            char_vectors=str(tmp_path / "chars.vec"),
            bigram_vectors=tmp_path / "bigrams.vec",
        )
    )
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["char_vectors"]["found"] == 6 and config["char_vectors"]["source"].endswith("chars.vec")
    assert config["bigram_vectors"]["found"] == 2 and len(config["bigram_vectors"]["sha256"]) == 64
    without = {"bigrams": False, "bigram_vectors": tmp_path / "bigrams.vec"}
    with pytest.raises(DistillError, match="needs --bigrams"):
        train_student(StudentTrainConfig(out=tmp_path / "t", cache=tiny_teacher["cache"], **without))


def test_a_student_started_from_lac_predicts_without_reading_lac(tiny_teacher, tmp_path):
    from distill.student.config import StudentTrainConfig
    from distill.student.train import train_student

    out = tmp_path / "s"
    train_student(
        StudentTrainConfig(
            out=out, cache=tiny_teacher["cache"], epochs=2, hidden=8, embedding_dim=16, char_vectors="lac"
        )
    )
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["char_vectors"]["source"] == "lac" and config["char_vectors"]["found"] > 15000
    code = (
        "import sys\n"
        "def refuse(event, args):\n"
        "    if event == 'open' and 'lac_small' in str(args[0]):\n"
        "        raise RuntimeError('read ' + str(args[0]))\n"
        "sys.addaudithook(refuse)\n"
        "from distill.cli import cli\n"
        f"cli.main(['predict', {str(out)!r}, '张三在北京工作。'], standalone_mode=False)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["text"] == "张三在北京工作。"


def test_bigram_vectors_learnt_from_text_start_the_students_bigrams(tiny_teacher, tmp_path):
    from distill.student.bigram_vectors import record_path
    from distill.student.config import StudentTrainConfig
    from distill.student.features import END
    from distill.student.train import train_student

    def learn(out: Path, hash_seed: str) -> Path:
        args = ["bigram-vectors", "--data", str(tiny_teacher["data"]), "--unlabeled", str(tiny_teacher["raw"])]
        args += ["--dim", "4", "--epochs", "2", "--out", str(out)]
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-m", "distill", *args], check=True, capture_output=True, env=env)
        return out

    # one thread: the same file from every process, whatever its string hashes
    first, again = learn(tmp_path / "a" / "bigrams.bin", "1"), learn(tmp_path / "b" / "bigrams.bin", "2")
    assert first.read_bytes() == again.read_bytes()
    record = json.loads(record_path(first).read_text(encoding="utf-8"))
    source = read_word2vec(first)
    assert source.dim == 4 and record["bigrams"] > 10 and record["training"]["dim"] == 4
    assert source.lookup("北京") is not None and source.lookup("。" + END) is not None  # the student's own bigrams

    out = tmp_path / "s"
    settings = {"epochs": 1, "hidden": 8, "embedding_dim": 8, "bigram_dim": 4, "char_vectors": "none"}
    train_student(StudentTrainConfig(out=out, cache=tiny_teacher["cache"], bigram_vectors=first, **settings))
    coverage = json.loads((out / "config.json").read_text(encoding="utf-8"))["bigram_vectors"]
    assert coverage["sha256"] == source.sha256 and coverage["found"] > 0.8 * coverage["entries"]


def test_bigram_vectors_need_text(tmp_path):
    from distill.student.bigram_vectors import train_bigram_vectors
    from distill.student.config import BigramVectorsConfig

    with pytest.raises(DistillError, match="nothing to learn bigram vectors from"):
        train_bigram_vectors(BigramVectorsConfig(out=tmp_path / "b.bin"))
    (tmp_path / "once.txt").write_text("一二三四\n", encoding="utf-8")
    with pytest.raises(DistillError, match="lower --min-count"):
        train_bigram_vectors(BigramVectorsConfig(out=tmp_path / "b.bin", unlabeled=[str(tmp_path / "once.txt")]))
