"""The teacher on a tiny locally built BERT: training, saving, loading, windows, cache, DDP."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from distill.artifacts import fingerprint, write_config
from distill.cache import load_cache, read_index
from distill.cli import cli
from distill.data import load_dataset
from distill.errors import DistillError
from distill.teacher import model as teacher_model
from distill.teacher.cache import CacheConfig, build_cache
from distill.teacher.model import Teacher, bf16_faster, native_bf16, use_bf16
from distill.teacher.train import TeacherTrainConfig, param_groups, train_teacher
from distill.teacher.windows import plan_windows
from distill.training import Processes
from tests.conftest import PRECISION, cli_options, predicted_lines
from tests.conftest import TINY_TRAINING as FAST


@pytest.fixture(scope="module")
def workspace(tiny_teacher) -> dict[str, Path]:
    return tiny_teacher


def tiny_cache_config(workspace: dict[str, Path], out: Path, **settings: object) -> CacheConfig:
    """A cache of the tiny teacher over the tiny corpus, float32, 16 sentences a shard, unless
    ``settings`` say otherwise."""
    defaults = {
        "precision": PRECISION,
        "teacher": workspace["teacher"],
        "data": str(workspace["data"]),
        "shard_size": 16,
    }
    return CacheConfig(out=out, **{**defaults, **settings})


def run_two_processes(port: int, *arguments: str) -> None:
    """``distill ARGUMENTS`` under torchrun in two CPU processes of one thread each; it must succeed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]
    result = subprocess.run(
        [*torchrun, "-m", "distill", *arguments, "--device", "cpu"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_training_writes_a_complete_directory_that_learned(workspace):
    teacher_dir = workspace["teacher"]
    names = {p.name for p in teacher_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "train_log.jsonl"} <= names
    config = json.loads((teacher_dir / "config.json").read_text())
    assert config["kind"] == "teacher" and config["labels"][0] == "O" and config["scheme"] == "bioes"
    assert config["metrics"]["dev_f1"] > 0.8 and config["metrics"]["test"]["overall"]["f1"] > 0.8
    assert config["training"]["epochs"] == FAST["epochs"] and "char_to_id" in config["char_vocab"]
    log = [json.loads(line) for line in (teacher_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, len(log) + 1)) and "dev" in log[0]
    assert not any(p.suffix in (".bin", ".pt", ".pkl") for p in teacher_dir.iterdir())


def test_vocabulary_keeps_the_backbones_single_characters_and_drops_its_longer_pieces(tmp_path):
    from transformers import AutoTokenizer

    from distill.teacher.charmap import build_char_vocab
    from tests.tiny import tiny_backbone

    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone(tmp_path / "backbone", pieces=("北京", "工作")))
    vocab, unknown = build_char_vocab(["张三在北京。龘"], tokenizer)
    assert unknown == {"龘": 1}
    assert vocab.encode("他了abc") != [vocab.unk] * 5  # never in the corpus, but the backbone has rows
    assert vocab.encode("龘") == [vocab.unk]
    kept = {tokenizer.convert_ids_to_tokens(i) for i in vocab.backbone_ids}
    assert "北京" not in kept and "工作" not in kept and {"张", "三", "他"} <= kept
    assert vocab.backbone_ids[: len(vocab.specials)] == [  # the specials, then the corpus's characters
        tokenizer.cls_token_id,
        tokenizer.sep_token_id,
        tokenizer.pad_token_id,
        tokenizer.unk_token_id,
    ]


def test_loaded_teacher_tags_like_the_saved_one(workspace):
    teacher = Teacher.load(workspace["teacher"])
    again = Teacher.load(workspace["teacher"])
    texts = ["张三在北京工作", "李四是公司的人"]
    emissions, _ = teacher.emissions(texts)
    torch.testing.assert_close(emissions, again.emissions(texts)[0])
    assert teacher.tag_ids(texts) == again.tag_ids(texts)


def test_layer_wise_learning_rates_fall_from_the_top_layer_to_the_embeddings(workspace):
    net = Teacher.load(workspace["teacher"]).net
    layers = net.encoder.config.num_hidden_layers
    groups = param_groups(net, lr=1e-3, head_lr=1e-2, weight_decay=0.1, layer_lr_decay=0.5)
    rate, weight_decay = {}, {}
    for group in groups:
        for param in group["params"]:
            rate[id(param)], weight_decay[id(param)] = group["lr"], group["weight_decay"]
    named = dict(net.named_parameters())
    assert len(rate) == len(named) == sum(len(g["params"]) for g in groups)  # every parameter, once
    expected_depth = {"embeddings.": 0, **{f"encoder.layer.{i}.": i + 1 for i in range(layers)}}
    for name, param in named.items():
        if name.startswith("encoder."):
            depth = next(d for prefix, d in expected_depth.items() if name[len("encoder.") :].startswith(prefix))
            assert rate[id(param)] == pytest.approx(1e-3 * 0.5 ** (layers - depth)), name
        else:
            assert rate[id(param)] == 1e-2, name
        no_decay = name.endswith("bias") or "LayerNorm" in name or name.startswith("crf.")
        assert weight_decay[id(param)] == (0.0 if no_decay else 0.1), name
    single_rate = param_groups(net, 1e-3, TeacherTrainConfig.head_lr, TeacherTrainConfig.weight_decay)
    assert {g["lr"] for g in single_rate} == {1e-3, TeacherTrainConfig.head_lr}


def test_training_continues_from_a_saved_teacher(workspace, tmp_path):
    start = Teacher.load(workspace["teacher"])
    data = str(workspace["data"])
    # No learning rate: what comes out is where it started, so it did start from the teacher.
    still = {**FAST, "epochs": 1, "lr": 0.0, "head_lr": 0.0}
    train_teacher(TeacherTrainConfig(out=tmp_path / "same", data=data, init_from=workspace["teacher"], **still))
    same = Teacher.load(tmp_path / "same")
    for name, value in start.net.state_dict().items():
        torch.testing.assert_close(same.net.state_dict()[name], value)
    assert same.vocab == start.vocab and same.window == start.window
    record = same.config["initialised_from"]
    assert record == {"path": str(workspace["teacher"]), "fingerprint": fingerprint(start.config)}
    # With one, it learns on from there, and the result loads and tags like any teacher.
    train_teacher(
        TeacherTrainConfig(out=tmp_path / "more", data=data, init_from=workspace["teacher"], **{**FAST, "epochs": 1})
    )
    more = Teacher.load(tmp_path / "more")
    assert more.config["metrics"]["test"]["overall"]["f1"] > 0.8
    assert not torch.equal(more.net.classifier.weight, start.net.classifier.weight)
    bio = {**FAST, "scheme": "bio"}
    with pytest.raises(DistillError, match="its own label set"):
        train_teacher(TeacherTrainConfig(out=tmp_path / "bio", data=data, init_from=workspace["teacher"], **bio))
    both = ["--init-from", str(workspace["teacher"]), "--model", "bert-base-chinese"]
    result = CliRunner().invoke(cli, ["teacher-train", "--data", data, *both, "--out", str(tmp_path / "both")])
    assert result.exit_code == 1 and "give one" in result.output


def test_training_starts_from_another_teachers_encoder_for_other_labels(workspace, tmp_path):

    donor = Teacher.load(workspace["teacher"])
    data = tmp_path / "data"  # the tiny corpus with LOC renamed PLACE, and characters the donor never saw
    data.mkdir()
    for split in ("train", "dev", "test"):
        text = (workspace["data"] / f"{split}.txt").read_text(encoding="utf-8").replace("-LOC", "-PLACE")
        (data / f"{split}.txt").write_text(text + "他\tO\n了\tO\n\n", encoding="utf-8")
    still = {**FAST, "epochs": 1, "lr": 0.0, "head_lr": 0.0}  # no learning: the start is what comes out
    train_teacher(TeacherTrainConfig(out=tmp_path / "t", data=str(data), encoder_from=workspace["teacher"], **still))
    new = Teacher.load(tmp_path / "t")
    assert "B-PLACE" in new.labels and new.labels != donor.labels
    assert new.config["encoder_from"] == {"path": str(workspace["teacher"]), "fingerprint": fingerprint(donor.config)}
    assert new.config["backbone"] == donor.config["backbone"]
    embedding = new.input_embedding_name()
    ours, theirs = new.net.state_dict(), donor.net.state_dict()
    for name, value in theirs.items():
        if name.startswith("encoder.") and name != embedding:
            torch.testing.assert_close(ours[name], value, msg=name)
    for char in "张北在工他了":  # rows the donor trained, and rows it kept from the backbone for text it never saw
        torch.testing.assert_close(
            ours[embedding][new.vocab.char_to_id[char]], theirs[embedding][donor.vocab.char_to_id[char]]
        )
    for clash in (["--model", "bert-base-chinese"], ["--init-from", str(workspace["teacher"])]):
        options = ["--data", str(data), "--encoder-from", str(workspace["teacher"]), *clash]
        result = CliRunner().invoke(cli, ["teacher-train", *options, "--out", str(tmp_path / "clash")])
        assert result.exit_code == 1 and "give one" in result.output, result.output


def test_plan_windows_keep_every_character_once():
    for length in range(1, 40):
        for width, overlap in ((5, 2), (8, 3), (10, 0)):
            windows = plan_windows(length, width, overlap)
            kept = [t for w in windows for t in range(w.keep_from, w.keep_to)]
            assert kept == list(range(length))
            assert all(w.end - w.start <= width and w.start <= w.keep_from <= w.keep_to <= w.end for w in windows)


def test_long_input_runs_in_windows_and_matches_short_input_where_windows_cover_it(workspace):
    teacher = Teacher.load(workspace["teacher"])
    long_text = "张三在北京工作李四是公司的人王五和张三在上海大学学习" * 3  # 3x the 10-character window
    batch = teacher.batch([long_text])
    assert batch.input_ids.shape[0] > 1 and batch.input_ids.shape[1] == teacher.window + 2
    emissions, mask = teacher.emissions([long_text])
    assert emissions.shape[1] == len(long_text) and bool(mask.all())
    # The first window's kept characters see exactly what a standalone run of that window sees.
    first = plan_windows(len(long_text), teacher.window, teacher.overlap)[0]
    alone, _ = teacher.emissions([long_text[: first.end]])
    torch.testing.assert_close(emissions[0, : first.keep_to], alone[0, : first.keep_to])
    assert len(teacher.tag_ids([long_text])[0]) == len(long_text)


def test_cache_holds_what_the_teacher_says(workspace, tmp_path):
    out = tmp_path / "cache"
    index = build_cache(tiny_cache_config(workspace, out, unlabeled=[str(workspace["raw"])]))
    assert index["complete"] and index["sentences"] == 60 + 9 and len(index["shards"]) == 5
    assert [s["sentences"] for s in index["sources"]] == [60, 9]
    assert index["last_run"]["chars_per_second"] > 0
    cache = load_cache(out)
    teacher = Teacher.load(workspace["teacher"])
    text = cache.text(3)
    emissions, _ = teacher.emissions([text])
    at = cache.span(3)
    np.testing.assert_allclose(cache.emissions[at], emissions[0].numpy(), atol=2e-2, rtol=1e-2)
    assert cache.viterbi[at].tolist() == teacher.tag_ids([text])[0]
    np.testing.assert_allclose(cache.marginals[at].astype(np.float32).sum(-1), 1.0, atol=1e-2)
    assert cache.labeled(3) and (cache.gold[at] >= 0).all()
    unlabeled = cache.indices("unlabeled")
    assert len(unlabeled) == 9 and (cache.gold[cache.span(unlabeled[0])] == -1).all()


def test_interrupted_cache_resumes_from_complete_shards(workspace, tmp_path):
    out = tmp_path / "cache"
    cfg = tiny_cache_config(workspace, out)
    build_cache(cfg)
    first = (out / "shard-00001.safetensors").read_bytes()
    (out / "shard-00002.safetensors").unlink()  # as if killed before shard 2 was complete
    index = read_index(out)
    index["complete"] = False
    (out / "index.json").write_text(json.dumps(index))
    with pytest.raises(DistillError, match="--resume"):
        build_cache(cfg)
    cfg.resume = True
    index = build_cache(cfg)
    assert index["complete"] and index["last_run"]["computed_chars"] == index["shards"][2]["chars"]
    assert (out / "shard-00001.safetensors").read_bytes() == first
    assert len(load_cache(out)) == 60


def test_cache_from_another_teacher_or_changed_source_is_refused(workspace, tmp_path):
    out = tmp_path / "cache"
    build_cache(tiny_cache_config(workspace, out))
    other = tmp_path / "other-teacher"
    train_teacher(
        TeacherTrainConfig(
            out=other, data=str(workspace["data"]), model=str(workspace["backbone"]), **{**FAST, "epochs": 1}
        )
    )
    with pytest.raises(DistillError, match="built by teacher"):
        build_cache(tiny_cache_config(workspace, out, teacher=other, resume=True))
    changed = tmp_path / "changed"
    changed.mkdir()
    for split in ("train", "dev", "test"):
        (changed / f"{split}.txt").write_text((workspace["data"] / f"{split}.txt").read_text() + "好\tO\n\n")
    with pytest.raises(DistillError, match="other sources"):
        build_cache(tiny_cache_config(workspace, out, data=str(changed), resume=True))


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda index: index["shards"][1].update(file="../other/shard-00001.safetensors"), "lists '../other/"),
        (lambda index: index["shards"].pop(), "holds 3 shard files but index.json lists 2"),
        (lambda index: index["shards"][0].update(sentences=31), "holds 32 sentences"),
        (lambda index: index.update(sentences=index["sentences"] - 1), "records 68 sentences"),
    ],
)
def test_a_tampered_cache_index_is_refused_not_read(tiny_teacher, tmp_path, tamper, message):
    from distill.cache import load_cache

    cache = shutil.copytree(tiny_teacher["cache"], tmp_path / "cache")
    index = json.loads((cache / "index.json").read_text())
    assert len(index["shards"]) == 3 and index["sentences"] == 69
    tamper(index)
    (cache / "index.json").write_text(json.dumps(index))
    with pytest.raises(DistillError, match=re.escape(message)):
        load_cache(cache)


