"""The training loop every trainer runs: epochs of batches, then an evaluation, until done.

:func:`fit` owns what the teacher, the student and pretraining have in common: the progress bar,
the optimiser step (NaN stop, gradient clipping, the schedule: :func:`distill.training.optimizer_step`),
checkpoints inside and at the end of each epoch, the JSON-lines log, early stopping and the epoch
kept (the best on dev, or the last), and, under torchrun, which batches each process takes and
what rank 0 decides for all.
A trainer supplies its batches, the loss of one batch, and what it measures at an epoch's end.

Resuming from a checkpoint skips the batches an epoch already did, so on one CPU process a
killed and resumed run ends with the same weights as an uninterrupted one: a trainer's batches
must depend only on the epoch, and its randomness only on state the checkpoint restores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from .checkpoint import Checkpointer, Progress
from .training import JsonlLog, Processes, optimizer_step


@dataclass
class EpochResult:
    """What a trainer measured after an epoch."""

    record: dict = field(default_factory=dict)
    """Fields for the epoch's line of the log (the loop adds epoch, loss, time and speed)."""
    score: float | None = None
    """The dev score that picks the best epoch and stops early; None: every epoch is kept in turn."""
    summary: str = ""
    """What the epoch's printed line says after the loss."""
    best: dict = field(default_factory=dict)
    """More of the best epoch's record for ``Progress.best`` (e.g. per-type dev scores)."""


@dataclass
class Loop:
    """How one run trains; :func:`fit` runs it."""

    name: str
    """Shown on the progress bar: 'teacher', 'student', 'pretrain'."""
    out: Path
    epochs: int
    net: torch.nn.Module
    """The network whose gradients are clipped (under DDP the module inside it)."""
    optimizer: torch.optim.Optimizer
    checkpoints: Checkpointer
    log: JsonlLog | None
    batches: Callable[[int], Sequence[Any]]
    """The batches of epoch ``e`` (1-based), in order: the same for the same epoch on every call."""
    loss: Callable[[Any, int, int], tuple[torch.Tensor, int]]
    """(the loss of a batch, its characters) for (batch, epoch, step within the epoch)."""
    end_epoch: Callable[[int], EpochResult]
    """Measure after epoch ``e`` (rank 0 only)."""
    on_best: Callable[[Progress], None] = lambda progress: None
    """Save the model of the epoch kept so far (rank 0 only)."""
    start_epoch: Callable[[int], None] = lambda epoch: None
    """Before epoch ``e``: e.g. set its learning rate."""
    after_step: Callable[[], None] = lambda: None
    """After each optimiser step: e.g. update a weight average."""
    scheduler: Any = None
    max_grad_norm: float = 1.0
    patience: int = 0
    keep_last: bool = False
    """Keep every epoch in turn, so the last one wins, instead of the best on dev; dev is still scored.
    Meant with ``patience`` 0: early stopping would count epochs against the one before."""
    checkpoint_every: int = 0
    procs: Processes = field(default_factory=Processes)


def fit(loop: Loop, progress: Progress) -> Progress:
    """Train from ``progress`` (a fresh one, or a checkpoint's) to the last epoch or an early stop."""
    say = tqdm.write if loop.procs.main else (lambda *_: None)
    while progress.epoch <= loop.epochs:
        epoch = progress.epoch
        loop.start_epoch(epoch)
        batches = loop.batches(epoch)
        loop.net.train()
        started = time.perf_counter() - progress.seconds
        bar = tqdm(
            batches,
            desc=f"{loop.name} epoch {epoch}/{loop.epochs}",
            unit="batch",
            disable=not loop.procs.main,
            leave=False,
            initial=progress.step,
        )
        for step in range(progress.step, len(batches)):
            loss, characters = loop.loss(batches[step], epoch, step)
            optimizer_step(loss, loop.net, loop.optimizer, loop.max_grad_norm, epoch, loop.out, loop.scheduler)
            loop.after_step()
            bar.update()
            bar.set_postfix(progress.record_step(loss.item(), characters, started))
            loop.checkpoints.save_every(progress, loop.checkpoint_every, len(batches))
        bar.close()
        train_loss = loop.procs.mean(progress.loss_sum / max(1, len(batches)))
        stop = False
        if loop.procs.main:
            result = loop.end_epoch(epoch)
            record = {"epoch": epoch, "train_loss": train_loss, **result.record}
            record["seconds"] = round(progress.seconds, 1)
            record["chars_per_second"] = round(progress.characters * loop.procs.world / max(progress.seconds, 1e-9), 1)
            loop.log.write(record)
            say(f"epoch {epoch}: loss {train_loss:.4f}  {result.summary}  {progress.seconds / 60:.1f} min".rstrip())
            if result.score is not None:
                improved, stop = progress.end_epoch(result.score, loop.patience)
                if improved or loop.keep_last:
                    progress.best = {"dev_f1": result.score, "epoch": epoch, **result.best}
                    loop.on_best(progress)
        stop = loop.procs.broadcast_flag(stop)
        progress.next_epoch()
        loop.checkpoints.save(progress)
        if stop:
            say(f"no dev improvement for {loop.patience} epochs: stopping")
            break
    return progress
