from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from distill.data import DataError, ReadReport, Sentence, read_jsonl, read_text, split_sentences, write_jsonl
from distill.data.jsonl import resolve_overlaps
from distill.data.schemes import Span


def jl(*records) -> str:
    return "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records) + "\n"


def test_cluener_lines_labeled_and_not(write):
    path = write(
        "train.json",
        jl(
            {"text": "浙商银行企业信贷部", "label": {"company": {"浙商银行": [[0, 3]]}}},
            {"text": "没有标签"},
        ),
    )
    report = ReadReport(str(path))
    first, second = list(read_jsonl(path, report))
    assert first.tags == ["B-company", "I-company", "I-company", "E-company"] + ["O"] * 5
    assert second.tags is None
    assert report.scheme == "spans" and report.labeled == 1 and report.sentences == 2


def test_overlaps_keep_the_longest_and_are_counted(write):
    record = {"text": "北京大学", "label": {"LOC": {"北京": [[0, 1]]}, "ORG": {"北京大学": [[0, 3]]}}}
    report = ReadReport("x")
    (sentence,) = read_jsonl(write("o.jsonl", jl(record)), report)
    assert sentence.tags == ["B-ORG", "I-ORG", "I-ORG", "E-ORG"]
    assert report.repairs == {"overlapping span dropped (kept the longest)": 1}
    kept, dropped = resolve_overlaps([Span("A", 0, 2), Span("B", 1, 4), Span("C", 4, 5)])
    assert kept == [Span("B", 1, 4), Span("C", 4, 5)] and dropped == 1


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"text": "abc"', "not JSON"),
        ('["abc"]', '"text" string'),
        ('{"text": "abc", "label": {"X": {"abcd": [[0, 3]]}}}', "out of range"),
        ('{"text": "abc", "label": {"X": {"ab": [[1, 2]]}}}', "covers 'bc'"),
        ('{"text": "abc", "label": {"X": {"ab": [0, 1]}}}', r"\[start, end\]"),
    ],
)
def test_bad_json_lines_name_the_line(write, line, message):
    path = write("bad.jsonl", jl({"text": "fine"}, line))
    with pytest.raises(DataError, match=message) as err:
        list(read_jsonl(path))
    assert err.value.line == 2


def test_jsonl_round_trip(tmp_path):
    sentences = [
        Sentence("张三在北京张三", ["B-PER", "E-PER", "O", "B-LOC", "E-LOC", "B-PER", "E-PER"]),
        Sentence("无"),
    ]
    path = tmp_path / "x.jsonl"
    write_jsonl(sentences, path)
    assert json.loads(path.read_text().splitlines()[0])["label"]["PER"]["张三"] == [[0, 1], [5, 6]]
    assert [(s.text, s.tags) for s in read_jsonl(path)] == [(s.text, s.tags) for s in sentences]


def test_split_sentences_at_ends_keeping_quotes():
    text = "他说：“好。”然后走了！你呢？\n  第二行；完"
    pieces = [text[s:e] for s, e in split_sentences(text)]
    assert pieces == ["他说：“好。”", "然后走了！", "你呢？", "第二行；", "完"]


def test_split_sentences_caps_length_at_soft_breaks():
    text = "甲" * 30 + "，" + "乙" * 30
    pieces = split_sentences(text, max_len=40)
    assert [text[s:e] for s, e in pieces] == ["甲" * 30 + "，", "乙" * 30]
    assert split_sentences("丙" * 100, max_len=40) == [(0, 40), (40, 80), (80, 100)]


@given(st.text(alphabet="ab 。！\n，\u3000x", max_size=120), st.one_of(st.none(), st.integers(1, 20)))
def test_split_sentences_loses_nothing_but_whitespace(text, max_len):
    pieces = split_sentences(text, max_len)
    covered = "".join(text[s:e] for s, e in pieces)
    assert covered.replace(" ", "").replace("\u3000", "") == "".join(text.split())
    assert all(s < e for s, e in pieces) and all(a[1] <= b[0] for a, b in itertools.pairwise(pieces))
    assert all(not text[s].isspace() and not text[e - 1].isspace() for s, e in pieces)
    if max_len:
        assert all(e - s <= max_len for s, e in pieces)


@given(st.text(alphabet="ab 。；”」\n\t\r\u3000\x1c\u2028，", max_size=30), st.one_of(st.none(), st.integers(1, 12)))
def test_one_sentence_shortcut_splits_as_the_general_path(text, max_len):
    from distill.data.rawtext import _split

    assert split_sentences(text, max_len) == _split(text, max_len)


def test_raw_text_with_offsets(write):
    path = write("raw.txt", "第一句。第二句！\n\n   \n单独一行\n")
    report = ReadReport(str(path))
    sentences = list(read_text(path, report=report))
    assert [(s.text, s.line, s.offset) for s in sentences] == [
        ("第一句。", 1, 0),
        ("第二句！", 1, 4),
        ("单独一行", 4, 0),
    ]
    assert all(s.tags is None for s in sentences) and report.format == "text"


def test_peoples_daily_tokens_are_stripped(write):
    path = write("199801.txt", "迈向/v  充满/v  希望/n  的/u  新/a  世纪/n  。/w\n１２月/t  ３１日/t\n")
    report = ReadReport(str(path))
    sentences = list(read_text(path, report=report))
    assert [s.text for s in sentences] == ["迈向充满希望的新世纪。", "１２月３１日"]
    assert report.format == "peoples-daily"


def test_long_line_is_capped_into_pieces(write):
    path = write("long.txt", "字" * 100_000 + "\n")
    sentences = list(read_text(path, max_len=500))
    assert len(sentences) == 200 and sentences[-1].offset == 99_500


def test_empty_text_file_is_an_error(write):
    with pytest.raises(DataError, match="empty"):
        list(read_text(write("e.txt", " \n\n")))
