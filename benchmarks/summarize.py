"""Collect the per-dataset results into benchmarks/results/README.md.

Usage: python benchmarks/summarize.py
Reads the run manifests that benchmarks/experiment.py writes
(benchmarks/results/<dataset>/<experiment>/<row>-seed<N>/manifest.json) and the files of earlier
runs (<dataset>/{teacher.json, students.json, report/report.json}); writes a summary that links
to each file. Reports only what those files hold.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ("resume", "weibo", "msra")
PUBLISHED = {"resume": (95.68, 93.48), "weibo": (68.79, 52.77), "msra": (95.92, 88.81)}


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _other_runs(dataset: str, name: str) -> list[Path]:
    """``name`` in each of the dataset's folders (``earlier-*``, ``gpu-h200``, ...): the tables and
    reports of runs on other machines or with other teachers than the dataset's own files."""
    return sorted((RESULTS / dataset).glob(f"*/{name}"))


def manifest_tables() -> list[str]:
    """A table per dataset and experiment from its manifests: one line per row, its seeds together."""
    lines = []
    for folder in sorted({p.parent.parent for p in RESULTS.glob("*/*/*/manifest.json")}):
        rows: dict[str, list[tuple[dict, Path]]] = {}
        for path in sorted(folder.glob("*/manifest.json")):
            manifest = json.loads(path.read_text(encoding="utf-8"))
            rows.setdefault(path.parent.name.rsplit("-seed", 1)[0], []).append((manifest, path))
        lines += [
            f"### {folder.relative_to(RESULTS)}",
            "",
            "| row | test F1 per seed | mean +- std | dev F1 (mean) | minutes per run | machine | commit |",
            "|---|---|---|---|---|---|---|",
        ]
        for row, runs in rows.items():
            scored = [(m, p) for m, p in runs if (m.get("metrics") or {}).get("test")]
            if not scored:
                continue
            f1s = [m["metrics"]["test"]["overall"]["f1"] * 100 for m, _ in scored]
            links = ", ".join(f"[{f1:.2f}](./{p.relative_to(RESULTS)})" for f1, (_, p) in zip(f1s, scored))
            spread = f" +- {statistics.stdev(f1s):.2f}" if len(f1s) > 1 else ""
            dev = statistics.fmean(m["metrics"]["dev_f1"] * 100 for m, _ in scored)
            minutes = [m["minutes"] for m, _ in scored if m.get("minutes") is not None]
            first = scored[0][0]
            lines.append(
                f"| {row}: {first.get('description', '')} | {links} | {statistics.fmean(f1s):.2f}{spread} | {dev:.2f} "
                f"| {statistics.fmean(minutes):.1f} | {first['machine']} | {first['commit'][:10]} |"
                if minutes
                else f"| {row} | {links} | {statistics.fmean(f1s):.2f}{spread} | {dev:.2f} | - | {first['machine']} | "
                f"{first['commit'][:10]} |"
            )
        lines.append("")
    return lines


