"""Settings declared once: options made from them, checked before any work, read from TOML."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from distill.benchmark.config import BenchmarkConfig
from distill.cli import cli
from distill.errors import DistillError
from distill.serve import ServeConfig
from distill.settings import RunSettings, default, flag_of, setting, settings_fields
from distill.student.config import StudentTrainConfig
from distill.teacher.config import CacheConfig, PretrainConfig, TeacherTrainConfig

COMMANDS = {
    "student-train": StudentTrainConfig,
    "teacher-train": TeacherTrainConfig,
    "teacher-pretrain": PretrainConfig,
    "teacher-cache": CacheConfig,
    "benchmark": BenchmarkConfig,
    "serve": ServeConfig,
}
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_setting_is_an_option_with_the_settings_default(name):
    command = cli.get_command(None, name)
    params = {p.name: p for p in command.params}
    for field in settings_fields(COMMANDS[name]):
        param = params.pop(field.name)
        if field.metadata["argument"]:
            continue
        assert flag_of(field) in param.opts + param.secondary_opts
        assert param.help == field.metadata["help"]
        if field.default is not dataclasses.MISSING and not field.metadata["comma"]:
            assert param.default == field.default, field.name
    assert set(params) <= {"config", "render_only"}


def test_command_modules_declare_no_defaults_of_their_own():
    for module in ("student_commands", "teacher_commands", "benchmark_commands", "serve_commands"):
        source = (ROOT / "distill" / "cli" / f"{module}.py").read_text(encoding="utf-8")
        assert not re.search(r"default\s*=", source), module


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--alpha", "2"], "--alpha must lie in [0, 1], got 2"),
        (["--T", "0"], "--T must be above 0, got 0"),
        (["--T", "nan"], "--T must be a finite number, got nan"),
        (["--T", "inf"], "--T must be a finite number, got inf"),
        (["--epochs", "-1"], "--epochs must be at least 1, got -1"),
        (["--epochs", "0"], "--epochs must be at least 1, got 0"),
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--lr", "nan"], "--lr must be a finite number, got nan"),
        (["--hidden", "0"], "--hidden must be at least 1, got 0"),
        (["--dropout", "1.5"], "--dropout must lie in [0, 1), got 1.5"),
        (["--device", "gpu0"], "--device must be auto, cpu, cuda or cuda:N, got 'gpu0'"),
    ],
)
def test_invalid_values_are_refused_before_any_work(tmp_path, options, message):
    out = tmp_path / "student"
    result = CliRunner().invoke(cli, ["student-train", "--out", str(out), *options])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_the_api_refuses_the_same_values():
    with pytest.raises(DistillError, match=r"--max-unlabeled must be at least 0, got -5"):
        CacheConfig(teacher=Path("t"), out=Path("c"), max_unlabeled=-5)
    with pytest.raises(DistillError, match=r"--max-len must be at least 2, got 0"):
        PretrainConfig(out=Path("p"), max_len=0)
    with pytest.raises(DistillError, match=r"--kd must be one of emission, marginal, got 'kl'"):
        StudentTrainConfig(out=Path("s"), kd="kl")
    assert StudentTrainConfig(out="s").out == Path("s")  # a string path is taken as a Path


def test_a_config_file_gives_settings_and_flags_override_it(tiny_teacher, tmp_path):
    (tmp_path / "student.toml").write_text(
        f'cache = "{tiny_teacher["cache"]}"\nepochs = 3\nhidden = 8\nembedding-dim = 8\nT = 2.0\n', encoding="utf-8"
    )
    out = tmp_path / "s"
    result = CliRunner().invoke(
        cli, ["student-train", "--config", str(tmp_path / "student.toml"), "--epochs", "1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    training = json.loads((out / "config.json").read_text(encoding="utf-8"))["training"]
    assert (training["epochs"], training["hidden"], training["embedding_dim"]) == (1, 8, 8)
    assert training["temperature"] == 2.0 and training["cache"] == str(tiny_teacher["cache"])
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epochz = 3\n", "unknown setting 'epochz'"),
        ("epochs = \n", "not a valid TOML file"),
        ("epochs = 0\n", "bad.toml: epochs must be at least 1, got 0"),
        ('kd = "kl"\n', "bad.toml: kd must be one of emission, marginal, got 'kl'"),
        ('hidden = "wide"\n', "bad.toml: hidden must be a number, got 'wide'"),
    ],
)
def test_a_bad_config_file_is_refused_naming_it(tmp_path, text, message):
    (tmp_path / "bad.toml").write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["student-train", "--config", str(tmp_path / "bad.toml"), "--out", "x"])
    assert result.exit_code in (1, 2) and message in result.output
    assert "Traceback" not in result.output


def test_a_changed_default_keeps_the_settings_help_and_bounds():
    @dataclasses.dataclass(kw_only=True)
    class Longer(RunSettings):
        epochs: int = default(50)

    (epochs,) = [f for f in settings_fields(Longer) if f.name == "epochs"]
    assert epochs.default == 50 and epochs.metadata["help"] == "Passes over the training data."
    with pytest.raises(DistillError, match="--epochs must be at least 1"):
        Longer(out=Path("x"), epochs=0)


def test_a_setting_without_help_is_refused():
    @dataclasses.dataclass(kw_only=True)
    class Careless(RunSettings):
        shiny: int = 3

    with pytest.raises(TypeError, match=r"Careless\.shiny has no help text"):
        settings_fields(Careless)
    assert setting(1, help="x").metadata["help"] == "x"
