"""Where the torch-free student process's peak memory goes, stage by stage.

Usage:
    python benchmarks/bench_memory.py --pair DATA STUDENT_DIR [--pair DATA STUDENT_DIR ...]
        [--out benchmarks/results/memory]

For every pair, the student is exported to ONNX INT8 (in a temporary directory) and a fresh
process (this script with ``--worker``), which never imports torch, runs the deployment report's
steps in order: import numpy and onnxruntime, load the test set, load the model, tag every test
sentence at batch 1 (shortest first, the longest 1% in a step of their own), then the whole
test set at batch 32 and at batch 256. After each step it
records its peak resident memory so far (VmHWM) and its resident memory then (VmRSS), so the step
that raised the peak shows. Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from timing import command_line, run_worker, write_results

from distill.benchmark.worker import peak_rss_mb, rss_mb
from distill.environment import describe_environment


def worker(data: str, student: str, onnx_dir: str) -> list[dict]:
    """The steps, in order, each with the memory after it. Runs in a process of its own."""
    stages = []

    def record(stage: str) -> None:
        stages.append({"stage": stage, "peak_mb": round(peak_rss_mb(), 1), "rss_mb": round(rss_mb(), 1)})

    record("python and this script")
    import numpy  # noqa: F401
    import onnxruntime  # noqa: F401

    record("numpy + onnxruntime imported")
    from distill.data import load_dataset

    texts = [s.text for s in load_dataset(data).load("test")[0] if s.text]
    record(f"test set loaded ({len(texts)} sentences)")
    from distill.api import load_model

    model = load_model(student, "cpu", "onnx-int8", onnx_dir, 0)
    record("model loaded (onnx-int8)")
    by_length = sorted(texts, key=len)
    cut = len(texts) - max(1, len(texts) // 100)
    shorter, longest = by_length[:cut], by_length[cut:]
    for text in shorter:
        model.predict([text])
    record(f"batch 1: every sentence but the longest 1% (up to {max(map(len, shorter), default=0)} characters)")
    for text in longest:
        model.predict([text])
    record(f"batch 1: the longest 1% ({len(longest)} sentences, up to {len(longest[-1])} characters)")
    for batch_size in (32, 256):
        model.predict(texts, batch_size=batch_size)
        record(f"whole test set at batch {batch_size}")
    if "torch" in sys.modules:
        raise RuntimeError("the torch-free path imported torch")
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", nargs=2, action="append", metavar=("DATA", "STUDENT_DIR"), default=[])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "memory")
    parser.add_argument("--worker", nargs=3, metavar=("DATA", "STUDENT_DIR", "ONNX_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    if not args.pair:
        parser.error("give at least one --pair DATA STUDENT_DIR")

    from distill.student.export import export_onnx

    rows = []
    with tempfile.TemporaryDirectory() as exports:
        for data, student in args.pair:
            onnx_dir = Path(exports) / f"{len(rows)}"
            export_onnx(Path(student), onnx_dir)
            row = {"data": data, "student": student, "stages": run_worker(__file__, data, student, onnx_dir)}
            print(json.dumps(row), flush=True)
            rows.append(row)

    env = describe_environment()
    lines = [
        "# Peak memory of the torch-free student process, step by step",
        "",
        f"Machine: {env['cpu']}, {env['cores']} cores; onnxruntime {env['versions'].get('onnxruntime')}, "
        f"numpy {env['versions'].get('numpy')}.  ",
        "Each student ran in a fresh process that never imported torch, through the deployment report's "
        "steps in order; after each step, the process's peak resident memory so far (VmHWM) and its "
        "resident memory then (VmRSS), in MiB.  ",
        f"Command: `{command_line()}`",
    ]
    for row in rows:
        lines += [
            "",
            f"## `{row['student']}` on `{row['data']}`",
            "",
            "| step | peak MiB | resident MiB | peak raised by |",
            "|---|---:|---:|---:|",
        ]
        previous = 0.0
        for stage in row["stages"]:
            lines.append(
                f"| {stage['stage']} | {stage['peak_mb']:.1f} | {stage['rss_mb']:.1f} "
                f"| {stage['peak_mb'] - previous:+.1f} |"
            )
            previous = stage["peak_mb"]
    write_results(args.out, env, rows, lines)


if __name__ == "__main__":
    main()
