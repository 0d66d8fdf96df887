"""Write each command's option table into its docs page, from the CLI itself.

A page marks where a table goes with ``<!-- options: COMMAND -->`` and ``<!-- end options -->``
(COMMAND as typed after ``distill``, e.g. ``data stats``); everything between is replaced.

    python docs/options.py          # rewrite the tables
    python docs/options.py --check  # exit 1 if a page's table differs from the CLI (the test suite runs this)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import click

from distill.cli import cli

DOCS = Path(__file__).resolve().parent
MARKER = re.compile(r"(<!-- options: (?P<command>[a-z -]+) -->\n)(?P<table>.*?)(<!-- end options -->)", re.S)


def command(path: str) -> click.Command:
    """The click command ``distill PATH`` (e.g. "data stats")."""
    found: click.Command = cli
    context = click.Context(cli)
    for name in path.split():
        found = found.get_command(context, name)  # type: ignore[attr-defined]
        if found is None:
            raise SystemExit(f"no command distill {path}")
    return found


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def table(path: str) -> str:
    """Markdown table of the arguments and options of ``distill PATH``, in --help's order."""
    cmd = command(path)
    context = click.Context(cmd, info_name=path)
    rows = ["| option | default | what it does |", "|---|---|---|"]
    for param in cmd.get_params(context):
        if "--help" in getattr(param, "opts", ()):  # -h/--help, the same on every command
            continue
        if isinstance(param, click.Argument):
            name = param.make_metavar(context)
            rows.append(f"| `{name}` (argument) | {'required' if param.required else '-'} | - |")
            continue
        record = param.get_help_record(context)
        if record is None:
            continue
        names, help_text = record
        default = "required" if param.required else "-"
        extra = re.search(r"\s*\[(default: [^\]]*|required)\]\s*$", help_text)
        if extra:
            help_text = help_text[: extra.start()]
            default = extra.group(1).removeprefix("default: ")
        rows.append(f"| `{_cell(names)}` | {_cell(default)} | {_cell(help_text)} |")
    return "\n".join(rows) + "\n"


def render(page: str) -> str:
    """The page with every marked table rewritten."""
    return MARKER.sub(lambda m: m.group(1) + table(m.group("command")) + m.group(4), page)


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Fail where a page's table differs from the CLI.")
    args = parser.parse_args(argv)
    stale = []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        fresh = render(text)
        if fresh != text:
            stale.append(page.name)
            if not args.check:
                page.write_text(fresh, encoding="utf-8")
    if args.check and stale:
        print(f"option tables out of date in {', '.join(stale)}: run python docs/options.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
