"""The Python API: load a teacher or student directory and tag text with it.

This module and ``distill.cli`` are the two places that sit above ``teacher`` and ``student``;
the rest of ``distill`` (the shared core) imports neither.

    >>> from distill.api import load_model
    >>> model = load_model("runs/resume-teacher")
    >>> model.predict(["张三在北京大学工作。"])
    [[Entity(type='NAME', text='张三', start=0, end=2), Entity(type='ORG', text='北京大学', start=3, end=7)]]
"""

from __future__ import annotations

import typing
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from distill.data import Sentence

from .artifacts import read_config
from .errors import DistillError
from .metrics import EntityScores
from .student import config as student_config
from .tagging import MAX_BATCH_CHARS, Entity, Runtime, ScoredTagger, predict_entities

if typing.TYPE_CHECKING:
    import torch

STUDENT_MAX_LEN = student_config.MAX_LEN
"""A BiLSTM reads any length; long texts are still cut at sentence ends, so batches stay even."""


@dataclass
class Model:
    """A loaded model of either kind, behind one interface."""

    kind: str
    labels: list[str]
    config: dict
    tag_ids: Callable[[list[str]], list[list[int]]]
    """Label indices for a batch of non-empty strings."""
    max_len: int | None
    """Text is cut into sentences of at most this many characters before tagging."""
    workers: int = 1
    """Batches tagged at once on threads (the ONNX runtime runs one per core, each on one core)."""
    scored: ScoredTagger | None = None
    """The tagger that also returns emissions, with the CRF's scores: for entity confidences."""
    max_batch_chars: int = MAX_BATCH_CHARS
    """Padded characters in flight at once, over all workers (see :func:`distill.tagging.tag_in_batches`)."""

    def predict(self, texts: Sequence[str], batch_size: int = 64, confidence: bool = True) -> list[list[Entity]]:
        """Entities of each text, with offsets into that text and (``confidence``) the CRF's
        probability of each (:mod:`distill.confidence`)."""
        _texts_not_one(texts)
        scored = self.scored if confidence else None
        return predict_entities(
            texts, self.tag_ids, self.labels, self.max_len, batch_size, self.workers, scored, self.max_batch_chars
        )

    def tag(self, texts: Sequence[str]) -> list[list[str]]:
        """One tag per character of each (non-empty) text."""
        _texts_not_one(texts)
        return [[self.labels[i] for i in row] for row in self.tag_ids(list(texts))]

    def evaluate(self, sentences: Sequence[Sentence], batch_size: int = 64) -> EntityScores:
        """Scores on labeled sentences; entity types the model was never taught are refused."""
        from distill.data import convert_tags, label_mismatch, label_scheme

        from .evaluation import evaluate

        if sentences and not any(s.tags for s in sentences):
            raise DistillError(f"{sentences[0].source}: no labeled sentences: evaluating needs gold tags")
        problem = label_mismatch(sentences, self.labels, "the model")
        if problem:
            raise DistillError(problem)
        scheme = label_scheme(self.labels)
        gold = [type(s)(s.text, convert_tags(s.tags, scheme), s.source, s.line) for s in sentences if s.tags]
        # batched as the benchmark scores the model, so the two give one F1
        return evaluate(self.tag_ids, gold, self.labels, batch_size, self.workers, self.max_batch_chars)[0]


def _texts_not_one(texts: Sequence[str]) -> None:
    """A lone string is a sequence of characters: taken as texts it would tag each one alone."""
    if isinstance(texts, str):
        raise TypeError(f"expected a list of texts, got one string: pass [text] ({texts[:20]!r}...)")


RUNTIMES = typing.get_args(Runtime)
"""torch: the saved model in float32; bf16: a teacher's encoder under bf16 autocast (fast where the
hardware has bf16: CUDA, CPUs with AVX512-BF16 or AMX); int8: PyTorch dynamic INT8 quantisation of
its Linear and LSTM layers, made at load time (CPU only); onnx: a student's ONNX export on
onnxruntime, without torch; onnx-int8: the same export quantised to INT8 by onnxruntime."""


def load_model(
    directory: str | Path,
    device: str = "cpu",
    runtime: str = "torch",
    onnx_dir: str | Path | None = None,
    threads: int = 0,
) -> Model:
    """Load a teacher (or teacher ensemble) or student directory, as config.json says, for one of ``RUNTIMES``.

    ``onnx_dir`` holds the ONNX export if not ``directory`` itself; ``threads`` is how many cores
    the model may use (0: the runtime's default): on the ONNX runtimes one batch per core, on the
    torch runtimes torch's thread count for the process.
    """
    directory = Path(directory)
    config = read_config(directory)
    kind = config["kind"]
    if kind not in ("teacher", "student"):
        raise DistillError(f"{directory}: unknown model kind {kind!r} (expected teacher or student)")
    if runtime not in RUNTIMES:
        raise DistillError(f"unknown runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    max_len = STUDENT_MAX_LEN if kind == "student" else config["window"]
    if runtime in ("onnx", "onnx-int8"):
        from distill.student.onnx_runtime import OnnxStudent

        if device.startswith("cuda"):
            raise DistillError(f"--device {device}: the {runtime} runtime runs on CPU; on a GPU use --runtime torch")

        onnx = OnnxStudent(directory, onnx_dir, threads, int8=runtime == "onnx-int8")
        scored = (onnx.tag_scores, onnx.confidence_scores())
        return Model(kind, onnx.labels, onnx.config, onnx.tag_ids, max_len, onnx.workers, scored, onnx.max_batch_chars)

    from .training import resolve_device, use_threads

    use_threads(threads)
    torch_device = resolve_device(device)
    if runtime == "int8" and torch_device.type != "cpu":
        raise DistillError("int8 dynamic quantisation runs on the CPU only")
    if kind == "teacher":
        from distill.teacher.ensemble import load_teacher

        model = load_teacher(directory, torch_device, "bf16" if runtime == "bf16" else "fp32")
    elif runtime == "bf16":
        raise DistillError(f"{directory} is a student: the bf16 runtime is for teachers (use torch, int8 or onnx)")
    else:
        from distill.student.model import Student

        model = Student.load(directory, torch_device)
    if runtime == "int8":
        for part in getattr(model, "members", [model]):  # an ensemble's teachers, each
            part.net = quantize_int8(part.net)
    crf = model.net.crf if kind == "student" else model.crf
    return Model(
        kind, model.labels, model.config, model.tag_ids, max_len, scored=(model.tag_scores, crf.confidence_scores())
    )


def quantize_int8(net: torch.nn.Module) -> torch.nn.Module:
    """PyTorch's dynamic INT8 quantisation of a network's Linear and LSTM layers.

    torch marks this eager-mode API and its quantised tensors deprecated, pointing to torchao; it is
    where this runtime's quantised LSTM comes from. Its warnings are silenced because every
    ``--runtime int8`` user would see them and none could act on them; when torch removes the API,
    the int8 tests fail and say so.
    """
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.ao.quantization is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor", UserWarning)
        return torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear, torch.nn.LSTM}, dtype=torch.qint8)
