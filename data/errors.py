"""The one exception the data layer raises for bad input."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Input that cannot be read as asked: names the file, the line and what was expected."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = f"{self.path}, line {line}: " if line else f"{self.path}: "
        super().__init__(where + message)
