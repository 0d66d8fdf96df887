"""What the measurement scripts share: timing a call, the commit that runs, and writing their results."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def time_calls(fn: Callable[[], object], repeat: int) -> list[float]:
    """Milliseconds per call over ``repeat`` calls, after a warm-up of at least 3 calls."""
    for _ in range(max(3, repeat // 20)):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def run_worker(script: str, *args: object) -> object:
    """What ``python SCRIPT --worker ARGS...`` prints as JSON: a measurement in a fresh process,
    whose memory and imports are its own."""
    done = subprocess.run(
        [sys.executable, script, "--worker", *map(str, args)], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout)


def commit() -> str:
    """The repository's HEAD, marked when tracked files other than results differ from it (an
    experiment rewrites the results folder's manifests as it goes)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    return head.stdout.strip() + ("+uncommitted changes" if dirty.stdout.strip() else "")


def write_results(out: Path, environment: dict, rows: list[dict], markdown_lines: list[str]) -> None:
    """In the folder ``out``: NAME.json (the environment and every row), NAME.md (the table a person
    reads) and their manifest, NAME being the folder's name."""
    out.mkdir(parents=True, exist_ok=True)
    name = out.name
    (out / f"{name}.json").write_text(json.dumps({"environment": environment, "rows": rows}, indent=2) + "\n")
    (out / f"{name}.md").write_text("\n".join(markdown_lines) + "\n")
    write_manifest(out, environment, [f"{name}.md", f"{name}.json"])
    print(f"wrote {out / f'{name}.md'}")


def command_line() -> str:
    """This script's command line, its path relative to the repository."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return shlex.join(["python", str(shown), *sys.argv[1:]])


def write_manifest(out: Path, environment: dict, results: list[str]) -> None:
    """``out``/manifest.json: the command, machine, environment, commit and date, and the files of ``results``."""
    from distill.environment import machine_line

    manifest = {
        "command": command_line(),
        "machine": machine_line(environment),
        "environment": environment,
        "commit": commit(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "results": results,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
