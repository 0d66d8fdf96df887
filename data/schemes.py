"""Tag schemes: parsing tags, entity spans from tags and back, repairs, allowed transitions.

Internally every labeled sentence carries BIOES tags (``B-``, ``I-``, ``E-``, ``S-``, ``O``).
Readers accept BIO, BIOES and BMES (``M-`` for inside) with ``-`` or ``_`` after the prefix, and
remember the file's scheme so that writers can give it back.

Spans are read from tags the way conlleval and seqeval's default mode read them, so entity
counts here equal seqeval's on any input, however malformed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import NamedTuple

SCHEMES = ("bio", "bioes", "bmes")
_INSIDE = {"bio": "I", "bioes": "I", "bmes": "M"}


class Span(NamedTuple):
    """An entity mention: characters ``start`` (inclusive) to ``end`` (exclusive)."""

    type: str
    start: int
    end: int


def split_tag(tag: str) -> tuple[str, str]:
    """``'B-PER'`` -> ``('B', 'PER')``; ``'M_ORG'`` -> ``('I', 'ORG')``; ``'O'`` -> ``('O', '')``.

    ``M`` (BMES) is read as ``I``. Raises ``ValueError`` naming what a tag may look like.
    """
    if tag == "O":
        return "O", ""
    if len(tag) >= 3 and tag[0] in "BIMES" and tag[1] in "-_":
        prefix = "I" if tag[0] == "M" else tag[0]
        return prefix, tag[2:]
    raise ValueError(f"unknown tag {tag!r}: expected 'O' or a prefix B, I, M, E or S, then '-' or '_', then a type")


def tags_to_spans(tags: Sequence[str]) -> list[Span]:
    """Entity spans of a tag sequence (any scheme, parsed leniently as seqeval does)."""
    return _chunk([split_tag(tag) for tag in tags])


class SpanReader:
    """Spans from label indices, with the labels parsed once: the fast path of prediction."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.parsed = [split_tag(label) for label in labels]

    def spans(self, ids: Sequence[int]) -> list[Span]:
        parsed = self.parsed
        return _chunk([parsed[i] for i in ids])


def _chunk(parsed: Sequence[tuple[str, str]]) -> list[Span]:
    """conlleval's chunking: a chunk ends after E/S, before B/S/O or a change of type, and starts
    at B/S, or at I/E after O, E, S or another type."""
    spans: list[Span] = []
    start = -1
    prev, prev_type = "O", ""
    for i, (prefix, type_) in enumerate(parsed):
        if start >= 0 and (prev in "ES" or prefix in "BSO" or prev_type != type_):
            spans.append(Span(prev_type, start, i))
            start = -1
        if prefix in "BS" or (prefix in "IE" and (prev in "ESO" or prev_type != type_)):
            start = i
        prev, prev_type = prefix, type_
    if start >= 0:
        spans.append(Span(prev_type, start, len(parsed)))
    return spans


