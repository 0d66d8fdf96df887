"""Run the experiments of one dataset, as its TOML file describes them, and record each run.

Usage:
    python benchmarks/experiment.py benchmarks/experiments/weibo.toml [--only ROW,...] [--jobs 2]
        [--seeds 13] [--skip-benchmark] [--work runs/experiments]

The file names the dataset's teacher (``[teacher]``, teacher-train settings), its cache
(``[cache]``), settings every run of a command shares (``[defaults.student-train]``, ...), rows
(``[[rows]]``: a name, the experiment it belongs to, a command, seeds and settings; a student row
trains on the file's cache, on another named ``cache = "NAME"`` (``[caches.NAME]``: settings laid
over ``[cache]``), or with ``cache = false`` on the gold data alone; with ``vectors = true`` its
bigrams start from vectors learnt once by ``distill bigram-vectors`` with ``[vectors]``'s settings)
and the students the deployment report measures (``[benchmark]``). Settings are those of the commands,
under the same names (``distill student-train --help``); paths are relative to the repository.

Every step is one ``distill`` command line, printed and recorded. A finished step is skipped and
an interrupted one resumed, so the script can be stopped and started again; a finished step made
otherwise than planned (another ``--set``, a row edited since, another teacher) stops it. Each run writes
``benchmarks/results/<dataset>/<experiment>/<row>-seed<N>/manifest.json``: the command, the
settings the run resolved, the commit, the machine, the date, the minutes, the teacher's
fingerprint (and, for the teacher and the cache, the encoder arithmetic) and what it measured (with its training
log beside it). ``python benchmarks/summarize.py`` turns the manifests into tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from timing import commit

from distill.artifacts import CONFIG, fingerprint, read_config, read_json, sha256_file
from distill.benchmark.config import BenchmarkConfig
from distill.benchmark.report import REPORT
from distill.cache import INDEX, read_index
from distill.environment import describe_environment, machine_line
from distill.errors import DistillError
from distill.settings import Settings, flag_of, setting_names, settings_fields, tomllib
from distill.student.bigram_vectors import record_path
from distill.student.config import BigramVectorsConfig, StudentTrainConfig
from distill.teacher.config import CacheConfig, TeacherTrainConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
COMMANDS: dict[str, type[Settings]] = {
    "teacher-train": TeacherTrainConfig,
    "teacher-cache": CacheConfig,
    "bigram-vectors": BigramVectorsConfig,
    "student-train": StudentTrainConfig,
    "benchmark": BenchmarkConfig,
}


@dataclass
class Run:
    """One command of the experiment: its place in the results and its settings."""

    command: str
    experiment: str
    name: str
    settings: dict
    description: str = ""
    out: Path = field(default_factory=Path)
    """Where the command writes its artefact."""
    results: Path = field(default_factory=Path)
    """Where its manifest goes."""

    @property
    def key(self) -> str:
        return f"{self.experiment}/{self.name}"

    def command_line(self) -> list[str]:
        """``distill COMMAND --flag value ...``, the flags made from the settings' own declarations."""
        cls = COMMANDS[self.command]
        fields = {f.name: f for f in settings_fields(cls)}
        words = ["distill", self.command]
        for name, value in self.settings.items():
            if name not in fields:
                raise SystemExit(f"{self.key}: {self.command} has no setting {name!r}")
            meta, flag = fields[name].metadata, flag_of(fields[name])
            if meta["argument"]:
                words.append(_relative(value))
            elif isinstance(value, bool) and meta["on_off"]:
                words.append(flag if value else f"--no-{flag[2:]}")
            elif isinstance(value, bool):
                words += [flag] if value else []  # a flag without a --no- form: given, or left out
            elif isinstance(value, list) and meta["comma"]:
                words += [flag, ",".join(map(str, value))]
            elif isinstance(value, list):
                for item in value:
                    words += [flag, _relative(item)]
            elif value is not None:
                words += [flag, _relative(value)]
        return words

    def check(self) -> None:
        """Name the settings as the command does, and refuse one it would refuse, before anything runs."""
        cls = COMMANDS[self.command]
        try:
            self.settings = setting_names(cls, self.settings, self.key)
            cls(**self.settings)
        except DistillError as err:
            raise SystemExit(f"{self.key}: {str(err).removeprefix(self.key + ': ')}") from None


