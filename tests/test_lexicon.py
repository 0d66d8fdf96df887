"""SoftLexicon features: the dictionary reader, the B/M/E/S weights against a hand computation, the
network's word-set vectors against a loop, and a student trained with them served without jieba."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from distill.errors import DistillError
from distill.student import lexicon as lexicon_module
from distill.student.config import StudentTrainConfig
from distill.student.features import Featurizer
from distill.student.lexicon import MAX_WORD, OFFSETS, Lexicon
from distill.student.model import Architecture, BiLstmCrf, Student, word_sets
from distill.student.train import train_student

B, M, E, S = range(4)


def codes(*texts: str) -> tuple[np.ndarray, np.ndarray]:
    joined = "".join(texts)
    return np.array([ord(c) for c in joined], dtype=np.int64), np.array([len(t) for t in texts])


@pytest.fixture
def small(tmp_path) -> Lexicon:
    path = tmp_path / "dict.txt"
    path.write_text("北京 10 ns\n北京大学 20 nt\n大学 10 n\n北 5\n京 0\n中华人民共和国 99 ns\n", encoding="utf-8")
    return Lexicon.read(path)


def test_reader_keeps_words_of_at_most_four_characters_with_a_frequency(small):
    assert len(small.keys) == 4  # 京 (frequency 0) and the seven-character word are left out
    assert len(small.sha256) == 64


def test_a_malformed_dictionary_line_is_named(tmp_path):
    path = tmp_path / "dict.txt"
    path.write_text("北京 10 ns\n大学 many\n", encoding="utf-8")
    with pytest.raises(DistillError, match=r"dict\.txt, line 2: expected 'word frequency \[tag\]'"):
        Lexicon.read(path)


def test_weights_by_hand(small):
    weights = small.weights(*codes("北京大学"))  # [4, SETS, OFFSETS]
    at = MAX_WORD - 1  # offset 0
    z = 10 + 20 + 5  # 北's words: 北京, 北京大学 (B) and 北 (S)
    expected = np.zeros((4, OFFSETS))
    expected[B, at : at + 2] = 10 / 2  # 北京: half to 北, half to 京
    expected[B, at : at + 4] += 20 / 4  # 北京大学: a quarter to each of its characters
    expected[S, at] = 5
    np.testing.assert_allclose(weights[0], expected * 4 / z, rtol=1e-6)
    z = 10 + 20  # 京: ends 北京, inside 北京大学
    expected = np.zeros((4, OFFSETS))
    expected[E, at - 1 : at + 1] = 10 / 2
    expected[M, at - 1 : at + 3] = 20 / 4
    np.testing.assert_allclose(weights[1], expected * 4 / z, rtol=1e-6)
    assert np.allclose(weights.sum(axis=(1, 2)), 4)  # every character is in some word


def test_words_never_span_two_texts_and_unmatched_characters_get_nothing(small):
    weights = small.weights(*codes("北", "京", "我"))
    assert np.allclose(weights[0].sum(), 4) and weights[0, S].sum() == pytest.approx(4)
    assert not weights[1:].any()


def test_long_words_have_distinct_keys():
    words = ["北京大学", "北京大写", "京北大学", "北京大"]
    keys = [int(lexicon_module.word_keys(codes(w)[0], len(w))[0]) for w in words]
    assert len(set(keys)) == len(words)


def test_word_sets_equal_a_loop_over_offsets():
    torch.manual_seed(0)
    characters = torch.randn(2, 5, 3)  # [B, T, E]
    weights = torch.rand(2, 5, 4, OFFSETS)
    got = word_sets(characters, weights).view(2, 5, 4, 3)
    expected = torch.zeros(2, 5, 4, 3)
    for b, t, s, o in np.ndindex(2, 5, 4, OFFSETS):
        source = t + o - (MAX_WORD - 1)
        if 0 <= source < 5:
            expected[b, t, s] += weights[b, t, s, o] * characters[b, source]
    torch.testing.assert_close(got, expected)


def test_exported_student_with_a_lexicon_matches_pytorch(small, tmp_path):
    from distill.student.export import export_onnx
    from distill.student.onnx_runtime import OnnxStudent

    torch.manual_seed(1)
    labels = ["O", "B-X", "I-X"]
    featurizer = Featurizer.build(["北京大学在北京", "大学"], use_bigrams=True, min_bigram_count=1, lexicon=small)
    arch = Architecture(8, 6, 1, 0.0, 4, 3, 5)
    net = BiLstmCrf(arch, featurizer.num_chars, featurizer.num_bigrams, False, labels, use_lexicon=True)
    Student(net.eval(), featurizer, labels, {}).save(tmp_path)
    export_onnx(tmp_path)  # refuses a graph whose emissions differ from PyTorch's on ragged input
    texts = ["北京大学", "我在北京", "大学北京大学北京"]
    emissions, _ = Student.load(tmp_path).emissions(texts)
    onnx_emissions, lengths = OnnxStudent(tmp_path).emissions(texts)
    for row, length in enumerate(lengths):
        torch.testing.assert_close(torch.from_numpy(onnx_emissions[row, :length]), emissions[row, :length])


def test_a_student_with_a_lexicon_trains_and_predicts_without_jiebas_dictionary(tiny_teacher, tmp_path, monkeypatch):
    from distill.student.export import export_onnx
    from distill.student.onnx_runtime import OnnxStudent

    out = tmp_path / "s"
    settings = {"epochs": 2, "hidden": 16, "embedding_dim": 16, "batch_size": 8, "char_vectors": "none"}
    train_student(StudentTrainConfig(out=out, cache=tiny_teacher["cache"], lexicon=True, lexicon_dim=8, **settings))
    config = json.loads((out / "config.json").read_text())
    assert config["features"]["lexicon"]["words"] > 300_000

    def gone():
        raise AssertionError("jieba's dictionary was read after training")

    monkeypatch.setattr(lexicon_module, "jieba_dictionary", gone)
    texts = ["张三在北京大学工作", "李四"]
    expected = Student.load(out).tag_ids(texts)
    export_onnx(out)
    assert OnnxStudent(out).tag_ids(texts) == expected
