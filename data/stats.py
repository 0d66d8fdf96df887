"""Counts a user checks a corpus against: sentences, characters, entities per type, longest."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from .datasets import Dataset
from .formats import read_file
from .report import ReadReport
from .schemes import tags_to_spans
from .sentence import Sentence


@dataclass
class CorpusStats:
    sentences: int = 0
    labeled: int = 0
    characters: int = 0
    longest: int = 0
    entities: dict[str, int] = field(default_factory=dict)
    """Entity count per type, types sorted."""

    @property
    def total_entities(self) -> int:
        return sum(self.entities.values())


def corpus_stats(sentences: Iterable[Sentence]) -> CorpusStats:
    stats = CorpusStats()
    entities: Counter[str] = Counter()
    for sentence in sentences:
        stats.sentences += 1
        stats.characters += len(sentence)
        stats.longest = max(stats.longest, len(sentence))
        if sentence.tags is not None:
            stats.labeled += 1
            entities.update(span.type for span in tags_to_spans(sentence.tags))
    stats.entities = dict(sorted(entities.items()))
    return stats


def dataset_file_stats(dataset: Dataset, strict: bool = False) -> list[dict]:
    """One record per file of ``dataset``: which splits it serves, its counts and its read report.

    Files are counted whole, so a train file that a dev split is carved from shows the counts of
    the release; the record says how the carve divides it.
    ``strict`` refuses any repair (a DataError).
    """
    by_file: dict[str, list[str]] = {}
    for split, source in dataset.splits.items():
        label = split if source.part == (0.0, 1.0) else f"{split} {source.part[0]:.0%}-{source.part[1]:.0%}"
        by_file.setdefault(str(source.path), []).append(label)
    records = []
    for path, splits in by_file.items():
        report = ReadReport(path, strict=strict)
        stats = corpus_stats(read_file(path, report=report))
        records.append(
            {
                "dataset": dataset.name,
                "layout": dataset.layout,
                "splits": splits,
                **asdict(stats),
                "total_entities": stats.total_entities,
                **{k: v for k, v in report.as_dict().items() if k != "sentences"},
            }
        )
    return records