def _relative(value: object) -> str:
    """A path beside the repository (``../shared/...``) or in it as a path relative to the repository,
    as the commands run from there; anything else as it is."""
    text = str(value)
    path = Path(text)
    if path.is_absolute() and path.is_relative_to(ROOT.parent):
        return os.path.relpath(path, ROOT)
    return text


def _planned(value: object) -> object:
    """A planned setting for a manifest: paths (one or a list of them) as :func:`_relative` writes
    them, numbers and flags as they are."""
    if isinstance(value, list):
        return [_planned(item) for item in value]
    return _relative(value) if isinstance(value, (str, Path)) else value


def with_overrides(spec: dict, overrides: list[str]) -> dict:
    """The experiment with ``SECTION.KEY=VALUE`` settings laid over the file's (the last word wins)."""
    sections = {"teacher": ("teacher",), "cache": ("cache",), "benchmark": ("benchmark",), "student": ("student",)}
    for override in overrides:
        target, _, value = override.partition("=")
        section, _, key = target.partition(".")
        if section not in sections or not key or not _:
            raise SystemExit(f"--set {override}: expected SECTION.KEY=VALUE with SECTION one of {', '.join(sections)}")
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value  # a bare word: a string
        spec.setdefault("overrides", {}).setdefault(section, {})[key] = parsed
        if section != "student":
            spec.setdefault(section, {})[key] = parsed
    return spec


def plan(spec: dict, work: Path, only: set[str] | None, seeds: list[int] | None, results: Path = RESULTS) -> list[Run]:
    """The runs of an experiment file, in order: teacher, cache, rows."""
    dataset = spec["dataset"]
    defaults = spec.get("defaults", {})
    teacher_dir = work / "teacher"
    teacher = Run(
        "teacher-train",
        "teacher",
        "teacher",
        {"data": spec["data"], **defaults.get("teacher-train", {}), **spec["teacher"], "out": teacher_dir},
        "the dataset's teacher",
    )
    caches: dict[str, Run] = {}

    def cache_dir(name: str) -> Path:
        """The cache a row names ("" for the file's [cache]; else [cache] with [caches.NAME] laid over it)."""
        if name not in caches:
            if name and name not in spec.get("caches", {}):
                raise SystemExit(f"a row names cache {name!r}, but the experiment file has no [caches.{name}]")
            folder = f"cache-{name}" if name else "cache"
            settings = {**spec["cache"], **(spec["caches"][name] if name else {}), "out": work / folder}
            caches[name] = Run(
                "teacher-cache",
                "cache",
                folder,
                {"teacher": teacher_dir, "data": spec["data"], **settings},
                "the teacher over the training split and unlabeled text" + (f" ({name})" if name else ""),
            )
        return work / caches[name].name

    vectors: list[Run] = []

    def vectors_file() -> Path:
        """The bigram vectors of the rows that ask for them: learnt once, with [vectors]'s settings."""
        if not vectors:
            settings = {"data": spec["data"], **spec.get("vectors", {}), "out": work / "bigram-vectors.bin"}
            description = "bigram vectors learnt from the training text and unlabeled text"
            vectors.append(Run("bigram-vectors", "vectors", "bigram-vectors", settings, description))
        return vectors[0].settings["out"]

    if only == set():  # an empty --only asks for the teacher and its cache alone
        cache_dir("")
    rows = []
    for row in spec.get("rows", []):
        if only is not None and row["name"] not in only:
            continue
        command = row.get("command", "student-train")
        for seed in seeds or row.get("seeds", [13]):
            settings = {**defaults.get(command, {}), **row.get("settings", {}), "seed": seed}
            if command == "student-train":
                settings |= spec.get("overrides", {}).get("student", {})
            cache = row.get("cache", True)
            if command == "student-train" and cache is not False:
                settings["cache"] = cache_dir("" if cache is True else cache)
            else:
                settings["data"] = spec["data"]
            if row.get("vectors"):
                settings["bigram_vectors"] = vectors_file()
            name = f"{row['name']}-seed{seed}"
            settings["out"] = work / row["experiment"] / name
            rows.append(Run(command, row["experiment"], name, settings, row.get("description", "")))
    runs = [teacher, *caches.values(), *vectors, *rows] if caches else [*vectors, *rows]
    for run in runs:
        run.out = Path(run.settings["out"])
        if any(f.name == "resume" for f in settings_fields(COMMANDS[run.command])):
            run.settings.setdefault("resume", True)
        run.results = results / dataset / run.experiment / run.name
    return [*runs, *_benchmark(spec, work, runs, results)] if "benchmark" in spec else runs


