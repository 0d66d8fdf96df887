"""Peak memory of `distill student-train` on hostile training data: many entity types, one huge sentence.

Usage:
    python benchmarks/bench_train_memory.py [--out benchmarks/results/train-memory]

Writes synthetic corpora to a temporary folder (a few hundred short sentences; the same with 100 or
1,000 entity types; the same with one 200,000-character sentence added), trains one epoch of a
hard-label student on each in a fresh process (one thread, random character vectors), and records
that process's peak resident memory (VmHWM), its wall time, its exit status and the first line it
printed on refusal. Writes OUT/train-memory.{md,json} and OUT/manifest.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import write_results

from distill.environment import describe_environment

CHARS = "张李王赵刘陈杨黄在北京上海广州工作学习是的了公司大学人我们他和中国"
# Runs the CLI in this process and prints its peak resident memory when it ends, refusal or not.
PROBE = (
    "import atexit, sys\n"
    "from distill.benchmark.worker import peak_rss_mb\n"
    "atexit.register(lambda: print(f'PEAK_RSS_MB {peak_rss_mb():.1f}', file=sys.stderr))\n"
    "from distill.cli import main\n"
    "sys.argv[0] = 'distill'\n"
    "main()\n"
)


def sentence(rng: random.Random, next_type, length: int) -> list[str]:
    """Column lines of one sentence of ``length`` characters with an entity (of type ``next_type()``)
    every 8 characters."""
    lines = []
    for i in range(length):
        char = rng.choice(CHARS)
        if i % 8 == 0:
            lines.append(f"{char}\tB-T{next_type()}")
        elif i % 8 == 1:
            lines.append(f"{char}\tI-{lines[-1].split('-', 1)[1]}")
        else:
            lines.append(f"{char}\tO")
    return [*lines, ""]


def corpus(folder: Path, types: int, sentences: int, huge: int = 0, seed: int = 0) -> Path:
    """train/dev/test column files; ``huge``: one training sentence of that many characters."""
    rng, counter = random.Random(seed), itertools.count()
    folder.mkdir(parents=True)
    for split, n in (("train", sentences), ("dev", 50), ("test", 50)):
        # the training split names every type in turn; dev and test draw from them
        next_type = (lambda: next(counter) % types) if split == "train" else (lambda: rng.randrange(types))
        lines = [line for _ in range(n) for line in sentence(rng, next_type, rng.randint(10, 60))]
        if split == "train" and huge:
            lines += sentence(rng, next_type, huge)
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def train(data: Path, out: Path) -> dict:
    command = [
        *(sys.executable, "-c", PROBE, "student-train", "--data", str(data), "--out", str(out)),
        *("--alpha", "1", "--epochs", "1", "--char-vectors", "none", "--threads", "1"),
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    peak = next(line.split()[1] for line in done.stderr.splitlines() if line.startswith("PEAK_RSS_MB"))
    refusal = next((line for line in done.stderr.splitlines() if line.startswith("Error: ")), None)
    return {
        "exit": done.returncode,
        "peak_rss_mb": float(peak),
        "seconds": round(time.perf_counter() - start, 1),
        "refusal": refusal,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "train-memory")
    parser.add_argument("--sentences", type=int, default=300, help="Short training sentences per corpus.")
    args = parser.parse_args()
    cases = [
        ("baseline: 3 entity types", {"types": 3}),
        ("100 entity types (401 tags)", {"types": 100}),
        ("1,000 entity types (4,001 tags)", {"types": 1000}),
        ("3 entity types + one 200,000-character sentence", {"types": 3, "huge": 200_000}),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, spec) in enumerate(cases):
            data = corpus(Path(tmp) / f"data{i}", sentences=args.sentences, **spec)
            result = train(data, Path(tmp) / f"student{i}")
            if result["refusal"]:  # the temporary folder means nothing once it is gone
                result["refusal"] = result["refusal"].replace(tmp, "$TMP")
            rows.append({"case": name, **spec, "sentences": args.sentences, **result})
            print(json.dumps(rows[-1], ensure_ascii=False))
    lines = [
        "# student-train memory on hostile training data",
        "",
        f"One epoch of a hard-label student (`--alpha 1 --epochs 1 --char-vectors none --threads 1`, the other "
        f"settings their defaults) on {args.sentences} synthetic short training sentences, in a fresh process; "
        "peak resident memory (VmHWM) of that process. Seconds are wall time, indicative only where other work shared "
        "the machine.",
        "",
        "| case | exit | peak RSS MB | seconds | refusal |",
        "|---|---|---|---|---|",
        *(
            f"| {r['case']} | {r['exit']} | {r['peak_rss_mb']:.0f} | {r['seconds']} | {r['refusal'] or '-'} |"
            for r in rows
        ),
    ]
    write_results(args.out, describe_environment(), rows, lines)


if __name__ == "__main__":
    main()
