"""The emission cache: what the teacher said about every sentence, on disk, for the student.

A cache directory holds ``index.json`` and shards ``shard-00000.safetensors``, ... Each shard
stores a run of sentences, flat:

=============  ===============  ==================================================
tensor         shape, dtype     meaning
=============  ===============  ==================================================
``chars``      [N] int32        the characters, as Unicode code points
``offsets``    [S + 1] int64    sentence i is ``chars[offsets[i]:offsets[i + 1]]``
``source``     [S] int32        index into the index's ``sources``
``gold``       [N] int16        gold label index, -1 where the sentence is unlabeled
``emissions``  [N, K] float16   the teacher's emission scores
``marginals``  [N, K] float16   the teacher's CRF marginals p(tag | sentence)
``viterbi``    [N] int16        the teacher's best path
=============  ===============  ==================================================

``index.json`` records the teacher's fingerprint and labels, each source's path, SHA-256 and
sentence count, the shard size and the shard list. A shard file appears only once complete
(written to a temporary name, then renamed), so an interrupted build resumes from the shards
present; a cache built by another teacher or from changed sources is refused, never mixed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifacts import atomic_write_json, load_tensors, read_json, save_tensors
from .errors import DistillError

INDEX = "index.json"
FORMAT_VERSION = 1


def shard_name(number: int) -> str:
    return f"shard-{number:05d}.safetensors"


def read_index(directory: Path) -> dict:
    path = Path(directory) / INDEX
    if not path.is_file():
        raise DistillError(f"{path} is missing: {directory} is not an emission cache (run distill teacher-cache)")
    index = read_json(path, "the cache")
    if index.get("format_version") != FORMAT_VERSION:
        raise DistillError(f"{path}: cache format {index.get('format_version')}, this distill reads {FORMAT_VERSION}")
    return index


def write_index(directory: Path, index: dict) -> None:
    atomic_write_json(Path(directory) / INDEX, {**index, "format_version": FORMAT_VERSION})


def check_compatible(existing: dict, planned: dict, directory: Path) -> None:
    """Refuse to add to a cache made by another teacher or from other sources."""
    if existing["teacher"]["fingerprint"] != planned["teacher"]["fingerprint"]:
        raise DistillError(
            f"{directory} was built by teacher {existing['teacher']['fingerprint']} "
            f"({existing['teacher'].get('path')}), not by this one ({planned['teacher']['fingerprint']}): "
            "caches are never mixed; write to a new directory or pass --overwrite"
        )

    precision = existing["teacher"].get("precision", "fp32"), planned["teacher"].get("precision", "fp32")
    if precision[0] != precision[1]:
        raise DistillError(
            f"{directory} holds emissions computed in {precision[0]}, and this run would compute in {precision[1]}: "
            f"pass --precision {precision[0]} to finish it, or --overwrite to rebuild"
        )

    def key(source: dict) -> tuple:
        return source["path"], source["sha256"], source.get("part"), source.get("max_len"), source.get("limit")

    before = [key(s) for s in existing["sources"]]
    now = [key(s) for s in planned["sources"]]
    if before != now or existing["shard_size"] != planned["shard_size"]:
        raise DistillError(
            f"{directory} was built from other sources or settings ({[b[0] for b in before]}); "
            "a changed source would mix two corpora: write to a new directory or pass --overwrite"
        )


def identity(index: dict, number: int) -> dict[str, str]:
    """What a shard must say about itself: which teacher, which sources, which place in the stream."""
    sources = json.dumps(
        [[s["path"], s["sha256"], s.get("part"), s.get("max_len"), s.get("limit")] for s in index["sources"]]
        + [index["shard_size"]]
    )
    return {
        "teacher": index["teacher"]["fingerprint"],
        "sources": hashlib.sha256(sources.encode("utf-8")).hexdigest()[:16],
        "shard": str(number),
    }


def write_shard(directory: Path, number: int, arrays: dict[str, np.ndarray], index: dict) -> None:
    """Write one shard atomically (it exists under its name only once complete), stamped with its identity."""
    save_tensors(Path(directory) / shard_name(number), arrays, identity(index, number))


def check_shard(directory: Path, number: int, index: dict) -> None:
    """Refuse a shard that another teacher, other sources or another position wrote."""
    from safetensors import safe_open

    path = Path(directory) / shard_name(number)
    try:
        with safe_open(str(path), "np") as shard:
            found = shard.metadata() or {}
    except Exception as err:  # safetensors' own error types for damaged headers
        raise DistillError(f"{path} is not a readable safetensors file (truncated or corrupt?): {err}") from None
    expected = identity(index, number)
    if found != expected:
        what = "teacher" if found.get("teacher") != expected["teacher"] else "sources or position"
        raise DistillError(
            f"{path} does not belong to this cache: its {what} differ ({found or 'no identity'}, expected "
            f"{expected}); a shard from another cache was mixed in. Remove it and rerun distill teacher-cache --resume"
        )


@dataclass
class CachedCorpus:
    """A whole cache in memory, flat; ``sentence(i)`` slices one sentence out."""

    labels: list[str]
    sources: list[dict]
    chars: np.ndarray
    offsets: np.ndarray
    source: np.ndarray
    gold: np.ndarray
    emissions: np.ndarray
    marginals: np.ndarray
    viterbi: np.ndarray
    teacher: dict

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def text(self, i: int) -> str:
        return "".join(map(chr, self.chars[self.offsets[i] : self.offsets[i + 1]]))

    def span(self, i: int) -> slice:
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def labeled(self, i: int) -> bool:
        return self.sources[int(self.source[i])]["kind"] == "labeled"

    def indices(self, kind: str) -> list[int]:
        """Sentences from 'labeled' or 'unlabeled' sources."""
        wanted = {n for n, s in enumerate(self.sources) if s["kind"] == kind}
        return [i for i in range(len(self)) if int(self.source[i]) in wanted]


def iter_shards(directory: Path, index: dict) -> Iterator[dict[str, np.ndarray]]:
    """The shards of a cache in order, each checked against the index: its entry names it (no
    other file), the folder holds exactly the shards the index lists, and its sentence and
    character counts are the recorded ones, so nothing is mixed in or left out unseen."""
    directory = Path(directory)
    shards = index["shards"]
    expected = [shard_name(number) for number in range(len(shards))]
    named = [shard["file"] for shard in shards]
    if named != expected:
        wrong = next(n for n, (a, b) in enumerate(zip(named, expected)) if a != b)
        raise DistillError(
            f"{directory / INDEX} lists {named[wrong]!r} as shard {wrong}, whose file is {expected[wrong]!r}: the "
            "index was changed after it was written (rebuild the cache with --overwrite)"
        )
    on_disk = sorted(path.name for path in directory.glob("shard-*.safetensors"))
    if on_disk != expected:
        raise DistillError(
            f"{directory} holds {len(on_disk)} shard files but {INDEX} lists {len(shards)}: the index and the shards "
            "disagree, so some sentences would be lost or mixed in (rebuild the cache with --overwrite)"
        )
    totals = [0, 0]
    for number, shard in enumerate(shards):
        path = directory / shard_name(number)
        check_shard(directory, number, index)
        arrays = load_tensors(path)
        counts = [len(arrays["offsets"]) - 1, len(arrays["chars"])]
        if counts != [shard["sentences"], shard["chars"]]:
            raise DistillError(
                f"{path} holds {counts[0]} sentences and {counts[1]} characters, {INDEX} says {shard['sentences']} "
                f"and {shard['chars']}: the cache was changed after it was written"
            )
        totals = [totals[0] + counts[0], totals[1] + counts[1]]
        yield arrays
    if totals != [index["sentences"], index["chars"]]:
        raise DistillError(
            f"{directory / INDEX} records {index['sentences']} sentences and {index['chars']} characters, its shards "
            f"hold {totals[0]} and {totals[1]}: the index was changed after it was written"
        )


def load_cache(directory: Path) -> CachedCorpus:
    """Every shard of a complete cache, concatenated."""
    directory = Path(directory)
    index = read_index(directory)
    if not index.get("complete"):
        raise DistillError(f"{directory} is an unfinished cache: rerun distill teacher-cache with --resume")
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("chars", "offsets", "source", "gold", "emissions", "marginals", "viterbi")
    }
    base = 0
    for shard in iter_shards(directory, index):
        for key, values in parts.items():
            value = shard[key]
            if key == "offsets":
                value = value[:-1] + base
                base += int(shard["offsets"][-1])
            values.append(value)
    parts["offsets"].append(np.array([base], dtype=np.int64))
    joined = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    return CachedCorpus(labels=list(index["labels"]), sources=index["sources"], teacher=index["teacher"], **joined)
