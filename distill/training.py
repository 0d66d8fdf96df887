"""What the trainers share besides their loop (:mod:`distill.loop`): seeding, threads, devices,
the optimiser step, the epoch log, and torchrun's processes."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


def seed_everything(seed: int) -> None:
    """Seed every generator and make torch pick its deterministic kernels, so that the same seed,
    machine and thread count give the same model. Some default kernels add in an order that varies
    from run to run: on CPU the backward of indexing with index tensors, with more than one thread;
    on CUDA several more, and cuBLAS unless its workspace is fixed. An operation that has no
    deterministic kernel warns and runs. Fresh tensors are not filled with NaN first (deterministic
    mode's default, an extra pass over every allocation): torch's kernels write them before use."""
    random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False


def adamw(params: Iterable[torch.nn.Parameter] | Iterable[dict], **settings: Any) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel (CPU and CUDA): the same update in one pass over each
    parameter instead of one per operation, which matters for large embedding tables.
    ``settings``: AdamW's (lr, weight_decay, ...)."""
    return torch.optim.AdamW(params, fused=True, **settings)


def use_threads(threads: int) -> None:
    """Let torch use ``threads`` CPU threads (0: its default, one per core, but no more than a
    container's CPU limit allows: :func:`distill.cpus.cgroup_cpu_limit`)."""
    from .cpus import cgroup_cpu_limit

    limit = None if threads else cgroup_cpu_limit()
    if threads or (limit and limit < torch.get_num_threads()):
        torch.set_num_threads(threads or limit)


def check_finite(loss: torch.Tensor, epoch: int, out: Path) -> None:
    """Stop on a NaN or infinite loss; the best model and the last checkpoint stay as they were."""
    from .errors import DistillError

    if not torch.isfinite(loss):
        raise DistillError(
            f"the loss became {loss.item()} at epoch {epoch}: training stopped. The best model so far and the "
            f"last checkpoint in {out} are kept; try a lower learning rate, then --resume or --overwrite"
        )


def optimizer_step(
    loss: torch.Tensor,
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    max_grad_norm: float,
    epoch: int,
    out: Path,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> None:
    """One update from a batch's loss: stop if it is not finite (:func:`check_finite`), then
    backpropagate, clip ``net``'s gradient norm to ``max_grad_norm``, and step the optimiser and
    the learning-rate schedule, if any."""
    check_finite(loss, epoch, out)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' is CUDA when present, else CPU; 'cuda' without a GPU is refused clearly."""
    from .errors import DistillError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DistillError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
    return torch.device(name)


class JsonlLog:
    """One JSON object per line, flushed as written, so an interrupted run keeps its history."""

    def __init__(self, path: Path, keep_before_epoch: int = 1) -> None:
        """Start the log, keeping the records of epochs before ``keep_before_epoch`` (a resumed run's)."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in self.records() if r.get("epoch", 0) < keep_before_epoch]
        self.path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8")

    def write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True)
class Processes:
    """This process's place among those torchrun started (one process without torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls) -> Processes:
        return cls(
            int(os.environ.get("RANK", "0")),
            int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")),
        )

    def start(self, device_name: str = "auto") -> torch.device:
        """This process's device, after joining the process group when running under torchrun.

        ``device_name`` as :func:`resolve_device` takes it. Under torchrun on CUDA each process
        takes the GPU of its local rank and makes it current (so nccl's collectives land there),
        then joins with nccl; on the CPU it joins with gloo. A local rank without a GPU of its own
        is refused with what to do instead.
        """
        from .errors import DistillError

        device = resolve_device(device_name)
        if device.type == "cuda" and self.distributed:
            gpus = torch.cuda.device_count()
            if self.local_rank >= gpus:
                raise DistillError(
                    f"process {self.local_rank} of this machine has no GPU of its own (CUDA sees {gpus}): "
                    f"start at most {gpus} per machine (torchrun --nproc_per_node {gpus}), or use --device cpu"
                )
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        if self.distributed and not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return device

    def stop(self) -> None:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (e.g. 'stop early')."""
        if not self.distributed:
            return flag
        value = self._collective_tensor([int(flag)])
        torch.distributed.broadcast(value, src=0)
        return bool(value.item())

    def broadcast_choice(self, choice: str, choices: Sequence[str]) -> str:
        """Rank 0's ``choice`` (one of ``choices``) on every rank."""
        if not self.distributed:
            return choice
        value = self._collective_tensor([choices.index(choice) if self.main else 0])
        torch.distributed.broadcast(value, src=0)
        return choices[int(value.item())]

    def mean(self, value: float) -> float:
        """The mean of ``value`` over ranks."""
        if not self.distributed:
            return value
        tensor = self._collective_tensor([value], torch.float64)
        torch.distributed.all_reduce(tensor)
        return tensor.item() / self.world

    @staticmethod
    def _collective_tensor(values: list, dtype: torch.dtype = torch.long) -> torch.Tensor:
        """``values`` where the process group's collectives take them: this process's GPU under
        nccl (which refuses CPU tensors), the CPU under gloo."""
        nccl = torch.distributed.get_backend() == "nccl"
        device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
        return torch.tensor(values, dtype=dtype, device=device)
