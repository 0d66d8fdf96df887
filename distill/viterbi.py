"""Batched Viterbi decoding in numpy: the fast path on CPU, and the only one without torch.

One loop over time, none over the batch, and batched back-tracking. The batch is the innermost
axis (``[K_prev, K_next, B]``), so each step's max runs over the outermost axis, which numpy
(and torch) reduce with contiguous element-wise maxima, many times faster than a reduction over
a small inner axis. Back-pointers are found only along the chosen path, while back-tracking.

Scores are summed in pytorch-crf's order, ``(score + transition) + emission`` in float32, so the
paths equal its ``decode`` to the last bit, near-ties included. Importing this module imports
numpy only: a deployment without torch decodes with it.
"""

from __future__ import annotations

import numpy as np

MAX_CANDIDATES = 1 << 22
"""Candidate scores kept per call (16 MiB of float32); larger batches are decoded in slices. As fast
as 64 MiB at batch 256 here, and a serving process stays that much smaller."""


def transition_penalties(allowed: tuple, num_tags: int) -> np.ndarray:
    """[K + 2, K] scores to add for a tag scheme's constraints: 0 where allowed, -inf where not.

    Rows: start, then the K x K transitions, then end. ``allowed`` is ``(start [K], pairs [K, K],
    end [K])`` of booleans, as :func:`data.allowed_transitions` gives.
    """
    start, pairs, end = (np.asarray(x, dtype=bool) for x in allowed)
    if pairs.shape != (num_tags, num_tags) or start.shape != (num_tags,) or end.shape != (num_tags,):
        raise ValueError(f"allowed transitions must be [{num_tags}], [{num_tags}, {num_tags}], [{num_tags}]")
    allowed_rows = np.concatenate([start[None], pairs, end[None]])
    return np.where(allowed_rows, np.float32(0), np.float32(-np.inf)).astype(np.float32)


def viterbi_decode(
    emissions: np.ndarray,
    lengths: np.ndarray,
    start: np.ndarray,
    transitions: np.ndarray,
    end: np.ndarray,
) -> list[list[int]]:
    """Best tag path of each sentence.

    Args:
        emissions: ``[B, T, K]`` scores per character and tag.
        lengths: ``[B]`` real lengths, each in ``1..T``.
        start: ``[K]`` scores of the first tag.
        transitions: ``[K, K]`` score of moving from tag i to tag j.
        end: ``[K]`` scores of the last tag.

    Returns:
        ``B`` lists, the i-th holding ``lengths[i]`` tag indices.
    """
    emissions = np.asarray(emissions, dtype=np.float32)
    batch, steps, num_tags = emissions.shape
    lengths = np.asarray(lengths, dtype=np.int64)
    if batch == 0:
        return []
    if steps == 0 or lengths.min() < 1 or lengths.max() > steps:
        raise ValueError(f"lengths must lie in 1..{steps}, got {lengths.tolist()}")
    start, transitions, end = (np.asarray(x, dtype=np.float32) for x in (start, transitions, end))
    if batch == 1:
        return [_decode_one(emissions[0, : int(lengths[0])], start, transitions, end)]
    per_slice = max(1, MAX_CANDIDATES // (steps * num_tags * num_tags))
    paths: list[list[int]] = []
    for lo in range(0, batch, per_slice):
        piece = slice(lo, lo + per_slice)
        paths.extend(_decode_batch(emissions[piece], lengths[piece], start, transitions, end))
    return paths


def _decode_batch(
    emissions: np.ndarray, lengths: np.ndarray, start: np.ndarray, transitions: np.ndarray, end: np.ndarray
) -> list[list[int]]:
    batch, steps, num_tags = emissions.shape
    em = np.ascontiguousarray(emissions.transpose(1, 2, 0))  # [T, K, B]
    active = np.arange(1, steps)[:, None] < lengths[None, :]  # [T-1, B]: step t+1 is a real character
    ragged = ~active.all(axis=1)  # [T-1]: some sentence has ended before step t+1
    moves = transitions[:, :, None]  # [K, K, 1]
    # candidates[t, i, j, b]: best score of sentence b with tag i at t and tag j at t+1.
    candidates = np.empty((steps - 1, num_tags, num_tags, batch), dtype=np.float32)
    score = start[:, None] + em[0]  # [K, B]
    for t in range(steps - 1):
        cand = candidates[t]
        np.add(score[:, None, :], moves, out=cand)
        np.add(cand, em[t + 1][None], out=cand)
        best = cand.max(axis=0)  # [K, B]
        # Past a sentence's end its score stays put.
        score = np.where(active[t], best, score) if ragged[t] else best
    tags = (score + end[:, None]).argmax(axis=0)  # [B]
    paths = np.empty((steps, batch), dtype=np.int64)
    paths[-1] = tags
    columns = np.arange(batch)
    for t in range(steps - 2, -1, -1):
        came_from = candidates[t][:, tags, columns].argmax(axis=0)  # [B]
        tags = np.where(active[t], came_from, tags) if ragged[t] else came_from
        paths[t] = tags
    return [paths[: int(n), b].tolist() for b, n in enumerate(lengths)]


def _decode_one(emissions: np.ndarray, start: np.ndarray, transitions: np.ndarray, end: np.ndarray) -> list[int]:
    """The batch-of-one case, where per-call overhead is everything: plain 2-D arrays."""
    steps, num_tags = emissions.shape
    score = start + emissions[0]
    candidates = np.empty((max(steps - 1, 0), num_tags, num_tags), dtype=np.float32)
    for t in range(steps - 1):
        cand = candidates[t]
        np.add(score[:, None], transitions, out=cand)
        np.add(cand, emissions[t + 1], out=cand)
        score = cand.max(axis=0)
    tag = int((score + end).argmax())
    path = [tag]
    for t in range(steps - 2, -1, -1):
        tag = int(candidates[t][:, tag].argmax())
        path.append(tag)
    path.reverse()
    return path
