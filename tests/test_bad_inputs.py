"""Every malformed input of tests/bad_inputs (and a few made here) through the CLI: a one-paragraph
error naming the file and line (or the artefact) and what was expected, a non-zero exit and no
traceback; or, for conventional repairs, a count in the report and an error under --strict."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from distill.artifacts import write_config
from distill.cli import cli
from tests.conftest import predicted_lines

BAD = Path(__file__).parent / "bad_inputs"


def run(*args: str):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def refused(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    message = result.output
    assert message.startswith("Error: ") and message.count("\n\n") == 0, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize(
    "name, line, expected",
    [
        ("missing_column.txt", 2, "expected 2 TAB-separated columns"),
        ("extra_column.txt", 2, "expected 2 TAB-separated columns"),
        ("unknown_tag.txt", 2, "unknown tag 'Q-PER'"),
        ("nul_byte.txt", 2, "NUL byte"),
        ("not_json.jsonl", 2, "not JSON"),
        ("span_out_of_range.jsonl", 1, "out of range"),
    ],
)
def test_unreadable_input_is_refused_with_file_and_line(name, line, expected):
    refused(run("data", "stats", BAD / name), f"{BAD / name}, line {line}:", expected)


def test_empty_file_is_refused():
    refused(run("data", "stats", BAD / "empty.txt"), str(BAD / "empty.txt"), "empty")


@pytest.mark.parametrize(
    "name, repair, line",
    [
        ("bad_utf8.txt", "invalid UTF-8 bytes replaced by U+FFFD (lines): 1", 2),
        ("i_after_o.txt", "I-PER -> B-PER: 1", 2),
    ],
)
def test_conventional_repairs_are_reported_and_refused_when_strict(name, repair, line):
    lenient = run("data", "stats", BAD / name)
    assert lenient.exit_code == 0 and repair in lenient.output
    refused(run("data", "stats", BAD / name, "--strict"), f"{BAD / name}, line {line}:", "--strict")


def test_blank_runs_and_mixed_line_endings_read_cleanly():
    result = json.loads(run("data", "stats", BAD / "empty_sentences.txt", "--json").output)["files"][0]
    assert (result["sentences"], result["total_entities"], result["repairs"]) == (2, 1, {})
    mixed = json.loads(run("data", "stats", BAD / "mixed_crlf.txt", "--json").output)["files"][0]
    plain = json.loads(run("data", "stats", BAD / "mixed_crlf_as_lf.txt", "--json").output)["files"][0]
    assert {k: v for k, v in mixed.items() if k not in ("path", "dataset")} == {
        k: v for k, v in plain.items() if k not in ("path", "dataset")
    }


def test_a_100000_character_line(tmp_path):
    column = tmp_path / "long.txt"
    column.write_text("张\tO\n" + "字" * 100_000 + "\tO\n", encoding="utf-8")
    refused(run("data", "stats", column), f"{column}, line 2:", "expected one character")
    raw = tmp_path / "long_raw.txt"
    raw.write_text("字" * 100_000 + "\n", encoding="utf-8")
    converted = run("data", "convert", raw, tmp_path / "out.txt", "--format", "text")
    assert converted.exit_code == 0 and "wrote 1 sentences" in converted.output


@pytest.fixture(scope="module")
def models(tiny_teacher, tmp_path_factory):
    from distill.student.config import StudentTrainConfig
    from distill.student.train import train_student

    student = tmp_path_factory.mktemp("bad") / "student"
    train_student(StudentTrainConfig(out=student, cache=tiny_teacher["cache"], epochs=1, hidden=8, embedding_dim=8))
    return {"teacher": tiny_teacher["teacher"], "student": student, "data": tiny_teacher["data"]}


def copy_of(directory: Path, tmp_path: Path) -> Path:
    target = tmp_path / directory.name
    shutil.copytree(directory, target)
    return target


def test_label_set_that_does_not_match_the_model(models, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "test.txt").write_text("张\tB-NAME\n三\tI-NAME\n", encoding="utf-8")
    for kind in ("teacher", "student"):
        refused(run("evaluate", models[kind], "--data", other / "test.txt"), "NAME", "not in the model's label set")


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_model_directory_with_a_missing_file(models, tmp_path, kind):
    broken = copy_of(models[kind], tmp_path)
    (broken / "model.safetensors").unlink()
    refused(run("predict", broken, "张三"), "model.safetensors is missing")
    broken = copy_of(models[kind], tmp_path / "b")
    (broken / "config.json").unlink()
    refused(run("predict", broken, "张三"), "config.json is missing")


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_an_edited_config_is_refused(models, tmp_path, kind):
    broken = copy_of(models[kind], tmp_path)
    config = json.loads((broken / "config.json").read_text())
    config["labels"][1], config["labels"][2] = config["labels"][2], config["labels"][1]
    (broken / "config.json").write_text(json.dumps(config))
    refused(run("predict", broken, "张三"), "does not match the checksum it was written with")


@pytest.mark.parametrize("kind", ["teacher", "student"])
def test_model_directory_with_corrupted_files(models, tmp_path, kind):
    broken = copy_of(models[kind], tmp_path)
    data = bytearray((broken / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (broken / "model.safetensors").write_bytes(bytes(data))
    refused(run("predict", broken, "张三"), "does not match the checksum")
    broken = copy_of(models[kind], tmp_path / "b")
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    refused(run("predict", broken, "张三"), "config.json is not valid JSON")


def test_truncated_safetensors(models, tmp_path):
    broken = copy_of(models["student"], tmp_path)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    config = json.loads((broken / "config.json").read_text())
    config.pop("weights_sha256")  # no checksum to catch it first: the reader must
    write_config(broken, config)
    refused(run("predict", broken, "张三"), "not a readable safetensors file (truncated or corrupt?)")


def test_cache_shard_from_another_teacher(tiny_teacher, tmp_path):
    from distill.teacher.cache import CacheConfig, build_cache
    from distill.teacher.train import TeacherTrainConfig, train_teacher
    from tests.conftest import PRECISION, TINY_TRAINING

    other_teacher = tmp_path / "other-teacher"
    train_teacher(
        TeacherTrainConfig(
            out=other_teacher,
            data=str(tiny_teacher["data"]),
            model=str(tiny_teacher["backbone"]),
            **{**TINY_TRAINING, "epochs": 1},
        )
    )
    other_cache = tmp_path / "other-cache"
    build_cache(
        CacheConfig(
            precision=PRECISION, teacher=other_teacher, out=other_cache, data=str(tiny_teacher["data"]), shard_size=32
        )
    )
    mixed = copy_of(tiny_teacher["cache"], tmp_path / "mixed")
    shutil.copy(other_cache / "shard-00001.safetensors", mixed / "shard-00001.safetensors")
    result = run("student-train", "--cache", mixed, "--out", tmp_path / "s", "--epochs", "1")
    refused(result, "shard-00001.safetensors does not belong to this cache", "teacher")


def test_truncated_cache_shard(tiny_teacher, tmp_path):
    damaged = copy_of(tiny_teacher["cache"], tmp_path)
    shard = damaged / "shard-00000.safetensors"
    shard.write_bytes(shard.read_bytes()[:50])
    refused(run("student-train", "--cache", damaged, "--out", tmp_path / "s"), "shard-00000.safetensors", "truncated")


def test_a_file_mixing_tag_schemes_is_repaired_and_refused_when_strict():
    path = BAD / "mixed_schemes.txt"
    assert run("data", "stats", path).exit_code == 0
    refused(run("data", "stats", "--strict", path), str(path), "mixes tag schemes", "I-PER would have to become")


def test_json_nested_too_deeply_names_its_line(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text('{"text": "张三", "label": {}}\n' + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    refused(run("data", "stats", path), f"{path}, line 2:", "nested too deeply")


def test_raw_text_given_as_training_data_is_refused(tmp_path):
    data = tmp_path / "raw"
    data.mkdir()
    for split in ("train", "dev", "test"):
        shutil.copy(BAD / "raw_text.txt", data / f"{split}.txt")
    result = run("student-train", "--data", data, "--alpha", "1", "--out", tmp_path / "s", "--char-vectors", "none")
    refused(result, "line 1: no tags", "needs labeled sentences")


def test_a_teacher_on_the_onnx_runtime_is_told_which_runtimes_it_has(models):
    refused(run("predict", models["teacher"], "--runtime", "onnx", "张三"), "holds a teacher", "--runtime torch")
    refused(run("evaluate", models["teacher"], "--runtime", "onnx-int8"), "holds a teacher", "--runtime torch")


def test_the_onnx_runtimes_refuse_a_gpu_rather_than_run_on_cpu_unasked(models):
    arguments = ["--runtime", "onnx", "--device", "cuda"]
    refused(run("predict", models["student"], *arguments, "张三"), "--device cuda: the onnx runtime runs on CPU")
    refused(run("serve", models["student"], *arguments, "--port", "0"), "--device cuda: the onnx runtime runs on CPU")


def test_evaluating_an_unlabeled_split_is_refused(models):
    refused(run("evaluate", models["student"], "--data", BAD / "raw_text.txt"), "no labeled sentences")


@pytest.mark.parametrize(
    "name, expected", [("gbk.txt", "not valid UTF-8 (another encoding"), ("nul_byte.txt", "NUL byte")]
)
def test_predict_refuses_input_that_is_not_utf8_text_from_a_file_or_stdin(models, name, expected):
    refused(run("predict", models["student"], "--input", BAD / name), f"{BAD / name}, line", expected)
    command = ["predict", str(models["student"]), "--input", "-"]
    piped = CliRunner().invoke(cli, command, input=(BAD / name).read_bytes())
    refused(piped, "<stdin>, line", expected)
    assert "--strict" not in piped.output  # a flag predict does not have


def test_predict_into_a_reader_that_stops_early_ends_quietly(models, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("张三在北京工作。\n" * 20_000, encoding="utf-8")  # far more than a pipe holds
    command = [sys.executable, "-m", "distill", "predict", str(models["student"]), "--input", str(texts)]
    writer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert json.loads(writer.stdout.readline())["text"] == "张三在北京工作。"
    writer.stdout.close()  # as `| head -1` does
    assert writer.wait(timeout=120) == 141 and writer.stderr.read() == b""


def test_predict_writes_utf8_json_lines_whatever_the_locale(models):
    command = [sys.executable, "-m", "distill", "predict", str(models["student"]), "张三在北京。"]
    env = {**os.environ, "PYTHONIOENCODING": "latin-1"}  # a terminal that cannot show Chinese
    result = subprocess.run(command, capture_output=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert json.loads(result.stdout.decode("utf-8"))["text"] == "张三在北京。"


def test_predict_drops_a_byte_order_mark_from_a_file_or_stdin(models, tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeff张三在北京。\r\n李四\r\n".encode())  # as Windows editors save UTF-8
    for args, stdin in (([path], None), (["-"], path.read_bytes())):
        result = CliRunner().invoke(cli, ["predict", str(models["student"]), "--input", *map(str, args)], input=stdin)
        predicted_lines(result, ["张三在北京。", "李四"])


@pytest.mark.parametrize("flag", ["--resume", "--overwrite", None])
def test_a_truncated_config_in_out_is_no_traceback(tiny_teacher, tmp_path, flag):
    out = tmp_path / "s"
    out.mkdir()
    (out / "config.json").write_text('{"kind": "stud', encoding="utf-8")
    options = ["--cache", tiny_teacher["cache"], "--epochs", "1", "--hidden", "8", "--char-vectors", "none"]
    result = run("student-train", *options, "--out", out, *([flag] if flag else []))
    if flag is None:
        refused(result, "already holds a training run")
    else:
        assert result.exit_code == 0, result.output


# The corpus: every file of tests/bad_inputs through every command that reads it.
CORPUS = sorted(p for p in BAD.iterdir() if p.name != "README.md")
READERS = {
    "data stats": lambda f, out, m: ["data", "stats", f],
    "data stats --strict": lambda f, out, m: ["data", "stats", "--strict", f],
    "data convert": lambda f, out, m: ["data", "convert", f, out / "converted.txt"],
    "predict": lambda f, out, m: ["predict", m["student"], "--input", f],
    "evaluate": lambda f, out, m: ["evaluate", m["student"], "--data", f, "--split", "train"],
    "student-train": lambda f, out, m: [
        *("student-train", "--data", f, "--alpha", 1, "--out", out / "student", "--epochs", 1, "--hidden", 8),
        *("--embedding-dim", 8, "--char-vectors", "none", "--threads", 1),
    ],
    "teacher-cache": lambda f, out, m: [
        *("teacher-cache", m["teacher"], "--no-labeled", "--unlabeled", f, "--out", out / "cache"),
        *("--precision", "fp32", "--threads", 1),
    ],
}
WRITES = {"data convert": "converted.txt", "student-train": "student", "teacher-cache": "cache"}


@pytest.mark.parametrize("reader", READERS)
def test_every_bad_input_through_every_command_that_reads_it(models, tmp_path, reader):
    """Exit 0 or 1, never a traceback; a refusal is one paragraph naming the file; a refused
    command leaves nothing behind that a later command could take for a finished artefact."""
    for path in CORPUS:
        out = tmp_path / path.stem
        out.mkdir()
        result = CliRunner().invoke(cli, [str(a) for a in READERS[reader](path, out, models)])
        context = f"distill {reader} {path.name}: {result.output[-600:]}"
        assert result.exit_code in (0, 1), context
        assert result.exception is None or isinstance(result.exception, SystemExit), context
        assert "Traceback" not in result.output, context
        if result.exit_code == 1:
            message = result.output.partition("Error: ")[2]  # after any progress bar
            assert path.name in message.split("\n\n")[0], context
            written = out / WRITES.get(reader, "-")
            assert not written.is_file() and not (written / "config.json").exists(), context
            if (written / "index.json").exists():  # a cache left to --resume, never one that says it is complete
                assert not json.loads((written / "index.json").read_text())["complete"], context


def test_init_from_a_teacher_without_its_tokenizer_files(tiny_teacher, tmp_path):
    from tests.conftest import TINY_TRAINING, cli_options

    teacher = copy_of(tiny_teacher["teacher"], tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (teacher / name).unlink()
    result = run(
        *("teacher-train", "--data", tiny_teacher["data"], "--init-from", teacher, "--out", tmp_path / "more"),
        *cli_options(**{**TINY_TRAINING, "epochs": 1}),
    )
    refused(result, str(teacher), "tokenizer")
    assert not (tmp_path / "more" / "config.json").exists()
