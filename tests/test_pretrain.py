"""Masked-character pretraining of a backbone (``distill teacher-pretrain``) on a tiny BERT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from distill.artifacts import load_tensors
from distill.data import load_dataset
from distill.errors import DistillError
from distill.teacher.pretrain import IGNORED, RECORD, Masker, PretrainConfig, corpus_texts, pretrain, split_held_out
from distill.teacher.train import TeacherTrainConfig, train_teacher
from tests.conftest import PRECISION, TINY_TRAINING
from tests.tiny import tiny_backbone, tiny_corpus

EMBEDDING = "embeddings.word_embeddings.weight"
TINY_PRETRAINING = {
    "epochs": 6,
    "batch_size": 8,
    "lr": 1e-3,
    "head_lr": 1e-2,
    "max_len": 20,
    "held_out": 10,
    "precision": PRECISION,
    "device": "cpu",
}
"""Settings that learn the tiny corpus's characters in seconds (the tiny BERT reads 22 positions)."""


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pretrain")
    backbone = tiny_backbone(root / "backbone", mask=True)
    data = tiny_corpus(root / "data", n_train=80)
    raw = root / "raw.txt"
    raw.write_text("\n".join(s.text for s in load_dataset(data).sentences("train")) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    record = pretrain(PretrainConfig(out=root / "out", unlabeled=[str(raw)], model=str(backbone), **TINY_PRETRAINING))
    return {"root": root, "backbone": backbone, "data": data, "raw": raw, "out": root / "out", "record": record}


def test_pretraining_learns_the_masked_characters_and_writes_a_full_backbone(pretrained):
    out, record = pretrained["out"], pretrained["record"]
    assert {"config.json", "model.safetensors", "tokenizer.json", RECORD, "pretrain_log.jsonl"} <= {
        p.name for p in out.iterdir()
    }
    assert not (out / "checkpoint").exists()
    assert json.loads((out / RECORD).read_text()) == record and record["training_complete"]
    held = [epoch["held_out"] for epoch in record["epochs"]]
    assert [epoch["epoch"] for epoch in record["epochs"]] == list(range(1, 7))
    assert held[-1]["loss"] < held[0]["loss"] - 0.1 and all(h["predicted"] > 0 for h in held)
    assert record["corpus"]["held_out_sentences"] == 10 and record["corpus"]["sentences"] == 70

    before, after = load_tensors(pretrained["backbone"] / "model.safetensors"), load_tensors(out / "model.safetensors")
    assert after[EMBEDDING].shape == before[EMBEDDING].shape  # the whole vocabulary again
    vocab = json.loads((pretrained["backbone"] / "tokenizer.json").read_text())["model"]["vocab"]
    row = {piece: i for i, (piece, _) in enumerate(vocab)}
    seen, unseen = [row[c] for c in [*"张北公在", "<mask>"]], [row[c] for c in "abc123"]
    assert not np.allclose(after[EMBEDDING][seen], before[EMBEDDING][seen], atol=0, rtol=0)
    np.testing.assert_array_equal(after[EMBEDDING][unseen], before[EMBEDDING][unseen])
    layer = "encoder.layer.0.attention.self.query.weight"
    assert not np.array_equal(after[layer], before[layer])


def test_teacher_train_fine_tunes_a_pretrained_backbone(pretrained, tmp_path):
    settings = {**TINY_TRAINING, "epochs": 2, "data": str(pretrained["data"]), "model": str(pretrained["out"])}
    metrics = train_teacher(TeacherTrainConfig(out=tmp_path / "teacher", **settings))
    config = json.loads((tmp_path / "teacher" / "config.json").read_text())
    assert config["backbone"] == str(pretrained["out"]) and metrics["epoch"] >= 1 and "test" in metrics


def test_a_finished_run_is_kept_unless_resumed_or_overwritten(pretrained):
    cfg = PretrainConfig(
        out=pretrained["out"], unlabeled=[str(pretrained["raw"])], model=str(pretrained["backbone"]), **TINY_PRETRAINING
    )
    with pytest.raises(DistillError, match="already holds a training run"):
        pretrain(cfg)
    cfg.resume = True
    assert pretrain(cfg) == pretrained["record"]


def test_refusals_say_what_is_missing(pretrained, tmp_path, monkeypatch):
    with pytest.raises(DistillError, match="nothing to pretrain on"):
        pretrain(PretrainConfig(out=tmp_path / "a", model=str(pretrained["backbone"]), **TINY_PRETRAINING))
    no_mask = tiny_backbone(tmp_path / "no-mask")
    with pytest.raises(DistillError, match="no mask token"):
        pretrain(PretrainConfig(out=tmp_path / "b", unlabeled=[str(pretrained["raw"])], model=str(no_mask)))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DistillError, match="without torchrun"):
        pretrain(PretrainConfig(out=tmp_path / "c", unlabeled=[str(pretrained["raw"])], model=str(no_mask)))


