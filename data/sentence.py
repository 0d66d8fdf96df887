"""The unit every reader yields and every later stage consumes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Sentence:
    """One sequence of characters, with tags when it is labeled.

    ``text`` holds one model position per character (a space or U+3000 is a character like any
    other). ``tags`` are in the internal BIOES scheme, one per character, or ``None`` for
    unlabeled text. ``source``/``line`` say where the sentence starts in its file and ``offset``
    where ``text`` starts inside that line's text (non-zero when a long line was split).
    """

    text: str
    tags: list[str] | None = None
    source: str = ""
    line: int = 0
    offset: int = 0

    def __post_init__(self) -> None:
        if self.tags is not None and len(self.tags) != len(self.text):
            raise ValueError(f"{len(self.text)} characters but {len(self.tags)} tags")

    def __len__(self) -> int:
        return len(self.text)

    @property
    def labeled(self) -> bool:
        return self.tags is not None
