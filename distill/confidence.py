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

from collections.abc import Sequence

import numpy as np


def _logsumexp(scores: np.ndarray, axis: int) -> np.ndarray:
    top = np.max(scores, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):  # log(0) = -inf where every term is -inf
        return np.log(np.sum(np.exp(scores - top), axis=axis)) + np.squeeze(top, axis=axis)


class CrfScores:
    """A CRF's start [K], transitions [K, K] and end [K] scores, ``-inf`` where a scheme forbids a move."""

    def __init__(self, start: np.ndarray, transitions: np.ndarray, end: np.ndarray) -> None:
        self.start, self.transitions, self.end = (np.asarray(x, dtype=np.float64) for x in (start, transitions, end))
        k = len(self.start)
        if self.transitions.shape != (k, k) or self.end.shape != (k,):
            raise ValueError(f"scores must be [K], [K, K], [K]; got {self.start.shape}, {self.transitions.shape}")

    def forward_backward(self, emissions: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(alpha [L, K], beta [L, K], log Z) of one sentence's emissions [L, K]."""
        x = np.asarray(emissions, dtype=np.float64)
        length = len(x)
        alpha, beta = np.empty_like(x), np.empty_like(x)
        alpha[0] = self.start + x[0]
        for t in range(1, length):
            alpha[t] = _logsumexp(alpha[t - 1][:, None] + self.transitions, axis=0) + x[t]
        beta[-1] = self.end
        for t in range(length - 2, -1, -1):
            beta[t] = _logsumexp(self.transitions + (x[t + 1] + beta[t + 1])[None, :], axis=1)
        return alpha, beta, float(_logsumexp(alpha[-1] + self.end, axis=0))

    def span_probabilities(self, emissions: np.ndarray, spans: Sequence[tuple[int, Sequence[int]]]) -> list[float]:
        """p(the tags of each span) for spans given as (first position, its tags), in one pass."""
        if not spans:
            return []
        x = np.asarray(emissions, dtype=np.float64)
        alpha, beta, log_z = self.forward_backward(x)
        out = []
        for first, tags in spans:
            score = alpha[first, tags[0]]
            for offset in range(1, len(tags)):
                t = first + offset
                score += self.transitions[tags[offset - 1], tags[offset]] + x[t, tags[offset]]
            score += beta[first + len(tags) - 1, tags[-1]]
            out.append(float(np.exp(min(score - log_z, 0.0))))  # rounding can pass 0 by a hair
        return out
