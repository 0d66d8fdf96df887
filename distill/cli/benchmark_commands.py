"""``distill benchmark``."""

from __future__ import annotations

import shlex
import sys

import click

from distill.benchmark.config import BenchmarkConfig
from distill.settings import command_options


@click.command()
@command_options(BenchmarkConfig)
@click.option(
    "--render", "render_only", is_flag=True, help="Only rebuild report.md and pareto.png from OUT/report.json."
)
def benchmark(settings: BenchmarkConfig, render_only: bool) -> None:
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
    from distill.benchmark.report import recommendation_line, render, serving_commands

    out = settings.out
    if render_only:
        render(out)
        click.echo(f"rendered {out / 'report.md'}")
        return
    if not settings.models:
        raise click.UsageError("give at least one --model")
    from distill.benchmark.harness import run_benchmark

    report = run_benchmark(settings, "distill " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    click.echo(f"report: {out / 'report.md'}\n{recommendation_line(report['recommendation'])}")
    if commands := serving_commands(report):
        click.echo("serve it:\n" + "\n".join(f"  {command}" for command in commands))
    if report["recommendation"] is None:
        raise click.ClickException(f"no run completed: {out / 'report.md'} gives each run's reason")
