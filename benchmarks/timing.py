"""What the micro-benchmark scripts share: timing a call, and writing OUT.json and OUT.md."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path


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


def write_results(out: Path, environment: dict, rows: list[dict], markdown_lines: list[str]) -> None:
    """``out``.json (the environment and every row) and ``out``.md (the table a person reads)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"environment": environment, "rows": rows}, indent=2) + "\n")
    out.with_suffix(".md").write_text("\n".join(markdown_lines) + "\n")
    print(f"wrote {out.with_suffix('.md')}")
