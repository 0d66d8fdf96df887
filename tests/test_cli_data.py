from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from distill import __version__
from distill.cli import cli


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_version_and_help_list_commands():
    assert run("--version").output.strip() == f"distill, version {__version__}"
    assert "data" in run("--help").output
    assert "stats" in run("data", "--help").output and "convert" in run("data", "--help").output


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "distill", "--version"], capture_output=True, text=True, check=True)
    assert __version__ in out.stdout


def test_a_terminal_that_cannot_show_chinese_gets_escapes_not_a_traceback(tmp_path):
    for split in ("train", "test"):
        (tmp_path / f"{split}.txt").write_text("张\tB-人名\n三\tE-人名\n\n", encoding="utf-8")
    env = {**os.environ, "PYTHONIOENCODING": "latin-1"}
    command = [sys.executable, "-m", "distill", "data", "stats", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "\\u4eba\\u540d" in result.stdout  # 人名, the entity type


def test_stats_table_and_json(write):
    path = write("train.txt", "张\tB-PER\n三\tI-PER\n\n北\tB-LOC\n京\tI-LOC\n市\tO\n")
    table = run("data", "stats", str(path))
    assert table.exit_code == 0, table.output
    assert "train.txt" in table.output and "bio" in table.output
    result = run("data", "stats", str(path), "--json")
    record = json.loads(result.output)["files"][0]
    assert (record["sentences"], record["characters"], record["total_entities"], record["longest"]) == (2, 5, 2, 3)
    assert record["entities"] == {"LOC": 1, "PER": 1} and record["scheme"] == "bio"


def test_stats_reports_repairs(write):
    path = write("x.txt", "a\tO\nb\tI-PER\n")
    assert "I-PER -> B-PER: 1" in run("data", "stats", str(path)).output


@pytest.mark.parametrize("via", ["jsonl", "bioes", "bmes"])
def test_convert_round_trips(write, tmp_path, via):
    source = write("src.bio", "张\tB-PER\n三\tI-PER\n丰\tI-PER\n去\tO\n\n北\tB-LOC\n\n")
    middle = tmp_path / ("mid.jsonl" if via == "jsonl" else f"mid.{via}")
    args = [] if via == "jsonl" else ["--scheme", via]
    assert run("data", "convert", str(source), str(middle), *args).exit_code == 0
    back = tmp_path / "back.bio"
    result = run("data", "convert", str(middle), str(back), "--scheme", "bio")
    assert result.exit_code == 0, result.output
    assert back.read_text(encoding="utf-8") == source.read_text(encoding="utf-8")


def test_convert_keeps_the_source_scheme_by_default(write, tmp_path):
    source = write("src.bmes", "高 B-ORG\n科 M-ORG\n大 E-ORG\n")
    out = tmp_path / "out.txt"
    assert "BMES" in run("data", "convert", str(source), str(out)).output
    assert out.read_text().splitlines()[1] == "科\tM-ORG"


@pytest.mark.parametrize(
    "content, expected",
    [
        ("a\tO\nb\tO\tO\n", "line 2: expected 2 TAB-separated columns"),
        ("a\tO\nb\tBAD\n", "line 2: unknown tag 'BAD'"),
        (b"a\tO\n\x00\n", "line 2: contains a NUL byte"),
        ("", "empty"),
    ],
)
def test_bad_input_is_one_paragraph_without_traceback(write, content, expected):
    path = write("bad.txt", content)
    result = run("data", "stats", str(path))
    assert result.exit_code == 1
    assert expected in result.output and str(path) in result.output
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback(write):
    path = write("bad.txt", "a\tO\nb\tBAD\n")
    result = run("--debug", "data", "stats", str(path))
    assert result.exit_code == 1 and result.exception is not None


def test_a_failed_write_leaves_the_old_file_and_names_the_path(write, monkeypatch):
    import errno

    from distill.data import DataError, formats, read_file, write_file

    source = write("corpus.txt", "张\tB-PER\n三\tE-PER\n\n在\tO\n\n")
    before = source.read_bytes()
    sentences = list(read_file(source))

    def full_disk(sentences, target, scheme="bioes"):
        Path(target).write_text("张\tB-PER\n", encoding="utf-8")  # part of it, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(formats, "write_column", full_disk)
    with pytest.raises(DataError, match=r"corpus.txt: cannot write: No space left on device; the file was left"):
        write_file(sentences, source, "column")
    assert source.read_bytes() == before and [p.name for p in source.parent.iterdir()] == ["corpus.txt"]
