"""The CRF that teacher and student share: pytorch-crf's parameters and NLL, plus what it lacks.

Added here, as tensor code for CPU and CUDA:

* batched Viterbi decoding (:meth:`CRF.decode`): one loop over time, none over the batch, and
  batched back-tracking; on CPU it hands over to the numpy decoder in :mod:`distill.viterbi`,
  which the decode benchmark measured faster there;
* forward-backward marginals and the log partition (:meth:`CRF.marginals`,
  :meth:`CRF.log_marginals`, :meth:`CRF.log_partition`), batched, masked and differentiable;
* optional tag-scheme constraints (no ``O -> I-X``, no ``B-X -> I-Y``), applied in decoding.

In forward-backward, every step past a sentence's end is the identity move (0 to stay on a tag,
-inf to change), so ragged batches need no per-step masking. All tensors are batch-first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torchcrf

from . import viterbi
from .confidence import CrfScores


def _identity_moves(moves: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``moves`` [B, T-1, K, K] with the steps past each sentence's end made identity moves."""
    num_tags = moves.shape[-1]
    eye = torch.eye(num_tags, dtype=torch.bool, device=moves.device)
    identity = torch.zeros((), dtype=moves.dtype, device=moves.device).masked_fill(~eye, float("-inf"))
    return torch.where(mask[:, 1:, None, None], moves, identity)


class CRF(torchcrf.CRF):
    """A linear-chain CRF over ``num_tags`` tags, batch-first.

    ``allowed`` (from :func:`data.allowed_transitions`) constrains decoding to valid tag
    sequences; it is not a parameter and does not change training (the NLL is pytorch-crf's).
    """

    def __init__(
        self, num_tags: int, allowed: tuple[Sequence[bool], Sequence[Sequence[bool]], Sequence[bool]] | None = None
    ) -> None:
        super().__init__(num_tags, batch_first=True)
        penalty = torch.zeros(num_tags + 2, num_tags)
        if allowed is not None:
            penalty = torch.from_numpy(viterbi.transition_penalties(allowed, num_tags))
        # Rows: start, the K x K transitions, end. A buffer, so it follows .to(device), but not
        # saved: it is derived from the label set when a model is built.
        self.register_buffer("constraint", penalty, persistent=False)

    # -- scores ------------------------------------------------------------------------------

    def scores(self, constrained: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(start [K], transitions [K, K], end [K])``, with the scheme's constraints if asked."""
        start, trans, end = self.start_transitions, self.transitions, self.end_transitions
        if constrained:
            k = self.num_tags
            start = start + self.constraint[0]
            trans = trans + self.constraint[1 : k + 1]
            end = end + self.constraint[-1]
        return start, trans, end

    def nll(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, reduction: str = "mean"
    ) -> torch.Tensor:
        """Negative log-likelihood of gold ``tags`` [B, T] (pytorch-crf's, negated).

        ``reduction``: 'mean' over sentences, 'sum', 'none' ([B]) or 'token_mean'.
        """
        return -self(emissions, tags, mask=mask, reduction=reduction)

    # -- decoding ----------------------------------------------------------------------------

    @torch.no_grad()
    def decode(
        self,
        emissions: torch.Tensor,
        mask: torch.Tensor | None = None,
        constrained: bool = True,
        backend: str = "auto",
    ) -> list[list[int]]:
        """Best tag path of each sentence: ``B`` lists of ``mask[i].sum()`` tag indices.

        Args:
            emissions: ``[B, T, K]``.
            mask: ``[B, T]`` bool, each row a prefix of ones starting at position 0.
            constrained: apply the tag-scheme constraints given at construction.
            backend: 'numpy', 'torch', or 'auto' (numpy on CPU, torch on other devices; the
                decode benchmark in ``benchmarks/`` measured numpy faster on CPU).
        """
        self._validate(emissions, mask=mask)
        if mask is None:
            mask = emissions.new_ones(emissions.shape[:2], dtype=torch.bool)
        if backend == "auto":
            backend = "numpy" if emissions.device.type == "cpu" else "torch"
        start, trans, end = self.scores(constrained)
        if backend == "numpy":
            decoder = viterbi.Viterbi(*(x.detach().float().cpu().numpy() for x in (start, trans, end)))
            return decoder.decode(emissions.float().cpu().numpy(), mask.sum(1).cpu().numpy())
        if backend != "torch":
            raise ValueError(f"backend must be 'auto', 'numpy' or 'torch', got {backend!r}")
        paths = viterbi_paths(emissions.float(), mask.bool(), start.float(), trans.float(), end.float())
        lengths = mask.sum(1).tolist()
        return [row[:n] for row, n in zip(paths.tolist(), lengths)]

    @torch.no_grad()
    def scored_decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[tuple[list[int], np.ndarray]]:
        """Each sentence's best path (constrained) with its emissions as a float32 array [L, K], for
        entity confidences (:mod:`distill.confidence`)."""
        paths = self.decode(emissions, mask)
        arrays = emissions.float().cpu().numpy()
        return [(path, arrays[i, : len(path)]) for i, path in enumerate(paths)]

    def confidence_scores(self) -> CrfScores:
        """The scores decoding uses (constraints included), as numpy, for entity confidences."""
        return CrfScores(*(x.detach().double().cpu().numpy() for x in self.scores(constrained=True)))

    # -- forward-backward --------------------------------------------------------------------

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor, constrained: bool = False) -> torch.Tensor:
        """``[B]`` log of the sum of exp(score) over every tag sequence."""
        start, trans, end = self.scores(constrained)
        moves = _identity_moves(trans + emissions[:, 1:, None, :], mask.bool())
        return torch.logsumexp(_alphas(emissions, start, moves)[:, -1] + end, dim=-1)

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor, constrained: bool = False) -> torch.Tensor:
        """``[B, T, K]`` p(tag k at position t | sentence); rows past a sentence's end are 0.

        Differentiable: the marginal KD loss trains through it.
        """
        return torch.exp(self.log_marginals(emissions, mask, constrained)) * mask[..., None]

    def log_marginals(self, emissions: torch.Tensor, mask: torch.Tensor, constrained: bool = False) -> torch.Tensor:
        """``[B, T, K]`` log p(tag k at position t | sentence); rows past a sentence's end are meaningless."""
        mask = mask.bool()
        start, trans, end = self.scores(constrained)
        moves = _identity_moves(trans + emissions[:, 1:, None, :], mask)  # [B, T-1, K, K]
        alphas = _alphas(emissions, start, moves)  # [B, T, K]
        log_z = torch.logsumexp(alphas[:, -1] + end, dim=-1)  # [B]
        # beta[t][i] = log-sum over continuations from tag i at t; identity moves carry `end`
        # back to each sentence's last real position.
        beta = end.expand(emissions.shape[0], -1)
        betas = [beta]
        for t in range(emissions.shape[1] - 2, -1, -1):
            beta = torch.logsumexp(moves[:, t] + beta[:, None, :], dim=-1)
            betas.append(beta)
        return alphas + torch.stack(betas[::-1], dim=1) - log_z[:, None, None]


