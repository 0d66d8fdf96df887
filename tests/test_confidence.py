"""Entity confidences against brute-force enumeration of every tag sequence."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from distill.confidence import CrfScores
from distill.crf import CRF
from distill.data import allowed_transitions


def _brute_force(scores: CrfScores, x: np.ndarray) -> dict[tuple[int, ...], float]:
    """p(sequence) for every tag sequence, by enumeration (in log space until the end)."""
    length, k = x.shape
    log_weights = {}
    for tags in itertools.product(range(k), repeat=length):
        score = scores.start[tags[0]] + x[0, tags[0]] + scores.end[tags[-1]]
        score += sum(scores.transitions[tags[t - 1], tags[t]] + x[t, tags[t]] for t in range(1, length))
        log_weights[tags] = score
    top = max(log_weights.values())
    weights = {tags: np.exp(w - top) for tags, w in log_weights.items()}
    total = sum(weights.values())
    return {tags: w / total for tags, w in weights.items()}


def _random_scores(rng: np.random.Generator, k: int, forbid: float) -> CrfScores:
    start, transitions, end = rng.normal(size=k), rng.normal(size=(k, k)), rng.normal(size=k)
    transitions[rng.random((k, k)) < forbid] = -np.inf  # a scheme's forbidden moves
    transitions[0, :] = np.where(np.isfinite(transitions[0]), transitions[0], 0.0)  # some path always exists
    transitions[:, 0] = np.where(np.isfinite(transitions[:, 0]), transitions[:, 0], 0.0)
    return CrfScores(start, transitions, end)


@pytest.mark.parametrize("seed", range(12))
def test_span_probabilities_equal_enumeration(seed):
    rng = np.random.default_rng(seed)
    k, length = int(rng.integers(2, 5)), int(rng.integers(1, 6))
    scores = _random_scores(rng, k, forbid=0.3)
    x = rng.normal(size=(length, k)) * 2
    paths = _brute_force(scores, x)
    spans = []
    for _ in range(6):
        first = int(rng.integers(0, length))
        size = int(rng.integers(1, length - first + 1))
        spans.append((first, [int(t) for t in rng.integers(0, k, size)]))
    got = scores.span_probabilities(x, spans)
    for (first, tags), p in zip(spans, got):
        expected = sum(q for seq, q in paths.items() if list(seq[first : first + len(tags)]) == tags)
        assert p == pytest.approx(expected, abs=1e-9)
    assert sum(paths.values()) == pytest.approx(1.0)


def test_single_positions_are_the_crfs_marginals_with_its_constraints():
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]
    torch.manual_seed(0)
    crf = CRF(len(labels), allowed_transitions(labels))
    emissions = torch.randn(1, 7, len(labels))
    mask = torch.ones(1, 7, dtype=torch.bool)
    marginals = crf.marginals(emissions, mask, constrained=True)[0].detach().numpy()
    scores = crf.confidence_scores()
    singles = [(t, [k]) for t in range(7) for k in range(len(labels))]
    got = np.array(scores.span_probabilities(emissions[0].numpy(), singles)).reshape(7, len(labels))
    np.testing.assert_allclose(got, marginals, atol=1e-5)
    assert got[0, labels.index("I-PER")] == 0.0  # no entity starts inside itself


def test_scores_that_underflow_between_renormalisations_still_equal_enumeration():
    """Every step costs 300 (the one cheap move, 0 -> 0, leads where the emissions are 300 worse),
    so four steps between renormalisations would shrink what the scan carries past float64."""
    scores = CrfScores(np.zeros(2), np.array([[0.0, -300.0], [-300.0, -300.0]]), np.zeros(2))
    x = np.array([[-300.0, 0.0]] * 7) + np.random.default_rng(3).normal(size=(7, 2))
    paths = _brute_force(scores, x)
    singles = [(t, [k]) for t in range(7) for k in range(2)]
    expected = [sum(q for seq, q in paths.items() if seq[t] == k) for t, [k] in singles]
    assert scores.span_probabilities(x, singles) == pytest.approx(expected, abs=1e-9)


def test_entries_far_below_a_shrinking_vector_are_kept():
    """Here the scale falls ~600 within a window while a tag 300 below the best later takes
    most of the probability: renormalising only every 4 steps would lose it."""
    scores = CrfScores(np.zeros(2), np.array([[0.0, 0.0], [-300.0, -300.0]]), np.zeros(2))
    x = np.array([[-301, -1], [-1, -301], [-300, -1], [-300, -301], [-299, -1], [-300, -300], [-300, -300]], float)
    paths = _brute_force(scores, x)
    singles = [(t, [k]) for t in range(7) for k in range(2)]
    expected = [sum(q for seq, q in paths.items() if seq[t] == k) for t, [k] in singles]
    assert scores.span_probabilities(x, singles) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("gap", [30.0, 300.0, 700.0])
def test_renormalising_every_few_steps_equals_every_step(gap, monkeypatch):
    from distill import confidence

    rng = np.random.default_rng(int(gap))
    cases = []
    for _ in range(200):
        k, length = int(rng.integers(2, 6)), int(rng.integers(1, 40))
        transitions = rng.choice([0.0, -gap], size=(k, k)) * rng.random((k, k))
        transitions[0, 0] = 0.0
        x = rng.choice([0.0, -gap], size=(length, k)) * rng.random((length, k)) + rng.normal(size=(length, k))
        scores = CrfScores(rng.normal(size=k), transitions, rng.normal(size=k))
        cases.append((scores, x, [(t, [int(rng.integers(0, k))]) for t in range(length)]))
    windowed = [scores.span_probabilities(x, asked) for scores, x, asked in cases]
    monkeypatch.setattr(confidence, "RENORMALISE_EVERY", 1)
    for (scores, x, asked), got in zip(cases, windowed):
        assert got == pytest.approx(scores.span_probabilities(x, asked), abs=1e-12)


def test_the_best_paths_entities_have_their_probabilities():
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    torch.manual_seed(1)
    crf = CRF(len(labels), allowed_transitions(labels))
    emissions = torch.randn(2, 4, len(labels))
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    (path0, x0), (path1, x1) = crf.scored_decode(emissions, mask)
    assert x0.shape == (4, len(labels)) and x1.shape == (2, len(labels)) and len(path1) == 2
    scores = crf.confidence_scores()
    whole = scores.span_probabilities(x0, [(0, path0)])[0]
    enumerated = _brute_force(scores, x0)
    assert whole == pytest.approx(enumerated[tuple(path0)], abs=1e-6)
    assert whole == pytest.approx(max(enumerated.values()), abs=1e-6)  # Viterbi's path is the likeliest
    assert scores.span_probabilities(x0, []) == []


def test_a_ragged_batch_gives_each_sentence_its_enumerated_probabilities():
    rng = np.random.default_rng(7)
    for _ in range(20):
        k = int(rng.integers(2, 5))
        scores = _random_scores(rng, k, forbid=0.3)
        emissions = [rng.normal(size=(int(rng.integers(1, 6)), k)) * 2 for _ in range(int(rng.integers(1, 6)))]
        spans = []
        for x in emissions:
            length = len(x)
            firsts = [int(rng.integers(0, length)) for _ in range(int(rng.integers(0, 3)))]
            spans.append(
                [(f, [int(t) for t in rng.integers(0, k, int(rng.integers(1, length - f + 1)))]) for f in firsts]
            )
        for got, x, asked in zip(scores.batch_span_probabilities(emissions, spans), emissions, spans):
            paths = _brute_force(scores, x)
            expected = [
                sum(q for seq, q in paths.items() if list(seq[first : first + len(tags)]) == tags)
                for first, tags in asked
            ]
            assert got == pytest.approx(expected, abs=1e-9)
