"""One entry point to read or write any supported file, with its format sniffed when not given."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from .column import read_column, write_column
from .errors import DataError
from .jsonl import read_jsonl, write_jsonl
from .lines import LineRepairs, read_lines
from .rawtext import read_text, split_sentences, write_text
from .report import ReadReport
from .sentence import Sentence

FORMATS = ("column", "jsonl", "text")
_TAG = re.compile(r"^(O|[BIMES][-_]\S+)?$")


def sniff_format(path: str | Path) -> str:
    """'jsonl', 'column' or 'text', judged from the file name and its first non-blank line."""
    path = Path(path)
    if path.suffix.lower() in (".json", ".jsonl"):
        return "jsonl"
    if path.is_dir():
        raise DataError("is a directory: expected a file here", path)
    for _, line in read_lines(path, LineRepairs()):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            return "jsonl"
        if "\t" in line and len(line.split("\t")[0]) <= 4:
            return "column"  # short tokens before a TAB: a column file, whatever its last column holds
        fields = line.split(" ")
        if len(fields) >= 2 and _TAG.match(fields[-1]) and len(fields[0]) <= 4:
            return "column"
        return "text"
    raise DataError("the file is empty: expected sentences", path)


def read_file(
    path: str | Path,
    fmt: str | None = None,
    report: ReadReport | None = None,
    max_len: int | None = None,
) -> Iterator[Sentence]:
    """Stream the sentences of ``path``; ``max_len`` caps raw-text sentences only."""
    fmt = fmt or sniff_format(path)
    report = report if report is not None else ReadReport(str(path))
    if fmt == "column":
        return read_column(path, report)
    if fmt == "jsonl":
        return read_jsonl(path, report)
    if fmt == "text":
        return read_text(path, max_len, report)
    raise DataError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}", path)


def read_raw_text(path: str | Path, max_len: int | None = None) -> Iterator[Sentence]:
    """The text of any corpus file as unlabeled sentences, its format detected as for every other
    reader: raw text cut as :func:`read_text` cuts it; a JSON-lines or column file's sentences
    without their tags (cut at sentence ends to ``max_len`` too), never its syntax as text."""
    fmt = sniff_format(path)
    if fmt == "text":
        yield from read_text(path, max_len)
        return
    for sentence in read_file(path, fmt):
        for start, end in split_sentences(sentence.text, max_len):
            yield Sentence(sentence.text[start:end], None, sentence.source, sentence.line)


def write_file(sentences: Sequence[Sentence], path: str | Path, fmt: str, scheme: str = "bioes") -> None:
    """Write sentences as ``fmt``; ``scheme`` applies to column files.

    Atomic: the file is written beside ``path`` and renamed over it only once complete, so a full
    disk or a kill leaves the old file (or none) rather than a truncated one that reads as a
    smaller corpus, and converting a file onto itself cannot destroy it.
    """
    writers = {
        "column": lambda target: write_column(sentences, target, scheme),
        "jsonl": lambda target: write_jsonl(sentences, target),
        "text": lambda target: write_text(sentences, target),
    }
    if fmt not in writers:
        raise DataError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}", path)
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:
        writers[fmt](partial)
        os.replace(partial, path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise DataError(f"cannot write: {err.strerror or err}; the file was left as it was", path) from None
