"""One encoder position per character, and the pruned embedding those characters need.

Subword tokenisers merge characters (``北京`` is one XLM-R piece), which breaks the 1:1 alignment
between characters and tags. Each character is therefore looked up on its own: in the
vocabulary, then its NFKC form, then whatever single piece the tokenizer makes of it, then the
unknown token. Whitespace maps to the tokenizer's word-boundary piece (``▁``).

``distill.teacher.piecemap`` reads the tokenizer's pieces instead, and keeps these rows too.

Pruning keeps the embedding rows of single characters (those of the corpus first, then every other
character the backbone has a row for) and the specials, and drops the multi-character pieces: for
the default backbone about 14,000 of 250,002 rows.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SPECIALS = ("cls", "sep", "pad", "unk")


@dataclass
class CharVocab:
    """Characters -> rows of the pruned embedding; row r is the backbone's ``backbone_ids[r]``."""

    char_to_id: dict[str, int]
    backbone_ids: list[int]
    specials: dict[str, int]
    """Pruned rows of the cls, sep, pad and unk tokens."""

    @property
    def unk(self) -> int:
        return self.specials["unk"]

    def encode(self, text: str) -> list[int]:
        unk = self.specials["unk"]
        lookup = self.char_to_id.get
        return [lookup(ch, unk) for ch in text]

    def tokenize(self, text: str) -> tuple[list[int], list[int], list[int]]:
        """A window's encoder input (see ``distill.teacher.windows.Tokenize``): one position per character."""
        return self.encode(text), list(range(len(text))), [0] * len(text)

    def unknown(self, texts: Iterable[str]) -> Counter[str]:
        """Characters of ``texts`` that will be read as the unknown token, with counts."""
        return Counter(ch for text in texts for ch in text if ch not in self.char_to_id)

    def to_config(self) -> dict:
        return {"char_to_id": self.char_to_id, "backbone_ids": self.backbone_ids, "specials": self.specials}

    @classmethod
    def from_config(cls, record: dict) -> CharVocab:
        return cls(dict(record["char_to_id"]), list(record["backbone_ids"]), dict(record["specials"]))


def backbone_id(char: str, vocab: dict[str, int], tokenizer: PreTrainedTokenizerBase, unk_id: int) -> int:
    """The backbone's id for one character (``unk_id`` if it has none)."""
    if char.isspace():
        return vocab.get("▁", unk_id)
    for form in (char, unicodedata.normalize("NFKC", char)):
        if form in vocab and vocab[form] != unk_id:
            return vocab[form]
    pieces = [p for p in tokenizer.tokenize(char) if p != "▁"]
    ids = [vocab.get(p, unk_id) for p in pieces]
    known = [i for i in ids if i != unk_id]
    return known[0] if known else unk_id


def build_char_vocab(
    texts: Iterable[str], tokenizer: PreTrainedTokenizerBase, every_character: bool = True
) -> tuple[CharVocab, Counter[str]]:
    """The pruned vocabulary of the characters in ``texts`` (and, with ``every_character``, of every
    other character the backbone has a row for), and the characters of ``texts`` left unknown."""
    vocab = tokenizer.get_vocab()
    specials_backbone = {
        "cls": tokenizer.cls_token_id,
        "sep": tokenizer.sep_token_id,
        "pad": tokenizer.pad_token_id,
        "unk": tokenizer.unk_token_id,
    }
    if any(v is None for v in specials_backbone.values()):
        raise ValueError(f"the tokenizer lacks a special token: {specials_backbone}")
    counts = Counter(ch for text in texts for ch in text)
    backbone_ids: list[int] = []
    row_of: dict[int, int] = {}

    def row(backbone: int) -> int:
        if backbone not in row_of:
            row_of[backbone] = len(backbone_ids)
            backbone_ids.append(backbone)
        return row_of[backbone]

    specials = {name: row(i) for name, i in specials_backbone.items()}
    unk_backbone = specials_backbone["unk"]
    char_to_id: dict[str, int] = {}
    unknown: Counter[str] = Counter()
    for char in sorted(counts):
        found = backbone_id(char, vocab, tokenizer, unk_backbone)
        if found == unk_backbone:
            unknown[char] = counts[char]
        else:
            char_to_id[char] = row(found)
    # Every other character the backbone has a row for, after the corpus's: text tagged later reads them
    # as the backbone does, whatever text the teacher was trained on.
    special_ids = set(specials_backbone.values())
    for token, backbone in sorted(vocab.items(), key=lambda item: item[1]) if every_character else ():
        if len(token) == 1 and not token.isspace() and token not in char_to_id and backbone not in special_ids:
            char_to_id[token] = row(backbone)
    return CharVocab(char_to_id, backbone_ids, specials), unknown


def prune_input_embeddings(encoder: PreTrainedModel, vocab: CharVocab) -> None:
    """Keep rows ``vocab.backbone_ids`` (in that order) of ``encoder``'s input embedding, in place.

    The encoder's config is updated to match (vocabulary size, padding row), so that the pruned
    model can be rebuilt from its config alone.
    """
    import torch

    old = encoder.get_input_embeddings()
    index = torch.as_tensor(vocab.backbone_ids, dtype=torch.long, device=old.weight.device)
    pad = vocab.specials["pad"]
    new = torch.nn.Embedding(len(index), old.weight.shape[1], padding_idx=pad, device=old.weight.device)
    with torch.no_grad():
        new.weight.copy_(old.weight.index_select(0, index))
    encoder.set_input_embeddings(new)
    encoder.config.vocab_size = len(index)
    encoder.config.pad_token_id = pad


def expand_input_embeddings(
    encoder: PreTrainedModel, vocab: CharVocab, full_weight: torch.Tensor
) -> torch.nn.Embedding:
    """The undoing of :func:`prune_input_embeddings`: ``full_weight`` ([V_full, H], the backbone's
    embedding before pruning) with rows ``vocab.backbone_ids`` replaced by ``encoder``'s pruned rows,
    as a new embedding; the encoder's config is set back to the full vocabulary."""
    import torch

    pruned = encoder.get_input_embeddings().weight.detach()  # [V_pruned, H]
    weight = full_weight.to(pruned.device, pruned.dtype).clone()
    weight[torch.as_tensor(vocab.backbone_ids, dtype=torch.long, device=pruned.device)] = pruned
    pad = vocab.backbone_ids[vocab.specials["pad"]]
    encoder.config.vocab_size = weight.shape[0]
    encoder.config.pad_token_id = pad
    return torch.nn.Embedding.from_pretrained(weight, freeze=False, padding_idx=pad)