def _benchmark(spec: dict, work: Path, runs: list[Run], results: Path) -> list[Run]:
    names = spec["benchmark"].get("rows", [])
    first = {}  # row name -> its run of the lowest seed
    for run in runs:
        row = run.name.rsplit("-seed", 1)[0]
        if run.command == "student-train" and row in names and row not in first:
            first[row] = run
    teacher = [f"teacher={_relative(work / 'teacher')}"] if any(run.experiment == "teacher" for run in runs) else []
    models = teacher + [f"{row}={_relative(first[row].out)}" for row in names if row in first]
    settings = {k: v for k, v in spec["benchmark"].items() if k != "rows"}
    out = results / spec["dataset"] / "deployment" / "report"
    run = Run("benchmark", "deployment", "report", {"models": models, "data": spec["data"], **settings, "out": out})
    run.out = run.results = out
    return [run]


def finished(run: Run) -> dict | None:
    """What a finished run left (the model's config.json, the cache's index, the report, the bigram
    vectors' record), read and checked as distill reads it; None for a run not started or cut short:
    a trainer's config and a cache's index are marked complete at the end, a report is written whole,
    the vectors' record after them."""
    if run.command == "benchmark":
        path = run.out / REPORT
        return read_json(path, "the benchmark report") if path.is_file() else None
    if run.command == "bigram-vectors":
        path = record_path(run.out)
        return read_json(path, "the bigram vectors' record") if path.is_file() else None
    if run.command == "teacher-cache":
        record, mark = (read_index(run.out) if (run.out / INDEX).is_file() else {}), "complete"
    else:
        record, mark = (read_config(run.out) if (run.out / CONFIG).is_file() else {}), "training_complete"
    return record if record.get(mark) else None


def execute(run: Run, log: Path, env: dict | None) -> float:
    """Run the command; its output is appended to ``log``. Returns the minutes it took."""
    words = run.command_line()
    print("$ " + shlex.join(words), flush=True)
    started = time.time()
    with open(log, "a", encoding="utf-8") as out:
        out.write("$ " + shlex.join(words) + "\n")
        out.flush()
        subprocess.run(
            [sys.executable, "-m", "distill", *words[1:]], stdout=out, stderr=subprocess.STDOUT, check=True, env=env
        )
    return (time.time() - started) / 60


# Where and how a run works, not what it makes: a folder may be reached by another path, or a run
# resumed with other threads, and still be the same run (a cache's own run says how it was made, and
# a student's bigram vectors are compared by their bytes' SHA-256).
WHERE_AND_HOW = {
    "out",
    "cache",
    "bigram_vectors",
    "teacher",
    "resume",
    "overwrite",
    "threads",
    "device",
    "eval_batch_size",
    "checkpoint_every",
}


