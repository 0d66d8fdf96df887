"""Model directories: ``config.json`` + ``model.safetensors``, written atomically, verified on load.

Teacher and student directories share this format. ``config.json`` says what the model is
(``kind``, labels, architecture, how it was trained) and records the versions that wrote it and
the SHA-256 of ``model.safetensors``; loading checks both and says plainly what is wrong.
No pickle is ever written or read.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import DistillError

if TYPE_CHECKING:
    import torch

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
FORMAT_VERSION = 1


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader (or a kill) never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, record: Mapping) -> None:
    atomic_write(path, (json.dumps(record, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))


def read_json(path: Path, what: str) -> dict:
    """A JSON file of an artefact, or a :class:`DistillError` saying that ``what`` is corrupt."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DistillError(f"{path} is not valid JSON ({err}); {what} is corrupt") from None


def sha256_file(*paths: Path) -> str:
    """The SHA-256 of a file's bytes; of several files', one after the other."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def versions() -> dict[str, str | None]:
    from importlib import metadata  # only writers need it; a serving process is smaller without it

    out = {}
    for name in ("distill", "torch", "transformers", "safetensors"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def save_tensors(path: Path, tensors: Mapping[str, np.ndarray], metadata_: Mapping[str, str] | None = None) -> str:
    """Atomically write numpy arrays as safetensors; returns the file's SHA-256."""
    from safetensors.numpy import save

    data = save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=dict(metadata_ or {}))
    atomic_write(path, data)
    return hashlib.sha256(data).hexdigest()


def load_tensors(path: Path) -> dict[str, np.ndarray]:
    """Numpy arrays of a safetensors file; a truncated or corrupt file is a :class:`DistillError`."""
    from safetensors.numpy import load_file

    if not path.is_file():
        raise DistillError(f"{path} is missing")
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for bad headers and sizes
        raise DistillError(f"{path} is not a readable safetensors file (truncated or corrupt?): {err}") from None


def _config_digest(config: Mapping) -> str:
    text = json.dumps({k: v for k, v in config.items() if k != "config_sha256"}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_config(directory: Path, config: Mapping) -> dict:
    """Write a model directory's config.json, sealed with the SHA-256 of its own content, so that an
    edit after writing (two labels swapped, another hidden size) is refused when it is read."""
    full = {**config, "format_version": FORMAT_VERSION, "written_by": versions()}
    full["config_sha256"] = _config_digest(full)
    atomic_write_json(Path(directory) / CONFIG, full)
    return full


def write_model_dir(directory: Path, config: Mapping, tensors: Mapping[str, np.ndarray]) -> dict:
    """Write weights then config (the config last: a directory with a config is complete)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    digest = save_tensors(directory / WEIGHTS, tensors)
    return write_config(directory, {**config, "weights_sha256": digest})


def read_config(directory: Path) -> dict:
    """The config of a model directory, or a :class:`DistillError` saying what is missing or wrong."""
    directory = Path(directory)
    path = directory / CONFIG
    if not directory.is_dir():
        raise DistillError(f"{directory} is not a model directory (expected a folder with {CONFIG} and {WEIGHTS})")
    if not path.is_file():
        raise DistillError(f"{path} is missing: {directory} is not a complete model directory")
    config = read_json(path, "the model directory")
    if not isinstance(config, dict) or "kind" not in config:
        raise DistillError(f"{path} does not describe a distill model (no 'kind')")
    if config.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        writer = (config.get("written_by") or {}).get("distill")
        raise DistillError(
            f"{path} was written by distill {writer} in format {config['format_version']}; this distill "
            f"({versions()['distill']}) reads format {FORMAT_VERSION}: upgrade distill"
        )
    if "config_sha256" not in config:
        raise DistillError(f"{path} carries no checksum: it was written by an earlier distill; retrain the model")
    if config["config_sha256"] != _config_digest(config):
        raise DistillError(
            f"{path} does not match the checksum it was written with: it was edited or damaged after training "
            "(labels, architecture or settings changed), so the weights would be read wrongly; restore or retrain it"
        )
    return config


def read_model_dir(directory: Path, verify: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
    """(config, weights) of a model directory; checks the weights against the recorded SHA-256."""
    directory = Path(directory)
    config = read_config(directory)
    weights_path = directory / WEIGHTS
    if not weights_path.is_file():
        raise DistillError(f"{weights_path} is missing: {directory} is not a complete model directory")
    if verify and config.get("weights_sha256") and sha256_file(weights_path) != config["weights_sha256"]:
        raise DistillError(
            f"{weights_path} does not match the checksum recorded in {CONFIG}: the weights were changed "
            "or damaged after they were written; retrain or restore the directory"
        )
    return config, load_tensors(weights_path)


def member_dirs(directory: Path, config: Mapping) -> list[Path]:
    """The member model directories of an ensemble directory (its config lists them), else []."""
    return [Path(directory) / member["dir"] for member in config.get("ensemble", {}).get("members", [])]


def weight_files(directory: Path, config: Mapping) -> list[Path]:
    """The weight files a model directory predicts with: its own, or its members' for an ensemble."""
    return [member / WEIGHTS for member in member_dirs(directory, config)] or [Path(directory) / WEIGHTS]


def fingerprint(config: Mapping) -> str:
    """A short identity of a model: its weights' hash and its config, less what a run of the same
    training leaves different (where it was written, the versions, the scores, and the config's own
    digest, which covers those): the same command run again into another folder gives the same
    fingerprint, as it gives the same weights."""
    stable = {k: v for k, v in config.items() if k not in ("written_by", "metrics", "training", "config_sha256")}
    text = json.dumps(stable, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def module_weights(module: torch.nn.Module) -> dict[str, np.ndarray]:
    """A torch module's state as float32 numpy arrays, ready for :func:`write_model_dir`."""
    return {k: v.detach().float().cpu().numpy() for k, v in module.state_dict().items()}


def load_module_weights(module: torch.nn.Module, weights: Mapping[str, np.ndarray], directory: Path) -> None:
    """Load ``weights`` into ``module``; any missing or unexpected tensor is a :class:`DistillError`."""
    import torch

    state = {k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()}
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise DistillError(
            f"{Path(directory) / WEIGHTS} does not fit its {CONFIG}: "
            f"missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]}"
        )
