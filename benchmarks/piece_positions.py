"""How teachers that read the tokenizer's pieces see their data: characters against encoder positions.

Usage:
    python benchmarks/piece_positions.py TEACHER_DIR [TEACHER_DIR ...] [--out benchmarks/results/piece-positions]

For each teacher trained with ``--input pieces``, over the train and test splits of the data it
trained on: the characters, the encoder positions its vocabulary reads them as
(``distill.teacher.piecemap``), and the share of characters inside multi-character pieces. Counting
only, no timing. Writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from timing import command_line, write_results

from distill.artifacts import read_config
from distill.data import load_dataset
from distill.environment import describe_environment
from distill.teacher.model import read_vocab
from distill.teacher.piecemap import PieceVocab


def count(teacher: Path) -> list[dict]:
    config = read_config(teacher)
    vocab = read_vocab(teacher, config)
    if not isinstance(vocab, PieceVocab):
        raise SystemExit(f"{teacher} reads characters, not pieces (--input pieces)")
    data = config["training"]["data"]
    dataset = load_dataset(data)
    rows = []
    for split in ("train", "test"):
        texts = [s.text for s in dataset.load(split)[0] if s.text]
        positions = in_pieces = 0
        for text in texts:
            ids, _, segments = vocab.tokenize(text)
            positions += len(ids)
            in_pieces += sum(1 for segment in segments if segment)
        characters = sum(map(len, texts))
        rows.append(
            {
                "teacher": str(teacher),
                "data": data,
                "split": split,
                "characters": characters,
                "positions": positions,
                "positions_per_character": positions / characters,
                "characters_in_multi_character_pieces": in_pieces / characters,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teachers", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "piece-positions")
    args = parser.parse_args()
    rows = [row for teacher in args.teachers for row in count(teacher)]
    env = describe_environment()
    lines = [
        "# Characters and encoder positions of teachers that read the tokenizer's pieces",
        "",
        f"Counting only (no timing). Command: `{command_line()}`",
        "",
        "| data | split | characters | encoder positions | positions per character | in multi-character pieces |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {row['data']} | {row['split']} | {row['characters']:,} | {row['positions']:,} "
        f"| {row['positions_per_character']:.1%} | {row['characters_in_multi_character_pieces']:.1%} |"
        for row in rows
    ]
    write_results(args.out, env, rows, lines)


if __name__ == "__main__":
    main()
