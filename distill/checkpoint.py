"""Training checkpoints that survive a kill at any moment, and the progress they resume from.

A checkpoint is a directory ``OUT/checkpoint`` holding ``state.safetensors`` (model, its weight
average if one is kept, optimizer tensors, RNG state) and ``progress.json`` (epoch, step, best
score, optimizer and scheduler settings, Python's RNG). It is written beside the old one and
swapped in by renames, so a kill leaves either the old checkpoint or the new one, never half of
one. Safetensors and JSON only: no pickle.

Resuming restores the model, its average, the optimizer, scheduler and RNG, and the trainer skips
the batches already done in the epoch (its batch order depends only on the seed and the epoch), so
on a single CPU process the finished model is identical to an uninterrupted run's.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .artifacts import atomic_write_json, load_tensors, module_weights, save_tensors

CHECKPOINT = "checkpoint"


@dataclass
class Progress:
    """Where training stands; JSON-able."""

    epoch: int = 1
    """The epoch in progress (1-based)."""
    step: int = 0
    """Batches of that epoch already done."""
    loss_sum: float = 0.0
    characters: int = 0
    seconds: float = 0.0
    """Time spent on this epoch before the last checkpoint."""
    best: dict = field(default_factory=lambda: {"dev_f1": -1.0, "epoch": 0})
    stale: int = 0
    """Epochs since the best one."""
    choices: dict = field(default_factory=dict)
    """What the run chose when it started and a resumed run must keep (e.g. the arithmetic that
    ``--precision auto`` measured its way to)."""

    def end_epoch(self, f1: float, patience: int) -> tuple[bool, bool]:
        """Record an epoch's dev F1: (it is the best so far, patience is exhausted); patience 0 never is."""
        improved = f1 > self.best["dev_f1"]
        self.stale = 0 if improved else self.stale + 1
        return improved, 0 < patience <= self.stale

    def record_step(self, loss: float, characters: int, started: float) -> dict[str, str]:
        """Count one optimiser step; returns the progress-bar postfix."""
        self.step += 1
        self.loss_sum += loss
        self.characters += characters
        self.seconds = time.perf_counter() - started
        return {"loss": f"{loss:.3f}", "chars_s": f"{self.characters / max(self.seconds, 1e-9):.0f}"}

    def next_epoch(self) -> None:
        self.epoch, self.step, self.loss_sum, self.characters, self.seconds = self.epoch + 1, 0, 0.0, 0, 0.0


