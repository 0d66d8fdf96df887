"""The CRF core against a brute-force oracle that enumerates every tag sequence, and against pytorch-crf."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torchcrf

from distill.crf import CRF, viterbi_paths
from distill.data import allowed_transitions, label_set
from distill.viterbi import Viterbi

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def make_crf(num_tags: int, seed: int, allowed=None) -> CRF:
    torch.manual_seed(seed)
    crf = CRF(num_tags, allowed)
    for p in crf.parameters():
        torch.nn.init.normal_(p, std=1.0)
    return crf


def ragged(batch: int, steps: int, num_tags: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    emissions = torch.randn(batch, steps, num_tags, generator=gen) * 2
    lengths = torch.randint(1, steps + 1, (batch,), generator=gen)
    lengths[0] = steps
    mask = torch.arange(steps)[None, :] < lengths[:, None]
    return emissions, mask


def brute_force(crf: CRF, emissions: torch.Tensor, length: int, constrained: bool = False):
    """Every path's score for one sentence: (paths, scores) over all K**length sequences."""
    start, trans, end = (x.detach().double() for x in crf.scores(constrained))
    em = emissions[:length].detach().double()
    paths = list(itertools.product(range(crf.num_tags), repeat=length))
    scores = []
    for path in paths:
        s = start[path[0]] + em[0, path[0]] + end[path[-1]]
        for t in range(1, length):
            s = s + trans[path[t - 1], path[t]] + em[t, path[t]]
        scores.append(s)
    return paths, torch.stack(scores)


