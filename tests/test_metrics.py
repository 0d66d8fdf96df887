from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


TAG = st.sampled_from(["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "S-LOC", "E-ORG"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(TAG, min_size=1, max_size=8), st.lists(TAG, min_size=8, max_size=8)), min_size=1, max_size=5
    )
)
def test_scores_equal_seqeval_on_any_sequences(pairs):
    import warnings

    from seqeval.metrics import classification_report

    gold = [g for g, _ in pairs]
    predicted = [p[: len(g)] for g, p in pairs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    scores = entity_scores(gold, predicted)
    micro = report.get("micro avg", {"precision": 0, "recall": 0, "f1-score": 0, "support": 0})
    assert scores.overall.precision == pytest.approx(micro["precision"])
    assert scores.overall.recall == pytest.approx(micro["recall"])
    assert scores.f1 == pytest.approx(micro["f1-score"])
    assert scores.overall.support == micro["support"]
    per_type = {k: v for k, v in report.items() if k not in ("micro avg", "macro avg", "weighted avg")}
    assert sorted(scores.per_type) == sorted(per_type)
    for name, row in per_type.items():
        assert scores.per_type[name].f1 == pytest.approx(row["f1-score"])
        assert scores.per_type[name].support == row["support"]


def test_calibration_by_hand():
    from distill.metrics import calibration

    gold = [["B-PER", "E-PER", "O", "S-LOC"], ["S-ORG", "O"]]
    predicted = [
        [("PER", 0, 2, 0.95), ("LOC", 3, 4, 0.85)],  # both right
        [("ORG", 0, 1, 0.91), ("ORG", 1, 2, 0.15)],  # right, wrong
    ]
    figures = calibration(gold, predicted)
    assert figures["entities"] == 4
    top = figures["bins"][9]  # [0.9, 1.0]: 0.95 and 0.91, both right
    assert top["count"] == 2 and top["accuracy"] == 1.0 and top["confidence"] == pytest.approx(0.93)
    assert figures["bins"][8]["count"] == 1 and figures["bins"][1]["accuracy"] == 0.0
    expected = (2 * abs(1 - 0.93) + abs(1 - 0.85) + abs(0 - 0.15)) / 4
    assert figures["ece"] == pytest.approx(expected)
    assert calibration(gold, [[], []]) == {"entities": 0, "ece": None, "bins": calibration(gold, [[], []])["bins"]}
