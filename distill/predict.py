"""From raw text to entities with character offsets, for any tagger (teacher or student).

Text is split at sentence ends (and capped in length), each piece tagged, and every entity's
offsets mapped back into the original string: ``text[start:end] == entity.text``.
Imports numpy only (through ``data``): the torch-free deployment predicts through it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from data import SpanReader, bucket_batches, split_sentences

PADDED_CHARS_PER_SENTENCE = 64
"""A batch of N sentences holds at most N * 64 padded characters, so a few long sentences do not
make a whole batch pad to their length."""
MAX_BATCH_CHARS = 2048
"""And at most 2,048 padded characters, whatever the batch size: larger batches are no faster per
character on the CPU, and their activations grow the process (a hidden-256 student on
onnxruntime peaked at 104 MB after a pass at batch 256, against 132 MB with 8,192)."""
MAX_PADDING = 0.25
"""A batch is also cut where padding would pass a quarter of its characters: a network and a
Viterbi decode cost what they pad, and sentences of one length are many, so batches stay large."""


def tag_in_batches(
    tag_ids: Callable[[list[str]], list[list[int]]], texts: Sequence[str], batch_size: int
) -> list[list[int]]:
    """``tag_ids`` over length-bucketed batches of ``texts``, results in the original order.

    A batch holds at most ``batch_size`` sentences and ``batch_size * PADDED_CHARS_PER_SENTENCE``
    or ``MAX_BATCH_CHARS`` padded characters, whichever is less (a single longer sentence still
    forms a batch of its own), with padding under ``MAX_PADDING`` of its characters.
    """
    results: list[list[int]] = [[] for _ in texts]
    max_tokens = min(batch_size * PADDED_CHARS_PER_SENTENCE, MAX_BATCH_CHARS)
    lengths = [len(t) for t in texts]
    for batch in bucket_batches(lengths, batch_size, max_tokens=max_tokens, max_padding=MAX_PADDING):
        for i, tags in zip(batch, tag_ids([texts[i] for i in batch])):
            results[i] = tags
    return results


@dataclass(frozen=True)
class Entity:
    type: str
    text: str
    start: int
    """Offset of the first character in the input text."""
    end: int
    """Offset one past the last character (``text[start:end]``)."""

    def as_dict(self) -> dict:
        return asdict(self)


def predict_entities(
    texts: Sequence[str],
    tag_ids: Callable[[list[str]], list[list[int]]],
    labels: Sequence[str],
    max_len: int | None = None,
    batch_size: int = 64,
) -> list[list[Entity]]:
    """Entities of each text. ``tag_ids`` tags a batch of non-empty strings with label indices."""
    pieces: list[tuple[int, int, str]] = []  # (text index, offset of the piece, piece)
    for i, text in enumerate(texts):
        pieces.extend((i, start, text[start:end]) for start, end in split_sentences(text, max_len))
    tagged = tag_in_batches(tag_ids, [p[2] for p in pieces], batch_size)
    entities: list[list[Entity]] = [[] for _ in texts]
    reader = SpanReader(labels)
    for (i, offset, _), ids in zip(pieces, tagged):
        for span in reader.spans(ids):
            start, end = offset + span.start, offset + span.end
            entities[i].append(Entity(span.type, texts[i][start:end], start, end))
    return entities
