"""``distill evaluate`` and ``distill predict``: any model directory, teacher or student."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from distill.api import RUNTIMES
from distill.tagging import json_line

from .table import render_table

PREDICT_CHUNK = 4096
"""Texts predict reads, tags and writes at a time: a large input flows through in bounded memory."""

# The options evaluate and predict share.
batch_size_option = click.option(
    "--batch-size",
    default=64,
    show_default=True,
    help="Most sentences tagged at once (batches are also capped in characters).",
)
device_option = click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto.")
runtime_option = click.option(
    "--runtime",
    type=click.Choice(RUNTIMES),
    default="torch",
    show_default=True,
    help="onnx: a student's ONNX export on onnxruntime, never importing torch; onnx-int8: the same, "
    "quantised to INT8 (fastest on CPU); int8: PyTorch dynamic quantisation; bf16: a teacher's encoder "
    "under bf16 autocast (fast on CUDA and CPUs with AVX512-BF16 or AMX).",
)
threads_option = click.option(
    "--threads",
    default=0,
    show_default=True,
    help="CPU threads the model may use (0: the runtime's default); 1 where another job shares the machine.",
)


@click.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", help="Dataset directory, data file, or 'default'. [default: default]")
@click.option("--split", default="test", show_default=True, help="The labeled split to score: train, dev or test.")
@batch_size_option
@device_option
@runtime_option
@threads_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def evaluate(
    model_dir: Path,
    data: str | None,
    split: str,
    batch_size: int,
    device: str,
    runtime: str,
    threads: int,
    as_json: bool,
) -> None:
    """Entity precision, recall and F1 of MODEL_DIR on a labeled split, overall and per type, as
    it runs on --runtime (a student's ONNX export scores without torch).

    \b
    Examples:
      distill evaluate runs/resume-teacher --data ../shared/data/resume --split test
      distill evaluate runs/resume-student --runtime onnx-int8 --data ../shared/data/resume
    """
    from distill.api import load_model
    from distill.data import load_dataset

    model = load_model(model_dir, device, runtime, threads=threads)
    sentences, _ = load_dataset(data).load(split)
    scores = model.evaluate(sentences, batch_size)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "model": str(model_dir),
                    "kind": model.kind,
                    "runtime": runtime,
                    "data": data,
                    "split": split,
                    **scores.as_dict(),
                },
                indent=2,
            )
        )
        return
    rows = [
        [name, f"{s.precision * 100:.2f}", f"{s.recall * 100:.2f}", f"{s.f1 * 100:.2f}", s.support]
        for name, s in scores.per_type.items()
    ]
    o = scores.overall
    rows.append(["overall", f"{o.precision * 100:.2f}", f"{o.recall * 100:.2f}", f"{o.f1 * 100:.2f}", o.support])
    click.echo(f"{model.kind} {model_dir} [{runtime}] on {data or 'default'} / {split} ({len(sentences)} sentences)\n")
    click.echo(render_table(["type", "precision", "recall", "F1", "support"], rows))


@click.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("texts", nargs=-1)
@click.option(
    "--input",
    "input_file",
    type=click.Path(allow_dash=True, dir_okay=False),
    help="A UTF-8 file of one text per line ('-' for stdin).",
)
@batch_size_option
@device_option
@runtime_option
@threads_option
def predict(
    model_dir: Path,
    texts: tuple[str, ...],
    input_file: str | None,
    batch_size: int,
    device: str,
    runtime: str,
    threads: int,
) -> None:
    """Tag TEXTS (or each line of --input) with MODEL_DIR; print one JSON line per text.

    Each line is {"text": ..., "entities": [{"type", "text", "start", "end", "confidence"}]} with
    character offsets into the text (end exclusive), whatever its length, spaces or symbols, and
    the model's probability that the entity's span carries exactly its tags. Lines are read,
    tagged and written a few thousand at a time, so a large --input streams through in bounded memory.

    \b
    Examples:
      distill predict runs/resume-teacher "张三，男，1970年出生，现任北京大学教授。"
      distill predict runs/resume-teacher --input texts.txt > entities.jsonl
      distill predict runs/resume-student --runtime onnx "张三在北京工作"
    """
    from distill.api import load_model

    if not texts and input_file is None:
        raise click.UsageError("give TEXTS or --input FILE")
    model = load_model(model_dir, device, runtime, threads=threads)
    inputs, out = _inputs(texts, input_file), sys.stdout.buffer  # UTF-8 whatever the locale
    while chunk := list(itertools.islice(inputs, PREDICT_CHUNK)):
        for text, entities in zip(chunk, model.predict(chunk, batch_size)):
            out.write((json_line({"text": text, "entities": [e.as_dict() for e in entities]}) + "\n").encode())
        out.flush()


def _inputs(texts: tuple[str, ...], input_file: str | None) -> Iterator[str]:
    """TEXTS, then each line of --input (stdin for '-'), read as they are needed."""
    from distill.data.lines import LineRepairs, read_lines

    yield from texts
    if input_file is not None:  # binary or non-UTF-8 input is refused, naming the file (or <stdin>) and line
        repairs = LineRepairs(strict=True, strip_bom=True, refusal="predict tags text as given and repairs none")
        yield from (text for _, text in read_lines(input_file, repairs))
