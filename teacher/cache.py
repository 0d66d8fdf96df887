"""``distill teacher-cache``: run a trained teacher over corpora and store what it says.

Sources are read as one stream, labeled splits first, then unlabeled text split into sentences,
then sentences made from the training split by mention substitution;
the stream is cut into shards of ``shard_size`` sentences. Only one shard is in memory at a
time. Under torchrun, rank r computes shards r, r + N, r + 2N, ...; rank 0 writes the index.
"""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from distill.artifacts import fingerprint, sha256_file
from distill.cache import INDEX, check_compatible, check_shard, read_index, shard_name, write_index, write_shard
from distill.data import (
    Sentence,
    convert_tags,
    default_unlabeled_path,
    load_dataset,
    read_raw_text,
    substitute_mentions,
)
from distill.errors import DistillError
from distill.training import Processes, use_threads

from .config import CacheConfig
from .ensemble import TeacherEnsemble, load_teacher
from .model import Teacher, use_bf16


def _plan_sources(cfg: CacheConfig) -> tuple[list[dict], list]:
    """(source records for the index, a function per source that streams its sentences).

    Without ``unlabeled`` files, the default data brings its default text (People's Daily 1998-01).
    """
    records, streams = [], []
    splits = [] if cfg.no_labeled else cfg.splits
    unlabeled = cfg.unlabeled or ([str(default_unlabeled_path())] if cfg.data is None else [])
    dataset = load_dataset(cfg.data) if splits or cfg.substitutions else None

    def split_record(kind: str, split: str, name: str, **more) -> dict:
        source = dataset.source(split)
        part, sha256 = list(source.part), sha256_file(source.path)
        return {"kind": kind, "name": name, "path": str(source.path.resolve()), "part": part, "sha256": sha256, **more}

    for split in splits:
        records.append(split_record("labeled", split, f"{dataset.name}/{split}", limit=cfg.max_labeled))
        streams.append(partial(_first, dataset.sentences, split, limit=cfg.max_labeled))
    for path in unlabeled:
        records.append(
            {
                "kind": "unlabeled",
                "name": Path(path).name,
                "path": str(Path(path).resolve()),
                "max_len": cfg.max_len,
                "sha256": sha256_file(Path(path)),
                "limit": cfg.max_unlabeled,
            }
        )
        streams.append(partial(_first, read_raw_text, path, limit=cfg.max_unlabeled, max_len=cfg.max_len))
    if cfg.substitutions:
        name = f"{dataset.name}/train, mention substitution"
        records.append(split_record("substituted", "train", name, limit=cfg.substitutions, seed=cfg.seed))
        train = partial(dataset.load_labeled, "train", "mention substitution")
        streams.append(lambda: substitute_mentions(train(), cfg.substitutions, cfg.seed))
    if not records:
        raise DistillError("nothing to cache: give labeled splits (--split) and/or --unlabeled text")
    return records, streams


def _first(reader: Callable[..., Iterator[Sentence]], *args, limit: int = 0, **kwargs) -> Iterator[Sentence]:
    """The first ``limit`` sentences (all for 0) that ``reader(*args, **kwargs)`` streams."""
    sentences = reader(*args, **kwargs)
    return itertools.islice(sentences, limit) if limit else sentences


def _stream(streams: list) -> Iterator[tuple[int, Sentence]]:
    for number, stream in enumerate(streams):
        for sentence in stream():
            if len(sentence) > 0:
                yield number, sentence


def _shard_arrays(
    teacher: Teacher | TeacherEnsemble, batch: list[tuple[int, Sentence]], batch_size: int
) -> dict[str, np.ndarray]:
    label_index = {label: i for i, label in enumerate(teacher.labels)}
    scheme = teacher.config.get("scheme", "bioes")
    texts = [s.text for _, s in batch]
    lengths = np.array([len(t) for t in texts])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    total, num_tags = int(offsets[-1]), len(teacher.labels)
    emissions = np.zeros((total, num_tags), dtype=np.float16)
    marginals = np.zeros((total, num_tags), dtype=np.float16)
    viterbi = np.zeros(total, dtype=np.int16)
    gold = np.full(total, -1, dtype=np.int16)
    order = sorted(range(len(texts)), key=lambda i: -lengths[i])
    for lo in range(0, len(order), batch_size):
        chunk = order[lo : lo + batch_size]
        scores, mask = teacher.emissions([texts[i] for i in chunk])
        with torch.no_grad():
            probs = teacher.crf.marginals(scores, mask)
        paths = teacher.crf.decode(scores, mask)
        scores, probs = scores.cpu().numpy(), probs.float().cpu().numpy()
        for row, i in enumerate(chunk):
            n, at = lengths[i], slice(offsets[i], offsets[i + 1])
            emissions[at], marginals[at], viterbi[at] = scores[row, :n], probs[row, :n], paths[row]
    for i, (_, sentence) in enumerate(batch):
        if sentence.tags is not None:
            try:
                ids = [label_index[t] for t in convert_tags(sentence.tags, scheme)]
            except KeyError as err:
                raise DistillError(
                    f"{sentence.source}, line {sentence.line}: tag {err.args[0]} is not in the teacher's label set "
                    f"({', '.join(teacher.labels)}): the data and the teacher do not match"
                ) from None
            gold[offsets[i] : offsets[i + 1]] = ids
    chars = np.fromiter((ord(c) for t in texts for c in t), dtype=np.int32, count=total)
    source = np.array([n for n, _ in batch], dtype=np.int32)
    return {
        "chars": chars,
        "offsets": offsets,
        "source": source,
        "gold": gold,
        "emissions": emissions,
        "marginals": marginals,
        "viterbi": viterbi,
    }