def made_otherwise(run: Run, record: dict) -> list[str]:
    """How a finished run differs from the one this call plans (``setting: made with X, planned Y``):
    its teacher against the one it would use now (a cache's: the teacher in its folder; a
    student's: the one that built its cache), a student's bigram vectors against the planned file,
    and a trainer's recorded training settings against the planned ones. A folder made by another
    call (another ``--set``, a row edited since, a teacher trained again) would otherwise be taken
    as done."""
    differences = []
    made_by, now = teacher_of(run, record), _teacher_now(run)
    if now is not None and made_by != now:
        differences.append(f"teacher: made with {made_by!r}, planned {now!r}")
    made = record.get("training") or {}
    if run.command == "student-train" and (vectors := _vectors_differ(run, record)):
        differences.append(vectors)
    planned = COMMANDS[run.command](**run.settings).as_record() if made else {}
    return differences + [
        f"{name}: made with {made[name]!r}, planned {value!r}"
        for name, value in planned.items()
        if name not in WHERE_AND_HOW and name in made and made[name] != value
    ]


def _vectors_differ(run: Run, record: dict) -> str | None:
    """A finished student's bigram vectors against the planned ones, compared by their SHA-256 (the
    same file may be reached by two paths); None where they agree, or where the planned file is still
    to be learnt and the student had one."""
    made = record["bigram_vectors"]["sha256"] if record.get("training", {}).get("bigram_vectors") else None
    path = run.settings.get("bigram_vectors")
    if path is not None and not Path(path).is_file():  # still to be learnt: only its absence can differ
        return None if made else "bigram vectors: made without, planned from a file not learnt yet"
    planned = sha256_file(Path(path)) if path else None
    return None if made == planned else f"bigram vectors (SHA-256): made from {made!r}, planned {planned!r}"


def _teacher_now(run: Run) -> str | None:
    """The fingerprint of the teacher a cache or a distilled student would use if it ran now (None
    for other runs, or where that teacher or cache is not there yet)."""
    if run.command == "teacher-cache":
        teacher = Path(run.settings["teacher"])
        return fingerprint(read_config(teacher)) if (teacher / CONFIG).is_file() else None
    if run.command == "student-train" and run.settings.get("cache"):
        cache = Path(run.settings["cache"])
        return read_index(cache)["teacher"]["fingerprint"] if (cache / INDEX).is_file() else None
    return None


def refuse_made_otherwise(runs: list[Run]) -> None:
    """Stop, naming each difference, when a finished run's folder was made with other settings."""
    found = [(run, made_otherwise(run, record)) for run in runs if (record := finished(run))]
    found = [(run, differences) for run, differences in found if differences]
    if found:
        lines = [f"{run.out} ({run.key}): " + "; ".join(differences) for run, differences in found]
        raise SystemExit(
            "these folders hold runs made with other settings than this call plans:\n  "
            + "\n  ".join(lines)
            + "\ngive another --work, the --set of the call that made them, or remove them"
        )


def logged_minutes(out: Path) -> float | None:
    """Minutes the epochs in a run's training log took (None without a log)."""
    log = out / "train_log.jsonl"
    if not log.is_file():
        return None
    return sum(json.loads(line)["seconds"] for line in log.read_text(encoding="utf-8").splitlines() if line) / 60


def teacher_of(run: Run, record: dict) -> str | None:
    """The fingerprint of the teacher behind a finished run: the teacher run's own, the one a cache
    was built by, the one a student was distilled from (None for a student without a cache)."""
    if run.command == "teacher-train":
        return fingerprint(record) if record else None
    if run.command == "teacher-cache":
        return record.get("teacher", {}).get("fingerprint")
    return record.get("distillation", {}).get("teacher")


