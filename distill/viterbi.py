"""Batched Viterbi decoding in numpy: the fast path on CPU, and the only one without torch.

One loop over time, none over the batch, and batched back-tracking. The batch is the innermost
axis (``[K_prev, K_next, B]``), so each step's maximum runs over the outermost axis, which numpy
reduces with contiguous element-wise maxima, many times faster than a reduction over a small
inner axis; the transitions are laid out along the batch once per call, so a step's sum is a
plain element-wise add too. Where a tag scheme forbids many moves (``-inf`` transitions: under
BIOES over 8 types no tag has more than 17 of 33 possible previous tags), a step scores only
each tag's allowed previous tags. Each step keeps its best scores (``[T, K, B]``, a K-th
of all candidates), and back-tracking rescores only the chosen tag's candidates.

Scores are summed in pytorch-crf's order, ``(score + transition) + emission`` in float32, so the
paths equal its ``decode`` to the last bit, near-ties included: a step adds the emission after
the maximum, which gives the same value because float rounding is monotonic, and back-tracking
rescores with the emission in the sum before taking the first maximum, as pytorch-crf does.
Importing this module imports numpy only: a deployment without torch decodes with it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SPARSE_BELOW = 0.6
"""Steps score only the allowed moves when no tag has more than this share of the K tags before
it (gathering the candidates costs more than adding them in place)."""
MAX_SCORES = 1 << 20
"""Floats per array of a call (4 MiB: the best scores ``[T, K, B]``, the candidates ``[K, K, B]``);
larger batches are decoded in slices, so a serving process stays small whatever batch it is given."""


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


class Viterbi:
    """The best-path decoder of one CRF's scores.

    Args:
        start: ``[K]`` scores of the first tag.
        transitions: ``[K, K]`` score of moving from tag i to tag j (``-inf`` where a scheme forbids it).
        end: ``[K]`` scores of the last tag.
    """

    def __init__(self, start: np.ndarray, transitions: np.ndarray, end: np.ndarray) -> None:
        self.start, self.transitions, self.end = (np.asarray(x, dtype=np.float32) for x in (start, transitions, end))
        num_tags = self.transitions.shape[0]
        if self.transitions.shape != (num_tags, num_tags) or self.start.shape != self.end.shape != (num_tags,):
            raise ValueError(f"scores must be [K], [K, K], [K]; got {self.start.shape}, {self.transitions.shape}")
        # Each tag's allowed previous tags, the last repeated to a common width (a repeat leaves a
        # maximum as it is); a tag that no move reaches keeps one move, at -inf, as in the dense sum.
        allowed = np.isfinite(self.transitions)  # [K, K]
        counts = allowed.sum(axis=0)  # [K]: moves into each tag
        width = max(1, int(counts.max()))
        tags = np.arange(num_tags)
        sources = np.argsort(~allowed, axis=0, kind="stable")[:width]  # [W, K]: allowed rows first
        last = sources[np.maximum(counts - 1, 0), tags]  # [K]
        sources = np.where(np.arange(width)[:, None] < counts[None, :], sources, last[None, :])
        self.sparse = width < SPARSE_BELOW * num_tags
        self.move_sources = sources  # [W, K]: the i-th allowed previous tag of tag j
        self.move_scores = self.transitions[sources, tags[None, :]]  # [W, K]

    @property
    def num_tags(self) -> int:
        return len(self.start)

    def decode(self, emissions: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
        """Best tag path of each sentence.

        Args:
            emissions: ``[B, T, K]`` scores per character and tag.
            lengths: ``[B]`` real lengths, each in ``1..T``.

        Returns:
            ``B`` lists, the i-th holding ``lengths[i]`` tag indices.
        """
        emissions = np.asarray(emissions, dtype=np.float32)
        batch, steps, num_tags = emissions.shape
        lengths = np.asarray(lengths, dtype=np.int64)
        if num_tags != self.num_tags:
            raise ValueError(f"emissions have {num_tags} tags, the decoder {self.num_tags}")
        if batch == 0:
            return []
        if steps == 0 or lengths.min() < 1 or lengths.max() > steps:
            raise ValueError(f"lengths must lie in 1..{steps}, got {lengths.tolist()}")
        if batch == 1:
            return [self._decode_one(emissions[0, : int(lengths[0])])]
        per_slice = max(1, MAX_SCORES // (max(steps, num_tags) * num_tags))  # bounds [T, K, B] and [K, K, B]
        paths: list[list[int]] = []
        for lo in range(0, batch, per_slice):
            piece = slice(lo, lo + per_slice)
            longest = int(lengths[piece].max())  # a slice of short sentences stops early
            paths.extend(self._decode_batch(emissions[piece, :longest], lengths[piece]))
        return paths

    def _decode_batch(self, emissions: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
        batch, steps, num_tags = emissions.shape
        em = np.ascontiguousarray(emissions.transpose(1, 2, 0))  # [T, K, B]
        active = np.arange(1, steps)[:, None] < lengths[None, :]  # [T-1, B]: step t+1 is a real character
        ragged = ~active.all(axis=1)  # [T-1]: some sentence has ended before step t+1
        best_into = self._best_into_sparse(batch) if self.sparse else self._best_into_dense(batch)
        ended = ~active  # [T-1, B]
        add, copyto = np.add, np.copyto
        scores = np.empty((steps, num_tags, batch), dtype=np.float32)  # [T, K, B]: best score ending in each tag
        add(self.start[:, None], em[0], out=scores[0])
        for t in range(steps - 1):
            best_into(scores[t], scores[t + 1])
            add(scores[t + 1], em[t + 1], out=scores[t + 1])
            if ragged[t]:  # past a sentence's end its score stays put
                copyto(scores[t + 1], scores[t], where=ended[t])
        tags = (scores[-1] + self.end[:, None]).argmax(axis=0)  # [B]
        paths = np.empty((steps, batch), dtype=np.int64)
        paths[-1] = tags
        columns = np.arange(batch)
        for t in range(steps - 2, -1, -1):
            rescored = scores[t] + self.transitions[:, tags]  # [K, B]
            rescored += em[t + 1, tags, columns]
            came_from = rescored.argmax(axis=0)  # [B]
            tags = np.where(active[t], came_from, tags) if ragged[t] else came_from
            paths[t] = tags
        return [paths[: int(n), b].tolist() for b, n in enumerate(lengths)]

    def _best_into_dense(self, batch: int) -> Callable[[np.ndarray, np.ndarray], None]:
        """A step: [K, B] scores of the tags at t -> [K, B] best score of reaching each tag at t+1,
        written into the second array (every operation into arrays made once per call)."""
        moves = np.repeat(self.transitions[:, :, None], batch, axis=2)  # [K, K, B]
        candidates = np.empty_like(moves)  # [K, K, B]: score of tag i at t, then tag j at t+1
        add, reduce_max = np.add, np.maximum.reduce

        def best_into(scores: np.ndarray, out: np.ndarray) -> None:
            add(scores[:, None, :], moves, out=candidates)
            reduce_max(candidates, axis=0, out=out)

        return best_into

    def _best_into_sparse(self, batch: int) -> Callable[[np.ndarray, np.ndarray], None]:
        """As :meth:`_best_into_dense`, over each tag's allowed previous tags only."""
        moves = np.repeat(self.move_scores[:, :, None], batch, axis=2)  # [W, K, B]
        candidates = np.empty_like(moves)  # [W, K, B]: score of tag j's i-th allowed previous tag, then the move
        sources, add, reduce_max = self.move_sources, np.add, np.maximum.reduce

        def best_into(scores: np.ndarray, out: np.ndarray) -> None:
            scores.take(sources, axis=0, out=candidates)
            add(candidates, moves, out=candidates)
            reduce_max(candidates, axis=0, out=out)

        return best_into

    def _decode_one(self, emissions: np.ndarray) -> list[int]:
        """The batch-of-one case, where per-call overhead is everything: plain 2-D arrays, every
        step's three operations writing into arrays made once (as in the batch, the emission is
        added after the maximum and back in when back-tracking)."""
        steps, num_tags = emissions.shape
        add, reduce_max = np.add, np.maximum.reduce
        column = np.empty((num_tags, 1), dtype=np.float32)  # [K, 1]: best score ending in each tag
        score = column[:, 0]  # [K]: the same memory
        add(self.start, emissions[0], out=score)
        candidates = np.empty((max(steps - 1, 0), num_tags, num_tags), dtype=np.float32)  # [T-1, K, K]
        for t in range(steps - 1):
            cand = candidates[t]
            add(column, self.transitions, out=cand)
            reduce_max(cand, axis=0, out=score)
            add(score, emissions[t + 1], out=score)
        tag = int((score + self.end).argmax())
        path = [tag]
        for t in range(steps - 2, -1, -1):
            tag = int((candidates[t][:, tag] + emissions[t + 1, tag]).argmax())
            path.append(tag)
        path.reverse()
        return path
