"""Raw text: one sentence or paragraph per line, plain or People's Daily ``word/POS`` tokens.

Long lines are split into sentences at 。！？； (keeping closing quotes with their sentence)
and capped at a length a model with a position limit can take, each piece remembering its
character offset in the line so that predictions map back to the original text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import DataError
from .lines import read_lines
from .report import ReadReport
from .sentence import Sentence

SENTENCE_ENDS = "。！？；"
_CLOSERS = "”’」』）》】〕\"'"  # a closing quote or bracket stays with the sentence it ends
_SENTENCE = re.compile(f"[^{SENTENCE_ENDS}]*(?:[{SENTENCE_ENDS}]+[{_CLOSERS}]*)?")
SOFT_BREAKS = frozenset("，、：,: \u3000")
_ONE_SENTENCE = re.compile(f"[^\\s{SENTENCE_ENDS}][^\n{SENTENCE_ENDS}]*(?:[{SENTENCE_ENDS}]+[{_CLOSERS}]*)?(?<!\\s)")
"""A text that is one sentence already: no sentence end but at its end, no newline, no whitespace
at either end."""
_PD_TOKEN = re.compile(r"^(.+)/([A-Za-z]{1,6})$")


def split_sentences(text: str, max_len: int | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` offsets of the sentences in ``text``, each at most ``max_len`` characters.

    Splits after 。！？； and at newlines; pieces are trimmed of surrounding whitespace and
    whitespace-only pieces are dropped. A piece longer than ``max_len`` is cut at the last comma
    or space in its second half, else hard at ``max_len``. ``text[start:end]`` is each piece.
    """
    if max_len is not None and max_len < 1:
        raise ValueError(f"max_len must be positive, got {max_len}")
    if (max_len is None or len(text) <= max_len) and _ONE_SENTENCE.fullmatch(text):
        return [(0, len(text))]  # the common case, at a fifth of the cost
    return _split(text, max_len)


def _split(text: str, max_len: int | None) -> list[tuple[int, int]]:
    pieces: list[tuple[int, int]] = []
    line_start = 0
    for line in text.split("\n"):
        for match in _SENTENCE.finditer(line):
            if match.end() > match.start():
                _add_piece(text, line_start + match.start(), line_start + match.end(), max_len, pieces)
        line_start += len(line) + 1
    return pieces


def _add_piece(text: str, start: int, end: int, max_len: int | None, pieces: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    while start < end:
        cut = end
        if max_len is not None and end - start > max_len:
            cut = start + max_len
            for k in range(start + max_len - 1, start + max_len // 2 - 1, -1):
                if text[k] in SOFT_BREAKS:
                    cut = k + 1
                    break
        piece_end = cut
        while piece_end > start and text[piece_end - 1].isspace():
            piece_end -= 1
        pieces.append((start, piece_end))
        start = cut
        while start < end and text[start].isspace():
            start += 1


def strip_pos_tags(line: str) -> tuple[str, int]:
    """People's Daily ``迈向/v  充满/v`` -> ``迈向充满``; also the number of tokens without a tag."""
    words = []
    untagged = 0
    for token in line.split():
        match = _PD_TOKEN.match(token)
        if match:
            words.append(match.group(1))
        else:
            words.append(token)
            untagged += 1
    return "".join(words), untagged


def looks_pos_tagged(line: str) -> bool:
    tokens = line.split()
    return bool(tokens) and all(_PD_TOKEN.match(t) for t in tokens)


def read_text(path: str | Path, max_len: int | None = None, report: ReadReport | None = None) -> Iterator[Sentence]:
    """Stream unlabeled sentences of a raw-text file (plain or ``word/POS``)."""
    path = str(path)
    report = report if report is not None else ReadReport(path)
    report.format = "text"
    pos_tagged: bool | None = None
    for lineno, line in read_lines(path, report.lines):
        if not line.strip():
            continue
        if pos_tagged is None:
            pos_tagged = looks_pos_tagged(line)
            if pos_tagged:
                report.format = "peoples-daily"
        text = line
        if pos_tagged:
            text, untagged = strip_pos_tags(line)
            if untagged:
                report.count("token without /POS kept as it is", untagged, line=lineno)
        for start, end in split_sentences(text, max_len):
            report.sentences += 1
            yield Sentence(text[start:end], None, path, lineno, start)
    if report.sentences == 0:
        raise DataError("no text: the file is empty or only whitespace", path)
    report.finish()


def write_text(sentences: Sequence[Sentence], path: str | Path) -> None:
    """One sentence per line (tags, if any, are not written)."""
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for sentence in sentences:
            if "\n" in sentence.text:
                raise DataError(
                    "a sentence holds a newline and cannot be written one per line",
                    sentence.source or None,
                    sentence.line or None,
                )
            out.write(sentence.text + "\n")
