"""How many padded characters a prediction batch may hold: peak memory against throughput.

Usage:
    python benchmarks/bench_batch_chars.py --data PATH --model DIR RUNTIME [--model DIR RUNTIME ...]
        [--chars 2048 1024 512] [--rounds 15] [--out benchmarks/results/batch-chars]

A model's ``max_batch_chars`` caps the padded characters in flight when it predicts many
sentences at once (``distill.tagging.MAX_BATCH_CHARS``, lower on the ONNX runtimes). For every
model (a student's ONNX runtimes are exported in a temporary directory first) and every cap in
``--chars``:

* peak memory: a fresh process sets the cap, loads the model and predicts the whole test set at
  batch 32 and then at 256, as the deployment report's worker does; its peak resident memory
  (VmHWM) is recorded;
* throughput: one process per model predicts the whole test set at batch 32 and 256 under each
  cap in turn, for ``--rounds`` rounds, so a machine whose speed drifts slows every cap alike;
  the fastest and the median pass of each are recorded, in characters per second.

Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from timing import command_line, run_worker, write_results

from distill.api import Model, load_model
from distill.benchmark.worker import peak_rss_mb
from distill.environment import describe_environment

BATCH_SIZES = (32, 256)


def _load(data: str, model_dir: str, runtime: str, onnx_dir: str) -> tuple[Model, list[str]]:
    from distill.data import load_dataset

    texts = [s.text for s in load_dataset(data).load("test")[0] if s.text]
    return load_model(model_dir, "cpu", runtime, onnx_dir or None, 0), texts


def memory_worker(data: str, model_dir: str, runtime: str, onnx_dir: str, chars: int) -> dict:
    """Peak MiB after loading and after the batched passes under cap ``chars``. Runs in a process of its own."""
    model, texts = _load(data, model_dir, runtime, onnx_dir)
    model.max_batch_chars = chars
    loaded = peak_rss_mb()
    for batch_size in BATCH_SIZES:
        model.predict(texts, batch_size=batch_size)
    return {"loaded_peak_mb": round(loaded, 1), "peak_mb": round(peak_rss_mb(), 1)}


def speed_worker(data: str, model_dir: str, runtime: str, onnx_dir: str, caps: list[int], rounds: int) -> dict:
    """Characters per second at each (cap, batch size), interleaved round by round."""
    model, texts = _load(data, model_dir, runtime, onnx_dir)
    for text in texts[:50]:
        model.predict([text])
    seconds: dict[str, list[float]] = {f"{cap}/{b}": [] for cap in caps for b in BATCH_SIZES}
    for _ in range(rounds):
        for cap in caps:
            model.max_batch_chars = cap
            for batch_size in BATCH_SIZES:
                start = time.perf_counter()
                model.predict(texts, batch_size=batch_size)
                seconds[f"{cap}/{batch_size}"].append(time.perf_counter() - start)
    characters = sum(map(len, texts))
    return {
        key: {"fastest": characters / min(runs), "median": characters / statistics.median(runs)}
        for key, runs in seconds.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a dataset with a test split")
    parser.add_argument("--model", nargs=2, action="append", metavar=("DIR", "RUNTIME"), default=[])
    parser.add_argument("--chars", nargs="+", type=int, default=[2048, 1024, 512])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "batch-chars")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, data, model_dir, runtime, onnx_dir, *rest = args.worker
        if kind == "memory":
            result = memory_worker(data, model_dir, runtime, onnx_dir, int(rest[0]))
        else:
            result = speed_worker(data, model_dir, runtime, onnx_dir, [int(c) for c in rest[1:]], int(rest[0]))
        print(json.dumps(result))
        return
    if not args.model or not args.data:
        parser.error("give --data and at least one --model DIR RUNTIME")

    from distill.student.export import export_onnx

    rows = []
    with tempfile.TemporaryDirectory() as exports:
        for model_dir, runtime in args.model:
            onnx_dir = ""
            if runtime.startswith("onnx"):
                onnx_dir = str(Path(exports) / str(len(rows)))
                export_onnx(Path(model_dir), Path(onnx_dir))
            spec = (args.data, model_dir, runtime, onnx_dir)
            memory = {str(cap): run_worker(__file__, "memory", *spec, cap) for cap in args.chars}
            speed = run_worker(__file__, "speed", *spec, args.rounds, *args.chars)
            row = {"model": model_dir, "runtime": runtime, "memory": memory, "speed": speed}
            print(json.dumps(row), flush=True)
            rows.append(row)

    env = describe_environment()
    lines = [
        "# Padded characters per prediction batch: peak memory and throughput",
        "",
        f"Machine: {env['cpu']}, {env['cores']} cores.  ",
        "Peak: a fresh process's peak resident memory (VmHWM, MiB) after loading the model and "
        f"predicting the test set at batch {' and '.join(map(str, BATCH_SIZES))}. Throughput: thousands of "
        f"characters per second over the test set, fastest and median of {args.rounds} passes, the caps "
        "taking turns within one process.  ",
        f"Data: `{args.data}`.  ",
        f"Command: `{command_line()}`",
    ]
    for row in rows:
        lines += [
            "",
            f"## `{row['model']}` ({row['runtime']})",
            "",
            "| cap (padded characters) | peak MiB after loading | peak MiB | "
            + " | ".join(f"batch {b}: fastest, median" for b in BATCH_SIZES)
            + " |",
            "|---:|---:|---:|" + "---:|" * len(BATCH_SIZES),
        ]
        for cap in args.chars:
            memory = row["memory"][str(cap)]
            speeds = [row["speed"][f"{cap}/{b}"] for b in BATCH_SIZES]
            cells = [f"{s['fastest'] / 1000:.3g}k, {s['median'] / 1000:.3g}k" for s in speeds]
            lines.append(f"| {cap} | {memory['loaded_peak_mb']:.1f} | {memory['peak_mb']:.1f} | {' | '.join(cells)} |")
    write_results(args.out, env, rows, lines)


if __name__ == "__main__":
    main()
