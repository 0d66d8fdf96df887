"""How many CPU cores a process may use: its affinity, within a container's CPU limit."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
"""Where Linux shows this process's control group (a container's own, inside the container)."""


def usable_cores(cgroup: Path = CGROUP) -> int:
    """Cores this process may use: those it may run on (its affinity where the OS has one), no more
    than a container's CPU limit allows (``docker --cpus``, a Kubernetes CPU limit), which the
    affinity does not show."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    limit = cgroup_cpu_limit(cgroup)
    return min(cores, limit) if limit else cores


def cgroup_cpu_limit(cgroup: Path = CGROUP) -> int | None:
    """The CPU quota of this process's cgroup in whole cores, rounded up (cgroup v2's ``cpu.max``, or
    v1's ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``); None without a limit or a cgroup."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        cores = int(quota) / int(period)
    except (ValueError, ZeroDivisionError):  # "max": no limit
        return None
    return math.ceil(cores) if cores > 0 else None  # v1 writes -1 for no limit
