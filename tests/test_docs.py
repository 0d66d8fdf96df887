"""The docs cannot rot: the README's own-data commands run, option tables match --help, --help
carries no measured figures, and every committed result has its manifest and is indexed."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PRECISION, REPO, TINY_TRAINING, cli_options, import_script

DOCS = REPO / "docs"
RESULTS = REPO / "benchmarks" / "results"
options = import_script(DOCS / "options.py")  # the option-table writer

# What the README's own-data commands need on top of theirs to finish in seconds on a tiny corpus.
TINY = {
    "teacher-train": {**TINY_TRAINING, "epochs": 2},
    "teacher-cache": {"precision": PRECISION},
    "student-train": {"epochs": 2, "hidden": 16},
    "benchmark": {"latency_sentences": 4, "warmup": 1, "batch_sizes": 4, "repeats": 1, "timeout": 600},
}


def readme_commands(section: str = "## Your own data") -> list[list[str]]:
    """The ``distill ...`` lines of the first bash block under ``section`` of README.md, as argv."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    body = text.split(section, 1)[1].split("\n## ", 1)[0]
    block = body.split("```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.startswith("distill ")]


def test_readme_own_data_commands_run_on_a_tiny_dataset(tmp_path, monkeypatch):
    from tests.tiny import tiny_backbone, tiny_corpus

    backbone = tiny_backbone(tmp_path / "backbone")
    tiny_corpus(tmp_path / "mydata")
    raw = "张三在北京工作。李四是公司的人！\n王五在上海大学学习。\n" * 4
    (tmp_path / "mydata" / "raw.txt").write_text(raw, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    commands = readme_commands()
    assert [argv[1] for argv in commands] == [
        "data",
        "teacher-train",
        "teacher-cache",
        "student-train",
        "export",
        "benchmark",
        "predict",
    ]
    for readme_argv in commands:
        extra = cli_options(**TINY.get(readme_argv[1], {}))
        if readme_argv[1] == "teacher-train":
            extra += ["--model", str(backbone)]
        # predict's options go before its texts
        argv = readme_argv[:3] + extra + readme_argv[3:] if readme_argv[1] == "predict" else readme_argv + extra
        done = subprocess.run([sys.executable, "-m", *argv], check=False, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{' '.join(argv)}\n{done.stdout}\n{done.stderr}"
        if argv[1] == "predict":
            line = json.loads(done.stdout.splitlines()[0])
            assert line["text"] == "张三，男，现任北京大学教授。"
            assert all(0 < e["confidence"] <= 1 for e in line["entities"])
    assert (tmp_path / "runs/teacher/config.json").is_file()
    assert json.loads((tmp_path / "runs/cache/index.json").read_text())["shards"]
    assert (tmp_path / "runs/student/model-int8.onnx").is_file()
    report = json.loads((tmp_path / "runs/report/report.json").read_text())
    assert {run["model"] for run in report["runs"] if run["status"] == "ok"} == {"teacher", "student"}
    assert report["recommendation"]["label"]


def test_readme_is_short_and_links_every_docs_page():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    for page in options.pages():
        assert f"docs/{page.name}" in readme, page.name


FIGURES = re.compile(r"\b\d+\.\d+\s*(F1|%|ms|x faster)|\bF1 (of )?\d|\bmeasured( on|:)|20\d\d-\d\d-\d\d", re.I)
"""What a measured figure or a date looks like in a help text."""


def _commands() -> list[str]:
    import click

    from distill.cli import COMMANDS, cli

    names = []
    for name in COMMANDS:
        command = options.command(name)
        if isinstance(command, click.Group):
            names += [f"{name} {sub}" for sub in command.list_commands(click.Context(cli))]
        else:
            names.append(name)
    return names


def test_every_command_has_its_option_table_on_a_docs_page_and_the_tables_match_the_cli():
    tables = {m.group("command") for page in options.pages() for m in options.MARKER.finditer(page.read_text())}
    assert set(_commands()) <= tables
    stale = [page.name for page in options.pages() if options.render(page.read_text()) != page.read_text()]
    assert not stale, f"run python docs/options.py: {stale}"


@pytest.mark.parametrize("name", _commands())
def test_help_teaches_usage_without_measured_figures(name):
    command = options.command(name)
    text = " ".join([command.help or "", *(getattr(p, "help", None) or "" for p in command.params)])
    assert not re.search(FIGURES, text), text
    for param in command.params:
        if param.param_type_name == "option" and param.name != "help":
            assert param.help, f"distill {name} {param.opts[0]} has no help text"


def test_results_are_manifests_without_absolute_paths_and_the_index_is_fresh():
    assert not list(RESULTS.rglob("earlier-*")) and not (RESULTS / "NOTES.md").exists()
    for folder in [p for p in RESULTS.iterdir() if p.is_dir()]:
        runs = [folder] if (folder / "manifest.json").exists() else [p for p in folder.iterdir() if p.is_dir()]
        for experiment in runs:
            assert list(experiment.rglob("manifest.json")), f"{experiment} has no manifest.json"
    for path in RESULTS.rglob("*"):
        if path.suffix in (".json", ".md", ".txt", ".jsonl", ".log"):
            assert not re.search(r"(?<![\w.])/(work|tmp|home|root)/", path.read_text(encoding="utf-8")), path
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "summarize.py"), "--check"], check=False, capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()


def test_the_index_shows_runs_made_on_a_measurements_output(tmp_path, monkeypatch):
    summarize = import_script(REPO / "benchmarks" / "summarize.py")
    demo = tmp_path / "demo"
    demo.mkdir()
    machine = {"machine": "a test machine", "commit": "0123456789abcdef", "date": "today"}
    (demo / "manifest.json").write_text(json.dumps({**machine, "description": "the demo", "results": []}))
    for seed, f1 in ((13, 0.6), (14, 0.7)):
        run = demo / "transfer-size" / f"pd20k-seed{seed}"
        run.mkdir(parents=True)
        metrics = {"dev_f1": 0.5, "test": {"overall": {"f1": f1}}}
        manifest = {**machine, "description": "a student", "minutes": 2.0, "metrics": metrics}
        (run / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(summarize, "RESULTS", tmp_path)
    monkeypatch.setattr(summarize, "DATASETS", ())
    page = summarize.render()
    assert "## demo" in page and "### demo/transfer-size" in page
    assert "| pd20k: a student | [60.00](./demo/transfer-size/pd20k-seed13/manifest.json), [70.00]" in page
    assert "| 65.00 +- 7.07 | 50.00 | 2.0 |" in page


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation but - and _ dropped, spaces as -."""
    headings = re.findall(r"^#+ (.*)$", page.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_every_relative_link_of_the_readme_and_docs_resolves():
    for page in [REPO / "README.md", *options.pages(), RESULTS / "README.md"]:
        for target, anchor in re.findall(r"\]\(([^)#\s]+)(?:#([^)]*))?\)", page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            path = page.parent / target
            assert path.exists(), f"{page.relative_to(REPO)} links to {target}"
            if anchor:
                assert anchor in _anchors(path), f"{page.relative_to(REPO)} links to {target}#{anchor}"
