"""Write benchmarks/results/README.md, the index of every committed result, from the manifests.

Usage: python benchmarks/summarize.py [--check]

Every run leaves a ``manifest.json`` (command, settings, commit, machine, date, minutes, scores):
``<dataset>/<experiment>/<row>[-seed<N>]/manifest.json`` for trainings (``benchmarks/experiment.py``
writes them), ``.../report/manifest.json`` beside a deployment report, and ``<name>/manifest.json``
for a measurement of the machine or the code (``decode``, ``precision``, ...), with folders of runs
made on that measurement's output beside it (``demo/transfer-size``). The index reports
only what those files and the reports beside them hold. ``--check`` fails if the page is stale.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from distill.benchmark.report import REPORT

RESULTS = Path(__file__).resolve().parent / "results"
INDEX = RESULTS / "README.md"
DATASETS = ("resume", "weibo", "msra")
PUBLISHED = {"resume": (95.68, 93.48), "weibo": (68.79, 52.77), "msra": (95.92, 88.81)}
"""Published test F1: BERT-base-CRF and the character BiLSTM-CRF (Zhang & Yang 2018's baselines)."""


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _link(path: Path, text: str) -> str:
    return f"[{text}](./{path.relative_to(RESULTS).as_posix()})"


def _test_f1(manifest: dict) -> float | None:
    test = (manifest.get("metrics") or {}).get("test")
    return test["overall"]["f1"] * 100 if test else None


def _commit(manifest: dict) -> str:
    return (manifest.get("commit") or "")[:10] or "-"


def _runs(folder: Path) -> dict[str, list[tuple[dict, Path]]]:
    """Row name -> its runs (one per seed), for the run folders directly under ``folder``."""
    rows: dict[str, list[tuple[dict, Path]]] = {}
    for path in sorted(folder.glob("*/manifest.json")):
        if path.parent.name == "report":
            continue
        rows.setdefault(path.parent.name.rsplit("-seed", 1)[0], []).append((_read(path), path))
    return rows


def _experiment(dataset: str, folder: Path) -> list[str]:
    lines = [f"### {dataset}/{folder.name}", ""]
    rows = _runs(folder)
    if rows:
        lines += [
            "| row | test F1 per run | mean +- std | dev F1 (mean) | minutes per run | machine | commit |",
            "|---|---|---|---|---|---|---|",
        ]
    for row, runs in rows.items():
        scored = [(m, p, f1) for m, p in runs if (f1 := _test_f1(m)) is not None]
        if not scored:  # a cache, say: what ran, and for how long
            first, path = runs[0]
            minutes = first.get("minutes")
            lines.append(
                f"| {_link(path, row)}: {first.get('description', '')} | - | - | - "
                f"| {'-' if minutes is None else f'{minutes:.1f}'} | {first['machine']} | {_commit(first)} |"
            )
            continue
        f1s = [f1 for _, _, f1 in scored]
        links = ", ".join(_link(p, f"{f1:.2f}") for _, p, f1 in scored)
        spread = f" +- {statistics.stdev(f1s):.2f}" if len(f1s) > 1 else ""
        devs = [m["metrics"]["dev_f1"] * 100 for m, _, _ in scored if m["metrics"].get("dev_f1") is not None]
        minutes = [m["minutes"] for m, _, _ in scored if m.get("minutes") is not None]
        first = scored[0][0]
        description = first.get("description", "")
        name = f"{row}: {description}" if description else row
        dev = f"{statistics.fmean(devs):.2f}" if devs else "-"
        per_run = f"{statistics.fmean(minutes):.1f}" if minutes else "-"
        lines.append(
            f"| {name} | {links} | {statistics.fmean(f1s):.2f}{spread} | {dev} | {per_run} | {first['machine']} "
            f"| {_commit(first)} |"
        )
    if rows:
        lines.append("")
    report = folder / "report" / REPORT
    if report.exists():
        lines += _report(report)
    notes = folder / "README.md"
    if notes.exists():
        lines += [f"How these runs were made: {_link(notes, 'README.md')}.", ""]
    return lines


def _report(path: Path) -> list[str]:
    """The report's recommendation and the teacher it is compared with, as a small table."""
    report = _read(path)
    manifest = _read(path.parent / "manifest.json")
    rec = report.get("recommendation") or {}
    runs = [r for r in report["runs"] if r["status"] == "ok"]
    key = (rec.get("model"), rec.get("variant"), rec.get("device"))
    chosen = [r for r in runs if (r["model"], r["variant"], r["device"]) == key]
    teacher = [r for r in runs if r["kind"] == "teacher" and r["variant"] == "torch" and r["device"] == "cpu"][:1]
    largest = str(max(report["settings"]["batch_sizes"]))
    speedup = rec.get("speedup_vs_teacher")
    lines = [
        f"Deployment report {_link(path.parent / 'report.md', 'report.md')} ({manifest['machine']}, commit "
        f"{_commit(manifest)}): recommends **{rec.get('label')}**"
        + (f", {speedup:.1f}x faster than the teacher at batch 1." if speedup else "."),
        "",
        f"| run | test F1 | p50 ms (batch 1) | sentences/s (batch {largest}) | peak RSS MB |",
        "|---|---|---|---|---|",
    ]
    for run in teacher + [r for r in chosen if r not in teacher]:
        rate = run["throughput"][largest]["sentences_per_second"]
        lines.append(
            f"| {run['model']} [{run['variant']}, {run['device']}] | {run['accuracy']['overall']['f1'] * 100:.2f} "
            f"| {run['latency_ms']['p50']:.2f} | {rate:,.0f} | {run['memory']['peak_rss_mb']:.0f} |"
        )
    return [*lines, ""]


def _measurement(folder: Path) -> list[str]:
    manifest = _read(folder / "manifest.json")
    files = ", ".join(_link(folder / name, name) for name in manifest.get("results", []))
    lines = [f"## {folder.name}", ""]
    if manifest.get("description"):
        lines += [manifest["description"] + ".", ""]
    lines += [
        f"Files: {files}. Machine: {manifest['machine']}; commit {_commit(manifest)}; {manifest.get('date') or '-'}.",
        "",
    ]
    if manifest.get("command"):
        lines += [f"Command: `{manifest['command']}`", ""]
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and _runs(p)):  # runs made on this one's output
        lines += _experiment(folder.name, sub)
    return lines


