"""Sentences longer than the encoder's position limit, run in overlapping windows and stitched.

Every character gets its emission from the window in which it sits farthest from an edge:
consecutive windows overlap and split the overlap at its middle. Short sentences are a single
window. Nothing is ever dropped or truncated, in training, caching and prediction alike.
Windows are planned in characters and each is tokenized on its own, into one position per
character (``distill.teacher.charmap``) or into the tokenizer's pieces (``distill.teacher.piecemap``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Window:
    start: int
    end: int
    keep_from: int
    keep_to: int
    """Characters ``keep_from..keep_to`` of the sentence take their emissions from this window."""


def plan_windows(length: int, width: int, overlap: int) -> list[Window]:
    """Windows of at most ``width`` characters covering ``0..length``, consecutive ones sharing
    ``overlap`` characters (the last window is aligned to the end)."""
    if width < 1 or not 0 <= overlap < width:
        raise ValueError(f"need width >= 1 and 0 <= overlap < width, got {width}, {overlap}")
    if length <= width:
        return [Window(0, length, 0, length)]
    starts = [*range(0, length - width, width - overlap), length - width]
    # Neighbouring windows hand over in the middle of their overlap.
    cuts = [0] + [(nxt + start + width) // 2 for start, nxt in itertools.pairwise(starts)] + [length]
    return [Window(start, start + width, cuts[i], cuts[i + 1]) for i, start in enumerate(starts)]


Tokenize = Callable[[str], tuple[list[int], list[int], list[int]]]
"""Text -> (embedding rows of its encoder positions, the position of each character, each
character's segment: 0 where it is a position of its own, 1/2/3 where it begins, continues or
ends a multi-character piece)."""


@dataclass(frozen=True)
class EncodedSentence:
    """A sentence as encoder input: its windows' positions, and where each character reads its emission."""

    windows: list[list[int]]
    """Embedding rows of each window's positions (CLS and SEP not included)."""
    positions: list[tuple[int, int]]
    """Per character: (window, position in it) its emission comes from."""
    segments: list[int]
    """Per character: its segment (see :data:`Tokenize`)."""


def encode_sentence(text: str, tokenize: Tokenize, width: int, overlap: int) -> EncodedSentence:
    """``text`` (non-empty) in windows of at most ``width`` characters, each tokenized on its own."""
    windows: list[list[int]] = []
    positions: list[tuple[int, int]] = []
    segments: list[int] = []
    for w, window in enumerate(plan_windows(len(text), width, overlap)):
        ids, where, segment = tokenize(text[window.start : window.end])
        keep = slice(window.keep_from - window.start, window.keep_to - window.start)
        windows.append(ids)
        positions.extend((w, position) for position in where[keep])
        segments.extend(segment[keep])
    return EncodedSentence(windows, positions, segments)


@dataclass
class WindowBatch:
    """Encoder input for a batch of sentences, and how to put the emissions back together."""

    input_ids: torch.Tensor
    """[P, W + 2]: each window as CLS + its positions + SEP, padded."""
    attention_mask: torch.Tensor
    """[P, W + 2]."""
    gather: torch.Tensor
    """[B * T]: for each sentence position, its row in the windows' flattened [P * W + 1] emissions
    (the extra last row is zeros, for padding)."""
    mask: torch.Tensor
    """[B, T] bool: real characters."""
    segments: torch.Tensor
    """[B, T]: each character's segment (see :data:`Tokenize`); 0 past the end."""

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mask.shape)

    def to(self, device: torch.device) -> WindowBatch:
        tensors = (self.input_ids, self.attention_mask, self.gather, self.mask, self.segments)
        return WindowBatch(*(t.to(device, non_blocking=True) for t in tensors))


def make_window_batch(sentences: Sequence[EncodedSentence], specials: dict[str, int]) -> WindowBatch:
    """One batch of encoder windows for encoded sentences."""
    windows = [ids for sentence in sentences for ids in sentence.windows]
    width = max(len(ids) for ids in windows)
    longest = max(len(s.positions) for s in sentences)
    gather = torch.full((len(sentences), longest), len(windows) * width, dtype=torch.long)
    mask = torch.zeros((len(sentences), longest), dtype=torch.bool)
    segments = torch.zeros((len(sentences), longest), dtype=torch.long)
    first_window = 0
    for b, sentence in enumerate(sentences):
        n = len(sentence.positions)
        rows = [(first_window + w) * width + position for w, position in sentence.positions]
        gather[b, :n] = torch.as_tensor(rows, dtype=torch.long)
        mask[b, :n] = True
        segments[b, :n] = torch.as_tensor(sentence.segments, dtype=torch.long)
        first_window += len(sentence.windows)
    input_ids = torch.full((len(windows), width + 2), specials["pad"], dtype=torch.long)
    attention = torch.zeros((len(windows), width + 2), dtype=torch.long)
    for p, ids in enumerate(windows):
        n = len(ids)
        input_ids[p, 0] = specials["cls"]
        input_ids[p, 1 : n + 1] = torch.as_tensor(ids, dtype=torch.long)
        input_ids[p, n + 1] = specials["sep"]
        attention[p, : n + 2] = 1
    return WindowBatch(input_ids, attention, gather.view(-1), mask, segments)


def stitch(window_emissions: torch.Tensor, batch: WindowBatch) -> torch.Tensor:
    """[P, W, K] window emissions -> [B, T, K] sentence emissions (zeros past each end)."""
    num_tags = window_emissions.shape[-1]
    flat = torch.cat([window_emissions.reshape(-1, num_tags), window_emissions.new_zeros(1, num_tags)])
    return flat[batch.gather].view(*batch.shape, num_tags)