def test_masker_predicts_characters_only_and_corrupts_them_80_10_10():
    specials = {"cls": 0, "sep": 2, "pad": 1, "unk": 3}
    char_rows = torch.arange(4, 40)
    masker = Masker(specials, mask_row=40, char_rows=char_rows, rate=0.5)
    lengths = torch.randint(1, 30, (200,), generator=torch.Generator().manual_seed(1))
    input_ids = torch.full((200, 32), specials["pad"])
    attention = torch.zeros((200, 32), dtype=torch.long)
    for p, n in enumerate(lengths.tolist()):
        input_ids[p, 0], input_ids[p, 1 : n + 1], input_ids[p, n + 1] = 0, torch.randint(4, 40, (n,)), 2
        attention[p, : n + 2] = 1
    corrupted, targets = masker(input_ids, attention, torch.Generator().manual_seed(2))

    chosen = targets != IGNORED
    characters = attention.bool() & (input_ids > 3)
    assert not (chosen & ~characters).any()  # never CLS, SEP or padding
    assert abs(chosen.sum() / characters.sum() - 0.5) < 0.03
    assert torch.equal(targets[chosen], input_ids[chosen])
    assert torch.equal(corrupted[~chosen], input_ids[~chosen])
    masked = (corrupted[chosen] == 40).float().mean()
    kept = (corrupted[chosen] == input_ids[chosen]).float().mean()  # includes random draws of the same row
    assert abs(masked - 0.8) < 0.03 and 0.09 < kept < 0.13
    assert ((corrupted[chosen] >= 4) & (corrupted[chosen] <= 40)).all()

    none = Masker(specials, mask_row=40, char_rows=char_rows, rate=0.0)
    _, targets = none(input_ids[:1], attention[:1], torch.Generator().manual_seed(3))
    assert (targets != IGNORED).sum() == 1  # a batch that draws nothing still predicts one character


def test_held_out_sentences_are_spread_over_the_corpus():
    texts = [f"s{i}" for i in range(100)]
    train, held = split_held_out(texts, 10)
    assert held == [f"s{i}" for i in range(9, 100, 10)] and len(train) == 90 and not set(train) & set(held)
    assert split_held_out(texts[:15], 10) == (texts[:15], [])  # too few to spare


def test_the_corpus_is_the_raw_text_then_a_datasets_training_text_cut_to_max_len(pretrained, tmp_path):
    cfg = PretrainConfig(out=tmp_path, unlabeled=[str(pretrained["raw"])], data=str(pretrained["data"]), max_len=5)
    texts = corpus_texts(cfg)
    train = [s.text for s in load_dataset(pretrained["data"]).sentences("train")]
    lines = pretrained["raw"].read_text(encoding="utf-8").split()
    assert all(0 < len(t) <= 5 for t in texts)
    assert "".join(texts) == "".join(lines) + "".join(train)  # every character once, in order
    cfg.max_sentences = 7
    assert corpus_texts(cfg) == texts[:7]
