"""Scoring a tagger against gold tags: the one ``evaluate`` of trainers, the API and the CLI.

Needs no torch, so a model on the torch-free runtime is evaluated through it too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from distill.data import Sentence

from .metrics import EntityScores, entity_scores
from .tagging import tag_in_batches


def evaluate(
    tag_ids: Callable[[list[str]], list[list[int]]],
    sentences: Sequence[Sentence],
    labels: Sequence[str],
    batch_size: int = 64,
) -> tuple[EntityScores, list[list[str]]]:
    """Entity scores of a tagger on labeled sentences, and its predicted tags."""
    labeled = [s for s in sentences if s.tags is not None and len(s.text) > 0]
    predicted = tag_in_batches(tag_ids, [s.text for s in labeled], batch_size)
    predicted_tags = [[labels[i] for i in row] for row in predicted]
    return entity_scores([s.tags for s in labeled], predicted_tags), predicted_tags
