"""Column files: one character per line, ``token<SEP>tag``, a blank line between sentences.

Handles the quirks of the files people actually have: TAB or space separators (a space or
U+3000 can itself be the character), Weibo's token column (the character followed by its
word-position digits, ``科0``), empty tags (MSRA's ``0<TAB>``), CRLF endings, ``B_disease``
underscores, and old files that are not valid UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import DataError
from .lines import read_lines
from .report import ReadReport
from .schemes import convert_tags, normalise, split_tag
from .sentence import Sentence


class _LineParser:
    """Splits one line into fields, settling separator, column count and token style on line 1."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sep: str | None = None
        self.columns = 0
        self.positional = False

    def fields(self, line: str, lineno: int) -> list[str]:
        if self.sep is None:
            self.sep = "\t" if "\t" in line else " "
        if self.sep == "\t":
            fields = line.split("\t")
        else:
            token = " " if line.startswith(" ") else line.split(" ", 1)[0]
            rest = line[len(token) + 1 :] if len(line) > len(token) else None
            fields = [token] + ([] if rest is None else (rest.split() or [""]))
        if not self.columns:
            if len(fields) < 2:
                raise DataError(
                    f"expected two columns (character, tag) separated by TAB or space, found {line!r}",
                    self.path,
                    lineno,
                )
            self.columns = len(fields)
            self.positional = len(fields[0]) >= 2 and fields[0][-1].isdigit()
        elif len(fields) != self.columns:
            sep = "TAB" if self.sep == "\t" else "space"
            raise DataError(
                f"expected {self.columns} {sep}-separated columns as on the first line, found {len(fields)}: {line!r}",
                self.path,
                lineno,
            )
        return fields

    def char(self, token: str, lineno: int, report: ReadReport) -> str:
        if self.positional:
            stem = token.rstrip("0123456789")
            if len(token) < 2 or stem == token:
                raise DataError(
                    f"expected a character followed by its word-position digits (as in Weibo's '科0'), found {token!r}",
                    self.path,
                    lineno,
                )
            if len(stem) > 1:
                report.count("multi-character token: kept its first character", line=lineno)
            return token[0]
        if len(token) != 1:
            raise DataError(
                f"expected one character in the first column, found {token!r} ({len(token)} characters)",
                self.path,
                lineno,
            )
        return token


def read_column(path: str | Path, report: ReadReport | None = None) -> Iterator[Sentence]:
    """Stream the labeled sentences of a column file; ``report`` is final when this ends."""
    path = str(path)
    report = report if report is not None else ReadReport(path)
    report.format = "column"
    parser = _LineParser(path)
    chars: list[str] = []
    tags: list[str] = []
    first_line = 0

    def flush() -> Sentence:
        normalised = normalise(tags)
        report.count_tags(tags, normalised, first_line)
        report.sentences += 1
        report.labeled += 1
        return Sentence("".join(chars), normalised.tags, path, first_line)

    for lineno, line in read_lines(path, report.lines):
        if line.strip(" \t") == "":
            if chars:
                yield flush()
                chars, tags = [], []
            continue
        fields = parser.fields(line, lineno)
        char = parser.char(fields[0], lineno, report)
        tag = fields[-1]
        if tag != tag.rstrip(" "):
            report.count("spaces after the tag removed", line=lineno)
            tag = tag.rstrip(" ")
        if tag == "":
            report.count("empty tag -> O", line=lineno)
            tag = "O"
        try:
            split_tag(tag)
        except ValueError as err:
            raise DataError(str(err), path, lineno) from None
        if not chars:
            first_line = lineno
        chars.append(char)
        tags.append(tag)
    if chars:
        yield flush()
    if report.sentences == 0:
        raise DataError("no sentences: expected lines of 'character<TAB>tag'", path)
    report.details.update(
        separator="TAB" if parser.sep == "\t" else "space",
        columns=str(parser.columns),
        token="character + word position (Weibo style)" if parser.positional else "character",
    )
    report.finish()


def write_column(sentences: Sequence[Sentence], path: str | Path, scheme: str = "bioes", sep: str = "\t") -> None:
    """Write labeled sentences as ``char<sep>tag`` lines in ``scheme``."""
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for sentence in sentences:
            if sentence.tags is None:
                raise DataError(
                    "cannot write an unlabeled sentence to a column file: expected tags "
                    "(write it as text or JSON lines instead)",
                    sentence.source or None,
                    sentence.line or None,
                )
            for char, tag in zip(sentence.text, convert_tags(sentence.tags, scheme)):
                out.write(f"{char}{sep}{tag}\n")
            out.write("\n")
