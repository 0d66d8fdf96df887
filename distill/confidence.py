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


class CrfScores:
    """A CRF's start [K], transitions [K, K] and end [K] scores, ``-inf`` where a scheme forbids a move."""

    def __init__(self, start: np.ndarray, transitions: np.ndarray, end: np.ndarray) -> None:
        self.start, self.transitions, self.end = (np.asarray(x, dtype=np.float64) for x in (start, transitions, end))
        k = len(self.start)
        if self.transitions.shape != (k, k) or self.end.shape != (k,):
            raise ValueError(f"scores must be [K], [K, K], [K]; got {self.start.shape}, {self.transitions.shape}")
        self._moves = np.exp(self.transitions)  # [K, K]; 0 where a move is forbidden

    def forward_backward(self, emissions: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(log alpha [L, K], log beta [L, K], log Z) of one sentence's emissions [L, K].

        Computed in probability space with each step renormalised (the scaled forward-backward):
        a step is one [K] x [K, K] product, where log-space needs a [K, K] log-sum-exp, and the
        scales, summed in log space, carry what the normalisation took out.
        """
        x = np.asarray(emissions, dtype=np.float64)
        length, k = x.shape
        shift = x.max(axis=1, keepdims=True)  # [L, 1]
        potentials = np.exp(x - shift)  # [L, K], each row's largest entry 1
        start_shift, end_shift = self.start.max(), self.end.max()
        alpha, beta = np.empty((length, k)), np.empty((length, k))
        alpha_scale, beta_scale = np.empty(length), np.empty(length)
        step = np.exp(self.start - start_shift) * potentials[0]
        for t in range(length):
            if t:
                step = (alpha[t - 1] @ self._moves) * potentials[t]
            alpha_scale[t] = step.sum()
            alpha[t] = step / alpha_scale[t]
        step = np.exp(self.end - end_shift)
        beta_scale[-1] = 1.0
        beta[-1] = step
        for t in range(length - 2, -1, -1):
            step = self._moves @ (potentials[t + 1] * beta[t + 1])
            beta_scale[t] = step.sum()
            beta[t] = step / beta_scale[t]
        with np.errstate(divide="ignore"):  # log(0) = -inf: a tag no path reaches
            log_alpha = np.log(alpha) + (start_shift + np.cumsum(shift[:, 0] + np.log(alpha_scale)))[:, None]
            later = np.concatenate([np.cumsum((shift[1:, 0] + np.log(beta_scale[:-1]))[::-1])[::-1], [0.0]])
            log_beta = np.log(beta) + (end_shift + later)[:, None]
        log_z = float(np.log(alpha[-1] @ np.exp(self.end - end_shift)) + end_shift) + float(
            start_shift + np.sum(shift[:, 0] + np.log(alpha_scale))
        )
        return log_alpha, log_beta, log_z

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
