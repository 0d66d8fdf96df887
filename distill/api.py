"""The Python API: load a teacher or student directory and tag text with it.

This module and ``distill.cli`` are the two places that sit above ``teacher`` and ``student``;
the rest of ``distill`` (the shared core) imports neither.

    >>> from distill.api import load_model
    >>> model = load_model("runs/resume-teacher")
    >>> model.predict(["张三在北京大学工作。"])
    [[Entity(type='NAME', text='张三', start=0, end=2), Entity(type='ORG', text='北京大学', start=3, end=7)]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from data import Sentence

from .artifacts import read_config
from .errors import DistillError
from .metrics import EntityScores
from .predict import Entity, predict_entities

STUDENT_MAX_LEN = 256
"""A BiLSTM reads any length; long texts are still cut at sentence ends, so batches stay even."""


@dataclass
class Model:
    """A loaded model of either kind, behind one interface."""

    kind: str
    labels: list[str]
    config: dict
    tag_ids: Callable[[list[str]], list[list[int]]]
    """Label indices for a batch of non-empty strings."""
    max_len: int | None
    """Text is cut into sentences of at most this many characters before tagging."""

    def predict(self, texts: Sequence[str], batch_size: int = 64) -> list[list[Entity]]:
        """Entities of each text, with offsets into that text."""
        return predict_entities(texts, self.tag_ids, self.labels, self.max_len, batch_size)

    def tag(self, texts: Sequence[str]) -> list[list[str]]:
        """One tag per character of each (non-empty) text."""
        return [[self.labels[i] for i in row] for row in self.tag_ids(list(texts))]

    def evaluate(self, sentences: Sequence[Sentence], batch_size: int = 64) -> EntityScores:
        from .training import evaluate

        return evaluate(self.tag_ids, sentences, self.labels, batch_size)[0]


def load_model(directory: str | Path, device: str = "cpu") -> Model:
    """Load a teacher or student directory (config.json says which)."""
    directory = Path(directory)
    config = read_config(directory)
    if config["kind"] == "teacher":
        from teacher.model import Teacher

        from .training import resolve_device

        teacher = Teacher.load(directory, resolve_device(device))
        return Model("teacher", teacher.labels, teacher.config, teacher.tag_ids, teacher.window)
    if config["kind"] == "student":
        from student.model import Student

        from .training import resolve_device

        student = Student.load(directory, resolve_device(device))
        return Model("student", student.labels, student.config, student.tag_ids, STUDENT_MAX_LEN)
    raise DistillError(f"{directory}: unknown model kind {config['kind']!r} (expected teacher or student)")