@pytest.mark.parametrize("seed", range(6))
def test_log_partition_and_marginals_equal_the_oracle(seed):
    num_tags, steps = 2 + seed % 3, 1 + seed % 4
    crf = make_crf(num_tags, seed)
    emissions, mask = ragged(3, steps, num_tags, seed)
    log_z = crf.log_partition(emissions, mask)
    marginals = crf.marginals(emissions, mask)
    for b in range(3):
        length = int(mask[b].sum())
        paths, scores = brute_force(crf, emissions[b], length)
        assert log_z[b].item() == pytest.approx(torch.logsumexp(scores, 0).item(), abs=1e-4)
        probs = torch.softmax(scores, 0)
        expected = torch.zeros(steps, num_tags, dtype=torch.float64)
        for path, p in zip(paths, probs):
            for t, tag in enumerate(path):
                expected[t, tag] += p
        torch.testing.assert_close(marginals[b].double(), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_decode_equals_the_oracles_best_path(seed, backend):
    num_tags, steps = 2 + seed % 3, 1 + seed % 5
    crf = make_crf(num_tags, seed)
    emissions, mask = ragged(4, steps, num_tags, seed + 100)
    decoded = crf.decode(emissions, mask, backend=backend)
    for b in range(4):
        paths, scores = brute_force(crf, emissions[b], int(mask[b].sum()))
        assert decoded[b] == list(paths[int(scores.argmax())])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("scheme", ["bio", "bioes"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_constrained_decode_is_the_best_valid_path(seed, scheme, backend):
    labels = label_set(["A"], scheme)
    allowed = allowed_transitions(labels)
    crf = make_crf(len(labels), seed, allowed)
    emissions, mask = ragged(3, 4, len(labels), seed)
    decoded = crf.decode(emissions, mask, backend=backend)
    for b in range(3):
        length = int(mask[b].sum())
        paths, scores = brute_force(crf, emissions[b], length)
        valid = [
            allowed.start[p[0]] and allowed.end[p[-1]] and all(allowed.pairs[x][y] for x, y in itertools.pairwise(p))
            for p in paths
        ]
        best = max((s.item(), p) for s, p, ok in zip(scores, paths, valid) if ok)[1]
        assert decoded[b] == list(best)
    unconstrained = crf.decode(emissions, mask, constrained=False, backend=backend)
    assert unconstrained == torchcrf.CRF.decode(crf, emissions, mask)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("shape", [(1, 40, 17), (16, 50, 9), (7, 3, 5), (5, 1, 4)])
def test_decode_equals_pytorch_crf_on_ragged_batches(device, backend, shape):
    crf = make_crf(shape[2], 7).to(device)
    emissions, mask = ragged(*shape, seed=sum(shape))
    emissions, mask = emissions.to(device), mask.to(device)
    assert crf.decode(emissions, mask, constrained=False, backend=backend) == torchcrf.CRF.decode(crf, emissions, mask)


def constrained_reference(crf: CRF, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
    """pytorch-crf's decode, scoring with the scheme's constraints (-inf on forbidden moves)."""
    reference = torchcrf.CRF(crf.num_tags, batch_first=True)
    start, trans, end = crf.scores(constrained=True)
    with torch.no_grad():
        reference.start_transitions.copy_(start)
        reference.transitions.copy_(trans)
        reference.end_transitions.copy_(end)
    return reference.decode(emissions, mask)


@pytest.mark.parametrize("types", [1, 8])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_constrained_decode_equals_pytorch_crf_on_a_real_label_set(types, backend):
    # BIOES over 8 types is Resume's 33 tags.
    labels = label_set([f"T{i}" for i in range(types)], "bioes")
    crf = make_crf(len(labels), types, allowed_transitions(labels))
    emissions, mask = ragged(24, 60, len(labels), seed=types)
    assert crf.decode(emissions, mask, backend=backend) == constrained_reference(crf, emissions, mask)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_decode_breaks_exact_ties_as_pytorch_crf_does(backend):
    # Small integer scores tie often; the first best previous tag must win, as in pytorch-crf.
    labels = label_set(["A", "B"], "bio")
    crf = make_crf(len(labels), 0, allowed_transitions(labels))
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in crf.parameters():
            param.copy_(torch.randint(-2, 3, param.shape, generator=gen).float())
    emissions = torch.randint(-2, 3, (32, 12, len(labels)), generator=gen).float()
    mask = torch.arange(12)[None, :] < torch.randint(1, 13, (32, 1), generator=gen)
    mask[0] = True
    assert crf.decode(emissions, mask, backend=backend) == constrained_reference(crf, emissions, mask)
    assert crf.decode(emissions, mask, constrained=False, backend=backend) == torchcrf.CRF.decode(crf, emissions, mask)
    for one in range(8):  # a batch of one takes its own path
        piece = slice(one, one + 1)
        expected = torchcrf.CRF.decode(crf, emissions[piece], mask[piece])
        assert crf.decode(emissions[piece], mask[piece], constrained=False, backend=backend) == expected


def test_a_tag_that_no_move_reaches_is_never_decoded_after_the_first_character():
    transitions = np.zeros((3, 3), dtype=np.float32)
    transitions[:, 2] = -np.inf  # tag 2 can only start a sentence
    decoder = Viterbi(np.array([0, 0, 5], np.float32), transitions, np.zeros(3, np.float32))
    emissions = np.zeros((2, 4, 3), dtype=np.float32)
    emissions[:, :, 2] = 10.0
    assert decoder.decode(emissions, np.array([4, 1])) == [[2, 0, 0, 0], [2]]


def test_decoding_only_the_allowed_moves_equals_the_dense_decode():
    rng = np.random.default_rng(5)
    transitions = rng.normal(size=(12, 12)).astype(np.float32)
    transitions[rng.random((12, 12)) < 0.7] = -np.inf
    transitions[:, 4] = -np.inf  # no move reaches tag 4
    start, end = rng.normal(size=12).astype(np.float32), rng.normal(size=12).astype(np.float32)
    start[4] = 50.0
    sparse, dense = Viterbi(start, transitions, end), Viterbi(start, transitions, end)
    dense.sparse = False
    assert sparse.sparse
    emissions = rng.normal(size=(40, 9, 12)).astype(np.float32)
    lengths = rng.integers(1, 10, 40)
    paths = sparse.decode(emissions, lengths)
    assert paths == dense.decode(emissions, lengths)
    assert all(path[0] == 4 and 4 not in path[1:] for path in paths)


def test_marginals_sum_to_one_are_masked_and_differentiable():
    crf = make_crf(6, 1)
    emissions, mask = ragged(5, 9, 6, 2)
    emissions.requires_grad_(True)
    marginals = crf.marginals(emissions, mask)
    torch.testing.assert_close(marginals.sum(-1), mask.float())
    (marginals[..., 2].sum() + crf.log_partition(emissions, mask).sum()).backward()
    assert torch.isfinite(emissions.grad).all() and torch.isfinite(crf.transitions.grad).all()


def test_log_partition_gradient_is_the_marginals():
    crf = make_crf(4, 3)
    emissions, mask = ragged(3, 6, 4, 4)
    emissions.requires_grad_(True)
    crf.log_partition(emissions, mask).sum().backward()
    torch.testing.assert_close(emissions.grad, crf.marginals(emissions, mask).detach(), atol=1e-5, rtol=1e-4)


def test_nll_is_pytorch_crfs():
    crf = make_crf(5, 0)
    emissions, mask = ragged(4, 7, 5, 9)
    tags = torch.randint(0, 5, (4, 7))
    expected = -torchcrf.CRF.forward(crf, emissions, tags, mask, reduction="sum")
    torch.testing.assert_close(crf.nll(emissions, tags, mask, reduction="sum"), expected)


def test_viterbi_paths_pad_with_the_last_tag():
    crf = make_crf(3, 0)
    emissions, mask = ragged(4, 6, 3, 5)
    paths = viterbi_paths(emissions, mask, *crf.scores())
    for row, n, decoded in zip(paths.tolist(), mask.sum(1).tolist(), crf.decode(emissions, mask, backend="torch")):
        assert row[:n] == decoded and set(row[n:]) <= {row[n - 1]}


def test_numpy_viterbi_checks_lengths():
    with pytest.raises(ValueError, match="lengths must lie"):
        Viterbi(np.zeros(4), np.zeros((4, 4)), np.zeros(4)).decode(np.zeros((2, 3, 4)), np.array([0, 3]))
    assert Viterbi(np.zeros(4), np.zeros((4, 4)), np.zeros(4)).decode(np.zeros((0, 3, 4)), np.zeros(0, int)) == []


def test_bad_constraint_shapes_are_refused():
    with pytest.raises(ValueError, match="allowed transitions"):
        CRF(3, ([True] * 3, [[True] * 2] * 2, [True] * 3))
