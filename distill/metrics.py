"""Entity-level precision, recall and F1 (seqeval, conlleval semantics), returned as data."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field


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
    """Scores of ``predicted`` tag sequences against ``gold`` (any of BIO/BIOES, one list per sentence)."""
    from seqeval.metrics import classification_report  # heavy (scikit-learn): import on use

    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    for i, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
    with warnings.catch_warnings():  # seqeval averages empty arrays when there is no entity
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(
            [list(g) for g in gold], [list(p) for p in predicted], output_dict=True, zero_division=0
        )
    averages = {"micro avg", "macro avg", "weighted avg"}

    def score(row: dict) -> Score:
        return Score(float(row["precision"]), float(row["recall"]), float(row["f1-score"]), int(row["support"]))

    overall = report.get("micro avg", {"precision": 0, "recall": 0, "f1-score": 0, "support": 0})
    per_type = {name: score(row) for name, row in sorted(report.items()) if name not in averages}
    return EntityScores(score(overall), per_type)