def _optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, np.ndarray], dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().numpy()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict, saved: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = torch.from_numpy(value.copy())
    for name, value in saved["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})


def _with_prefix(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors named ``prefix...``, as a state dict without the prefix."""
    return {k.removeprefix(prefix): torch.from_numpy(v.copy()) for k, v in tensors.items() if k.startswith(prefix)}


class Checkpointer:
    """Saves and restores one training run's state under ``out/checkpoint``."""

    def __init__(
        self,
        out: Path,
        net: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        writer: bool = True,
        average: torch.nn.Module | None = None,
    ) -> None:
        """``average``: a moving average of ``net``'s weights (e.g. torch's AveragedModel), saved too."""
        self.directory = Path(out) / CHECKPOINT
        self.net, self.optimizer, self.scheduler, self.writer = net, optimizer, scheduler, writer
        self.average = average

    def exists(self) -> bool:
        return self._latest() is not None

    def _latest(self) -> Path | None:
        """The complete checkpoint on disk: the current one, or the old one if a swap was cut short."""
        for directory in (self.directory, self.directory.with_suffix(".old")):
            if (directory / "progress.json").is_file():
                return directory
        return None

    def save_every(self, progress: Progress, every: int, steps_in_epoch: int) -> None:
        """Checkpoint inside an epoch every ``every`` steps (the epoch end saves on its own)."""
        if every and progress.step % every == 0 and progress.step < steps_in_epoch:
            self.save(progress)

    def save(self, progress: Progress) -> None:
        if not self.writer:
            return
        tmp, old = self.directory.with_suffix(".tmp"), self.directory.with_suffix(".old")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        optimizer_tensors, optimizer_rest = _optimizer_state(self.optimizer)
        tensors = {f"model.{k}": v for k, v in module_weights(self.net).items()} | optimizer_tensors
        if self.average is not None:
            tensors |= {f"average.{k}": v for k, v in module_weights(self.average).items()}
        tensors["rng.torch"] = torch.get_rng_state().numpy()
        if torch.cuda.is_available():
            for i, rng in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda.{i}"] = rng.numpy()
        save_tensors(tmp / "state.safetensors", tensors)
        atomic_write_json(
            tmp / "progress.json",
            {
                "progress": asdict(progress),
                "optimizer": optimizer_rest,
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "python_rng": random.getstate(),
            },
        )
        if self.directory.exists():
            shutil.rmtree(old, ignore_errors=True)
            self.directory.rename(old)
        tmp.rename(self.directory)
        shutil.rmtree(old, ignore_errors=True)

    def load(self) -> Progress:
        """Restore everything saved; returns the progress to continue from."""
        directory = self._latest()
        saved = json.loads((directory / "progress.json").read_text(encoding="utf-8"))
        tensors = load_tensors(directory / "state.safetensors")
        self.net.load_state_dict(_with_prefix(tensors, "model."))
        if self.average is not None:
            self.average.load_state_dict(_with_prefix(tensors, "average."))
        _load_optimizer_state(self.optimizer, tensors, saved["optimizer"])
        if self.scheduler is not None and saved["scheduler"] is not None:
            self.scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(torch.from_numpy(tensors["rng.torch"].copy()))
        cuda_states = [torch.from_numpy(tensors[k].copy()) for k in sorted(tensors) if k.startswith("rng.cuda.")]
        if cuda_states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda_states)
        version, internal, gauss = saved["python_rng"]
        random.setstate((version, tuple(internal), gauss))
        return Progress(**saved["progress"])

    def progress(self, how: str, say: Callable[[str], None]) -> Progress:
        """Where a run starts (``how`` from :func:`start_run`): its checkpoint's progress when
        resuming, said with ``say``, else a fresh one."""
        if how != "resume":
            return Progress()
        progress = self.load()
        say(f"resuming from epoch {progress.epoch}, batch {progress.step}")
        return progress

    def clear(self) -> None:
        """Remove the checkpoint once training has finished (the model directory is what remains),
        and release the run's lock on its directory."""
        if self.writer:
            for path in (self.directory, self.directory.with_suffix(".tmp"), self.directory.with_suffix(".old")):
                shutil.rmtree(path, ignore_errors=True)
            release_run(self.directory.parent)


RUN_STARTS = ("fresh", "resume", "complete")
LOCK = ".lock"
_held_locks: dict[Path, object] = {}
"""Open lock files of the runs this process owns, kept open (so locked) until it exits."""


def lock_run(out: Path) -> None:
    """Hold an exclusive lock on ``out`` for the rest of this process: a second run into the same
    directory (another terminal, a repeated command) is refused instead of interleaving its log and
    checkpoints with this one's. The kernel releases it when the process ends, however it ends."""
    import fcntl

    from .errors import DistillError

    out = Path(out).resolve()
    if out in _held_locks:
        return
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / LOCK, "a+")  # noqa: SIM115 - held open on purpose: the lock lives as long as the file
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DistillError(
            f"{out} is in use by another run (it holds {out / LOCK}): wait for it, or use another --out"
        ) from None
    _held_locks[out] = handle


def release_run(out: Path) -> None:
    """Let go of ``out``'s lock, once its run has finished."""
    handle = _held_locks.pop(Path(out).resolve(), None)
    if handle is not None:
        handle.close()


def _marked_complete(path: Path) -> bool:
    """Whether the JSON file at ``path`` marks a finished run (a damaged one does not)."""
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get("training_complete"))
    except (OSError, ValueError, AttributeError):  # missing, truncated, not JSON, not an object
        return False


def start_run(out: Path, resume: bool, overwrite: bool, record: str = "config.json") -> str:
    """Decide how a training run into ``out`` starts: 'fresh', 'resume' or 'complete'.

    Refuses to train over an earlier run unless told to continue it (``resume``) or replace it
    (``overwrite``), so that no result is lost by a repeated command. ``record``: the JSON file
    of ``out`` whose ``training_complete`` marks a finished run.
    """
    from .errors import DistillError

    out = Path(out)
    lock_run(out)
    has_checkpoint = Checkpointer(out, None, None).exists()
    config = out / record
    if overwrite:
        for name in (CHECKPOINT, f"{CHECKPOINT}.tmp", f"{CHECKPOINT}.old"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in ("config.json", "model.safetensors", "train_log.jsonl", record):
            (out / name).unlink(missing_ok=True)
        return "fresh"
    if resume:
        if has_checkpoint:
            return "resume"
        return "complete" if _marked_complete(config) else "fresh"
    if has_checkpoint or config.is_file():
        raise DistillError(
            f"{out} already holds a training run: pass --resume to continue it or --overwrite to start again"
        )
    return "fresh"
