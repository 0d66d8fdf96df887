"""JSON-lines span files in the CLUENER style.

Each line: ``{"text": "...", "label": {TYPE: {MENTION: [[start, end], ...]}}}`` with inclusive
ends. A line without ``"label"`` is unlabeled text. Overlapping spans are resolved by keeping the
longest (then the earliest); what was dropped is counted in the report.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import DataError
from .lines import read_lines
from .report import ReadReport
from .schemes import Span, spans_to_tags, tags_to_spans
from .sentence import Sentence


def _parse_spans(label: object, text: str, path: str, lineno: int) -> list[Span]:
    if not isinstance(label, dict):
        raise DataError('expected "label" to be an object {TYPE: {MENTION: [[start, end], ...]}}', path, lineno)
    spans = []
    for type_, mentions in label.items():
        if not isinstance(mentions, dict):
            raise DataError(f'expected "label"."{type_}" to map mentions to [[start, end], ...]', path, lineno)
        for mention, positions in mentions.items():
            if not isinstance(positions, list):
                raise DataError(f"expected a list of [start, end] for mention {mention!r}", path, lineno)
            for pos in positions:
                if not (isinstance(pos, list) and len(pos) == 2 and all(type(p) is int for p in pos)):
                    raise DataError(f"expected [start, end] integers for {mention!r}, found {pos!r}", path, lineno)
                start, end = pos
                if not 0 <= start <= end < len(text):
                    raise DataError(
                        f"span [{start}, {end}] of {mention!r} is out of range: the text has "
                        f"{len(text)} characters (ends are inclusive)",
                        path,
                        lineno,
                    )
                if text[start : end + 1] != mention:
                    raise DataError(
                        f"span [{start}, {end}] covers {text[start : end + 1]!r} but the label says "
                        f"{mention!r} (ends are inclusive)",
                        path,
                        lineno,
                    )
                spans.append(Span(type_, start, end + 1))
    return spans


def resolve_overlaps(spans: list[Span]) -> tuple[list[Span], int]:
    """Keep the longest of overlapping spans (then the earliest); return kept spans and dropped count."""
    kept: list[Span] = []
    taken: set[int] = set()
    for span in sorted(set(spans), key=lambda s: (s.start - s.end, s.start, s.type)):
        cells = range(span.start, span.end)
        if taken.isdisjoint(cells):
            kept.append(span)
            taken.update(cells)
    return sorted(kept, key=lambda s: s.start), len(spans) - len(kept)


def read_jsonl(path: str | Path, report: ReadReport | None = None) -> Iterator[Sentence]:
    """Stream the sentences of a CLUENER-style JSON-lines file."""
    path = str(path)
    report = report if report is not None else ReadReport(path)
    report.format = "jsonl"
    for lineno, line in read_lines(path, report.lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(
                f"expected a JSON object, but this is not JSON ({err.msg}, column {err.colno})", path, lineno
            ) from None
        except RecursionError:
            raise DataError("expected a JSON object, but this one is nested too deeply to read", path, lineno) from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise DataError('expected an object with a "text" string', path, lineno)
        text = record["text"]
        if not text:
            report.count("empty text skipped", line=lineno)
            continue
        tags = None
        if "label" in record:
            spans, dropped = resolve_overlaps(_parse_spans(record["label"], text, path, lineno))
            if dropped:
                report.count("overlapping span dropped (kept the longest)", dropped, line=lineno)
            report.labeled += 1
            tags = spans_to_tags(spans, len(text), "bioes")
        report.sentences += 1
        yield Sentence(text, tags, path, lineno)
    if report.sentences == 0:
        raise DataError('no sentences: expected lines like {"text": ..., "label": {...}}', path)
    report.finish()
    if report.labeled:
        report.scheme = "spans"


def write_jsonl(sentences: Sequence[Sentence], path: str | Path) -> None:
    """Write sentences as CLUENER JSON lines (inclusive ends); unlabeled ones get no "label"."""
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for sentence in sentences:
            record: dict = {"text": sentence.text}
            if sentence.tags is not None:
                label: dict[str, dict[str, list[list[int]]]] = {}
                for span in tags_to_spans(sentence.tags):
                    mention = sentence.text[span.start : span.end]
                    label.setdefault(span.type, {}).setdefault(mention, []).append([span.start, span.end - 1])
                record["label"] = label
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
