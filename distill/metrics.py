"""Entity-level precision, recall and F1 (conlleval semantics, as seqeval computes them), returned as data."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from distill.data import tags_to_spans


@dataclass
class Score:
    precision: float
    recall: float
    f1: float
    support: int
    """Gold entities."""


@dataclass
class EntityScores:
    """Micro-averaged scores over all entities, and the same per entity type."""

    overall: Score
    per_type: dict[str, Score] = field(default_factory=dict)

    @property
    def f1(self) -> float:
        return self.overall.f1

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict) -> EntityScores:
        return cls(Score(**record["overall"]), {k: Score(**v) for k, v in record["per_type"].items()})


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> EntityScores:
    """Scores of ``predicted`` tag sequences against ``gold`` (any of BIO/BIOES, one list per sentence).

    An entity counts as found when type, start and end all match. Spans are read as seqeval's
    default mode reads them (``distill.data.tags_to_spans``), so the scores equal seqeval's
    ``classification_report`` (tests check it), without its scikit-learn import.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    found, expected, correct = Counter(), Counter(), Counter()
    for i, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
        gold_spans, predicted_spans = set(tags_to_spans(g)), set(tags_to_spans(p))
        expected.update(span.type for span in gold_spans)
        found.update(span.type for span in predicted_spans)
        correct.update(span.type for span in gold_spans & predicted_spans)
    per_type = {
        name: _score(correct[name], found[name], expected[name]) for name in sorted(expected.keys() | found.keys())
    }
    overall = _score(sum(correct.values()), sum(found.values()), sum(expected.values()))
    return EntityScores(overall, per_type)


def _score(correct: int, found: int, expected: int) -> Score:
    precision = correct / found if found else 0.0
    recall = correct / expected if expected else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(precision, recall, f1, expected)


def calibration(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[Sequence]], bins: int = 10) -> dict:
    """How well entity confidences match how often entities are right.

    ``predicted``: per sentence, its entities as ``(type, start, end, confidence)``; an entity is
    right when type, start and end all match a gold entity. Confidences fall in ``bins`` equal
    bins of [0, 1]; the expected calibration error is the count-weighted mean of each bin's
    |accuracy - mean confidence|.
    """
    confidences, correct = [], []
    for tags, entities in zip(gold, predicted):
        truth = {(span.type, span.start, span.end) for span in tags_to_spans(tags)}
        for kind, start, end, confidence in entities:
            confidences.append(float(confidence))
            correct.append((kind, int(start), int(end)) in truth)
    rows, error = [], 0.0
    for b in range(bins):
        lower, upper = b / bins, (b + 1) / bins
        members = [i for i, c in enumerate(confidences) if lower <= c < upper or (b == bins - 1 and c == 1.0)]
        if not members:
            rows.append({"lower": lower, "upper": upper, "count": 0, "confidence": None, "accuracy": None})
            continue
        confidence = sum(confidences[i] for i in members) / len(members)
        accuracy = sum(correct[i] for i in members) / len(members)
        error += len(members) / len(confidences) * abs(accuracy - confidence)
        rows.append(
            {"lower": lower, "upper": upper, "count": len(members), "confidence": confidence, "accuracy": accuracy}
        )
    return {"entities": len(confidences), "ece": error if confidences else None, "bins": rows}
