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

    def span_probabilities(self, emissions: np.ndarray, spans: Sequence[tuple[int, Sequence[int]]]) -> list[float]:
        """p(the tags of each span) of one sentence, for spans given as (first position, its tags)."""
        return self.batch_span_probabilities([emissions], [spans])[0]

    def batch_span_probabilities(
        self, emissions: Sequence[np.ndarray], spans: Sequence[Sequence[tuple[int, Sequence[int]]]]
    ) -> list[list[float]]:
        """p(the tags of each span) of many sentences at once (per sentence, spans given as (first
        position, its tags)).

        The scaled forward-backward over the batch: in probability space, each step one
        [B, K] x [K, K] product renormalised, the scales summed in log space (a log-space step
        would need a [B, K, K] log-sum-exp); sentences past their end are carried unchanged.
        """
        busy = [i for i, sentence in enumerate(spans) if sentence]  # a sentence without entities costs nothing
        out: list[list[float]] = [[] for _ in spans]
        if not busy:
            return out
        lengths = np.array([len(emissions[i]) for i in busy])
        batch, longest, k = len(busy), int(lengths.max()), len(self.start)
        x = np.zeros((batch, longest, k))
        for row, i in enumerate(busy):
            x[row, : lengths[row]] = emissions[i]
        shift = x.max(axis=2)  # [B, T]
        potentials = np.exp(x - shift[:, :, None])  # [B, T, K]
        alpha, beta = np.empty((batch, longest, k)), np.empty((batch, longest, k))
        alpha_scale, beta_scale = np.ones((batch, longest)), np.ones((batch, longest))
        step = np.exp(self.start - self.start.max())[None, :] * potentials[:, 0]
        for t in range(longest):
            if t:
                step = (alpha[:, t - 1] @ self._moves) * potentials[:, t]
            alpha_scale[:, t] = step.sum(axis=1)
            alpha[:, t] = step / alpha_scale[:, t, None]
        last = lengths - 1
        end = np.exp(self.end - self.end.max())
        carry = np.tile(end, (batch, 1))  # [B, K]: beta at t, for sentences whose last position is >= t
        for t in range(longest - 1, -1, -1):
            if t < longest - 1:
                step = (potentials[:, t + 1] * carry) @ self._moves.T
                inside = (t < last)[:, None]
                beta_scale[:, t] = np.where(inside[:, 0], step.sum(axis=1), 1.0)
                carry = np.where(inside, step / beta_scale[:, t, None], end[None, :])
            beta[:, t] = carry
        with np.errstate(divide="ignore"):
            log_alpha_offset = self.start.max() + np.cumsum(shift + np.log(alpha_scale), axis=1)  # [B, T]
            log_beta = np.log(beta)
            log_alpha = np.log(alpha)
        for row, i in enumerate(busy):
            n = lengths[row]
            log_z = float(np.log(alpha[row, n - 1] @ end) + self.end.max() + log_alpha_offset[row, n - 1])
            # beta's offset at t: what the steps after t took out, up to the sentence's end
            later = np.concatenate([np.cumsum((shift[row, 1:n] + np.log(beta_scale[row, : n - 1]))[::-1])[::-1], [0.0]])
            beta_offset = self.end.max() + later
            for first, tags in spans[i]:
                score = log_alpha[row, first, tags[0]] + log_alpha_offset[row, first]
                for offset in range(1, len(tags)):
                    t = first + offset
                    score += self.transitions[tags[offset - 1], tags[offset]] + x[row, t, tags[offset]]
                stop = first + len(tags) - 1
                score += log_beta[row, stop, tags[-1]] + beta_offset[stop]
                out[i].append(float(np.exp(min(score - log_z, 0.0))))
        return out