def _alphas(emissions: torch.Tensor, start: torch.Tensor, moves: torch.Tensor) -> torch.Tensor:
    """``[B, T, K]`` forward log-scores; past a sentence's end they repeat its last value."""
    alpha = start + emissions[:, 0]
    alphas = [alpha]
    for t in range(emissions.shape[1] - 1):
        alpha = torch.logsumexp(alpha[:, :, None] + moves[:, t], dim=1)
        alphas.append(alpha)
    return torch.stack(alphas, dim=1)


@torch.no_grad()
def viterbi_paths(
    emissions: torch.Tensor,
    mask: torch.Tensor,
    start: torch.Tensor,
    transitions: torch.Tensor,
    end: torch.Tensor,
) -> torch.Tensor:
    """``[B, T]`` best paths (positions past each end repeat the last tag); torch, any device.

    Shapes as in :meth:`distill.viterbi.Viterbi.decode`, with a ``[B, T]`` bool ``mask``; the
    same layout (batch innermost) and the same summation order as pytorch-crf, so the paths
    match its ``decode`` exactly.
    """
    batch, steps, num_tags = emissions.shape
    em = emissions.permute(1, 2, 0).contiguous()  # [T, K, B]
    active = mask[:, 1:].t()  # [T-1, B]
    candidates = emissions.new_empty(steps - 1, num_tags, num_tags, batch)
    moves = transitions[:, :, None]
    score = start[:, None] + em[0]  # [K, B]
    for t in range(steps - 1):
        cand = candidates[t]
        torch.add(score[:, None, :], moves, out=cand)
        cand.add_(em[t + 1])
        score = torch.where(active[t], cand.amax(dim=0), score)  # past the end, the score stays put
    tags = (score + end[:, None]).argmax(dim=0)  # [B]
    path = [tags]
    columns = torch.arange(batch, device=emissions.device)
    for t in range(steps - 2, -1, -1):
        came_from = candidates[t][:, tags, columns].argmax(dim=0)
        tags = torch.where(active[t], came_from, tags)
        path.append(tags)
    return torch.stack(path[::-1], dim=1)
