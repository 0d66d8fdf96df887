from __future__ import annotations

import pytest

from distill.metrics import EntityScores, entity_scores


def test_entity_scores_by_hand():
    gold = [["B-PER", "E-PER", "O", "S-LOC"], ["B-ORG", "I-ORG", "E-ORG"]]
    pred = [["B-PER", "E-PER", "O", "O"], ["B-ORG", "E-ORG", "S-LOC"]]
    scores = entity_scores(gold, pred)
    # gold: PER, LOC, ORG; predicted: PER (right), ORG (wrong span), LOC (wrong)
    assert scores.overall.precision == pytest.approx(1 / 3)
    assert scores.overall.recall == pytest.approx(1 / 3)
    assert scores.f1 == pytest.approx(1 / 3)
    assert scores.overall.support == 3
    assert scores.per_type["PER"].f1 == 1.0 and scores.per_type["LOC"].f1 == 0.0
    assert EntityScores.from_dict(scores.as_dict()) == scores


def test_bio_and_bioes_give_the_same_scores():
    assert entity_scores([["B-X", "I-X", "O"]], [["B-X", "I-X", "O"]]).f1 == 1.0
    assert entity_scores([["B-X", "E-X", "O"]], [["B-X", "I-X", "O"]]).f1 == 1.0


def test_no_entities_and_mismatched_lengths():
    assert entity_scores([["O"]], [["O"]]).f1 == 0.0
    with pytest.raises(ValueError, match="2 gold tags but 1"):
        entity_scores([["O", "O"]], [["O"]])
