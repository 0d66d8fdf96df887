"""The teacher's encoder in float32 and under bf16 autocast: training and inference speed.

Usage: python benchmarks/bench_precision.py [--model BACKBONE] [--steps N] [--out benchmarks/results/precision]

Times training steps (forward, CRF loss, backward, AdamW) and inference batches of the BERT-CRF
teacher on random character ids over a pruned vocabulary of 5,000 rows, as teacher-train prunes
it, at batch 32 x 48 characters (about Resume's mean sentence length). Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from timing import command_line, time_calls, write_results

from distill.data import label_set
from distill.environment import describe_environment
from distill.teacher.backbone import DEFAULT_BACKBONE, load_backbone, resolve_backbone
from distill.teacher.model import BertCrf, autocast, bf16_faster, native_bf16
from distill.training import adamw

ROWS = 5000
BATCH, LENGTH = 32, 48


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_BACKBONE)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "precision")
    args = parser.parse_args()
    from transformers import AutoModel

    torch.manual_seed(0)
    encoder = load_backbone(AutoModel, resolve_backbone(args.model))
    pruned = torch.nn.Embedding(ROWS, encoder.config.hidden_size)
    pruned.weight.data.copy_(encoder.get_input_embeddings().weight.data[:ROWS])
    encoder.set_input_embeddings(pruned)
    labels = label_set(["NAME", "ORG", "TITLE", "EDU", "LOC", "PRO", "RACE", "CONT"], "bioes")
    net = BertCrf(encoder, len(labels), labels)
    optimizer = adamw(net.parameters(), lr=1e-5)
    device = torch.device("cpu")
    ids = torch.randint(5, ROWS, (BATCH, LENGTH + 2))  # [B, CLS + characters + SEP]
    attention = torch.ones_like(ids)
    tags = torch.randint(0, len(labels), (BATCH, LENGTH))
    mask = torch.ones(BATCH, LENGTH, dtype=torch.bool)
    rows = []
    for bf16 in (False, True):

        def train_step(bf16: bool = bf16) -> None:
            net.train()
            with autocast(device, bf16):
                hidden = net.encoder(input_ids=ids, attention_mask=attention).last_hidden_state
                emissions = net.classifier(hidden[:, 1:-1]).float()  # [B, T, K]
            loss = net.crf.nll(emissions, tags, mask)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        @torch.no_grad()
        def infer(bf16: bool = bf16) -> None:
            net.eval()
            with autocast(device, bf16):
                net.classifier(net.encoder(input_ids=ids, attention_mask=attention).last_hidden_state)

        for name, fn in (("training step", train_step), ("inference batch", infer)):
            times = time_calls(fn, args.steps)
            rows.append(
                {
                    "what": name,
                    "precision": "bf16" if bf16 else "fp32",
                    "median_ms": statistics.median(times),
                    "min_ms": min(times),
                    "max_ms": max(times),
                    "chars_per_second": BATCH * LENGTH / statistics.median(times) * 1000,
                }
            )
            print(f"{name:16s} {rows[-1]['precision']}: {rows[-1]['median_ms']:.0f} ms", flush=True)
    env = describe_environment()
    speed = {(r["what"], r["precision"]): r for r in rows}
    lines = [
        "# Teacher encoder: float32 against bf16 autocast",
        "",
        f"Command: `{command_line()}`  ",
        f"Machine: {env['cpu']}, {env['cores']} cores, torch {env['versions']['torch']} ({env['torch_threads']} "
        f"threads); native bf16: {native_bf16(device)}; `--precision auto` picks "
        f"{'bf16' if bf16_faster(device) else 'fp32'}.  ",
        f"Backbone {args.model}, vocabulary pruned to {ROWS} rows, batch {BATCH} x {LENGTH} characters; "
        "median of the timed calls (min-max in brackets).",
        "",
        "| what | fp32 ms | bf16 ms | fp32 chars/s | bf16 chars/s | speed-up |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for what in ("training step", "inference batch"):
        full, low = speed[(what, "fp32")], speed[(what, "bf16")]
        lines.append(
            f"| {what} | {full['median_ms']:.0f} ({full['min_ms']:.0f}-{full['max_ms']:.0f}) | "
            f"{low['median_ms']:.0f} ({low['min_ms']:.0f}-{low['max_ms']:.0f}) | {full['chars_per_second']:.0f} | "
            f"{low['chars_per_second']:.0f} | {full['median_ms'] / low['median_ms']:.2f}x |"
        )
    write_results(args.out, env, rows, lines)


if __name__ == "__main__":
    main()
