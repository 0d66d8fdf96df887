"""The settings of ``distill benchmark`` (declared once: the command line is made from them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from distill.errors import DistillError
from distill.settings import Settings, setting
from distill.tagging import Runtime


def model_entry(value: str | tuple[str, Path]) -> tuple[str, Path]:
    """``NAME=DIR`` or ``DIR`` (named after its folder) as (name, directory)."""
    if isinstance(value, tuple):
        return value[0], Path(value[1])
    name, _, path = value.rpartition("=")
    return (name or Path(path).name), Path(path)


@dataclass(kw_only=True)
class BenchmarkConfig(Settings):
    models: list[tuple[str, Path]] = setting(
        [], flag="--model", convert=model_entry, help="A teacher or student directory, as DIR or NAME=DIR. Repeatable."
    )
    out: Path = setting(help="Report directory.")
    data: str | None = setting(None, help="Dataset with the test split. [default: default]")
    split: str = setting("test", help="The split every model is scored and timed on.")
    devices: list[Literal["cpu", "cuda"]] = setting(
        ["cpu"], flag="--device", comma=True, help="Comma-separated: cpu, cuda."
    )
    variants: list[Runtime] = setting(
        ["torch", "bf16", "int8", "onnx", "onnx-int8"], comma=True, help="Comma-separated runtimes to measure."
    )
    max_f1_drop: float = setting(1.0, min=0, help="F1 points the recommendation may give up for speed.")
    latency_sentences: int = setting(500, min=1, help="Test sentences timed one by one.")
    warmup: int = setting(20, min=0, help="Untimed calls before timing starts.")
    batch_sizes: list[int] = setting([32, 256], min=1, comma=True, help="Batch sizes for throughput.")
    throughput_repeats: int = setting(
        3, flag="--repeats", min=1, help="Passes over the test set per throughput figure."
    )
    threads: int = setting(0, min=0, help="Threads per worker for torch and onnxruntime (0: their defaults).")
    rounds: int = setting(
        1,
        min=1,
        help="Measure every run this many times, all runs once per round in turn (each time a fresh process), and "
        "report the median: on a machine whose speed drifts, the drift then reaches every model alike.",
    )
    timeout: float = setting(
        3600,
        above=0,
        help="Seconds one measuring process may take; a run that takes longer is reported as failed, and the rest "
        "go on.",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        names = [name for name, _ in self.models]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise DistillError(f"--model names must differ: {', '.join(repeated)} given twice (use NAME=DIR)")
