"""Scoring a tagger against gold tags: the one ``evaluate`` of trainers, the API and the CLI.

Needs no torch, so a model on the torch-free runtime is evaluated through it too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from distill.data import Sentence

from .metrics import EntityScores, entity_scores
from .tagging import MAX_BATCH_CHARS, tag_in_batches


def evaluate(
    tag_ids: Callable[[list[str]], list[list[int]]],
    sentences: Sequence[Sentence],
    labels: Sequence[str],
    batch_size: int = 64,
    workers: int = 1,
    max_chars: int = MAX_BATCH_CHARS,
) -> tuple[EntityScores, list[list[str]]]:
    """Entity scores of a tagger on labeled sentences, and its predicted tags; batches as
    :func:`distill.tagging.tag_in_batches` cuts them (a model quantised per batch, such as the
    ONNX INT8 student, tags a sentence alike wherever it is batched the same way)."""
    labeled = [s for s in sentences if s.tags is not None and len(s.text) > 0]
    predicted = tag_in_batches(tag_ids, [s.text for s in labeled], batch_size, workers, max_chars)
    predicted_tags = [[labels[i] for i in row] for row in predicted]
    return entity_scores([s.tags for s in labeled], predicted_tags), predicted_tags
