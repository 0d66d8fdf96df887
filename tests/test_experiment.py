"""benchmarks/experiment.py: an experiment file run end to end on tiny models, then skipped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from distill.artifacts import write_config
from distill.cache import write_index
from distill.errors import DistillError
from distill.settings import tomllib
from tests.conftest import import_script

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "benchmarks" / "experiment.py"


def _experiment(tmp_path: Path, tiny_teacher: dict) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(
        f"""
dataset = "tiny"
data = "{tiny_teacher["data"]}"

[teacher]
model = "{tiny_teacher["backbone"]}"
epochs = 2
batch_size = 8
window = 10
overlap = 4
unlabeled = ["{tiny_teacher["raw"]}"]

[cache]
unlabeled = ["{tiny_teacher["raw"]}"]
shard_size = 32

[vectors]
unlabeled = ["{tiny_teacher["raw"]}"]
epochs = 1

[defaults.student-train]
epochs = 2
hidden = 8
embedding_dim = 8
char_vectors = "none"

[[rows]]
name = "distilled"
experiment = "kd"
description = "a distilled student"
seeds = [13, 14]
settings = {{ alpha = 0.5, T = 2.0 }}

[[rows]]
name = "gold"
experiment = "no-teacher"
cache = false
vectors = true
seeds = [13]
settings = {{ alpha = 1.0, threads = 1 }}
""",
        encoding="utf-8",
    )
    return path


def _drive(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DRIVER), *map(str, args)], capture_output=True, text=True, check=False, cwd=ROOT
    )


def test_an_experiment_runs_records_manifests_and_skips_what_is_done(tmp_path, tiny_teacher):
    experiment, work, results = _experiment(tmp_path, tiny_teacher), tmp_path / "work", tmp_path / "results"
    first = _drive(experiment, "--work", work, "--results", results)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count("$ distill student-train") == 3 and "$ distill teacher-cache" in first.stdout
    manifest = json.loads((results / "tiny" / "kd" / "distilled-seed14" / "manifest.json").read_text())
    assert manifest["command"].startswith("distill student-train ") and "--T 2.0" in manifest["command"]
    assert manifest["settings"]["seed"] == 14 and manifest["settings"]["temperature"] == 2.0
    assert manifest["settings"]["char_vectors"] == "none" and manifest["settings"]["epochs"] == 2
    assert 0 <= manifest["metrics"]["test"]["overall"]["f1"] <= 1 and manifest["minutes"] >= 0
    assert len(manifest["commit"]) >= 40 and manifest["machine"] and manifest["date"]
    assert (results / "tiny" / "kd" / "distilled-seed14" / "train_log.jsonl").is_file()
    gold = json.loads((results / "tiny" / "no-teacher" / "gold-seed13" / "manifest.json").read_text())
    assert "--data" in gold["command"] and "--cache" not in gold["command"]
    assert gold["threads"] == 1 and manifest["threads"] is None  # a row's own --threads; else --jobs's
    teacher = json.loads((results / "tiny" / "teacher" / "teacher" / "manifest.json").read_text())
    cache = json.loads((results / "tiny" / "cache" / "cache" / "manifest.json").read_text())
    assert len(teacher["teacher"]) == 16 and cache["teacher"] == manifest["teacher"] == teacher["teacher"]
    arithmetic = json.loads((work / "tiny" / "teacher" / "config.json").read_text())["encoder_arithmetic"]
    assert teacher["arithmetic"] == arithmetic in ("bf16", "fp32") and manifest["arithmetic"] is None
    cache_index = json.loads((work / "tiny" / "cache" / "index.json").read_text())
    assert cache["arithmetic"] == cache_index["teacher"]["precision"] in ("bf16", "fp32")
    assert cache["settings"]["unlabeled"] == [str(tiny_teacher["raw"])] and cache["settings"]["shard_size"] == 32
    assert gold["teacher"] is None
    vectors = json.loads((results / "tiny" / "vectors" / "bigram-vectors" / "manifest.json").read_text())
    assert vectors["command"].startswith("distill bigram-vectors --data ") and "--unlabeled" in vectors["command"]
    assert "--bigram-vectors" in gold["command"]
    assert Path(gold["settings"]["bigram_vectors"]).resolve() == work / "tiny" / "bigram-vectors.bin"
    assert "--bigram-vectors" not in manifest["command"]

    again = _drive(experiment, "--work", work, "--results", results)
    assert again.returncode == 0 and "$ distill" not in again.stdout and again.stdout.count("done: ") == 6


def test_a_bad_setting_is_refused_before_anything_runs(tmp_path, tiny_teacher):
    experiment = _experiment(tmp_path, tiny_teacher)
    experiment.write_text(experiment.read_text().replace("T = 2.0", "T = 0"), encoding="utf-8")
    result = _drive(experiment, "--work", tmp_path / "work", "--results", tmp_path / "results")
    assert result.returncode != 0 and "kd/distilled-seed13: --T must be above 0, got 0" in result.stderr
    assert not (tmp_path / "work" / "tiny" / "teacher").exists()


@pytest.mark.parametrize("name", ["resume", "weibo", "msra"])
def test_the_committed_experiment_files_plan_valid_commands(name):
    spec = tomllib.loads((ROOT / "benchmarks" / "experiments" / f"{name}.toml").read_text(encoding="utf-8"))
    plan = import_script(DRIVER).plan
    runs = plan(spec, ROOT / "runs" / "experiments" / name, None, None)
    for run in runs:
        run.check()
        assert run.command_line()[0] == "distill"
    assert {"teacher", "cache"} <= {run.experiment for run in runs}


def test_a_row_can_name_a_cache_of_its_own():
    spec = tomllib.loads(
        """
