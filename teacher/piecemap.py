"""The tokenizer's own pieces as encoder positions, each character reading its piece's emission.

``distill.teacher.charmap`` gives every character a position of its own, so a backbone whose tokenizer
merges characters (XLM-R reads half or more of Chinese characters in pieces like ``中国`` or ``国籍``)
sees single characters where pretraining showed it pieces. Here the encoder reads the text as the
tokenizer splits it; every character takes its emission from the position of the piece that
covers it, plus a learned score for where it sits in that piece (alone, first, inside, last), so
the characters of one piece can still take different tags and tags stay one per character.

The pruned embedding keeps the rows of every piece the corpora's text is split into, plus one row
per character as ``distill.teacher.charmap`` keeps them: a piece that was never seen in those corpora is
read character by character, and characters the tokenizer covers with no piece (whitespace it
drops) get positions of their own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from distill.errors import DistillError

from .charmap import CharVocab, build_char_vocab

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SEGMENTS = 4
"""A character alone in its piece (0), or first (1), inside (2) or last (3) in a longer one."""


@dataclass
class PieceVocab(CharVocab):
    """:class:`CharVocab`'s character rows plus the rows of the tokenizer's pieces the corpora use."""

    piece_to_id: dict[int, int] = field(default_factory=dict)
    """Backbone id of each piece -> its row of the pruned embedding."""
    tokenizer: object = field(default=None, repr=False, compare=False)
    """A fast (offset-mapping) HuggingFace tokenizer of the backbone."""

    def tokenize(self, text: str) -> tuple[list[int], list[int], list[int]]:
        """A window's encoder input (see ``distill.teacher.windows.Tokenize``): the tokenizer's pieces."""
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        items: list[tuple[int, int, int]] = []  # (first character, end, row) of each position
        for backbone_id, (start, end) in zip(encoded["input_ids"], encoded["offset_mapping"]):
            row = self.piece_to_id.get(backbone_id)
            if row is not None:
                items.append((start, end, row))
            else:  # a piece the corpora never showed: its characters one by one
                items.extend((c, c + 1, self.char_to_id.get(text[c], self.unk)) for c in range(start, end))
        covered = {c for start, end, _ in items for c in range(start, end)}
        items.extend((c, c + 1, self.char_to_id.get(text[c], self.unk)) for c in range(len(text)) if c not in covered)
        items.sort(key=lambda item: item[0])  # stable: a bare word mark stays before the piece it precedes
        owner = _owners(items, len(text))
        if len(items) > len(text):  # bare word marks own no character: drop them to fit the window
            owned = sorted(set(owner))
            items = [items[i] for i in owned]
            owner = _owners(items, len(text))
        return [row for _, _, row in items], owner, _segments(owner)

    def to_config(self) -> dict:
        return {**super().to_config(), "pieces": sorted(self.piece_to_id.items())}

    @classmethod
    def from_config(cls, record: dict, tokenizer: PreTrainedTokenizerBase | None = None) -> PieceVocab:
        chars = CharVocab.from_config(record)
        pieces = {int(backbone_id): int(row) for backbone_id, row in record["pieces"]}
        return cls(chars.char_to_id, chars.backbone_ids, chars.specials, pieces, _fast(tokenizer))


def _owners(items: list[tuple[int, int, int]], length: int) -> list[int]:
    """[length]: the position each character reads, the last that covers it."""
    owner = [0] * length
    for position, (start, end, _) in enumerate(items):
        owner[start:end] = [position] * (end - start)
    return owner


def _segments(owner: list[int]) -> list[int]:
    """Each character's place in its piece: 0 alone, 1 first, 2 inside, 3 last."""
    segments = []
    for c, position in enumerate(owner):
        first = c == 0 or owner[c - 1] != position
        last = c == len(owner) - 1 or owner[c + 1] != position
        segments.append(0 if first and last else 1 if first else 3 if last else 2)
    return segments


def _fast(tokenizer: PreTrainedTokenizerBase | None) -> PreTrainedTokenizerBase:
    if tokenizer is None or not getattr(tokenizer, "is_fast", False):
        raise DistillError("reading text in the tokenizer's pieces (--input pieces) needs a fast tokenizer")
    return tokenizer


def build_piece_vocab(texts: Iterable[str], tokenizer: PreTrainedTokenizerBase) -> tuple[PieceVocab, Counter[str]]:
    """The pruned vocabulary of the pieces and characters of ``texts``, and the characters left unknown."""
    texts, tokenizer = list(texts), _fast(tokenizer)
    chars, unknown = build_char_vocab(texts, tokenizer)
    row_of = {backbone_id: row for row, backbone_id in enumerate(chars.backbone_ids)}
    backbone_ids = list(chars.backbone_ids)
    specials = set(tokenizer.all_special_ids)  # "<s>" written in a text is read as its characters
    for start in range(0, len(texts), 1024):
        batch = [t for t in texts[start : start + 1024] if t]
        for ids in tokenizer(batch, add_special_tokens=False)["input_ids"] if batch else []:
            for backbone_id in ids:
                if backbone_id not in specials and backbone_id not in row_of:
                    row_of[backbone_id] = len(backbone_ids)
                    backbone_ids.append(backbone_id)
    piece_to_id = {b: row for b, row in row_of.items() if b not in specials}
    return PieceVocab(chars.char_to_id, backbone_ids, chars.specials, piece_to_id, tokenizer), unknown
