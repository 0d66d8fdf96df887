"""The settings of ``distill student-train`` (declared once: the command line is made from them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from distill.errors import DistillError
from distill.settings import RunSettings, Settings, default, setting

MAX_LEN = 256
"""Text is cut at sentence ends into pieces of at most this many characters, in training as in
prediction: a BiLSTM reads any length, but a batch costs what its longest sentence pads."""

MEMORY_BUDGET_GB = 4.0
"""The CRF scores a training step may hold; a label set that would need more is refused up front."""


@dataclass(kw_only=True)
class StudentTrainConfig(RunSettings):
    cache: Path | None = setting(None, exists=True, help="Emission cache from distill teacher-cache.")
    data: str | None = setting(
        None, help="Dataset for dev/test, and for training without --cache. [default: the cache's dataset]"
    )
    alpha: float = setting(0.5, min=0, max=1, help="Weight of the hard (gold) loss; 1 = plain hard-label student.")
    temperature: float = setting(
        4.0, flag="--T", above=0, help="Temperature of emission KD (the soft term is scaled by T^2)."
    )
    kd: Literal["emission", "marginal"] = setting(
        "emission",
        help="emission: KL of softmaxed emissions; marginal: KL of CRF marginals (teaches transitions too).",
    )
    unlabeled_hard: Literal["viterbi", "none"] = setting(
        "viterbi", help="Hard target of unlabeled sentences: the teacher's Viterbi path, or none (soft term only)."
    )
    unlabeled_ratio: float = setting(
        3.0, min=0, help="Unlabeled (teacher-labeled) sentences mixed into each epoch, per labeled one."
    )
    embedding_dim: int = setting(128, min=1, help="Width of the character embedding.")
    hidden: int = setting(256, min=1, help="LSTM units per direction.")
    layers: int = setting(1, min=1, help="BiLSTM layers.")
    dropout: float = setting(0.3, min=0, below=1, help="Dropout on the embeddings and the BiLSTM's output.")
    bigrams: bool = setting(
        True,
        help="Character-bigram embeddings beside the character ones (--no-bigrams: a smaller model and serving "
        "process, usually less accurate).",
    )
    bigram_dim: int = setting(64, min=1, help="Width of the bigram embedding.")
    min_bigram_count: int = setting(
        2,
        min=1,
        help="Keep the bigrams seen at least this often in the training text (labeled and unlabeled); the rest "
        "share one row. Higher: a smaller bigram table, so a smaller model and serving process.",
    )
    jieba: bool = setting(False, help="Add jieba word-position (B/M/E/S) embeddings.")
    word_dim: int = setting(16, min=1, help="Width of the word-position embedding.")
    char_vectors: str = setting(
        "lac",
        metavar="lac|teacher|none|PATH",
        help="Where character embeddings start: lac (Baidu LAC's 128-d character vectors, shipped inside jieba), "
        "teacher (the cache's teacher's input embeddings), none (random), or a word2vec file (text or binary). "
        "Wider vectors are projected onto their principal components, narrower ones fill the first columns; "
        "every character the source knows joins the vocabulary.",
    )
    bigram_vectors: Path | None = setting(
        None,
        exists=True,
        help="A word2vec file of bigram vectors (with --bigrams). Without it, bigrams start from the mean of "
        "their two characters' --char-vectors.",
    )
    epochs: int = default(40)
    lr: float = default(2e-3)
    lr_decay: Literal["none", "linear"] = setting(
        "linear",
        help="linear: the learning rate falls by lr/epochs each epoch, to lr/epochs in the last; none: it stays at "
        "--lr (pair it with --patience and --keep best).",
    )
    weight_decay: float = setting(0.0, min=0, help="AdamW weight decay.")
    ema: float = setting(
        0.0,
        min=0,
        below=1,
        help="Keep an exponential moving average of the weights with this decay per step (e.g. 0.999); dev F1 and "
        "the saved student use it. 0: off.",
    )
    keep: Literal["best", "last"] = setting(
        "last",
        help="Which epoch's weights the student keeps: last (the end of the falling schedule; needs --patience 0) "
        "or best (the highest dev F1, a noisy pick on a small dev set).",
    )
    max_grad_norm: float = default(5.0)
    patience: int = default(0)
    eval_batch_size: int = default(256)
    checkpoint_every: int = default(500)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.keep == "last" and self.patience > 0:
            raise DistillError(
                f"--patience {self.patience} stops early, but --keep last keeps the final epoch: add --keep best "
                "(usually with --lr-decay none), or leave --patience at 0"
            )


@dataclass(kw_only=True)
class BigramVectorsConfig(Settings):
    out: Path = setting(help="The word2vec file to write (binary); what made it goes beside it, in OUT.json.")
    data: str | None = setting(None, help="Learn from the text (not the tags) of this dataset's training split.")
    unlabeled: list[str] = setting(
        [],
        exists=True,
        help="Raw text to learn from (one sentence or paragraph per line, or People's Daily word/POS; "
        "column and JSON-lines files give their text). Repeatable.",
    )
    dim: int = setting(
        64, min=1, help="Width of the vectors; as wide as student-train's --bigram-dim, they are taken whole."
    )
    window: int = setting(5, min=1, help="Bigrams on each side that count as context.")
    min_count: int = setting(2, min=1, help="Leave out bigrams seen fewer times in the text.")
    negative: int = setting(10, min=1, help="Negative samples per context bigram.")
    epochs: int = setting(5, min=1, help="Passes over the text.")
    threads: int = setting(
        1, min=1, help="Worker threads: 1 writes the same file on every run; more are faster, not repeatable."
    )
    seed: int = setting(13, help="Seed of the starting vectors and the sampling.")
