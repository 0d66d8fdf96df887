"""How the torch-free ONNX student should use a CPU's cores: threads inside a call or calls at once.

Usage:
    python benchmarks/bench_onnx_threads.py --student DIR [--student DIR ...] --data PATH
        [--passes 5] [--out benchmarks/results/onnx-threads]

For every student (exported to ONNX INT8 in a temporary directory) and every way of using two
cores (``--cores``), measures the whole predict path on the test sentences: batch-1 latency
(p50, p95 over every sentence, after a warm-up) and throughput at batch 256 (median of
``--passes`` passes over the test set). Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from timing import command_line, write_results

from distill.api import STUDENT_MAX_LEN, Model
from distill.data import load_dataset
from distill.environment import describe_environment
from distill.student.export import export_onnx
from distill.student.onnx_runtime import OnnxStudent


def layouts(cores: int) -> list[tuple[int, int]]:
    """(onnxruntime threads per call, calls at once) pairs worth comparing on ``cores`` cores."""
    return [(1, 1), (cores, 1), (1, cores)]


def measure(model: Model, texts: list[str], passes: int) -> dict:
    for text in texts[:50]:
        model.predict([text])
    latencies = []
    for text in texts:
        start = time.perf_counter()
        model.predict([text])
        latencies.append((time.perf_counter() - start) * 1000)
    cuts = statistics.quantiles(latencies, n=100)
    model.predict(texts, batch_size=256)
    rates = []
    for _ in range(passes):
        start = time.perf_counter()
        model.predict(texts, batch_size=256)
        rates.append(len(texts) / (time.perf_counter() - start))
    return {
        "p50_ms": round(statistics.median(latencies), 3),
        "p95_ms": round(cuts[94], 3),
        "sentences_per_s_256": round(statistics.median(rates)),
        "sentences_per_s_256_range": [round(min(rates)), round(max(rates))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", type=Path, action="append", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "onnx-threads")
    args = parser.parse_args()

    texts = [s.text for s in load_dataset(args.data).load("test")[0]]
    rows = []
    with tempfile.TemporaryDirectory() as exports:
        for directory in args.student:
            onnx_dir = Path(exports) / directory.name
            export_onnx(directory, onnx_dir)
            for intra_op, workers in layouts(args.cores):
                student = OnnxStudent(directory, onnx_dir, intra_op * workers, int8=True, intra_op_threads=intra_op)
                model = Model(
                    "student",
                    student.labels,
                    student.config,
                    student.tag_ids,
                    STUDENT_MAX_LEN,
                    student.workers,
                    max_batch_chars=student.max_batch_chars,
                )
                row = {"student": directory.name, "intra_op_threads": intra_op, "workers": workers}
                row.update(measure(model, texts, args.passes))
                print(row, flush=True)
                rows.append(row)

    env = describe_environment()
    lines = [
        "# ONNX INT8 student: threads inside a call, or calls at once",
        "",
        f"Machine: {env['cpu']}, {env['cores']} cores; onnxruntime {env['versions'].get('onnxruntime')}.  ",
        f"Test sentences: {len(texts)} from `{args.data.name}` (mean {sum(map(len, texts)) / len(texts):.1f} "
        "characters). Whole predict path (text in, entities out).  ",
        f"Command: `{command_line()}`",
        "",
        "| student | onnxruntime threads per call | calls at once | batch 1 p50 ms | p95 ms "
        "| sentences/s at batch 256 (median, range) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        low, high = r["sentences_per_s_256_range"]
        lines.append(
            f"| {r['student']} | {r['intra_op_threads']} | {r['workers']} | {r['p50_ms']:.3f} | {r['p95_ms']:.3f} "
            f"| {r['sentences_per_s_256']:,} ({low:,}-{high:,}) |"
        )
    write_results(args.out, env, rows, lines)


if __name__ == "__main__":
    main()
