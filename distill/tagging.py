"""From raw text to entities with character offsets, for any tagger (teacher or student).

Text is split at sentence ends (and capped in length), each piece tagged, and every entity's
offsets mapped back into the original string: ``text[start:end] == entity.text``.
Imports numpy only: the torch-free deployment predicts through it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np

from distill.data import Span, SpanReader, bucket_batches, split_sentences

from .confidence import CrfScores

Runtime = Literal["torch", "bf16", "int8", "onnx", "onnx-int8"]
"""How a model runs (:data:`distill.api.RUNTIMES` says what each is)."""

Tagged = TypeVar("Tagged")
"""What a tagger returns per text: label indices, or label indices with emissions."""

PADDED_CHARS_PER_SENTENCE = 64
"""A batch of N sentences holds at most N * 64 padded characters, so a few long sentences do not
make a whole batch pad to their length."""
MAX_BATCH_CHARS = 2048
"""And at most 2,048 padded characters in flight, whatever the batch size (with ``workers``
batches at once, a ``workers``-th of it each), unless the model's runtime asks for fewer (the
torch-free one does: :attr:`distill.student.onnx_runtime.OnnxStudent.max_batch_chars`). Larger
batches are no faster per character on the CPU, and their activations grow the process
(``benchmarks/results/resume/teacher-amd/batch-chars``)."""
MAX_PADDING = 0.25
"""A batch is also cut where padding would pass a quarter of its characters: a network and a
Viterbi decode cost what they pad, and sentences of one length are many, so batches stay large."""


def tag_in_batches(
    tag_ids: Callable[[list[str]], list[Tagged]],
    texts: Sequence[str],
    batch_size: int,
    workers: int = 1,
    max_chars: int = MAX_BATCH_CHARS,
) -> list[Tagged]:
    """``tag_ids`` over length-bucketed batches of ``texts``, results in the original order.

    A batch holds at most ``batch_size`` sentences and ``batch_size * PADDED_CHARS_PER_SENTENCE``
    or ``max_chars / workers`` padded characters, whichever is less (a single longer
    sentence still forms a batch of its own), with padding under ``MAX_PADDING`` of its characters.
    With ``workers`` > 1, that many batches are tagged at once on threads: worth it only where
    ``tag_ids`` releases the GIL for most of its time (onnxruntime and numpy do) and runs each
    batch on one core, so one batch's network overlaps another's decoding.
    """
    results: list = [None for _ in texts]
    max_tokens = min(batch_size * PADDED_CHARS_PER_SENTENCE, max_chars // max(1, workers))
    lengths = [len(t) for t in texts]
    batches = list(bucket_batches(lengths, batch_size, max_tokens=max_tokens, max_padding=MAX_PADDING))

    def tag_batch(batch: list[int]) -> list[Tagged]:
        return tag_ids([texts[i] for i in batch])

    if workers > 1 and len(batches) > 1:
        tagged = list(_thread_pool(workers).map(tag_batch, batches))
    else:
        tagged = [tag_batch(batch) for batch in batches]
    for batch, batch_tags in zip(batches, tagged):
        for i, tags in zip(batch, batch_tags):
            results[i] = tags
    return results


@functools.cache
def _thread_pool(workers: int) -> ThreadPoolExecutor:
    """One pool per size for the whole process: starting threads on every call costs more than a
    small batch takes."""
    return ThreadPoolExecutor(workers, thread_name_prefix="distill-tag")


@functools.lru_cache(maxsize=8)
def _span_reader(labels: tuple[str, ...]) -> SpanReader:
    """Labels parsed once per label set, not on every call (which costs a batch of one 2%)."""
    return SpanReader(labels)


@dataclass(frozen=True)
class Entity:
    type: str
    text: str
    start: int
    """Offset of the first character in the input text."""
    end: int
    """Offset one past the last character (``text[start:end]``)."""
    confidence: float | None = None
    """The CRF's probability that this span carries exactly these tags (:mod:`distill.confidence`)."""

    def as_dict(self) -> dict:
        # Built field by field: dataclasses.asdict deep-copies, which a server pays per entity.
        confidence = None if self.confidence is None else float(f"{self.confidence:.4g}")  # 4 significant digits
        return {"type": self.type, "text": self.text, "start": self.start, "end": self.end, "confidence": confidence}


ScoredTagger = tuple[Callable[[list[str]], list[tuple[list[int], np.ndarray]]], CrfScores]
"""A tagger that returns each text's label indices with its emissions [L, K], and its CRF's scores."""


def predict_entities(
    texts: Sequence[str],
    tag_ids: Callable[[list[str]], list[list[int]]],
    labels: Sequence[str],
    max_len: int | None = None,
    batch_size: int = 64,
    workers: int = 1,
    scored: ScoredTagger | None = None,
    max_chars: int = MAX_BATCH_CHARS,
) -> list[list[Entity]]:
    """Entities of each text. ``tag_ids`` tags a batch of non-empty strings with label indices;
    ``workers`` batches of at most ``max_chars`` padded characters in all are tagged at once (see
    :func:`tag_in_batches`). With ``scored``, its tagger is used instead and each entity carries
    its confidence."""
    pieces: list[tuple[int, int, str]] = []  # (text index, offset of the piece, piece)
    for i, text in enumerate(texts):
        pieces.extend((i, start, text[start:end]) for start, end in split_sentences(text, max_len))
    piece_texts = [p[2] for p in pieces]
    if scored is None:
        reader = _span_reader(tuple(labels))
        found = [
            [(span, None) for span in spans]
            for spans in reader.spans_of(tag_in_batches(tag_ids, piece_texts, batch_size, workers, max_chars))
        ]
    else:
        found = [
            list(zip(spans, sure))
            for _, spans, sure in tag_in_batches(
                confident_tagger(scored, labels), piece_texts, batch_size, workers, max_chars
            )
        ]
    entities: list[list[Entity]] = [[] for _ in texts]
    for (i, offset, _), spans in zip(pieces, found):
        for span, confidence in spans:
            start, end = offset + span.start, offset + span.end
            entities[i].append(Entity(span.type, texts[i][start:end], start, end, confidence))
    return entities


def confident_tagger(
    scored: ScoredTagger, labels: Sequence[str]
) -> Callable[[list[str]], list[tuple[list[int], list[Span], list[float]]]]:
    """A tagger of batches that returns each text's label indices, entity spans and their
    confidences: the emissions behind them live only as long as their batch."""
    tagger, crf = scored
    reader = _span_reader(tuple(labels))

    def tag(texts: list[str]) -> list[tuple[list[int], list[Span], list[float]]]:
        paths, emissions = zip(*tagger(texts))
        all_spans = reader.spans_of(paths)
        asked = [[(span.start, path[span.start : span.end]) for span in spans] for spans, path in zip(all_spans, paths)]
        return list(zip(paths, all_spans, crf.batch_span_probabilities(emissions, asked)))

    return tag


def json_line(record: object) -> str:
    """``record`` as one line of JSON, Chinese as itself; a text that UTF-8 cannot carry (a lone
    surrogate) is written with ``\\u`` escapes instead, so one odd text never fails its whole batch."""
    line = json.dumps(record, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(record)
    return line