def spans_to_tags(spans: Iterable[Span], length: int, scheme: str = "bioes") -> list[str]:
    """Tags of ``length`` characters in ``scheme`` for non-overlapping ``spans``."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}: expected one of {', '.join(SCHEMES)}")
    inside = _INSIDE[scheme]
    tags = ["O"] * length
    for span in spans:
        if not 0 <= span.start < span.end <= length:
            raise ValueError(f"span {span} does not fit a sentence of {length} characters")
        if any(t != "O" for t in tags[span.start : span.end]):
            raise ValueError(f"span {span} overlaps another span")
        width = span.end - span.start
        if scheme == "bio":
            tags[span.start : span.end] = [f"B-{span.type}"] + [f"I-{span.type}"] * (width - 1)
        elif width == 1:
            tags[span.start] = f"S-{span.type}"
        else:
            middle = [f"{inside}-{span.type}"] * (width - 2)
            tags[span.start : span.end] = [f"B-{span.type}", *middle, f"E-{span.type}"]
    return tags


def convert_tags(tags: Sequence[str], scheme: str) -> list[str]:
    """The same entities written in ``scheme``."""
    return spans_to_tags(tags_to_spans(tags), len(tags), scheme)


def detect_scheme(prefixes: Iterable[str]) -> str:
    """The scheme that raw tag prefixes seen in a file (``'M'`` kept as ``'M'``) belong to."""
    seen = set(prefixes)
    if "M" in seen:
        return "bmes"
    if seen & {"E", "S"}:
        return "bioes"
    return "bio"


class Normalised(NamedTuple):
    tags: list[str]
    """BIOES tags."""
    repairs_bio: list[tuple[int, str, str]]
    """(position, given, fixed), if the input is read as BIO."""
    repairs_bioes: list[tuple[int, str, str]]
    """(position, given, fixed), if the input is read as BIOES/BMES (M written as I)."""


def normalise(tags: Sequence[str]) -> Normalised:
    """BIOES tags for raw tags, and the repairs that took under either reading of the scheme.

    A file's scheme is only known once it is read through, so the repairs for both readings are
    returned and the caller keeps the pair that matches the scheme it detects.
    """
    spans = tags_to_spans(tags)
    given = [tag if tag == "O" else "{}-{}".format(*split_tag(tag)) for tag in tags]
    bioes = spans_to_tags(spans, len(tags), "bioes")
    bio = spans_to_tags(spans, len(tags), "bio")
    return Normalised(
        bioes,
        [(i, g, f) for i, (g, f) in enumerate(zip(given, bio)) if g != f],
        [(i, g, f) for i, (g, f) in enumerate(zip(given, bioes)) if g != f],
    )


def describe_repairs(repairs: Counter[tuple[str, str]], scheme: str) -> dict[str, int]:
    """``{'I-PER -> B-PER': 3, ...}`` with the inside letter of ``scheme`` (M for BMES)."""

    def spell(tag: str) -> str:
        return f"{_INSIDE[scheme]}{tag[1:]}" if tag.startswith("I-") else tag

    return {f"{spell(g)} -> {spell(f)}": n for (g, f), n in repairs.most_common()}


def label_set(types: Iterable[str], scheme: str = "bioes") -> list[str]:
    """The tag vocabulary of a model: ``O`` then each type's tags, types sorted."""
    prefixes = {"bio": "BI", "bioes": "BIES", "bmes": "BMES"}[scheme]
    return ["O"] + [f"{p}-{t}" for t in sorted(set(types)) for p in prefixes]


def label_scheme(labels: Sequence[str]) -> str:
    """``'bioes'`` when a label set has E-/S- tags, else ``'bio'`` (M- is read as I-)."""
    prefixes = {split_tag(label)[0] for label in labels}
    return "bioes" if prefixes & {"E", "S"} else "bio"


class Transitions(NamedTuple):
    """Which tags may start, follow each other and end a sentence, for a label set."""

    start: list[bool]
    """[K]: tag k may be first."""
    pairs: list[list[bool]]
    """[K, K]: tag j may follow tag i."""
    end: list[bool]
    """[K]: tag k may be last."""


def allowed_transitions(labels: Sequence[str]) -> Transitions:
    """The moves of a valid tag sequence: no ``O -> I-X``, no ``B-X -> I-Y``, and so on."""
    parsed = [split_tag(label) for label in labels]
    bioes = label_scheme(labels) == "bioes"
    # In BIOES an entity is open after B and I; in BIO after B and I too, but it may end anywhere.
    opens = {"B", "I"}

    def may_follow(prev: tuple[str, str], cur: tuple[str, str]) -> bool:
        (p, pt), (c, ct) = prev, cur
        if c in "IE":
            return p in opens and pt == ct
        # c is O, B or S: fine unless BIOES leaves an entity open.
        return not (bioes and p in opens)

    start = [p in "OBS" for p, _ in parsed]
    end = [(p in "OES") if bioes else True for p, _ in parsed]
    pairs = [[may_follow(a, b) for b in parsed] for a in parsed]
    return Transitions(start, pairs, end)