def build_cache(cfg: CacheConfig) -> dict:
    """Build (or resume) the cache in ``cfg.out``; returns its index."""
    procs = Processes.from_env()
    device = procs.start(cfg.device)
    use_threads(cfg.threads)
    out = Path(cfg.out)
    precision = cfg.precision
    if precision == "auto" and cfg.resume and not cfg.overwrite and (out / INDEX).exists():
        # A resumed cache keeps the arithmetic it started in: auto times bf16, and a busy machine
        # can time it the other way, which would refuse the resume or mix two precisions.
        precision = read_index(out)["teacher"].get("precision", "fp32")
    # Every process computes as rank 0 chose, so that no rank's shards differ in precision.
    bf16 = procs.broadcast_flag(use_bf16(precision, device))
    teacher = load_teacher(cfg.teacher, device, "bf16" if bf16 else "fp32")
    records, streams = _plan_sources(cfg)
    planned = {
        "teacher": {
            "fingerprint": fingerprint(teacher.config),
            "path": str(Path(cfg.teacher).resolve()),
            "labels": teacher.labels,
            "scheme": teacher.config.get("scheme"),
            "precision": "bf16" if teacher.bf16 else "fp32",
        },
        "labels": teacher.labels,
        "data": cfg.data,
        "sources": records,
        "shard_size": cfg.shard_size,
        "complete": False,
        "shards": [],
    }
    if procs.main:
        if (out / INDEX).exists() and cfg.overwrite:
            shutil.rmtree(out)
        if (out / INDEX).exists():
            check_compatible(read_index(out), planned, out)
            if not cfg.resume:
                raise DistillError(f"{out} already holds a cache: pass --resume to finish it or --overwrite to rebuild")
        elif out.exists() and any(out.iterdir()):
            raise DistillError(f"{out} exists and is not an emission cache: choose an empty or new directory")
        out.mkdir(parents=True, exist_ok=True)
        if not (out / INDEX).exists():
            write_index(out, planned)
    procs.barrier()

    started, computed_chars = time.perf_counter(), 0
    counts = [0] * len(records)
    shard_sentences: list[tuple[int, Sentence]] = []
    number = 0
    bar = tqdm(desc="caching", unit="sent", disable=not procs.main)

    def finish_shard() -> None:
        nonlocal computed_chars
        mine = number % procs.world == procs.rank
        if not mine:
            return
        if (out / shard_name(number)).exists():
            check_shard(out, number, planned)
            return
        arrays = _shard_arrays(teacher, shard_sentences, cfg.batch_size)
        write_shard(out, number, arrays, planned)
        computed_chars += len(arrays["chars"])
        bar.set_postfix(chars_s=f"{computed_chars / (time.perf_counter() - started):.0f}")

    for source_number, sentence in _stream(streams):
        counts[source_number] += 1
        shard_sentences.append((source_number, sentence))
        if len(shard_sentences) == cfg.shard_size:
            finish_shard()
            bar.update(len(shard_sentences))
            shard_sentences, number = [], number + 1
    if shard_sentences:
        finish_shard()
        bar.update(len(shard_sentences))
        number += 1
    bar.close()
    seconds = time.perf_counter() - started
    computed_chars = round(procs.mean(computed_chars) * procs.world)
    procs.barrier()
    index = read_index(out)
    if procs.main:
        shards = [_shard_record(out, n) for n in range(number)]
        for record, count in zip(index["sources"], counts):
            record["sentences"] = count
        index.update(shards=shards, complete=True)
        index["chars"] = sum(s["chars"] for s in shards)
        index["sentences"] = sum(s["sentences"] for s in shards)
        index["last_run"] = {
            "seconds": round(seconds, 1),
            "computed_chars": computed_chars,
            "chars_per_second": round(computed_chars / max(seconds, 1e-9), 1),
            "device": str(device),
            "processes": procs.world,
        }
        write_index(out, index)
    procs.barrier()
    procs.stop()
    return read_index(out)


def _shard_record(directory: Path, number: int) -> dict:
    """A shard's sizes, read from its safetensors header only."""
    from safetensors import safe_open

    path = directory / shard_name(number)
    if not path.is_file():
        raise DistillError(f"{path} is missing after the run: a process failed; rerun with --resume")
    with safe_open(str(path), "np") as shard:
        sentences = shard.get_slice("offsets").get_shape()[0] - 1
        chars = shard.get_slice("chars").get_shape()[0]
    return {"file": path.name, "sentences": sentences, "chars": chars}