def test_evaluate_and_predict_commands(workspace, monkeypatch, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["evaluate", str(workspace["teacher"]), "--data", str(workspace["data"]), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert (
        scores["kind"] == "teacher"
        and scores["overall"]["f1"] > 0.8
        and set(scores["per_type"]) == {"LOC", "ORG", "PER"}
    )
    table = runner.invoke(cli, ["evaluate", str(workspace["teacher"]), "--data", str(workspace["data"])])
    assert "overall" in table.output and "PER" in table.output
    texts = ["张三在北京工作。  李四是公司的人！", "", "   ", "abc 123 张三"]
    lines = predicted_lines(runner.invoke(cli, ["predict", str(workspace["teacher"]), *texts]), texts)
    assert lines[1]["entities"] == [] and lines[2]["entities"] == []
    assert {"type": "PER", "text": "李四", "start": 10, "end": 12} in lines[0]["entities"]

    from distill.cli import model_commands

    monkeypatch.setattr(model_commands, "PREDICT_CHUNK", 2)  # TEXTS and --input lines over several chunks
    (tmp_path / "texts.txt").write_text("\n".join(texts[1:]) + "\n", encoding="utf-8")
    arguments = ["predict", str(workspace["teacher"]), texts[0], "--input", str(tmp_path / "texts.txt")]
    assert predicted_lines(runner.invoke(cli, arguments), texts) == lines


def test_a_teacher_can_read_the_tokenizers_pieces_and_still_tag_each_character(tmp_path):
    from transformers import AutoTokenizer

    from distill.api import load_model
    from distill.teacher.piecemap import build_piece_vocab
    from tests.tiny import tiny_backbone, tiny_corpus

    # "三在" straddles the end of a name, as real pieces straddle entity edges.
    backbone = tiny_backbone(tmp_path / "backbone", pieces=("北京", "上海", "工作", "三在", "大学"))
    data, out = tiny_corpus(tmp_path / "data"), tmp_path / "teacher"
    arguments = ["--data", str(data), "--model", str(backbone), "--out", str(out), "--input", "pieces"]
    result = CliRunner().invoke(cli, ["teacher-train", *arguments, *cli_options(**FAST)])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["input"] == "pieces" and config["metrics"]["test"]["overall"]["f1"] > 0.8

    teacher = Teacher.load(out)
    text = "张三在北京工作"
    ids, where, segments = teacher.vocab.tokenize(text)
    assert len(ids) < len(text) and where[1] == where[2] != where[0] and where[3] == where[4] != where[5]
    assert segments == [0, 1, 3, 1, 3, 1, 3]  # alone, then first and last of 三在, 北京, 工作
    for odd in ("北京 工作", "龘北京", "。", "<s>北京"):  # a space, an unknown character, one character, a special
        ids, where, segments = teacher.vocab.tokenize(odd)
        assert len(where) == len(segments) == len(odd) and max(where) < len(ids) <= len(odd)
    long_text = "张三在北京工作李四是公司的人王五和张三在上海大学学习" * 3  # windows of 10 characters
    emissions, mask = teacher.emissions([long_text, text])
    assert emissions.shape[1] == len(long_text) and int(mask[1].sum()) == len(text)
    torch.testing.assert_close(emissions[1, : len(text)], Teacher.load(out).emissions([text])[0][0])
    assert [e.text for e in load_model(out).predict([text])[0]] == ["张三", "北京"]

    # A piece the corpora never showed is read character by character.
    tokenizer = AutoTokenizer.from_pretrained(str(backbone))
    vocab, _ = build_piece_vocab(["张三在北京", "工", "作"], tokenizer)
    ids, where, segments = vocab.tokenize("工作")
    assert ids == [vocab.char_to_id["工"], vocab.char_to_id["作"]] and segments == [0, 0]

    with pytest.raises(DistillError, match="reads pieces"):
        train_teacher(TeacherTrainConfig(out=tmp_path / "more", data=str(data), init_from=out, input="chars", **FAST))


def test_ensemble_averages_its_members_and_serves_wherever_a_teacher_does(workspace, tmp_path):
    from distill.api import load_model
    from distill.artifacts import weight_files
    from distill.teacher.ensemble import TeacherEnsemble, build_ensemble, load_teacher

    other = tmp_path / "other"
    torch.manual_seed(1)
    train_teacher(TeacherTrainConfig(out=other, data=str(workspace["data"]), model=str(workspace["backbone"]), **FAST))
    out = tmp_path / "ensemble"
    result = CliRunner().invoke(cli, ["teacher-ensemble", str(workspace["teacher"]), str(other), "--out", str(out)])
    assert result.exit_code == 0, result.output
    members = [Teacher.load(workspace["teacher"]), Teacher.load(other)]
    ensemble = load_teacher(out)
    assert isinstance(ensemble, TeacherEnsemble) and ensemble.labels == members[0].labels
    texts = ["张三在北京工作。", "李四是公司的人"]
    expected = (members[0].emissions(texts)[0] + members[1].emissions(texts)[0]) / 2
    torch.testing.assert_close(ensemble.emissions(texts)[0], expected)
    mean_transitions = (members[0].crf.transitions + members[1].crf.transitions) / 2
    torch.testing.assert_close(ensemble.crf.transitions, mean_transitions)
    assert torch.equal(ensemble.crf.constraint, members[0].crf.constraint)
    assert ensemble.tag_ids(texts) == ensemble.crf.decode(expected, ensemble.emissions(texts)[1])
    assert len(weight_files(out, ensemble.config)) == 2
    # The API, int8 included, and the cache take it as a teacher; the cache knows it from its members.
    sentences, _ = load_dataset(str(workspace["data"])).load("test")
    assert load_model(out).evaluate(sentences).overall.f1 > 0.8
    assert len(load_model(out, runtime="int8").predict(texts)) == 2
    index = build_cache(tiny_cache_config(workspace, tmp_path / "cache", teacher=out))
    assert index["teacher"]["fingerprint"] == fingerprint(ensemble.config) != fingerprint(members[0].config)
    cache = load_cache(tmp_path / "cache")
    at = cache.span(3)
    np.testing.assert_allclose(
        cache.emissions[at], ensemble.emissions([cache.text(3)])[0][0].numpy(), atol=2e-2, rtol=1e-2
    )
    with pytest.raises(DistillError, match="ensemble of teachers"):
        Teacher.load(out)
    relabeled = tmp_path / "relabeled"
    relabeled.mkdir()
    config = json.loads((other / "config.json").read_text())
    write_config(relabeled, {**config, "labels": config["labels"][::-1]})  # sealed: only the labels differ
    with pytest.raises(DistillError, match="one label set"):
        build_ensemble([workspace["teacher"], relabeled], tmp_path / "refused")
    with pytest.raises(DistillError, match="not empty"):
        build_ensemble([workspace["teacher"], other], out)
    with pytest.raises(DistillError, match="at least two"):
        build_ensemble([workspace["teacher"]], tmp_path / "alone")


def test_two_process_ddp_training_matches_single_process_quality(workspace, tmp_path):
    out = tmp_path / "ddp"
    run_two_processes(
        29533,
        "teacher-train",
        "--data",
        str(workspace["data"]),
        "--model",
        str(workspace["backbone"]),
        "--out",
        str(out),
        *cli_options(**{**FAST, "epochs": 10, "batch_size": 4, "patience": 10}),
    )
    config = json.loads((out / "config.json").read_text())
    single = json.loads((workspace["teacher"] / "config.json").read_text())
    assert (
        config["metrics"]["dev_f1"] > 0.8
        and config["metrics"]["test"]["overall"]["f1"] >= single["metrics"]["test"]["overall"]["f1"] - 0.15
    )
    log = (out / "train_log.jsonl").read_text().splitlines()
    assert len(log) == 10  # one writer: rank 0 logs each epoch once


def test_a_process_without_a_gpu_of_its_own_is_refused_with_what_to_do(monkeypatch):
    """torchrun with more processes than GPUs: the process past the last GPU says so, before CUDA
    fails with 'invalid device ordinal' (seen on a one-GPU machine)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DistillError, match=r"has no GPU of its own \(CUDA sees 1\).*--nproc_per_node 1.*--device cpu"):
        Processes(rank=1, world=2, local_rank=1).start("auto")


def test_two_process_cache_writes_the_same_shards(workspace, tmp_path):
    single = tmp_path / "single"
    build_cache(tiny_cache_config(workspace, single, shard_size=8))
    out = tmp_path / "ddp"
    run_two_processes(
        29534,
        "teacher-cache",
        str(workspace["teacher"]),
        "--data",
        str(workspace["data"]),
        "--shard-size",
        "8",
        "--out",
        str(out),
        "--precision",
        PRECISION,
    )
    left, right = load_cache(single), load_cache(out)
    assert read_index(out)["last_run"]["processes"] == 2 and len(read_index(out)["shards"]) == 8
    np.testing.assert_array_equal(left.chars, right.chars)
    np.testing.assert_allclose(left.emissions.astype(np.float32), right.emissions.astype(np.float32), atol=1e-2)


def test_precision_choices():
    cpu = torch.device("cpu")
    assert use_bf16("bf16", cpu) and not use_bf16("fp32", cpu)
    assert use_bf16("auto", cpu) == bf16_faster(cpu)
    assert not bf16_faster(cpu) or native_bf16(cpu)
    assert not native_bf16(torch.device("meta"))
    with pytest.raises(DistillError, match="precision must be one of"):
        use_bf16("fp16", cpu)


@pytest.mark.parametrize(
    ("native", "measured_faster", "expected"), [(False, True, False), (True, False, False), (True, True, True)]
)
def test_auto_precision_needs_native_bf16_that_measures_faster(monkeypatch, native, measured_faster, expected):
    monkeypatch.setattr(teacher_model, "native_bf16", lambda device: native)
    monkeypatch.setattr(teacher_model, "_bf16_faster_on_cpu", lambda: measured_faster)
    assert use_bf16("auto", torch.device("cpu")) is expected


def test_bf16_teacher_trains_caches_and_refuses_a_float32_resume(workspace, tmp_path):
    out = tmp_path / "bf16-teacher"
    settings = {**FAST, "epochs": 2, "precision": "bf16"}
    train_teacher(
        TeacherTrainConfig(out=out, data=str(workspace["data"]), model=str(workspace["backbone"]), **settings)
    )
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["precision"] == "bf16" and config["encoder_arithmetic"] == "bf16"
    teacher = Teacher.load(out, precision="bf16")
    exact = Teacher.load(out)
    assert teacher.bf16 and not exact.bf16
    text = "张三在北京工作"
    low, full = teacher.emissions([text])[0], exact.emissions([text])[0]
    assert low.dtype == full.dtype == torch.float32 and not torch.equal(low, full)
    torch.testing.assert_close(low, full, atol=0.1, rtol=0.05)  # bf16 keeps about 3 significant digits
    cache = tmp_path / "cache"
    cfg = tiny_cache_config(workspace, cache, teacher=out, precision="bf16")
    assert build_cache(cfg)["teacher"]["precision"] == "bf16"
    first = load_cache(cache)
    at = first.span(0)
    np.testing.assert_allclose(
        first.emissions[at], teacher.emissions([first.text(0)])[0][0].numpy(), atol=2e-2, rtol=1e-2
    )
    with pytest.raises(DistillError, match="--precision bf16"):
        build_cache(tiny_cache_config(workspace, cache, teacher=out, precision="fp32"))


def _auto_measures(monkeypatch, bf16_faster_here: bool) -> None:
    """Make ``--precision auto`` choose bf16 (or float32) on this CPU, as its timing would."""
    monkeypatch.setattr(teacher_model, "native_bf16", lambda device: True)
    monkeypatch.setattr(teacher_model, "_bf16_faster_on_cpu", lambda: bf16_faster_here)


def test_resumed_training_keeps_the_arithmetic_auto_chose(workspace, tmp_path, monkeypatch):
    import distill.loop as training_loop

    real_step, calls = training_loop.optimizer_step, {"n": 0}

    def killed_in_epoch_two(*args):
        calls["n"] += 1
        if calls["n"] == 12:  # inside epoch 2 (60 training sentences, batches of 8)
            raise KeyboardInterrupt
        real_step(*args)

    _auto_measures(monkeypatch, True)
    monkeypatch.setattr(training_loop, "optimizer_step", killed_in_epoch_two)
    cfg = TeacherTrainConfig(out=tmp_path / "t", data=str(workspace["data"]), model=str(workspace["backbone"]), **FAST)
    cfg.epochs, cfg.precision, cfg.checkpoint_every = 2, "auto", 2
    with pytest.raises(KeyboardInterrupt):
        train_teacher(cfg)
    stopped = json.loads((tmp_path / "t" / "checkpoint" / "progress.json").read_text())["progress"]
    assert stopped["epoch"] == 2 and stopped["choices"] == {"bf16": True}
    _auto_measures(monkeypatch, False)  # the machine now times float32 faster
    monkeypatch.setattr(training_loop, "optimizer_step", real_step)
    cfg.resume = True
    train_teacher(cfg)
    assert json.loads((tmp_path / "t" / "config.json").read_text())["encoder_arithmetic"] == "bf16"


def test_resumed_cache_keeps_the_arithmetic_auto_chose(workspace, tmp_path, monkeypatch):
    import distill.teacher.cache as teacher_cache

    real_write = teacher_cache.write_shard

    def killed_after_one_shard(directory, number, *args):
        if number == 1:
            raise KeyboardInterrupt
        real_write(directory, number, *args)

    _auto_measures(monkeypatch, True)
    monkeypatch.setattr(teacher_cache, "write_shard", killed_after_one_shard)
    cfg = CacheConfig(precision="auto", teacher=workspace["teacher"], out=tmp_path / "c", data=str(workspace["data"]))
    cfg.shard_size = 16
    with pytest.raises(KeyboardInterrupt):
        build_cache(cfg)
    assert read_index(cfg.out)["teacher"]["precision"] == "bf16" and not read_index(cfg.out)["complete"]
    _auto_measures(monkeypatch, False)
    monkeypatch.setattr(teacher_cache, "write_shard", real_write)
    cfg.resume = True
    index = build_cache(cfg)  # refused as a precision change before: auto timed float32 this time
    assert index["complete"] and index["teacher"]["precision"] == "bf16"


def test_auto_precision_is_timed_once_per_machine_and_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    timings = []

    def timed(result: bool):
        return lambda: timings.append(result) or result

    teacher_model._bf16_faster_on_cpu.cache_clear()
    try:
        monkeypatch.setattr(teacher_model, "_time_bf16_against_fp32", timed(True))
        assert teacher_model._bf16_faster_on_cpu() is True
        teacher_model._bf16_faster_on_cpu.cache_clear()  # a later process on the same machine
        monkeypatch.setattr(teacher_model, "_time_bf16_against_fp32", timed(False))  # would time otherwise now
        assert teacher_model._bf16_faster_on_cpu() is True and timings == [True]
        record = json.loads((tmp_path / "distill" / teacher_model.PRECISION_RECORD).read_text())
        assert list(record.values()) == [True]
    finally:
        teacher_model._bf16_faster_on_cpu.cache_clear()
    cpu = torch.device("cpu")
    assert teacher_model.precision_reason("fp32", cpu, False) == "--precision fp32"
    monkeypatch.setattr(teacher_model, "native_bf16", lambda device: True)
    assert "timed faster than float32" in teacher_model.precision_reason("auto", cpu, True)


def test_a_json_lines_file_given_as_unlabeled_text_is_cached_as_its_texts(tiny_teacher, tmp_path):
    raw = tmp_path / "raw.jsonl"
    lines = [{"id": i, "text": "张三在北京工作。李四在上海。"} for i in range(3)]
    raw.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    out = tmp_path / "cache"
    build_cache(CacheConfig(teacher=tiny_teacher["teacher"], out=out, no_labeled=True, unlabeled=[str(raw)]))
    cache = load_cache(out)
    texts = [cache.text(i) for i in range(len(cache))]
    assert texts == ["张三在北京工作。", "李四在上海。"] * 3
