"""Reading text files line by line, whatever their age: CRLF, CESU-8 emoji, stray bytes, NULs."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError

_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


@dataclass
class LineRepairs:
    """What reading had to fix, by line number, so that it can be reported rather than hidden."""

    strict: bool = False
    """Refuse (DataError) instead of repairing."""
    strip_bom: bool = False
    """Under ``strict``, drop a leading byte-order mark (it is not text) rather than refuse it."""
    refusal: str = "refused because repairs are off (--strict)"
    """Why ``strict`` refuses, as the error says it."""
    cesu8_lines: list[int] = field(default_factory=list)
    """Lines whose emoji were stored as surrogate pairs (CESU-8) and were joined back."""
    replaced_lines: list[int] = field(default_factory=list)
    """Lines with bytes that are not UTF-8 at all, replaced by U+FFFD."""
    byte_order_mark: bool = False
    """The file began with a UTF-8 byte-order mark (as Windows editors write), removed."""

    def as_counts(self) -> dict[str, int]:
        counts = {
            "CESU-8 surrogate pairs joined into one character (lines)": len(self.cesu8_lines),
            "invalid UTF-8 bytes replaced by U+FFFD (lines)": len(self.replaced_lines),
            "UTF-8 byte-order mark removed": int(self.byte_order_mark),
        }
        return {k: v for k, v in counts.items() if v}


def decode_line(raw: bytes, lineno: int, repairs: LineRepairs) -> str:
    """One line's bytes as text: UTF-8, else CESU-8 surrogate pairs joined, else U+FFFD."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text = raw.decode("utf-8", errors="surrogatepass") if _decodes_surrogates(raw) else None
    if text is not None:
        joined = _SURROGATE_PAIR.sub(lambda m: m.group().encode("utf-16-le", "surrogatepass").decode("utf-16-le"), text)
        if not any("\ud800" <= ch <= "\udfff" for ch in joined):
            repairs.cesu8_lines.append(lineno)
            return joined
    repairs.replaced_lines.append(lineno)
    return raw.decode("utf-8", errors="replace")


def _decodes_surrogates(raw: bytes) -> bool:
    try:
        raw.decode("utf-8", errors="surrogatepass")
        return True
    except UnicodeDecodeError:
        return False


def _raw_lines(handle: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a binary file without their endings: LF, CRLF, or CR alone (old Mac files)."""
    for chunk in handle:
        body = chunk[:-1] if chunk.endswith(b"\n") else chunk
        body = body[:-1] if body.endswith(b"\r") and chunk.endswith(b"\n") else body
        yield from body.split(b"\r") if b"\r" in body else (body,)


def read_lines(path: str | Path, repairs: LineRepairs | None = None) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` for each line of ``path`` (``-``: standard input, as bytes), line
    endings (LF, CRLF or CR) removed.

    Streams: one line in memory at a time. A NUL byte means the file is not text and stops
    reading with a ``DataError`` that names the line. A leading UTF-8 byte-order mark is removed
    (and counted; refused under ``strict`` unless ``strip_bom``).
    """
    repairs = repairs if repairs is not None else LineRepairs()
    if str(path) == "-":
        yield from _decoded_lines(sys.stdin.buffer, "<stdin>", repairs)
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - the error must name the file; the with-block follows
    except OSError as err:
        raise DataError(f"cannot open: {err.strerror or err}", path) from None
    with handle:
        yield from _decoded_lines(handle, path, repairs)


def _decoded_lines(handle: Iterable[bytes], path: str | Path, repairs: LineRepairs) -> Iterator[tuple[int, str]]:
    for lineno, raw in enumerate(_raw_lines(handle), start=1):
        if b"\x00" in raw:
            raise DataError("contains a NUL byte: expected a text file (UTF-8), this looks binary", path, lineno)
        body = raw
        if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
            if repairs.strict and not repairs.strip_bom:
                raise DataError(f"starts with a UTF-8 byte-order mark; {repairs.refusal}", path, 1)
            body, repairs.byte_order_mark = raw[3:], True
        text = decode_line(body, lineno, repairs)
        if repairs.strict and lineno in (repairs.cesu8_lines[-1:] + repairs.replaced_lines[-1:]):
            raise DataError(
                f"not valid UTF-8 (another encoding, e.g. GBK?): expected UTF-8 text; {repairs.refusal}", path, lineno
            )
        yield lineno, text
