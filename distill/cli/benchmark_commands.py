"""``distill benchmark``."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click


def _model(value: str) -> tuple[str, Path]:
    name, _, path = value.rpartition("=")
    path = Path(path)
    return (name or path.name), path


@click.command()
@click.option(
    "--model", "models", multiple=True, help="A teacher or student directory, as DIR or NAME=DIR. Repeatable."
)
@click.option("--data", help="Dataset with the test split. [default: default]")
@click.option("--split", default="test", show_default=True)
@click.option("--device", "devices", default="cpu", show_default=True, help="Comma-separated: cpu, cuda.")
@click.option(
    "--variants",
    default="torch,bf16,int8,onnx,onnx-int8",
    show_default=True,
    help="Comma-separated runtimes to measure.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Report directory.")
@click.option(
    "--max-f1-drop", default=1.0, show_default=True, help="F1 points the recommendation may give up for speed."
)
@click.option("--latency-sentences", default=500, show_default=True, help="Test sentences timed one by one.")
@click.option("--batch-sizes", default="32,256", show_default=True, help="Batch sizes for throughput.")
@click.option("--repeats", default=3, show_default=True, help="Passes over the test set per throughput figure.")
@click.option(
    "--threads", default=0, show_default=True, help="Threads per worker for torch and onnxruntime (0: defaults)."
)
@click.option(
    "--rounds",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Measure every run this many times, all runs once per round in turn (each time a fresh process), "
    "and report the median: on a machine whose speed drifts, the drift then reaches every model alike.",
)
@click.option(
    "--timeout",
    default=3600,
    show_default=True,
    type=click.IntRange(min=1),
    help="Seconds one measuring process may take; a run that takes longer is reported as failed, and the rest go on.",
)
@click.option(
    "--render", "render_only", is_flag=True, help="Only rebuild report.md and pareto.png from OUT/report.json."
)
def benchmark(
    models,
    data,
    split,
    devices,
    variants,
    out,
    max_f1_drop,
    latency_sentences,
    batch_sizes,
    repeats,
    threads,
    rounds,
    timeout,
    render_only,
):
    """Compare models on F1, latency, throughput and memory, and recommend one to deploy.

    Every model directory (teacher or student) is measured in each variant that applies: torch
    (float32), int8 (PyTorch dynamic quantisation of Linear and LSTM layers), for teachers bf16
    (the encoder under bf16 autocast) and, for students, onnx (an ONNX export on onnxruntime with
    the numpy Viterbi) and onnx-int8 (that export quantised to INT8 by onnxruntime). Each run is a
    fresh process, so memory figures do not mix. Writes OUT/report.json, OUT/report.md and
    OUT/pareto.png.

    \b
    Example:
      distill benchmark --model teacher=runs/resume-teacher --model student=runs/resume-student \\
          --data ../shared/data/resume --device cpu,cuda --out runs/resume-report
    """
    from distill.benchmark.report import recommendation_line, render

    if render_only:
        render(out)
        click.echo(f"rendered {out / 'report.md'}")
        return
    if not models:
        raise click.UsageError("give at least one --model")
    from distill.benchmark.harness import BenchmarkConfig, run_benchmark

    cfg = BenchmarkConfig(
        models=[_model(m) for m in models],
        out=out,
        data=data,
        split=split,
        devices=[d.strip() for d in devices.split(",") if d.strip()],
        variants=[v.strip() for v in variants.split(",") if v.strip()],
        max_f1_drop=max_f1_drop,
        latency_sentences=latency_sentences,
        batch_sizes=[int(b) for b in batch_sizes.split(",")],
        throughput_repeats=repeats,
        threads=threads,
        rounds=rounds,
        timeout=timeout,
    )
    report = run_benchmark(cfg, "distill " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    click.echo(f"report: {out / 'report.md'}\n{recommendation_line(report['recommendation'])}")
