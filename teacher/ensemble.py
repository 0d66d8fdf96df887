"""Several trained teachers as one: ``distill teacher-ensemble``.

An ensemble directory holds its members as complete teacher directories (``member-0/``, ...:
hard links to the originals' files where the filesystem allows, copies elsewhere) and a
config.json of kind ``teacher`` whose ``ensemble`` entry names them with their fingerprints.
It tags, caches, evaluates and is benchmarked like any teacher (:func:`load_teacher`).

Each member reads the text with its own character vocabulary and windows. Their emissions
[B, T, K] are averaged, and so are their CRFs' start, transition and end scores, so the score of
a tag path under the ensemble is the mean of its scores under the members (a log-linear
ensemble); Viterbi and forward-backward then run on it as on one teacher's. The cache's soft
targets for a student are the ensemble's.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from distill.artifacts import fingerprint, member_dirs, read_config, write_config
from distill.crf import CRF
from distill.errors import DistillError

from .model import KIND, Teacher

MEMBER_DIR = "member-{}"


@dataclass
class TeacherEnsemble:
    """Teachers over one label set whose averaged scores tag text: the interface of :class:`Teacher`
    that tagging and caching use."""

    members: list[Teacher]
    crf: CRF
    """A CRF whose start, transition and end scores are the members' means."""
    config: dict

    @property
    def labels(self) -> list[str]:
        return self.members[0].labels

    @property
    def bf16(self) -> bool:
        return self.members[0].bf16

    def emissions(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """([B, T, K] the members' mean emissions, [B, T] mask) for non-empty texts."""
        scores = [member.emissions(texts) for member in self.members]
        return torch.stack([emissions for emissions, _ in scores]).mean(0), scores[0][1]

    def tag_ids(self, texts: Sequence[str]) -> list[list[int]]:
        emissions, mask = self.emissions(texts)
        return self.crf.decode(emissions, mask)

    def tag_scores(self, texts: Sequence[str]) -> list[tuple[list[int], np.ndarray]]:
        """Each text's label indices with its emissions [L, K], for entity confidences."""
        return self.crf.scored_decode(*self.emissions(texts))


def load_teacher(
    directory: Path, device: str | torch.device = "cpu", precision: str = "fp32"
) -> Teacher | TeacherEnsemble:
    """A teacher directory or an ensemble directory, loaded to tag text on ``device``."""
    config = read_config(directory)
    paths = member_dirs(directory, config)
    if not paths:
        return Teacher.load(directory, device, precision)
    members = [Teacher.load(path, device, precision) for path in paths]
    return TeacherEnsemble(members, _mean_crf(members), config)


def _mean_crf(members: list[Teacher]) -> CRF:
    """A copy of the first member's CRF (constraints included) with the members' mean scores."""
    crf = CRF(len(members[0].labels))
    crf.constraint = members[0].crf.constraint.clone()  # one label set, so one scheme's constraints
    with torch.no_grad():
        for name in ("start_transitions", "transitions", "end_transitions"):
            getattr(crf, name).copy_(torch.stack([getattr(m.crf, name) for m in members]).mean(0))
    return crf.to(members[0].device).eval()


def build_ensemble(member_paths: Sequence[Path], out: Path, overwrite: bool = False) -> dict:
    """Write the ensemble directory ``out`` of the teachers in ``member_paths``; returns its config."""
    if len(member_paths) < 2:
        raise DistillError("an ensemble needs at least two teacher directories")
    configs = [read_config(path) for path in member_paths]
    for path, config in zip(member_paths, configs):
        if config["kind"] != KIND or member_dirs(path, config):
            raise DistillError(f"{path} is not a single teacher (kind {config['kind']!r}): members must be teachers")
        if config["labels"] != configs[0]["labels"]:
            raise DistillError(
                f"{path} tags with {', '.join(config['labels'])}, {member_paths[0]} with "
                f"{', '.join(configs[0]['labels'])}: members must share one label set, in one order"
            )
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DistillError(f"{out} exists and is not empty: choose a new directory or pass --overwrite")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    members = []
    for number, (path, config) in enumerate(zip(member_paths, configs)):
        name = MEMBER_DIR.format(number)
        shutil.copytree(path, out / name, copy_function=_link_or_copy)
        members.append({"dir": name, "fingerprint": fingerprint(config)})
    ensemble = {
        "kind": KIND,
        "labels": configs[0]["labels"],
        "scheme": configs[0]["scheme"],
        # Text is cut into sentences no longer than every member's window takes whole.
        "window": min(int(config["window"]) for config in configs),
        "ensemble": {"members": members, "combine": "mean of emissions and CRF scores"},
    }
    return write_config(out, ensemble)  # last: a directory with a config is complete


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
