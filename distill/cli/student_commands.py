"""``distill student-train``."""

from __future__ import annotations

from pathlib import Path

import click

from .options import run_state_options


@click.command("student-train")
@click.option(
    "--cache",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Emission cache from distill teacher-cache.",
)
@click.option("--data", help="Dataset for dev/test, and for training without --cache. [default: the cache's dataset]")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Student directory to write."
)
@click.option(
    "--alpha", default=0.5, show_default=True, help="Weight of the hard (gold) loss; 1 = plain hard-label student."
)
@click.option(
    "--T",
    "temperature",
    default=4.0,
    show_default=True,
    help="Temperature of emission KD (the soft term is scaled by T^2).",
)
@click.option(
    "--kd",
    type=click.Choice(["emission", "marginal"]),
    default="emission",
    show_default=True,
    help="emission: KL of softmaxed emissions; marginal: KL of CRF marginals (teaches transitions too).",
)
@click.option(
    "--unlabeled-hard",
    type=click.Choice(["viterbi", "none"]),
    default="viterbi",
    show_default=True,
    help="Hard target of unlabeled sentences: the teacher's Viterbi path, or none (soft term only).",
)
@click.option(
    "--unlabeled-ratio",
    default=1.0,
    show_default=True,
    help="Unlabeled sentences mixed into each epoch, per labeled one.",
)
@click.option("--embedding-dim", default=128, show_default=True)
@click.option("--hidden", default=256, show_default=True, help="LSTM units per direction.")
@click.option("--layers", default=1, show_default=True)
@click.option("--dropout", default=0.3, show_default=True)
@click.option("--bigrams/--no-bigrams", default=False, show_default=True, help="Add character-bigram embeddings.")
@click.option("--bigram-dim", default=64, show_default=True)
@click.option(
    "--min-bigram-count",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Keep the bigrams seen at least this often in the training text (labeled and unlabeled); the rest "
    "share one row. Higher: a smaller bigram table, so a smaller model and serving process.",
)
@click.option(
    "--jieba/--no-jieba", default=False, show_default=True, help="Add jieba word-position (B/M/E/S) embeddings."
)
@click.option(
    "--char-vectors",
    default="none",
    show_default=True,
    metavar="lac|teacher|none|PATH",
    help="Where character embeddings start: lac (Baidu LAC's 128-d character vectors, shipped inside jieba), "
    "teacher (the cache's teacher's input embeddings), none (random), or a word2vec file (text or binary). "
    "Wider vectors are projected onto their principal components, narrower ones fill the first columns; "
    "every character the source knows joins the vocabulary.",
)
@click.option(
    "--bigram-vectors",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A word2vec file of bigram vectors (with --bigrams). Without it, bigrams start from the mean of "
    "their two characters' --char-vectors.",
)
@click.option("--epochs", default=30, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--lr", default=2e-3, show_default=True)
@click.option(
    "--lr-decay",
    type=click.Choice(["none", "linear"]),
    default="none",
    show_default=True,
    help="linear: the learning rate falls by lr/epochs each epoch, to lr/epochs in the last.",
)
@click.option("--weight-decay", default=0.0, show_default=True)
@click.option(
    "--ema",
    default=0.0,
    show_default=True,
    help="Keep an exponential moving average of the weights with this decay per step (e.g. 0.999); dev F1 and "
    "the saved student use it. 0: off.",
)
@click.option("--max-grad-norm", default=5.0, show_default=True)
@click.option("--patience", default=6, show_default=True, help="Stop after this many epochs without dev improvement.")
@click.option("--seed", default=13, show_default=True)
@click.option("--device", default="auto", show_default=True)
@run_state_options(checkpoint_every=500)
def student_train(**options) -> None:
    """Train a character BiLSTM-CRF student, distilled from a teacher's cache.

    \b
    loss = alpha * CRF_NLL(gold) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T))
    The KL is taken per character over the tags and averaged over real characters; the NLL is
    per character too. Unlabeled sentences of the cache (no gold) use the teacher's Viterbi
    path as their hard target, or none. --alpha 1 (or no --cache) trains the hard-label baseline.

    \b
    Examples:
      distill student-train --cache runs/resume-cache --alpha 0.5 --T 4 --out runs/resume-student
      distill student-train --data ../shared/data/resume --alpha 1 --out runs/resume-hard
    """
    from distill.student.train import StudentTrainConfig, train_student

    metrics = train_student(StudentTrainConfig(**options))
    click.echo(f"student written to {options['out']} (best dev F1 {metrics['dev_f1']:.4f} at epoch {metrics['epoch']})")
