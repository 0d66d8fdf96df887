"""Viterbi decoding: pytorch-crf's ``decode`` against ours (numpy and torch backends).

Usage: python benchmarks/bench_decode.py [--repeat N] [--out benchmarks/results/decode]
Writes OUT.json (every timing) and OUT.md (the table). Emissions are random; every sentence in
a batch has the full length, which is pytorch-crf's best case (its back-tracking loops per sentence).
"""

from __future__ import annotations

import argparse
import statistics
from functools import partial
from pathlib import Path

import torch
import torchcrf
from timing import time_calls, write_results

from distill.crf import CRF
from distill.environment import describe_environment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "decode")
    args = parser.parse_args()

    rows = []
    for num_tags in (9, 17):
        torch.manual_seed(0)
        crf = CRF(num_tags)
        for p in crf.parameters():
            torch.nn.init.normal_(p)
        for batch in (1, 64):
            for steps in (50, 200):
                emissions = torch.randn(batch, steps, num_tags)
                mask = torch.ones(batch, steps, dtype=torch.bool)
                reference = torchcrf.CRF.decode(crf, emissions, mask)
                candidates = {
                    "pytorch-crf": partial(torchcrf.CRF.decode, crf, emissions, mask),
                    "ours (numpy)": partial(crf.decode, emissions, mask, constrained=False, backend="numpy"),
                    "ours (torch)": partial(crf.decode, emissions, mask, constrained=False, backend="torch"),
                }
                repeat = args.repeat if batch * steps <= 64 * 50 else max(20, args.repeat // 4)
                with torch.no_grad():
                    for name, fn in candidates.items():
                        assert fn() == reference, f"{name} disagrees with pytorch-crf"
                        times = time_calls(fn, repeat)
                        q = statistics.quantiles(times, n=10)
                        rows.append(
                            {
                                "impl": name,
                                "tags": num_tags,
                                "batch": batch,
                                "length": steps,
                                "median_ms": statistics.median(times),
                                "p10_ms": q[0],
                                "p90_ms": q[-1],
                                "calls": repeat,
                            }
                        )
                        print(f"K={num_tags:2d} B={batch:3d} T={steps:3d} {name:13s} {rows[-1]['median_ms']:8.3f} ms")

    env = describe_environment()
    lines = [
        "# Viterbi decode: pytorch-crf vs ours",
        "",
        f"Command: `python benchmarks/bench_decode.py --repeat {args.repeat}`  ",
        f"Machine: {env['cpu']}, {env['cores']} cores, torch {env['versions']['torch']} "
        f"({env['torch_threads']} threads), numpy {env['versions']['numpy']}.  ",
        "Median ms per call (p10-p90 in brackets); speed-up = pytorch-crf median / ours.",
        "",
        "| tags | batch | length | pytorch-crf | ours (numpy) | ours (torch) | speed-up numpy | speed-up torch |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keyed = {(r["impl"], r["tags"], r["batch"], r["length"]): r for r in rows}
    for num_tags in (9, 17):
        for batch in (1, 64):
            for steps in (50, 200):
                cell = {n: keyed[(n, num_tags, batch, steps)] for n in ("pytorch-crf", "ours (numpy)", "ours (torch)")}

                def fmt(r: dict) -> str:
                    return f"{r['median_ms']:.3f} ({r['p10_ms']:.3f}-{r['p90_ms']:.3f})"

                base = cell["pytorch-crf"]["median_ms"]
                lines.append(
                    f"| {num_tags} | {batch} | {steps} | {fmt(cell['pytorch-crf'])} | {fmt(cell['ours (numpy)'])} | "
                    f"{fmt(cell['ours (torch)'])} | {base / cell['ours (numpy)']['median_ms']:.1f}x | "
                    f"{base / cell['ours (torch)']['median_ms']:.1f}x |"
                )
    write_results(args.out, env, rows, lines)


if __name__ == "__main__":
    main()
