"""What a measurement ran on: CPU, cores, threads, library versions, GPU. Recorded with every result."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe_environment() -> dict:
    """A JSON-able description of this machine and the libraries a benchmark used.

    torch is described only if it is already imported, so that a torch-free process stays so.
    """
    env = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {
            name: _version(name) for name in ("distill", "torch", "transformers", "onnxruntime", "numpy", "pytorch-crf")
        },
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        env["torch_threads"] = torch.get_num_threads()
        env["cuda"] = torch.cuda.is_available()
        if env["cuda"]:
            env["gpu"] = torch.cuda.get_device_name(0)
    return env


def machine_line(env: dict) -> str:
    """``env`` (from :func:`describe_environment`) as one line for a results table: CPU, cores and
    the GPU, or 'CPU only' where torch (imported) found none; neither where torch was not imported."""
    line = f"{env['cpu']}, {env['cores']} cores"
    if "cuda" in env:
        line += ", " + (env["gpu"] if env["cuda"] else "CPU only")
    return line
