"""Viterbi decoding: pytorch-crf's ``decode`` against ours (numpy and torch backends).

Usage: python benchmarks/bench_decode.py [--repeat N] [--out benchmarks/results/decode]
Writes OUT.json (every timing) and OUT.md (the table). Emissions are random; every sentence in
a batch has the full length, which is pytorch-crf's best case (its back-tracking loops per sentence).
Label sets: 9 and 17 tags with every move allowed, and 33 tags (BIOES over 8 types, Resume's)
with the scheme's forbidden moves at -inf, as a student decodes; pytorch-crf gets the same -inf
scores there, so all three give the same paths.
"""

from __future__ import annotations

import argparse
import statistics
from functools import partial
from pathlib import Path

import torch
import torchcrf
from timing import command_line, time_calls, write_results

from distill.crf import CRF
from distill.data import allowed_transitions, label_set
from distill.environment import describe_environment

LABEL_SETS = {"9 tags": (9, None), "17 tags": (17, None), "33 tags, BIOES": (33, 8)}
"""name -> (tags, entity types of a BIOES label set whose constraints apply, or None)."""
IMPLEMENTATIONS = ("pytorch-crf", "ours (numpy)", "ours (torch)")


def _crfs(num_tags: int, types: int | None) -> tuple[CRF, torchcrf.CRF, bool]:
    """Ours and pytorch-crf with the same random scores, and whether ours applies constraints."""
    torch.manual_seed(0)
    allowed = allowed_transitions(label_set([f"T{i}" for i in range(types)], "bioes")) if types else None
    ours = CRF(num_tags, allowed)
    for p in ours.parameters():
        torch.nn.init.normal_(p)
    reference = torchcrf.CRF(num_tags, batch_first=True)
    names = ("start_transitions", "transitions", "end_transitions")
    with torch.no_grad():
        for name, scores in zip(names, ours.scores(types is not None)):
            getattr(reference, name).copy_(scores)
    return ours, reference, types is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "decode")
    args = parser.parse_args()

    rows = []
    for label_name, (num_tags, types) in LABEL_SETS.items():
        ours, reference, constrained = _crfs(num_tags, types)
        for batch in (1, 64):
            for steps in (50, 200):
                emissions = torch.randn(batch, steps, num_tags)
                mask = torch.ones(batch, steps, dtype=torch.bool)
                expected = reference.decode(emissions, mask)
                candidates = {
                    "pytorch-crf": partial(reference.decode, emissions, mask),
                    "ours (numpy)": partial(ours.decode, emissions, mask, constrained=constrained, backend="numpy"),
                    "ours (torch)": partial(ours.decode, emissions, mask, constrained=constrained, backend="torch"),
                }
                repeat = args.repeat if batch * steps <= 64 * 50 else max(20, args.repeat // 4)
                with torch.no_grad():
                    for name, fn in candidates.items():
                        assert fn() == expected, f"{name} disagrees with pytorch-crf"
                        times = time_calls(fn, repeat)
                        q = statistics.quantiles(times, n=10)
                        rows.append(
                            {
                                "impl": name,
                                "labels": label_name,
                                "tags": num_tags,
                                "constrained": constrained,
                                "batch": batch,
                                "length": steps,
                                "median_ms": statistics.median(times),
                                "p10_ms": q[0],
                                "p90_ms": q[-1],
                                "calls": repeat,
                            }
                        )
                        print(f"{label_name:15s} B={batch:3d} T={steps:3d} {name:13s} {rows[-1]['median_ms']:8.3f} ms")

    env = describe_environment()
    lines = [
        "# Viterbi decode: pytorch-crf vs ours",
        "",
        f"Command: `{command_line()}`  ",
        f"Machine: {env['cpu']}, {env['cores']} cores, torch {env['versions']['torch']} "
        f"({env['torch_threads']} threads), numpy {env['versions']['numpy']}.  ",
        "Median ms per call (p10-p90 in brackets); speed-up = pytorch-crf median / ours. The 33-tag "
        "rows decode under BIOES's constraints (forbidden moves at -inf, for pytorch-crf too).",
        "",
        "| labels | batch | length | pytorch-crf | ours (numpy) | ours (torch) | speed-up numpy | speed-up torch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keyed = {(r["impl"], r["labels"], r["batch"], r["length"]): r for r in rows}
    for label_name in LABEL_SETS:
        for batch in (1, 64):
            for steps in (50, 200):
                cell = {n: keyed[(n, label_name, batch, steps)] for n in IMPLEMENTATIONS}

                def fmt(r: dict) -> str:
                    return f"{r['median_ms']:.3f} ({r['p10_ms']:.3f}-{r['p90_ms']:.3f})"

                base = cell["pytorch-crf"]["median_ms"]
                speed_ups = " | ".join(f"{base / cell[n]['median_ms']:.1f}x" for n in IMPLEMENTATIONS[1:])
                lines.append(
                    f"| {label_name} | {batch} | {steps} | "
                    + " | ".join(fmt(cell[n]) for n in IMPLEMENTATIONS)
                    + f" | {speed_ups} |"
                )
    write_results(args.out, env, rows, lines)


if __name__ == "__main__":
    main()
