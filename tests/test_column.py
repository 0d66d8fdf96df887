from __future__ import annotations

import pytest

from distill.data import DataError, ReadReport, Sentence, read_column, write_column


def read(path):
    report = ReadReport(str(path))
    return list(read_column(path, report)), report


def test_tab_bio_file(write):
    path = write("a.txt", "张\tB-PER\n三\tI-PER\n去\tO\n\n北\tB-LOC\n京\tI-LOC\n")
    sentences, report = read(path)
    assert [s.text for s in sentences] == ["张三去", "北京"]
    assert sentences[0].tags == ["B-PER", "E-PER", "O"]
    assert sentences[1].line == 5
    assert report.scheme == "bio" and report.repairs == {} and report.sentences == 2
    assert report.details["separator"] == "TAB"


def test_space_bmes_with_m_and_underscores_and_crlf(write):
    path = write("b.bmes", "高 B_ORG\r\n科 M_ORG\r\n大 E_ORG\r\n\r\n我 S-PER\n")
    sentences, report = read(path)
    assert sentences[0].tags == ["B-ORG", "I-ORG", "E-ORG"]
    assert sentences[1].tags == ["S-PER"]
    assert report.scheme == "bmes"


def test_space_and_ideographic_space_are_characters(write):
    tab = write("tab.txt", "a\tO\n \tO\n\u3000\tO\nb\tS-X\n")
    assert read(tab)[0][0].text == "a \u3000b"
    space = write("space.txt", "a O\n  O\n\u3000 O\nb S-X\n")
    sentences, _ = read(space)
    assert sentences[0].text == "a \u3000b"
    assert sentences[0].tags == ["O", "O", "O", "S-X"]


def test_weibo_token_column_is_char_plus_position(write):
    path = write("weiboNER_2nd_conll.train", "科0\tB-ORG.NAM\n技1\tI-ORG.NAM\n20\tO\n\ufffd\ufffd0\tO\np10\tO\n")
    sentences, report = read(path)
    assert sentences[0].text == "科技2\ufffdp"
    assert sentences[0].tags[:2] == ["B-ORG.NAM", "E-ORG.NAM"]
    assert report.repairs == {"multi-character token: kept its first character": 1}
    assert "Weibo" in report.details["token"]


def test_empty_tag_becomes_o_and_is_counted(write):
    path = write("msra_train_bio", "0\t\n年\tO\n")
    sentences, report = read(path)
    assert sentences[0].tags == ["O", "O"]
    assert report.repairs == {"empty tag -> O": 1}


def test_i_without_b_is_repaired_and_counted(write):
    path = write("a.txt", "x\tO\n张\tI-PER\n三\tI-PER\n")
    sentences, report = read(path)
    assert sentences[0].tags == ["O", "B-PER", "E-PER"]
    assert report.repairs == {"I-PER -> B-PER": 1}


def test_cr_only_line_endings_are_line_breaks(write):
    path = write("mac.txt", b"\xe5\xbc\xa0\tB-PER\r\xe4\xb8\x89\tE-PER\r\r\xe5\x9c\xa8\tO\r")
    sentences, report = read(path)
    assert [s.text for s in sentences] == ["张三", "在"] and sentences[0].tags == ["B-PER", "E-PER"]
    assert [s.line for s in sentences] == [1, 4] and report.repairs == {}


def test_a_byte_order_mark_and_spaces_after_a_tag_are_removed_and_counted(write):
    path = write("windows.txt", "\ufeff张\tB-PER  \r\n三\tE-PER\r\n")
    sentences, report = read(path)
    assert sentences[0].text == "张三" and sentences[0].tags == ["B-PER", "E-PER"]
    assert report.repairs == {"spaces after the tag removed": 1, "UTF-8 byte-order mark removed": 1}
    with pytest.raises(DataError, match=r"windows.txt, line 1: starts with a UTF-8 byte-order mark"):
        list(read_column(path, ReadReport(str(path), strict=True)))


def test_bad_utf8_cesu8_emoji_is_joined(write):
    emoji = "😀".encode("utf-16-le")
    high, low = (int.from_bytes(emoji[i : i + 2], "little") for i in (0, 2))
    cesu = chr(high).encode("utf-8", "surrogatepass") + chr(low).encode("utf-8", "surrogatepass")
    path = write("v1.conll", b"a0\tO\n" + cesu + b"0\tO\n")
    sentences, report = read(path)
    assert sentences[0].text == "a😀"
    assert report.repairs == {"CESU-8 surrogate pairs joined into one character (lines)": 1}


def test_invalid_bytes_are_replaced_and_counted(write):
    path = write("bad.txt", b"a\tO\n\xff\tO\n")
    sentences, report = read(path)
    assert sentences[0].text == "a\ufffd"
    assert report.repairs == {"invalid UTF-8 bytes replaced by U+FFFD (lines)": 1}


@pytest.mark.parametrize(
    "content, line, message",
    [
        ("a\tO\nb\tO\tX\n", 2, "expected 2 TAB-separated columns"),
        ("a\n", 1, "expected two columns"),
        ("a\tO\nb\tQ-PER\n", 2, "unknown tag 'Q-PER'"),
        ("ab\tO\n", 1, "expected one character"),
        ("a\tO\nb\x00\tO\n", 2, "NUL byte"),
        ("科0\tO\n技\tO\n", 2, "word-position digits"),
    ],
)
def test_bad_lines_name_file_line_and_expectation(write, content, line, message):
    path = write("bad.txt", content)
    with pytest.raises(DataError, match=message) as err:
        read(path)
    assert err.value.line == line and err.value.path == str(path)
    assert f"{path}, line {line}:" in str(err.value)


def test_empty_file_is_an_error(write):
    with pytest.raises(DataError, match="no sentences"):
        read(write("empty.txt", "\n\n"))


@pytest.mark.parametrize("scheme", ["bio", "bioes", "bmes"])
def test_write_then_read_round_trips(tmp_path, scheme):
    sentences = [Sentence("张三丰在北京", ["B-PER", "I-PER", "E-PER", "O", "B-LOC", "E-LOC"]), Sentence("好", ["O"])]
    path = tmp_path / "out.txt"
    write_column(sentences, path, scheme)
    back, report = read(path)
    assert [(s.text, s.tags) for s in back] == [(s.text, s.tags) for s in sentences]
    assert report.scheme == scheme
    assert path.read_text().splitlines()[1] == {"bio": "三\tI-PER", "bioes": "三\tI-PER", "bmes": "三\tM-PER"}[scheme]


def test_writing_unlabeled_to_column_is_refused(tmp_path):
    with pytest.raises(DataError, match="unlabeled"):
        write_column([Sentence("abc")], tmp_path / "x.txt")
