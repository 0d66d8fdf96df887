"""Sentences longer than the encoder's position limit, run in overlapping windows and stitched.

Every character gets its emission from the window in which it sits farthest from an edge:
consecutive windows overlap and split the overlap at its middle. Short sentences are a single
window. Nothing is ever dropped or truncated, in training, caching and prediction alike.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
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


@dataclass
class WindowBatch:
    """Encoder input for a batch of sentences, and how to put the emissions back together."""

    input_ids: torch.Tensor
    """[P, W + 2]: each window as CLS + characters + SEP, padded."""
    attention_mask: torch.Tensor
    """[P, W + 2]."""
    gather: torch.Tensor
    """[B * T]: for each sentence position, its row in the windows' flattened [P * W + 1] emissions
    (the extra last row is zeros, for padding)."""
    mask: torch.Tensor
    """[B, T] bool: real characters."""

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.mask.shape)

    def to(self, device: torch.device) -> WindowBatch:
        return WindowBatch(
            *(t.to(device, non_blocking=True) for t in (self.input_ids, self.attention_mask, self.gather, self.mask))
        )


def make_window_batch(
    sentences: Sequence[Sequence[int]], specials: dict[str, int], width: int, overlap: int
) -> WindowBatch:
    """Windows for sentences given as embedding-row ids (one per character, none empty)."""
    pieces: list[Sequence[int]] = []
    gather_rows: list[list[int]] = []
    piece_width = min(width, max(len(s) for s in sentences))
    for ids in sentences:
        rows = []
        for window in plan_windows(len(ids), width, overlap):
            p = len(pieces)
            pieces.append(ids[window.start : window.end])
            rows.extend(p * piece_width + (t - window.start) for t in range(window.keep_from, window.keep_to))
        gather_rows.append(rows)
    longest = max(len(s) for s in sentences)
    pad_row = len(pieces) * piece_width
    gather = torch.full((len(sentences), longest), pad_row, dtype=torch.long)
    mask = torch.zeros((len(sentences), longest), dtype=torch.bool)
    for b, rows in enumerate(gather_rows):
        gather[b, : len(rows)] = torch.as_tensor(rows, dtype=torch.long)
        mask[b, : len(rows)] = True
    input_ids = torch.full((len(pieces), piece_width + 2), specials["pad"], dtype=torch.long)
    attention = torch.zeros((len(pieces), piece_width + 2), dtype=torch.long)
    for p, ids in enumerate(pieces):
        n = len(ids)
        input_ids[p, 0] = specials["cls"]
        input_ids[p, 1 : n + 1] = torch.as_tensor(ids, dtype=torch.long)
        input_ids[p, n + 1] = specials["sep"]
        attention[p, : n + 2] = 1
    return WindowBatch(input_ids, attention, gather.view(-1), mask)


def stitch(piece_emissions: torch.Tensor, batch: WindowBatch) -> torch.Tensor:
    """[P, W, K] window emissions -> [B, T, K] sentence emissions (zeros past each end)."""
    num_tags = piece_emissions.shape[-1]
    flat = torch.cat([piece_emissions.reshape(-1, num_tags), piece_emissions.new_zeros(1, num_tags)])
    return flat[batch.gather].view(*batch.shape, num_tags)
