"""Reproducibility and interruption: seeding picks torch's deterministic kernels; kill
teacher-pretrain, teacher-train, student-train or teacher-cache at any moment (SIGKILL), rerun with
--resume, and get what an uninterrupted run gets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from distill.artifacts import fingerprint, load_tensors, read_config
from distill.errors import DistillError
from distill.training import seed_everything
from tests.conftest import PRECISION, TINY_TRAINING, cli_options

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def distill(*args: str) -> list[str]:
    return [sys.executable, "-m", "distill", *args]


def run_killed_then_resumed(command: list[str], out: Path, marker: str) -> None:
    """Start ``command``, SIGKILL it as soon as ``out/marker`` exists, then rerun it with --resume."""
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not (out / marker).exists():
        assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        assert time.time() < deadline, "the marker never appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    resumed = subprocess.run([*command, "--resume"], env=ENV, capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from epoch" in resumed.stderr + resumed.stdout


def resumed_equals_uninterrupted(base: list[str], tmp_path: Path) -> tuple[Path, Path]:
    """Train once straight through and once killed and resumed; both must end identical."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    subprocess.run(distill(*base, "--out", str(whole)), env=ENV, check=True, capture_output=True)
    run_killed_then_resumed(distill(*base, "--out", str(cut)), cut, "checkpoint/progress.json")
    same_weights(whole, cut)
    assert dev_scores(whole) == dev_scores(cut)
    assert fingerprint(read_config(whole)) == fingerprint(read_config(cut))  # the same model, another folder
    return whole, cut


def same_weights(a: Path, b: Path) -> None:
    left, right = load_tensors(a / "model.safetensors"), load_tensors(b / "model.safetensors")
    assert left.keys() == right.keys()
    for name in left:
        np.testing.assert_array_equal(left[name], right[name], err_msg=name)


