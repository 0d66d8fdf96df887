"""Tag schemes: parsing tags, entity spans from tags and back, repairs, allowed transitions.

Internally every labeled sentence carries BIOES tags (``B-``, ``I-``, ``E-``, ``S-``, ``O``).
Readers accept BIO, BIOES and BMES (``M-`` for inside) with ``-`` or ``_`` after the prefix, and
remember the file's scheme so that writers can give it back.

Spans are read from tags the way conlleval and seqeval's default mode read them, so entity
counts here equal seqeval's on any input, however malformed.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

SCHEMES = ("bio", "bioes", "bmes")
_O, _B, _I, _E, _S = range(5)  # prefix codes: indices into "OBIES"
VECTORISED_FROM = 256
"""Tags in a batch from which :class:`SpanReader` reads with arrays: below it, a loop in Python
costs less than the array operations' overhead (a sentence of 25 tags: 3 against 40 us)."""
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
    """Spans of many tag paths at once, from label indices: the fast path of prediction.

    Reads as :func:`tags_to_spans` does, in a few array operations over the whole batch. Under
    conlleval's rules a chunk is open exactly where the tag is not ``O``, so where chunks start
    and end depends on each tag and the one before it only.
    """

    def __init__(self, labels: Sequence[str]) -> None:
        self.parsed = [split_tag(label) for label in labels]
        self.types = sorted({type_ for _, type_ in self.parsed})
        self.prefix = np.array(["OBIES".index(prefix) for prefix, _ in self.parsed], dtype=np.int8)  # [K]
        self.type = np.array([self.types.index(type_) for _, type_ in self.parsed], dtype=np.int32)  # [K]

    def spans_of(self, paths: Sequence[Sequence[int]]) -> list[list[Span]]:
        """The spans of each path of label indices."""
        lengths = np.fromiter(map(len, paths), dtype=np.int64, count=len(paths))
        total = int(lengths.sum())
        if total < VECTORISED_FROM:
            return [_chunk([self.parsed[i] for i in path]) for path in paths]
        ids = np.fromiter(itertools.chain.from_iterable(paths), dtype=np.int64, count=total)
        offsets = np.concatenate([[0], np.cumsum(lengths)])  # [B + 1]
        prefix, type_ = self.prefix[ids], self.type[ids]  # [N] each: the paths joined
        first = np.zeros(len(ids), dtype=bool)  # [N]: a path's first tag, which follows an O
        first[offsets[:-1][lengths > 0]] = True
        prev_prefix = np.where(first, _O, np.roll(prefix, 1))
        changed = first | (np.roll(type_, 1) != type_)
        inside, prev_inside = prefix != _O, prev_prefix != _O
        begins = (prefix == _B) | (prefix == _S)
        starts = inside & (begins | ~prev_inside | (prev_prefix == _E) | (prev_prefix == _S) | changed)
        ends = prev_inside & ~first & ((prev_prefix == _E) | (prev_prefix == _S) | begins | ~inside | changed)
        last = offsets[1:][lengths > 0] - 1  # [B']: a path's last tag, after which its chunk ends
        start_at = np.flatnonzero(starts)  # [S]
        end_at = np.sort(np.concatenate([np.flatnonzero(ends), last[inside[last]] + 1]))  # [S]
        path_of = np.searchsorted(offsets, start_at, side="right") - 1  # [S]
        bases = offsets.tolist()
        spans: list[list[Span]] = [[] for _ in paths]
        for path, start, end, type_id in zip(
            path_of.tolist(), start_at.tolist(), end_at.tolist(), type_[start_at].tolist()
        ):
            spans[path].append(Span(self.types[type_id], start - bases[path], end - bases[path]))
        return spans


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


def label_mismatch(sentences: Sequence, labels: Sequence[str], owner: str) -> str | None:
    """Why ``sentences`` do not fit ``owner``'s label set ``labels`` (an entity type it lacks), naming
    the first sentence that shows it, or None when they fit. ``owner``: 'the model', 'the cache'."""
    known = {split_tag(label)[1] for label in labels if label != "O"}
    for sentence in sentences:
        extra = {span.type for span in tags_to_spans(sentence.tags or [])} - known
        if extra:
            where = f"{sentence.source}, line {sentence.line}: " if sentence.source else ""
            return (
                f"{where}entity types {', '.join(sorted(extra))} are not in {owner}'s label set "
                f"({', '.join(sorted(known))}): the data does not match {owner}"
            )
    return None
