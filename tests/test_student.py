"""The student: losses against hand computations and a brute-force oracle, training on a tiny
cache, refusals, save/load, and prediction offsets."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from distill.cli import cli
from distill.crf import CRF
from distill.errors import DistillError
from distill.student.config import StudentTrainConfig
from distill.student.features import Featurizer, bigrams, word_positions
from distill.student.losses import emission_kd, hard_nll, marginal_kd, mixed_loss
from distill.student.lstm_pair import reverse_index
from distill.student.model import Architecture, BiLstmCrf, Student
from distill.student.train import train_student
from tests.conftest import cli_options, predicted_lines

TINY = {"epochs": 4, "hidden": 16, "embedding_dim": 16, "batch_size": 8}


def test_emission_kd_by_hand():
    student = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [5.0, 5.0]]])
    teacher = torch.tensor([[[0.0, 1.0], [2.0, 0.0], [9.0, -9.0]]])
    mask = torch.tensor([[True, True, False]])  # the third position is padding and must not count
    temperature = 2.0

    def kl(t, s):
        p, q = F.softmax(torch.tensor(t) / temperature, -1), F.softmax(torch.tensor(s) / temperature, -1)
        return float((p * (p / q).log()).sum())

    expected = temperature**2 * (kl([0.0, 1.0], [1.0, 0.0]) + kl([2.0, 0.0], [0.0, 0.0])) / 2
    assert emission_kd(student, teacher, mask, temperature).item() == pytest.approx(expected, rel=1e-6)


def test_emission_kd_is_zero_for_equal_scores_and_scales_with_t_squared():
    torch.manual_seed(0)
    s, t = torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    mask = torch.ones(2, 5, dtype=torch.bool)
    assert emission_kd(t, t, mask, 3.0).item() == pytest.approx(0.0, abs=1e-6)
    # T^2 keeps the gradient's size comparable across temperatures; at large T, T^2 * KL tends to
    # the squared difference of centred logits over 2K (Hinton et al.), independent of T.
    big = [emission_kd(s, t, mask, temp).item() for temp in (50.0, 100.0)]
    assert big[0] == pytest.approx(big[1], rel=1e-2)
    centred = (s - s.mean(-1, keepdim=True)) - (t - t.mean(-1, keepdim=True))
    assert big[1] == pytest.approx(float((centred**2).sum(-1).mean() / (2 * 4)), rel=2e-2)


def test_mixed_loss_limits():
    hard, soft = torch.tensor(2.0), torch.tensor(10.0)
    assert mixed_loss(hard, soft, 0.5).item() == pytest.approx(6.0)
    assert mixed_loss(hard, None, 1.0).item() == 2.0
    assert mixed_loss(None, soft, 0.0).item() == 10.0


def test_hard_nll_is_per_character_and_skips_unused_sentences():
    torch.manual_seed(1)
    crf = CRF(3)
    emissions, tags = torch.randn(2, 4, 3), torch.randint(0, 3, (2, 4))
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]).bool()
    per_sentence = crf.nll(emissions, tags, mask, reduction="none")
    both = hard_nll(crf, emissions, tags, mask, torch.tensor([True, True]))
    assert both.item() == pytest.approx(per_sentence.sum().item() / 6, rel=1e-6)
    first = hard_nll(crf, emissions, tags, mask, torch.tensor([True, False]))
    assert first.item() == pytest.approx(per_sentence[0].item() / 4, rel=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_marginal_kd_equals_the_brute_force_oracle(seed):
    torch.manual_seed(seed)
    num_tags, steps = 3, 4
    crf = CRF(num_tags)
    for p in crf.parameters():
        torch.nn.init.normal_(p)
    student = torch.randn(2, steps, num_tags)
    teacher = torch.softmax(torch.randn(2, steps, num_tags), -1)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]).bool()
    total, count = 0.0, 0
    for b in range(2):  # the oracle: enumerate every path, with no autograd
        torch.set_grad_enabled(False)
        length = int(mask[b].sum())
        paths = list(itertools.product(range(num_tags), repeat=length))
        scores = []
        for path in paths:
            s = crf.start_transitions[path[0]] + crf.end_transitions[path[-1]]
            s = s + sum(student[b, t, tag] for t, tag in enumerate(path))
            s = s + sum(crf.transitions[a, c] for a, c in itertools.pairwise(path))
            scores.append(s)
        probs = torch.softmax(torch.stack(scores), 0)
        q = torch.zeros(length, num_tags)
        for path, p in zip(paths, probs):
            for t, tag in enumerate(path):
                q[t, tag] += p
        p_t = teacher[b, :length]
        total += float((p_t * (p_t.log() - q.log())).sum())
        count += length
        torch.set_grad_enabled(True)
    loss = marginal_kd(crf, student, teacher, mask)
    assert loss.item() == pytest.approx(total / count, rel=1e-4)
    student.requires_grad_(True)
    marginal_kd(crf, student, teacher, mask).backward()
    assert torch.isfinite(student.grad).all() and student.grad[1, 3].abs().sum() == 0


def test_reverse_index_flips_within_each_length():
    assert reverse_index(torch.tensor([3, 1]), 4).tolist() == [[2, 1, 0, 3], [0, 1, 2, 3]]


def test_padding_never_changes_a_sentences_emissions():
    torch.manual_seed(0)
    featurizer = Featurizer.build(["张三在北京", "李四"], use_bigrams=True, use_jieba=True, min_bigram_count=1)
    net = BiLstmCrf(
        Architecture(8, 6, 2, 0.0, 4, 3), featurizer.num_chars, featurizer.num_bigrams, True, ["O", "B-X", "I-X"]
    )
    student = Student(net, featurizer, ["O", "B-X", "I-X"], {})
    alone, _ = student.emissions(["李四"])
    padded, _ = student.emissions(["张三在北京", "李四"])
    torch.testing.assert_close(padded[1, :2], alone[0])


def test_onnx_export_makes_each_layer_two_lstm_nodes_reading_within_lengths(tmp_path):
    import onnx

    from distill.student.export import export_onnx
    from distill.student.onnx_runtime import OnnxStudent

    torch.manual_seed(1)
    labels = ["O", "B-X", "I-X"]
    corpus = ["张三在北京工作", "李四去上海"]
    featurizer = Featurizer.build(corpus, use_bigrams=True, use_jieba=True, min_bigram_count=1)
    net = BiLstmCrf(Architecture(8, 6, 2, 0.0, 4, 3), featurizer.num_chars, featurizer.num_bigrams, True, labels)
    student = Student(net.eval(), featurizer, labels, {})
    student.save(tmp_path)
    export_onnx(tmp_path)  # refuses a graph whose emissions differ from PyTorch's on ragged input
    for name in ("model.onnx", "model-int8.onnx"):
        ops = [node.op_type for node in onnx.load(tmp_path / name).graph.node]
        assert sum(op in ("LSTM", "DynamicQuantizeLSTM") for op in ops) == 4 and "GatherElements" not in ops
    texts = ["张三在北京工作", "李四", "王五去上海和北京出差了"]
    emissions, _ = student.emissions(texts)
    onnx_emissions, lengths = OnnxStudent(tmp_path).emissions(texts)
    for row, length in enumerate(lengths):
        torch.testing.assert_close(torch.from_numpy(onnx_emissions[row, :length]), emissions[row, :length])


def test_features():
    assert bigrams("北京") == ["北京", "京\x03"]
    assert word_positions("我爱北京天安门") == [4, 4, 1, 3, 1, 2, 3]
    featurizer = Featurizer.build(["ab", "ba", "abc"], use_bigrams=True, min_bigram_count=2)
    assert featurizer.bigram_pairs == "ab" and featurizer.num_bigrams == 3
    encoded = featurizer.encode(["ab", "zzz"])
    assert encoded["chars"].tolist() == [[2, 3, 0], [1, 1, 1]] and encoded["lengths"].tolist() == [2, 3]
    assert Featurizer.from_config(featurizer.to_config()).encode(["ab"])["bigrams"].tolist() == [[2, 1]]


def test_vectorised_encoding_equals_lookups_one_character_at_a_time():
    corpus = ["张三在北京工作。", "😀 李四 abc", "北京北京", "x"]
    featurizer = Featurizer.build(corpus, use_bigrams=True, min_bigram_count=1)
    chars = {c: i + 2 for i, c in enumerate(featurizer.chars)}
    vocabulary = featurizer.bigram_pairs
    pairs = {vocabulary[i : i + 2]: i // 2 + 2 for i in range(0, len(vocabulary), 2)}
    texts = ["北京😀李四", "z", "张三 在上海", "京\x03北"]
    encoded = featurizer.encode(texts)
    for row, text in enumerate(texts):
        assert encoded["chars"][row].tolist() == [chars.get(c, 1) for c in text] + [0] * (6 - len(text))
        assert encoded["bigrams"][row].tolist() == [pairs.get(b, 1) for b in bigrams(text)] + [0] * (6 - len(text))
    empty = Featurizer("", "", False).encode(["北京"])
    assert empty["chars"].tolist() == [[1, 1]] and empty["bigrams"].tolist() == [[1, 1]]


@pytest.fixture(scope="module")
def distilled(tiny_teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("student") / "student"
    torch.manual_seed(0)
    metrics = train_student(
        StudentTrainConfig(out=out, cache=tiny_teacher["cache"], alpha=0.5, temperature=4.0, **TINY)
    )
    return out, metrics


def test_distilled_student_trains_saves_and_records_how(distilled, tiny_teacher):
    out, metrics = distilled
    config = json.loads((out / "config.json").read_text())
    assert (
        config["kind"] == "student"
        and config["distillation"]["alpha"] == 0.5
        and config["distillation"]["kd"] == "emission"
    )
    assert (
        config["distillation"]["teacher"]
        == json.loads((tiny_teacher["cache"] / "index.json").read_text())["teacher"]["fingerprint"]
    )
    assert config["distillation"]["unlabeled_pool"] == 9 and "test" in metrics
    log = (out / "train_log.jsonl").read_text().splitlines()
    assert len(log) == TINY["epochs"] and json.loads(log[0])["sentences"] == 60 + 9
    student, again = Student.load(out), Student.load(out)
    texts = ["张三在北京工作", "李四是公司的人"]
    assert student.tag_ids(texts) == again.tag_ids(texts)


@pytest.mark.parametrize(
    "options",
    [
        {"alpha": 1.0},
        {"alpha": 0.5, "kd": "marginal", "unlabeled_hard": "none"},
        {"alpha": 0.0, "bigrams": True, "jieba": True, "char_vectors": "teacher", "min_bigram_count": 1},
    ],
)
def test_variants_train(tiny_teacher, tmp_path, options):
    metrics = train_student(
        StudentTrainConfig(out=tmp_path / "s", cache=tiny_teacher["cache"], **{**TINY, "epochs": 2, **options})
    )
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert metrics["epoch"] >= 1 and config["distillation"]["alpha"] == options["alpha"]
    if options["alpha"] == 1.0:
        assert config["distillation"]["kd"] is None and config["distillation"]["unlabeled_ratio"] == 0.0
    if options.get("char_vectors"):
        assert config["char_vectors"]["found"] > 20 and config["features"]["jieba"]
        assert config["bigram_vectors"]["source"] == "teacher (characters averaged)"


def test_teacher_vectors_copy_the_teachers_geometry(tiny_teacher, tmp_path):
    from distill.student.vectors import initial_table, teacher_source
    from distill.teacher.ensemble import build_ensemble

    featurizer = Featurizer.build(["张三李四北京上海"])
    source = teacher_source(tiny_teacher["teacher"])
    table = initial_table(featurizer.chars, source, 4, np.random.default_rng(0))
    assert table.found == 8 and table.weights.shape == (featurizer.num_chars, 4) and np.allclose(table.weights[0], 0)
    ensemble = build_ensemble([tiny_teacher["teacher"], tiny_teacher["teacher"]], tmp_path / "ensemble")
    from_ensemble = initial_table(featurizer.chars, teacher_source(tmp_path / "ensemble"), 4, np.random.default_rng(0))
    assert ensemble["ensemble"]["members"][0]["dir"] == "member-0"
    assert np.array_equal(from_ensemble.weights, table.weights)


def test_hard_label_student_needs_no_cache(tiny_teacher, tmp_path):
    metrics = train_student(StudentTrainConfig(out=tmp_path / "s", data=str(tiny_teacher["data"]), alpha=1.0, **TINY))
    assert metrics["epoch"] >= 1
    with pytest.raises(DistillError, match="needs a teacher cache"):
        train_student(StudentTrainConfig(out=tmp_path / "t", data=str(tiny_teacher["data"]), alpha=0.5, **TINY))


def test_cache_with_another_label_set_is_refused(tiny_teacher, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for split in ("train", "dev", "test"):
        (other / f"{split}.txt").write_text("张\tB-NAME\n三\tI-NAME\n\n", encoding="utf-8")
    with pytest.raises(DistillError, match="does not match the cache"):
        train_student(StudentTrainConfig(out=tmp_path / "s", cache=tiny_teacher["cache"], data=str(other), **TINY))


def test_predict_offsets_on_spaces_latin_digits_and_emoji(distilled):
    out, _ = distilled
    texts = ["张三 在 北京。abc 123 😀 李四在上海工作！", "😀😀张三", "   ", "", "x" * 700 + "。张三在北京"]
    lines = predicted_lines(CliRunner().invoke(cli, ["predict", str(out), *texts]), texts)
    assert lines[2]["entities"] == [] and lines[3]["entities"] == []
    from distill.api import load_model

    model = load_model(out)
    entities = [[e.as_dict() for e in row] for row in model.predict(texts)]
    assert all(0 < e.pop("confidence") <= 1 for row in entities for e in row)  # predicted_lines took the CLI's
    assert entities == [line["entities"] for line in lines]
    with pytest.raises(TypeError, match=r"a list of texts, got one string: pass \[text\]"):
        model.predict(texts[0])  # a string is a sequence of characters, each of which would be a text


def test_bf16_runtime_is_for_teachers_only(distilled):
    from distill.api import load_model

    out, _ = distilled
    with pytest.raises(DistillError, match="bf16 runtime is for teachers"):
        load_model(out, runtime="bf16")


def test_int8_runtime_tags_close_to_fp32_without_warnings(distilled):
    import warnings

    from distill.api import load_model

    out, _ = distilled
    texts = ["张三在北京大学工作。", "李四是上海公司的经理"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's deprecation notices would reach every --runtime int8 user
        int8_tags = load_model(out, runtime="int8").tag(texts)
    fp32_tags = load_model(out).tag(texts)
    assert [len(row) for row in int8_tags] == [len(text) for text in texts]
    pairs = [(a, b) for int8_row, fp32_row in zip(int8_tags, fp32_tags) for a, b in zip(int8_row, fp32_row)]
    assert sum(a == b for a, b in pairs) / len(pairs) > 0.5  # quantised weights: close to, not always equal to, fp32


def test_linear_lr_decay_falls_each_epoch(tiny_teacher, tmp_path):
    out = tmp_path / "decayed"
    train_student(StudentTrainConfig(out=out, cache=tiny_teacher["cache"], lr=0.004, **TINY))  # linear: the default
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in log] == pytest.approx([0.004, 0.003, 0.002, 0.001])
    with pytest.raises(DistillError, match="--lr-decay"):
        train_student(StudentTrainConfig(out=tmp_path / "bad", cache=tiny_teacher["cache"], lr_decay="cosine", **TINY))


def test_the_default_keeps_the_final_epoch_and_early_stopping_needs_keep_best(tiny_teacher, tmp_path):
    out = tmp_path / "last"
    options = cli_options(**{**TINY, "cache": tiny_teacher["cache"], "out": out})
    result = CliRunner().invoke(cli, ["student-train", *options])
    assert result.exit_code == 0, result.output
    last_epoch = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()][-1]
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["keep"] == "last"
    assert config["metrics"]["epoch"] == TINY["epochs"] and config["metrics"]["dev_f1"] == last_epoch["dev"]["f1"]
    assert f"epoch {TINY['epochs']} kept, the last: dev F1 {last_epoch['dev']['f1']:.4f}" in result.output
    with pytest.raises(DistillError, match=r"--patience 3 stops early, but --keep last .* add --keep best"):
        StudentTrainConfig(out=tmp_path / "bad", cache=tiny_teacher["cache"], patience=3, **TINY)
    StudentTrainConfig(out=tmp_path / "early", cache=tiny_teacher["cache"], patience=3, keep="best", **TINY)


def test_the_saved_student_is_the_weight_average_updated_every_step(tiny_teacher, tmp_path):
    from distill.artifacts import load_tensors

    settings = {**TINY, "epochs": 2, "cache": tiny_teacher["cache"], "seed": 3}

    def trained(name: str, ema: float) -> dict:
        train_student(StudentTrainConfig(out=tmp_path / name, ema=ema, **settings))
        return load_tensors(tmp_path / name / "model.safetensors")

    plain, tracking, averaged = trained("plain", 0.0), trained("tracking", 1e-9), trained("averaged", 0.9)
    # An average that forgets at once follows the trained weights step by step; a slow one lags them.
    for name in plain:
        np.testing.assert_allclose(tracking[name], plain[name], atol=1e-6, err_msg=name)
    assert any(not np.allclose(averaged[name], plain[name], atol=1e-4) for name in plain)
    assert json.loads((tmp_path / "averaged" / "config.json").read_text())["training"]["ema"] == 0.9
    with pytest.raises(DistillError, match="--ema must lie in"):
        train_student(StudentTrainConfig(out=tmp_path / "bad", ema=1.0, **settings))


def test_min_bigram_count_option_shrinks_the_bigram_table(tiny_teacher, tmp_path):
    def bigram_rows(count: int) -> int:
        out = tmp_path / f"count{count}"
        options = ["--cache", tiny_teacher["cache"], "--out", out, "--bigrams", "--min-bigram-count", count]
        result = CliRunner().invoke(cli, ["student-train", *map(str, options), "--epochs", "1", "--hidden", "8"])
        assert result.exit_code == 0, result.output
        assert json.loads((out / "config.json").read_text())["training"]["min_bigram_count"] == count
        return Student.load(out).featurizer.num_bigrams

    once, thrice = bigram_rows(1), bigram_rows(3)
    assert 2 < thrice < once  # two rows are padding and the shared row of the bigrams left out
    zero = [
        "student-train",
        "--cache",
        str(tiny_teacher["cache"]),
        "--out",
        str(tmp_path / "z"),
        "--min-bigram-count",
        "0",
    ]
    refused = CliRunner().invoke(cli, zero)
    assert refused.exit_code != 0 and "--min-bigram-count" in refused.output


def test_a_second_run_into_the_same_out_is_refused_while_the_first_holds_it(tiny_teacher, tmp_path):
    import subprocess
    import sys

    from distill.checkpoint import lock_run, release_run

    out = tmp_path / "busy"
    lock_run(out)  # as a run in progress holds it
    command = [sys.executable, "-m", "distill", "student-train", "--cache", str(tiny_teacher["cache"]), "--out"]
    second = subprocess.run([*command, str(out), "--epochs", "1"], capture_output=True, text=True, check=False)
    assert second.returncode == 1 and "is in use by another run" in second.stderr
    assert not (out / "train_log.jsonl").exists()
    release_run(out)
    third = subprocess.run(
        [*command, str(out), "--epochs", "1", "--hidden", "8", "--char-vectors", "none"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert third.returncode == 0, third.stderr


def test_long_training_sentences_are_cut_and_too_many_tags_refused(tiny_teacher, tmp_path):
    from distill.student.config import MAX_LEN
    from distill.student.train import _Example, _pieces

    text = ("张三在北京工作。" * 100)[: MAX_LEN * 3 + 5]
    example = _Example(text, np.arange(len(text)), slice(1000, 1000 + len(text)))
    pieces = _pieces(example)
    assert all(len(p.text) <= MAX_LEN for p in pieces) and "".join(p.text for p in pieces) == text
    assert all(p.gold.tolist() == list(range(p.teacher.start - 1000, p.teacher.stop - 1000)) for p in pieces)

    many = tmp_path / "many"
    many.mkdir()
    lines = "".join(f"字\tS-T{i}\n\n" for i in range(1000))
    for split in ("train", "dev", "test"):
        (many / f"{split}.txt").write_text(lines, encoding="utf-8")
    with pytest.raises(DistillError, match=r"4001 tags: a training batch would hold about .* GB"):
        train_student(StudentTrainConfig(out=tmp_path / "s", data=str(many), alpha=1.0, char_vectors="none"))
    assert not (tmp_path / "s" / "train_log.jsonl").exists()
