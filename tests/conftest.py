"""Shared fixtures: small files written per test, and the path of the shared datasets."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
PRECISION = "fp32"
"""The tiny teachers compute in float32, whatever bf16 the machine has, so results do not depend on it."""
TINY_TRAINING = {
    "epochs": 6,
    "batch_size": 8,
    "lr": 1e-3,
    "head_lr": 1e-2,
    "window": 10,
    "overlap": 4,
    "patience": 6,
    "precision": PRECISION,
}
"""Teacher settings that learn the tiny corpus in seconds."""


def import_script(path: Path) -> ModuleType:
    """A script outside the package (benchmarks/, docs/) as a module; it may import its siblings by name."""
    sys.path.insert(0, str(path.parent))
    try:
        return importlib.import_module(path.stem)
    finally:
        sys.path.remove(str(path.parent))


def cli_options(**settings: object) -> list[str]:
    """``{"batch_size": 4}`` -> ``["--batch-size", "4"]``: settings as command-line options."""
    return [part for key, value in settings.items() for part in (f"--{key.replace('_', '-')}", str(value))]


def predicted_lines(result, texts: list[str]) -> list[dict]:
    """The JSON lines of a ``distill predict`` run over ``texts``, checked: one line per text, in
    order, each entity's offsets spanning its own text in the original string and its confidence a
    probability; returned with the confidences taken out."""
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["text"] for line in lines] == texts
    for line in lines:
        for entity in line["entities"]:
            assert line["text"][entity["start"] : entity["end"]] == entity["text"]
            assert entity["end"] > entity["start"]
            assert 0 < entity.pop("confidence") <= 1
    return lines


SHARED_DATA = Path(os.environ.get("DISTILL_SHARED_DATA", REPO.parent / "shared" / "data"))


def needs_shared_data(*parts: str) -> Path:
    """The path under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (shared datasets live beside the clone; set DISTILL_SHARED_DATA)")
    return path


@pytest.fixture
def write(tmp_path: Path):
    """write(name, text_or_bytes) -> path of a new file under tmp_path."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode("utf-8")
        path.write_bytes(content)
        return path

    return _write


@pytest.fixture(scope="session")
def tiny_teacher(tmp_path_factory) -> dict[str, Path]:
    """A tiny BERT-CRF teacher trained on a tiny corpus, with a cache over it and some raw text."""
    import torch

    from distill.teacher.cache import CacheConfig, build_cache
    from distill.teacher.train import TeacherTrainConfig, train_teacher
    from tests.tiny import tiny_backbone, tiny_corpus

    root = tmp_path_factory.mktemp("tiny")
    backbone = tiny_backbone(root / "backbone")
    data = tiny_corpus(root / "data")
    raw = root / "raw.txt"
    raw.write_text("张三在北京工作。李四是公司的人！\n王五和张三在上海大学学习。\n" * 3, encoding="utf-8")
    torch.manual_seed(0)
    train_teacher(
        TeacherTrainConfig(
            out=root / "teacher", data=str(data), model=str(backbone), unlabeled=[str(raw)], **TINY_TRAINING
        )
    )
    build_cache(
        CacheConfig(
            precision=PRECISION,
            teacher=root / "teacher",
            out=root / "cache",
            data=str(data),
            unlabeled=[str(raw)],
            shard_size=32,
        )
    )
    return {
        "root": root,
        "backbone": backbone,
        "data": data,
        "raw": raw,
        "teacher": root / "teacher",
        "cache": root / "cache",
    }