def dev_scores(out: Path) -> list[float]:
    return [json.loads(line)["dev"]["f1"] for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_seeding_makes_the_backward_of_indexing_add_in_a_fixed_order_on_two_threads():
    """Without torch's deterministic kernels, the gradient of ``x[index]`` (index_put_ with
    accumulate) on CPU sums duplicates in an order that varies with the threads' timing."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    try:
        torch.set_num_threads(2)
        seed_everything(0)
        x = torch.randn(50, 32, requires_grad=True)
        index, upstream = torch.randint(0, 50, (20000,)), torch.randn(20000, 32)
        grads = []
        for _ in range(5):
            x.grad = None
            x[index].backward(upstream)
            grads.append(x.grad.clone())
        assert all(torch.equal(grads[0], other) for other in grads[1:])
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = fill


def test_killed_teacher_training_resumes_to_the_identical_model(tiny_teacher, tmp_path):
    base = [
        "teacher-train",
        "--data",
        str(tiny_teacher["data"]),
        "--model",
        str(tiny_teacher["backbone"]),
        *cli_options(**{**TINY_TRAINING, "epochs": 3, "batch_size": 4, "patience": 3}),
        "--checkpoint-every",
        "2",
        "--seed",
        "5",
        "--device",
        "cpu",
    ]
    _, cut = resumed_equals_uninterrupted(base, tmp_path)
    assert not (cut / "checkpoint").exists() and json.loads((cut / "config.json").read_text())["training_complete"]


def test_killed_pretraining_resumes_to_the_identical_backbone(tiny_teacher, tmp_path):
    from tests.tiny import tiny_backbone

    backbone = tiny_backbone(tmp_path / "backbone", mask=True)
    raw = tmp_path / "raw.txt"
    raw.write_text(tiny_teacher["raw"].read_text(encoding="utf-8") * 30, encoding="utf-8")
    base = ["teacher-pretrain", "--unlabeled", str(raw), "--model", str(backbone), "--max-len", "20"]
    base += ["--held-out", "10", "--epochs", "2", "--batch-size", "2", "--checkpoint-every", "2", "--device", "cpu"]
    base += ["--precision", PRECISION]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    subprocess.run(distill(*base, "--out", str(whole)), env=ENV, check=True, capture_output=True)
    run_killed_then_resumed(distill(*base, "--out", str(cut)), cut, "checkpoint/progress.json")
    same_weights(whole, cut)
    held = [
        [json.loads(line)["held_out"] for line in (out / "pretrain_log.jsonl").read_text().splitlines()]
        for out in (whole, cut)
    ]
    assert held[0] == held[1] and len(held[0]) == 2
    assert not (cut / "checkpoint").exists() and json.loads((cut / "pretraining.json").read_text())["training_complete"]


@pytest.mark.parametrize("average", [[], ["--ema", "0.9"]], ids=["weights", "weight-average"])
def test_killed_student_training_resumes_to_the_identical_model(tiny_teacher, tmp_path, average):
    base = [
        "student-train",
        *average,
        "--cache",
        str(tiny_teacher["cache"]),
        "--epochs",
        "3",
        "--hidden",
        "16",
        "--embedding-dim",
        "16",
        "--batch-size",
        "4",
        "--checkpoint-every",
        "3",
        "--seed",
        "5",
        "--device",
        "cpu",
    ]
    resumed_equals_uninterrupted(base, tmp_path)


def test_killed_cache_build_resumes_to_identical_shards(tiny_teacher, tmp_path):
    base = [
        "teacher-cache",
        str(tiny_teacher["teacher"]),
        "--data",
        str(tiny_teacher["data"]),
        "--unlabeled",
        str(tiny_teacher["raw"]),
        "--shard-size",
        "4",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        # Not auto, which times bf16 in each process: under load the two builds could choose apart.
        "--precision",
        PRECISION,
    ]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    subprocess.run(distill(*base, "--out", str(whole)), env=ENV, check=True, capture_output=True)
    proc = subprocess.Popen(distill(*base, "--out", str(cut)), env=ENV, stderr=subprocess.DEVNULL)
    while not (cut / "shard-00002.safetensors").exists():
        assert proc.poll() is None, "finished before it could be killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not json.loads((cut / "index.json").read_text())["complete"]
    subprocess.run(distill(*base, "--out", str(cut), "--resume"), env=ENV, check=True, capture_output=True)
    left, right = json.loads((whole / "index.json").read_text()), json.loads((cut / "index.json").read_text())
    assert left["shards"] == right["shards"] and right["complete"]
    for shard in left["shards"]:  # same tensors; the header's key order is not fixed by safetensors
        a, b = load_tensors(whole / shard["file"]), load_tensors(cut / shard["file"])
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_a_nan_loss_stops_training_and_keeps_the_last_good_state(tiny_teacher, tmp_path, monkeypatch):
    import distill.student.train as student_train

    real = student_train._batch_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 25 else loss

    monkeypatch.setattr(student_train, "_batch_loss", poisoned)
    out = tmp_path / "s"
    cfg = student_train.StudentTrainConfig(
        out=out, cache=tiny_teacher["cache"], epochs=5, hidden=8, embedding_dim=8, batch_size=4, checkpoint_every=4
    )
    with pytest.raises(DistillError, match="the loss became nan at epoch 2"):
        student_train.train_student(cfg)
    state = load_tensors(out / "checkpoint" / "state.safetensors")
    assert all(np.isfinite(v).all() for k, v in state.items() if k.startswith("model."))
    assert json.loads((out / "config.json").read_text())["metrics"]["epoch"] == 1  # the best model is kept
    monkeypatch.setattr(student_train, "_batch_loss", real)
    cfg.resume = True
    assert student_train.train_student(cfg)["epoch"] >= 1


def test_a_second_run_into_the_same_directory_is_refused_not_lost(tiny_teacher, tmp_path):
    import distill.student.train as student_train

    cfg = student_train.StudentTrainConfig(
        out=tmp_path / "s", cache=tiny_teacher["cache"], epochs=1, hidden=8, embedding_dim=8
    )
    student_train.train_student(cfg)
    with pytest.raises(DistillError, match="--resume to continue it or --overwrite"):
        student_train.train_student(cfg)
    cfg.resume = True
    assert student_train.train_student(cfg)["epoch"] == 1  # finished: nothing to resume
    cfg.resume, cfg.overwrite = False, True
    student_train.train_student(cfg)


def test_patience_stops_after_stale_epochs_and_zero_never_stops():
    from distill.checkpoint import Progress

    def stops(patience: int, scores: list[float]) -> list[bool]:
        progress, flags = Progress(), []
        for f1 in scores:
            improved, stop = progress.end_epoch(f1, patience)
            if improved:
                progress.best = {"dev_f1": f1}
            flags.append(stop)
        return flags

    scores = [0.5, 0.6, 0.55, 0.58, 0.59, 0.7]
    assert stops(2, scores) == [False, False, False, True, True, False]
    assert stops(0, scores) == [False] * len(scores)


def test_the_kept_epoch_is_the_best_on_dev_or_with_keep_last_the_final_one(tmp_path):
    from distill.checkpoint import Checkpointer, Progress
    from distill.loop import EpochResult, Loop, fit
    from distill.training import JsonlLog, adamw

    scores = [0.5, 0.9, 0.4]  # dev F1 of epochs 1, 2, 3

    def kept(keep_last: bool) -> tuple[list[int], int]:
        """(the epochs saved as they ended, the epoch the run reports as kept)"""
        out = tmp_path / f"keep-last-{keep_last}"
        net = torch.nn.Linear(2, 1)
        optimizer = adamw(net.parameters(), lr=0.1)
        saved: list[int] = []
        loop = Loop(
            "test",
            out,
            len(scores),
            net,
            optimizer,
            Checkpointer(out, net, optimizer),
            JsonlLog(out / "train_log.jsonl"),
            batches=lambda epoch: [None],
            loss=lambda batch, epoch, step: (net(torch.ones(2)).sum(), 1),
            end_epoch=lambda epoch: EpochResult(score=scores[epoch - 1]),
            on_best=lambda progress: saved.append(progress.best["epoch"]),
            keep_last=keep_last,
        )
        return saved, fit(loop, Progress()).best["epoch"]

    assert kept(keep_last=False) == ([1, 2], 2)
    assert kept(keep_last=True) == ([1, 2, 3], 3)
