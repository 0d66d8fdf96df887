"""What a reader saw in a file: its format, its scheme, and every repair it made."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .errors import DataError
from .lines import LineRepairs
from .schemes import Normalised, describe_repairs, detect_scheme


@dataclass
class ReadReport:
    """Filled in while a file is read; final once the reader's iterator is exhausted."""

    path: str
    format: str = ""
    """'column', 'jsonl', 'text' or 'peoples-daily'."""
    scheme: str | None = None
    """The tag scheme detected in a labeled file: 'bio', 'bioes' or 'bmes'."""
    sentences: int = 0
    labeled: int = 0
    details: dict[str, str] = field(default_factory=dict)
    """Format specifics worth telling a user: separator, token style, ..."""
    lines: LineRepairs = field(default_factory=LineRepairs)
    repairs: dict[str, int] = field(default_factory=dict)
    """Conventional fixes made, e.g. ``{'I-PER -> B-PER': 3, 'empty tag -> O': 57}``."""
    prefixes: set[str] = field(default_factory=set)
    strict: bool = False
    """Refuse every repair with a DataError instead of counting it."""
    _bio: Counter = field(default_factory=Counter, repr=False)
    _bioes: Counter = field(default_factory=Counter, repr=False)
    _other: Counter = field(default_factory=Counter, repr=False)

    def __post_init__(self) -> None:
        self.lines.strict = self.strict

    def count_tags(self, raw_tags: list[str], normalised: Normalised, first_line: int = 0) -> None:
        """Note the raw prefixes and both readings' repairs of one sentence (its tags on
        consecutive lines from ``first_line``)."""
        own = {tag[0] for tag in raw_tags if tag != "O"}
        self.prefixes.update(own)
        self._bio.update((g, f) for _, g, f in normalised.repairs_bio)
        self._bioes.update((g, f) for _, g, f in normalised.repairs_bioes)
        if self.strict:
            # The reading this sentence's own prefixes imply: BIOES/BMES if it has E, S or M.
            repairs = normalised.repairs_bioes if own & {"E", "S", "M"} else normalised.repairs_bio
            if repairs:
                position, given, fixed = repairs[0]
                self.refuse(f"tag {given} here would have to become {fixed}", first_line + position)

    def count(self, repair: str, n: int = 1, line: int | None = None) -> None:
        self._other[repair] += n
        if self.strict:
            self.refuse(repair, line)

    def refuse(self, repair: str, line: int | None) -> None:
        """In strict mode every repair is an error naming the file and line."""
        raise DataError(f"{repair}; {self.lines.refusal}", self.path, line)

    def finish(self) -> None:
        """Settle the scheme and keep the repairs that match it."""
        if self.prefixes:
            self.scheme = detect_scheme(self.prefixes)
        tag_repairs = self._bio if self.scheme == "bio" else self._bioes
        if self.strict and tag_repairs:  # each sentence was valid alone: the file mixes two schemes
            given, fixed = next(iter(tag_repairs))
            self.refuse(
                f"the file mixes tag schemes: read as {self.scheme}, tag {given} would have to become {fixed}", None
            )
        self.repairs = {
            **describe_repairs(tag_repairs, self.scheme or "bioes"),
            **dict(self._other.most_common()),
            **self.lines.as_counts(),
        }

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "format": self.format,
            "scheme": self.scheme,
            "sentences": self.sentences,
            "labeled": self.labeled,
            "details": self.details,
            "repairs": self.repairs,
        }
