"""Length-bucketed batches and dynamic padding, so a batch pads to its own longest sentence."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np


def bucket_batches(
    lengths: Sequence[int],
    batch_size: int,
    *,
    max_tokens: int | None = None,
    max_padding: float | None = None,
    shuffle: bool = False,
    seed: int = 0,
    pool: int = 50,
) -> list[list[int]]:
    """Group indices into batches of similar length.

    Without ``shuffle`` (evaluation) indices are sorted by length, longest first, and cut in order.
    With ``shuffle`` (training) they are shuffled, sorted by length within pools of
    ``pool * batch_size``, cut, and the batches shuffled, so batches vary between epochs while
    padding stays small. ``max_tokens`` also caps ``len(batch) * longest`` in a batch, and
    ``max_padding`` the padding itself: ``len(batch) * longest <= (1 + max_padding) * characters``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = list(range(len(lengths)))
    if shuffle:
        rng = random.Random(seed)
        rng.shuffle(order)
        span = batch_size * pool
        pools = [order[i : i + span] for i in range(0, len(order), span)]
    else:
        pools = [order]
    batches: list[list[int]] = []
    for members in pools:
        members.sort(key=lambda i: -lengths[i])
        batch: list[int] = []
        characters = 0
        for i in members:
            longest = lengths[batch[0]] if batch else lengths[i]
            padded = (len(batch) + 1) * longest
            too_many = max_tokens is not None and batch and padded > max_tokens
            too_padded = max_padding is not None and batch and padded > (1 + max_padding) * (characters + lengths[i])
            if len(batch) == batch_size or too_many or too_padded:
                batches.append(batch)
                batch, characters = [], 0
            batch.append(i)
            characters += lengths[i]
        if batch:
            batches.append(batch)
    if shuffle:
        rng.shuffle(batches)
    return batches


def pad(
    sequences: Sequence[Sequence], value: float = 0, dtype: type = np.int64, width: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``[B, T, ...]`` array of the sequences (of scalars, or of arrays of one trailing shape) padded
    with ``value`` to ``width`` (default: the longest), and its ``[B, T]`` bool mask."""
    longest = width if width is not None else max((len(s) for s in sequences), default=0)
    trailing = np.shape(sequences[0])[1:] if len(sequences) else ()
    out = np.full((len(sequences), longest, *trailing), value, dtype=dtype)
    mask = np.zeros((len(sequences), longest), dtype=bool)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = seq
        mask[row, : len(seq)] = True
    return out, mask
