from __future__ import annotations

import itertools
import unittest.mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics.sequence_labeling import get_entities

from distill.data.schemes import (
    Span,
    SpanReader,
    allowed_transitions,
    convert_tags,
    detect_scheme,
    label_set,
    normalise,
    spans_to_tags,
    split_tag,
    tags_to_spans,
)

RAW_TAGS = ["O", "B-PER", "I-PER", "M-PER", "E-PER", "S-PER", "B_LOC", "I_LOC", "E-LOC", "S-LOC"]


def test_split_tag_reads_prefixes_separators_and_m():
    assert split_tag("O") == ("O", "")
    assert split_tag("B-PER") == ("B", "PER")
    assert split_tag("M-ORG") == ("I", "ORG")
    assert split_tag("B_disease") == ("B", "disease")
    assert split_tag("S-PER.NAM") == ("S", "PER.NAM")
    for bad in ["", "X-PER", "B", "B-", "PER", "o", "BPER"]:
        with pytest.raises(ValueError, match="unknown tag"):
            split_tag(bad)


@given(st.lists(st.sampled_from(RAW_TAGS), max_size=12))
def test_spans_equal_seqeval_entities_on_any_sequence(tags):
    seqeval_tags = ["{}-{}".format(*split_tag(t)) if t != "O" else "O" for t in tags]
    expected = [Span(t, s, e + 1) for t, s, e in get_entities(seqeval_tags)]
    assert tags_to_spans(tags) == expected
    for vectorised_from in (0, 10**9):
        with unittest.mock.patch("distill.data.schemes.VECTORISED_FROM", vectorised_from):
            assert SpanReader(RAW_TAGS).spans_of([[RAW_TAGS.index(t) for t in tags]]) == [expected]


@pytest.mark.parametrize("vectorised_from", [0, 10**9])  # arrays always, the loop always
@given(batch=st.lists(st.lists(st.sampled_from(RAW_TAGS), max_size=8), max_size=6))
def test_span_reader_reads_each_path_of_a_batch_on_its_own(vectorised_from, batch):
    reader = SpanReader(RAW_TAGS)
    with unittest.mock.patch("distill.data.schemes.VECTORISED_FROM", vectorised_from):
        spans = reader.spans_of([[RAW_TAGS.index(t) for t in tags] for tags in batch])
    assert spans == [tags_to_spans(t) for t in batch]


@st.composite
def spans_and_length(draw):
    length = draw(st.integers(1, 15))
    cuts = sorted(draw(st.sets(st.integers(0, length), max_size=8)))
    spans = []
    for start, end in zip(cuts[::2], cuts[1::2]):
        if end > start:
            spans.append(Span(draw(st.sampled_from(["PER", "LOC", "ORG.NAM"])), start, end))
    return spans, length


@given(spans_and_length(), st.sampled_from(["bio", "bioes", "bmes"]))
def test_spans_round_trip_through_every_scheme(spans_length, scheme):
    spans, length = spans_length
    tags = spans_to_tags(spans, length, scheme)
    assert tags_to_spans(tags) == spans
    assert convert_tags(convert_tags(tags, "bioes"), scheme) == tags


def test_spans_to_tags_writes_each_scheme():
    spans = [Span("PER", 0, 3), Span("LOC", 4, 5)]
    assert spans_to_tags(spans, 5, "bio") == ["B-PER", "I-PER", "I-PER", "O", "B-LOC"]
    assert spans_to_tags(spans, 5, "bioes") == ["B-PER", "I-PER", "E-PER", "O", "S-LOC"]
    assert spans_to_tags(spans, 5, "bmes") == ["B-PER", "M-PER", "E-PER", "O", "S-LOC"]
    with pytest.raises(ValueError, match="overlaps"):
        spans_to_tags([Span("A", 0, 2), Span("B", 1, 3)], 3)
    with pytest.raises(ValueError, match="does not fit"):
        spans_to_tags([Span("A", 2, 4)], 3)


def test_normalise_repairs_are_listed_per_reading():
    result = normalise(["O", "I-PER", "I-PER", "O"])
    assert result.tags == ["O", "B-PER", "E-PER", "O"]
    assert result.repairs_bio == [(1, "I-PER", "B-PER")]
    # Read as BIOES, the same input lacks both its B- and its E-.
    assert result.repairs_bioes == [(1, "I-PER", "B-PER"), (2, "I-PER", "E-PER")]
    clean = normalise(["B-LOC", "M-LOC", "E-LOC"])
    assert clean.tags == ["B-LOC", "I-LOC", "E-LOC"] and clean.repairs_bioes == []


def test_detect_scheme():
    assert detect_scheme("BI") == "bio"
    assert detect_scheme("BIES") == "bioes"
    assert detect_scheme("BMES") == "bmes"
    assert detect_scheme("BME") == "bmes"


def test_label_set_orders_o_then_types():
    assert label_set(["PER", "LOC", "PER"], "bio") == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert len(label_set(["A", "B"], "bioes")) == 9


@settings(max_examples=300)
@given(st.data(), st.sampled_from(["bio", "bioes"]))
def test_allowed_transitions_accept_exactly_the_well_formed_sequences(data, scheme):
    labels = label_set(["PER", "LOC"], scheme)
    allowed = allowed_transitions(labels)
    seq = data.draw(st.lists(st.integers(0, len(labels) - 1), min_size=1, max_size=8))
    tags = [labels[i] for i in seq]
    ok = allowed.start[seq[0]] and allowed.end[seq[-1]] and all(allowed.pairs[a][b] for a, b in itertools.pairwise(seq))
    # Well formed = writing its entities back in the scheme gives the same tags.
    assert ok == (convert_tags(tags, scheme) == tags)
