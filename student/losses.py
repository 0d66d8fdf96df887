"""Distillation losses over the characters of a batch (padding never counts).

``loss = alpha * hard + (1 - alpha) * soft`` where

* hard = the CRF negative log-likelihood of the gold tags (or the teacher's Viterbi path for
  unlabeled text), per character: summed over sentences, divided by their characters;
* soft, ``emission`` KD = ``T^2 * KL(softmax(teacher / T) || softmax(student / T))`` per character
  over the tag distribution, averaged over real characters;
* soft, ``marginal`` KD = ``KL(p_teacher || p_student)`` between the teacher's cached CRF
  marginals and the student's CRF marginals (forward-backward), averaged over real characters.
  It also teaches what the teacher's transitions imply. The cache holds marginals at T = 1, so
  no temperature applies here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distill.crf import CRF


def _mean_over_characters(per_char: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (per_char * mask).sum() / mask.sum().clamp_min(1)


def emission_kd(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over real characters.

    ``student``, ``teacher``: [B, T, K] emissions; ``mask``: [B, T] bool.
    """
    log_p = F.log_softmax(teacher.float() / temperature, dim=-1)
    log_q = F.log_softmax(student / temperature, dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)  # [B, T]
    return temperature**2 * _mean_over_characters(kl, mask)


def marginal_kd(crf: CRF, student: torch.Tensor, teacher_marginals: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``KL(p_teacher || p_student)`` of CRF marginals, averaged over real characters.

    ``teacher_marginals``: [B, T, K] probabilities (rows renormalised, as float16 rounding leaves
    them a little off one).
    """
    p = teacher_marginals.float().clamp_min(0)
    p = p / p.sum(-1, keepdim=True).clamp_min(1e-12)
    log_q = crf.log_marginals(student, mask)
    kl = (torch.xlogy(p, p) - p * log_q).sum(-1)  # [B, T]
    return _mean_over_characters(kl, mask)


def hard_nll(
    crf: CRF, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor, use: torch.Tensor
) -> torch.Tensor:
    """CRF NLL of ``tags`` per character, over the sentences where ``use`` [B] is true."""
    per_sentence = crf.nll(emissions, tags, mask, reduction="none")  # [B]
    characters = (mask.sum(1) * use).sum().clamp_min(1)
    return (per_sentence * use).sum() / characters


def mixed_loss(hard: torch.Tensor | None, soft: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """``alpha * hard + (1 - alpha) * soft``; a term whose weight is 0 may be ``None``."""
    terms = []
    if alpha > 0:
        terms.append(alpha * hard)
    if alpha < 1:
        terms.append((1 - alpha) * soft)
    return sum(terms[1:], terms[0])