dataset = "tiny"
data = "data"
[teacher]
epochs = 1
[cache]
max_unlabeled = 100
[caches.more]
max_unlabeled = 500
substitutions = 20
[[rows]]
name = "plain"
experiment = "kd"
settings = { alpha = 0.5 }
[[rows]]
name = "more"
experiment = "kd"
cache = "more"
settings = { alpha = 0.5 }
[[rows]]
name = "gold"
experiment = "kd"
cache = false
settings = { alpha = 1.0 }
"""
    )
    plan = import_script(DRIVER).plan
    runs = {run.name: run for run in plan(spec, Path("work"), None, None)}
    assert list(runs) == ["teacher", "cache", "cache-more", "plain-seed13", "more-seed13", "gold-seed13"]
    assert runs["cache-more"].settings | {"out": None} == {
        "teacher": Path("work/teacher"),
        "data": "data",
        "max_unlabeled": 500,
        "substitutions": 20,
        "out": None,
        "resume": True,
    }
    assert runs["more-seed13"].settings["cache"] == Path("work/cache-more")
    assert runs["plain-seed13"].settings["cache"] == Path("work/cache")
    assert "cache" not in runs["gold-seed13"].settings and runs["gold-seed13"].settings["data"] == "data"
    assert [run.name for run in plan(spec, Path("work"), {"gold"}, None)] == ["gold-seed13"]
    assert [run.name for run in plan(spec, Path("work"), set(), None)] == ["teacher", "cache"]
    with pytest.raises(SystemExit, match=r"\[caches.none\]"):
        plan({**spec, "rows": [{**spec["rows"][1], "cache": "none"}]}, Path("work"), None, None)


def test_a_training_cut_short_is_not_finished(tmp_path):
    driver = import_script(DRIVER)
    Run, finished = driver.Run, driver.finished
    run = Run("student-train", "kd", "row-seed13", {"out": tmp_path})
    run.out = tmp_path
    assert finished(run) is None
    write_config(tmp_path, {"kind": "student", "metrics": {"dev_f1": 0.5}})  # the best epoch so far
    assert finished(run) is None
    write_config(tmp_path, {"kind": "student", "metrics": {"dev_f1": 0.5}, "training_complete": True})
    assert finished(run)["metrics"] == {"dev_f1": 0.5}
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "metrics": {"dev_f1": 0.9}}))  # edited afterwards
    with pytest.raises(DistillError, match="checksum"):
        finished(run)


def test_a_folder_made_with_other_settings_is_refused(tmp_path):
    driver = import_script(DRIVER)
    run = driver.Run("student-train", "kd", "row-seed13", {"data": "data", "alpha": 1.0, "seed": 13, "out": tmp_path})
    run.out = tmp_path
    run.check()
    record = {
        "kind": "student",
        "training": driver.COMMANDS["student-train"](**run.settings).as_record(),
        "training_complete": True,
    }
    record["training"] |= {"threads": 1, "out": "elsewhere"}  # where and how it ran: the same run
    write_config(tmp_path, record)
    assert driver.made_otherwise(run, record) == []
    driver.refuse_made_otherwise([run])

    record["training"] |= {"alpha": 0.5, "hidden": 64}
    write_config(tmp_path, record)
    assert driver.made_otherwise(run, record) == [
        "alpha: made with 0.5, planned 1.0",
        "hidden: made with 64, planned 256",
    ]
    with pytest.raises(SystemExit, match=r"\(kd/row-seed13\): alpha: made with 0.5, planned 1.0; hidden"):
        driver.refuse_made_otherwise([run])


def test_a_student_of_other_bigram_vectors_is_refused(tmp_path):
    driver = import_script(DRIVER)
    vectors = tmp_path / "bigrams.bin"
    vectors.write_bytes(b"first")
    settings = {"data": "data", "bigram_vectors": vectors, "out": tmp_path / "s"}
    run = driver.Run("student-train", "kd", "row-seed13", settings)
    run.out = tmp_path / "s"
    run.check()
    record = {
        "kind": "student",
        "training": driver.COMMANDS["student-train"](**run.settings).as_record() | {"bigram_vectors": "elsewhere"},
        "bigram_vectors": {"sha256": driver.sha256_file(vectors)},
        "training_complete": True,
    }
    assert driver.made_otherwise(run, record) == []  # the same bytes, reached by another path

    vectors.write_bytes(b"second")  # learnt again, otherwise
    assert driver.made_otherwise(run, record) == [
        f"bigram vectors (SHA-256): made from {record['bigram_vectors']['sha256']!r}, "
        f"planned {driver.sha256_file(vectors)!r}"
    ]
    vectors.unlink()  # still to be learnt: only a student made without vectors can be told apart
    assert driver.made_otherwise(run, record) == []
    without = record | {"training": record["training"] | {"bigram_vectors": None}}
    assert driver.made_otherwise(run, without) == ["bigram vectors: made without, planned from a file not learnt yet"]
    run.settings["bigram_vectors"] = None  # the row no longer asks for vectors
    assert driver.made_otherwise(run, without) == []
    assert driver.made_otherwise(run, record) == [
        f"bigram vectors (SHA-256): made from {record['bigram_vectors']['sha256']!r}, planned None"
    ]


def test_a_cache_or_student_of_another_teacher_is_refused(tmp_path):
    driver = import_script(DRIVER)
    teacher, cache = tmp_path / "teacher", tmp_path / "cache"
    teacher.mkdir()
    cache.mkdir()
    config = write_config(teacher, {"kind": "teacher", "labels": ["O"]})
    run = driver.Run("teacher-cache", "cache", "cache", {"teacher": teacher, "data": "data", "out": cache})
    run.out = cache
    index = {"teacher": {"fingerprint": driver.fingerprint(config)}, "complete": True}
    write_index(cache, index)
    driver.refuse_made_otherwise([run])

    student = driver.Run("student-train", "kd", "row-seed13", {"cache": cache, "alpha": 0.5, "out": tmp_path / "s"})
    student.out = tmp_path / "s"
    student.check()
    student.out.mkdir()
    record = {
        "kind": "student",
        "training": driver.COMMANDS["student-train"](**student.settings).as_record(),
        "training_complete": True,
    }
    record["distillation"] = {"teacher": index["teacher"]["fingerprint"]}
    write_config(student.out, record)
    driver.refuse_made_otherwise([run, student])

    write_config(teacher, {"kind": "teacher", "labels": ["O", "B-X"]})  # trained again
    with pytest.raises(SystemExit, match=r"\(cache/cache\): teacher: made with '[0-9a-f]{16}', planned '[0-9a-f]{16}'"):
        driver.refuse_made_otherwise([run])
    index["teacher"]["fingerprint"] = "0123456789abcdef"  # and its cache built again
    write_index(cache, index)
    with pytest.raises(
        SystemExit, match=r"\(kd/row-seed13\): teacher: made with '[0-9a-f]{16}', planned '0123456789abcdef'"
    ):
        driver.refuse_made_otherwise([student])