def main() -> None:
    lines = [
        "# Measured results",
        "",
        "Everything below was measured on 2-core development machines, CPU only: an AMD EPYC and an Intel Xeon,",
        "in turn across sessions, except the rows marked `gpu-h200*`: one NVIDIA H200 lent for 15 minutes in each",
        "of two sessions ([the first](./resume/gpu-h200/README.md), whose report was cut by the time limit, and",
        "[the second](./resume/gpu-h200-report/README.md), with a shorter recipe and the report). The teachers'",
        "table and every report name their machine, and numbers from different machines are not comparable.",
        "Each linked file names",
        "the command that produced it. `python benchmarks/summarize.py` rebuilds this page from those files.",
        "[NOTES.md](./NOTES.md) says how the runs were made (subsets, seeds, what shared the machine).",
        "",
        "## Teachers (BERT-CRF on multilingual-e5-small, the default backbone)",
        "",
        "| dataset | test P | test R | test F1 | published BERT-base-CRF | epochs run (best) | min/epoch | machine "
        "| command |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in DATASETS:
        teacher = _load(RESULTS / name / "teacher.json")
        if teacher is None:
            lines.append(f"| {name} | not run yet | | | {PUBLISHED[name][0]} | | | | |")
        runs = [(name, teacher)] if teacher else []
        runs += [(str(p.parent.relative_to(RESULTS)), _load(p)) for p in _other_runs(name, "teacher.json")]
        for label, run in runs:
            o = run["test"]["overall"]
            # An ensemble of trained teachers has no epochs of its own: its members' test F1 instead.
            members = ", ".join(f"{m['test']['f1'] * 100:.2f}" for m in run.get("members", []))
            epochs = f"ensemble (members {members})" if members else f"{run['epochs_run']} ({run['best_epoch']})"
            per_epoch = "-" if members else f"{run['minutes_per_epoch']:.1f}"
            lines.append(
                f"| {label} | {o['precision'] * 100:.2f} | {o['recall'] * 100:.2f} | {o['f1'] * 100:.2f} | "
                f"{PUBLISHED[name][0]} | {epochs} | {per_epoch} | {run['machine']} | `{run['command']}` |"
            )
    manifests = manifest_tables()
    if manifests:
        lines += [
            "",
            "## Experiments (from run manifests)",
            "",
            "Each row's seeds, from the `manifest.json` that `python benchmarks/experiment.py` wrote for each run "
            "(command, resolved settings, commit, machine, minutes); the experiment files are in "
            "[benchmarks/experiments](../experiments).",
            "",
            *manifests,
        ]
    lines += ["", "## Students", ""]
    for name in DATASETS:
        students = _load(RESULTS / name / "students.json")
        if students is None:
            continue
        teacher_f1 = students["teacher"]["test"]["overall"]["f1"] * 100
        others = [
            f"[{p.parent.relative_to(RESULTS)}](./{p.relative_to(RESULTS)})" for p in _other_runs(name, "students.md")
        ]
        lines += [
            f"### {name} ([full table](./{name}/students.md))",
            "",
            f"Teacher {teacher_f1:.2f}; published char BiLSTM-CRF {PUBLISHED[name][1]}."
            + (
                " Other runs (another machine or teacher), with rows not repeated here: " + ", ".join(others) + "."
                if others
                else ""
            ),
            "",
            "| student | test F1 (mean +- std) | seeds | gap to teacher |",
            "|---|---|---|---|",
        ]
        for row in students["rows"].values():
            spread = f" +- {row['std']:.2f}" if row["std"] is not None else ""
            gap = row["mean"] - teacher_f1
            lines.append(f"| {row['description']} | {row['mean']:.2f}{spread} | {len(row['seeds'])} | {gap:+.2f} |")
        lines.append("")
    lines += ["## Deployment reports", ""]
    for name in DATASETS:
        others = [str(p.parent.relative_to(RESULTS / name)) for p in _other_runs(name, "report/report.json")]
        for report_name in ("report", "report-1-thread", *others):
            report = _load(RESULTS / name / report_name / "report.json")
            if report is None:
                continue
            rec = report.get("recommendation") or {}
            lines.append(
                f"- [{name}/{report_name}](./{name}/{report_name}/report.md): threads per worker "
                f"{report['settings'].get('threads') or 'default'}; recommended {rec.get('label')}"
                + (
                    f", {rec['speedup_vs_teacher']:.1f}x faster than {rec.get('teacher', 'the teacher')} at batch 1"
                    if rec.get("speedup_vs_teacher")
                    else ""
                )
            )
    lines += ["", "## Sweeps and micro-benchmarks", ""]
    for page, what in (
        ("teacher-sweep.md", "teacher settings (learning rate, batch size, patience, more epochs), one run each"),
        ("precision.md", "the teacher's encoder in float32 and under bf16 autocast: training and inference speed"),
        ("decode.md", "Viterbi decoding: pytorch-crf against ours (numpy and torch)"),
        ("onnx-threads.md", "the ONNX student on two cores: threads inside a call against batches at once"),
        ("memory.md", "the torch-free student process's peak memory, step by step"),
    ):
        if (RESULTS / page).exists():
            lines.append(f"- [{page}](./{page}): {what}")
    if (RESULTS / "demo").exists():
        lines += ["", "## Demo", "", "[`distill demo` output and timing](./demo/README.md)"]
    (RESULTS / "README.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'README.md'}")


if __name__ == "__main__":
    main()