def render() -> str:
    lines = [
        "# Results",
        "",
        "Generated by `python benchmarks/summarize.py` from the `manifest.json` of every run (command, settings,",
        "commit, machine, date, minutes, scores); do not edit by hand. Test F1 is entity-level, in %. Speeds from",
        "different machines are not comparable: each table names its machine. How to rerun any of it:",
        "[docs/reproducing.md](../../docs/reproducing.md).",
        "",
    ]
    for dataset in DATASETS:
        folders = sorted(p for p in (RESULTS / dataset).iterdir() if p.is_dir())
        published = PUBLISHED[dataset]
        lines += [
            f"## {dataset}",
            "",
            f"Published test F1 for reference: BERT-base-CRF {published[0]}, character BiLSTM-CRF {published[1]}.",
            "",
        ]
        for folder in folders:
            lines += _experiment(dataset, folder)
    for folder in sorted(p for p in RESULTS.iterdir() if p.is_dir() and p.name not in DATASETS):
        lines += _measurement(folder)
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="Write benchmarks/results/README.md from the run manifests.")
    parser.add_argument("--check", action="store_true", help="Exit 1 if the committed page differs.")
    args = parser.parse_args()
    page = render()
    if args.check:
        if INDEX.read_text(encoding="utf-8") != page:
            print(f"{INDEX} is stale: run python benchmarks/summarize.py", file=sys.stderr)
            return 1
        return 0
    INDEX.write_text(page, encoding="utf-8")
    print(f"wrote {INDEX}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
