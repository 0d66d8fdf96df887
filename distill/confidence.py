"""How sure a CRF is of an entity it tagged: the probability that the entity's span carries exactly
its tags, under the CRF's distribution over tag sequences given the sentence.

For emissions ``x`` [L, K] and the CRF's scores (start [K], transitions [K, K], end [K], with the
tag scheme's constraints, as decoding uses them), forward-backward gives ``alpha[t, k]``, the
log-sum over tag prefixes ending in tag k at position t (``x[t]`` included), ``beta[t, k]``, the
log-sum over continuations after tag k at t (the end score included), and ``log Z``. A span
``s..e-1`` with tags ``y`` has

    log p = alpha[s, y_s] + sum_{t=s+1}^{e-1} (transitions[y_{t-1}, y_t] + x[t, y_t]) + beta[e-1, y_{e-1}] - log Z

(what lies outside the span is summed over, not fixed). One numpy implementation, in float64,
serves every runtime: the torch models hand over their emissions as arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

RENORMALISE_EVERY = 4
"""Steps between renormalisations of the forward-backward (each costs as much as a step's
product); the last step is renormalised too. Between two renormalisations a vector's scale may
fall, and entries far below its largest then underflow where a scan renormalised every step
would keep them; when a divisor falls below ``exp(SMALLEST_LOG_SCALE)`` (score gaps of hundreds
within a few steps) the scan is redone renormalising every step, so the result is that scan's."""
SMALLEST_LOG_SCALE = -350.0


class CrfScores:
    """A CRF's start [K], transitions [K, K] and end [K] scores, ``-inf`` where a scheme forbids a move."""

    def __init__(self, start: np.ndarray, transitions: np.ndarray, end: np.ndarray) -> None:
        self.start, self.transitions, self.end = (np.asarray(x, dtype=np.float64) for x in (start, transitions, end))
        k = len(self.start)
        if self.transitions.shape != (k, k) or self.end.shape != (k,):
            raise ValueError(f"scores must be [K], [K, K], [K]; got {self.start.shape}, {self.transitions.shape}")
        # Both directions advance in one product a step: forward over the text, backward over it
        # reversed with the moves transposed. Moves are scaled to at most 1, as the emissions are
        # (each position's maximum taken out), so between renormalisations a vector grows at
        # most K-fold a step.
        self._moves_max = float(np.max(self.transitions))
        moves = np.exp(self.transitions - self._moves_max)  # [K, K]; 0 where a move is forbidden
        self._both_moves = np.stack([moves, moves.T])  # [2, K, K]
        self._first_max = np.array([self.start.max(), self.end.max()])  # [2]
        self._first = np.exp(np.stack([self.start, self.end]) - self._first_max[:, None])[:, None, :]  # [2, 1, K]

    def span_probabilities(self, emissions: np.ndarray, spans: Sequence[tuple[int, Sequence[int]]]) -> list[float]:
        """p(the tags of each span) of one sentence, for spans given as (first position, its tags)."""
        return self.batch_span_probabilities([emissions], [spans])[0]

    def batch_span_probabilities(
        self, emissions: Sequence[np.ndarray], spans: Sequence[Sequence[tuple[int, Sequence[int]]]]
    ) -> list[list[float]]:
        """p(the tags of each span) of many sentences at once (per sentence, spans given as (first
        position, its tags)).

        The scaled forward-backward in probability space. The backward pass runs as a forward pass
        over the reversed sentence, so both advance together, one [2, B, K] x [2, K, K] product a
        step; what it carries at a position includes that position's emission (beta times
        ``exp(x)``), so the span's last emission is taken out once.
        """
        busy = [i for i, sentence in enumerate(spans) if sentence]  # a sentence without entities costs nothing
        out: list[list[float]] = [[] for _ in spans]
        if not busy:
            return out
        lengths = [len(emissions[i]) for i in busy]
        batch, longest, k = len(busy), max(lengths), len(self.start)
        potentials = np.zeros((longest, 2, batch, k))  # [T, direction, B, K]: the text as read, and reversed
        for row, (i, n) in enumerate(zip(busy, lengths)):
            potentials[:n, 0, row] = emissions[i]
            potentials[:n, 1, row] = emissions[i][::-1]
        shift = potentials.max(axis=3)  # [T, 2, B]
        potentials -= shift[..., None]
        np.exp(potentials, out=potentials)  # at most 1
        carried, log_scales = self._scan(potentials, RENORMALISE_EVERY)
        if not (log_scales >= SMALLEST_LOG_SCALE).all():  # a vector left float64's range between renormalisations
            carried, log_scales = self._scan(potentials, 1)
        # [T, 2, B]: the log of all that the steps up to t took out of what they carry
        log_scales[1:] += self._moves_max
        offsets = np.cumsum(log_scales + shift, axis=0) + self._first_max[:, None]
        end_weights = self._first[1, 0]  # [K]: exp(end - its maximum)
        for row, (i, n) in enumerate(zip(busy, lengths)):
            x = emissions[i]
            log_z = math.log(carried[n - 1, 0, row] @ end_weights) + self._first_max[1] + offsets[n - 1, 0, row]
            for first, tags in spans[i]:
                stop = first + len(tags) - 1
                score = _log(carried[first, 0, row, tags[0]]) + offsets[first, 0, row] - log_z
                score += _log(carried[n - 1 - stop, 1, row, tags[-1]]) + offsets[n - 1 - stop, 1, row]
                score -= float(x[stop, tags[-1]])
                for t in range(first + 1, stop + 1):
                    score += self.transitions[tags[t - first - 1], tags[t - first]] + float(x[t, tags[t - first]])
                out[i].append(math.exp(min(score, 0.0)))
        return out

    def _scan(self, potentials: np.ndarray, every: int) -> tuple[np.ndarray, np.ndarray]:
        """Both passes over potentials [T, 2, B, K]: what each step carries [T, 2, B, K], renormalised
        to sum 1 every ``every`` steps and at the last, and the log of each step's divisor [T, 2, B]
        (0 between)."""
        carried = np.empty_like(potentials)
        scales = np.ones((*potentials.shape[:3], 1))  # [T, 2, B, 1]
        steps, factors, divisors = list(carried), list(potentials), list(scales)  # views, made once
        np.multiply(self._first, factors[0], out=steps[0])
        matmul, multiply, add, divide = np.matmul, np.multiply, np.add.reduce, np.divide
        last = len(steps) - 1
        with np.errstate(divide="ignore", invalid="ignore"):  # a vector that underflowed: the caller redoes the scan
            for t, step in enumerate(steps):
                if t:
                    matmul(steps[t - 1], self._both_moves, out=step)
                    multiply(step, factors[t], out=step)
                if t % every == 0 or t == last:
                    add(step, axis=2, keepdims=True, out=divisors[t])
                    divide(step, divisors[t], out=step)
            return carried, np.log(scales[..., 0])


def _log(value: float) -> float:
    return math.log(value) if value > 0 else -math.inf