def arithmetic_of(run: Run, record: dict) -> str | None:
    """What ``--precision auto`` resolved to in a finished teacher or cache run (a timing decides it
    on each new machine, so building the run again takes this as ``--precision``); None for others."""
    if run.command == "teacher-train":
        return record.get("encoder_arithmetic")
    if run.command == "teacher-cache":
        return record.get("teacher", {}).get("precision")
    return None


def write_manifest(run: Run, minutes: float | None, threads: int | None) -> Path:
    """<results>/<dataset>/<experiment>/<name>/manifest.json (and the run's log beside it). ``threads``:
    what ``--jobs`` gave a student run; the run's own ``threads`` setting wins."""
    record = finished(run) or {}
    folder = run.results
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "command": shlex.join(run.command_line()),
        "description": run.description,
        "settings": record.get("training", {k: _planned(v) for k, v in run.settings.items()}),
        "commit": commit(),
        "machine": machine_line(describe_environment()),
        "threads": (run.settings.get("threads") or threads) if run.command == "student-train" else None,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "minutes": round(minutes, 2) if minutes is not None else None,
        "metrics": record.get("metrics"),
        "teacher": teacher_of(run, record),
        "arithmetic": arithmetic_of(run, record),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    for name in ("train_log.jsonl",):
        if (run.out / name).is_file():
            shutil.copy(run.out / name, folder / name)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", type=Path, help="benchmarks/experiments/<dataset>.toml")
    parser.add_argument(
        "--only", help="Comma-separated row names to run (default: every row; empty: the teacher and cache alone)."
    )
    parser.add_argument("--seeds", help="Comma-separated seeds for every row, instead of each row's own.")
    parser.add_argument("--jobs", type=int, default=1, help="Student runs at a time (one thread each when > 1).")
    parser.add_argument("--skip-benchmark", action="store_true")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "experiments")
    parser.add_argument("--results", type=Path, default=RESULTS, help="Where manifests and the report go.")
    parser.add_argument("--dry-run", action="store_true", help="Print the commands still to run, and run none.")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="Change a setting for this call, over the file's: SECTION is teacher, cache, student (every "
        "student-train run) or benchmark; VALUE is read as TOML (e.g. --set teacher.epochs=4).",
    )
    args = parser.parse_args()
    spec = with_overrides(tomllib.loads(args.experiments.read_text(encoding="utf-8")), args.overrides)
    if args.skip_benchmark:
        spec.pop("benchmark", None)
    work = args.work / spec["dataset"]
    work.mkdir(parents=True, exist_ok=True)
    only = {name for name in args.only.split(",") if name} if args.only is not None else None
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    runs = plan(spec, work, only, seeds, args.results)
    for run in runs:
        run.check()
    refuse_made_otherwise(runs)
    if args.dry_run:
        for run in runs:
            print(("done: " if finished(run) else "") + shlex.join(run.command_line()))
        return
    log = work / "commands.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1"} if args.jobs > 1 else None
    threads = 1 if args.jobs > 1 else None

    def attempt(run: Run) -> None:
        if finished(run):
            print(f"done: {run.key}", flush=True)
            if not (run.results / "manifest.json").is_file():  # finished by an earlier call that was cut short
                write_manifest(run, logged_minutes(run.out), None)
            return
        try:
            minutes = execute(run, log, env if run.command == "student-train" else None)
        except subprocess.CalledProcessError:
            print(f"FAILED: {run.key} (see {log})", flush=True)  # the other runs go on
            return
        # a resumed run's epochs before this call are in its log, not in this call's time
        minutes = max(minutes, logged_minutes(run.out) or 0)
        write_manifest(run, minutes, threads)

    students = [run for run in runs if run.command == "student-train"]
    for run in runs:
        if run.command in ("teacher-train", "teacher-cache", "bigram-vectors"):
            attempt(run)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(attempt, students))
    for run in runs:
        if run.command == "benchmark":
            attempt(run)


if __name__ == "__main__":
    main()
