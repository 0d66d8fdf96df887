"""The student served without torch: onnxruntime for the network, numpy for the Viterbi decode.

Imports numpy, onnxruntime, safetensors and this project's ``data`` and ``distill`` core only
(never torch, transformers or seqeval), so a deployment process stays small.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from distill.artifacts import WEIGHTS, read_config, sha256_file
from distill.confidence import CrfScores
from distill.cpus import usable_cores
from distill.data import allowed_transitions
from distill.errors import DistillError
from distill.viterbi import Viterbi, transition_penalties

from .features import Featurizer

ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model-int8.onnx"
ONNX_META = "onnx.json"


class OnnxStudent:
    """A student directory with an ONNX export (``distill export DIR --format onnx``).

    ``int8`` runs the export's INT8-quantised graph instead of the float one. ``threads`` cores
    are used (0: all this process may use): ``intra_op_threads`` (1) onnxruntime threads per call,
    and ``workers`` calls at once on different batches, since one batch of a BiLSTM is little work
    to split (as fast or faster on a 2-core CPU: ``benchmarks/results/onnx-threads.md``).
    """

    max_batch_chars = 1024
    """Padded characters in flight at once, over all workers: half the torch runtimes' cap
    (:data:`distill.tagging.MAX_BATCH_CHARS`). A deployment process is sized by its peak, which a
    batched pass's LSTM activations set; this budget lowers it at about the same throughput, where
    a smaller one is slower (``benchmarks/results/resume/teacher-amd/batch-chars``)."""

    def __init__(
        self,
        directory: Path,
        onnx_dir: Path | None = None,
        threads: int = 0,
        int8: bool = False,
        intra_op_threads: int = 1,
    ) -> None:
        import onnxruntime
        from safetensors import safe_open

        directory = Path(directory)
        onnx_dir = Path(onnx_dir) if onnx_dir is not None else directory
        self.config = read_config(directory)
        if self.config["kind"] != "student":
            raise DistillError(
                f"{directory} holds a {self.config['kind']} model: only students run on onnxruntime; "
                "run it with --runtime torch, int8 or bf16"
            )
        meta_path, model_path = onnx_dir / ONNX_META, onnx_dir / ONNX_FILE
        if not meta_path.is_file() or not model_path.is_file():
            raise DistillError(f"{onnx_dir} has no ONNX export: run distill export {directory} --format onnx")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        graph = meta
        if int8:
            if "int8" not in meta:
                raise DistillError(f"{meta_path} lists no INT8 export: run distill export {directory} again")
            graph = meta["int8"]
            model_path = onnx_dir / graph["file"]
        if sha256_file(model_path) != graph["sha256"]:
            raise DistillError(f"{model_path} does not match the checksum in {meta_path}: export again")
        if meta["weights_sha256"] != self.config["weights_sha256"]:
            raise DistillError(f"{model_path} was exported from other weights than {directory}'s: export again")
        self.labels = list(self.config["labels"])
        self.featurizer = Featurizer.from_config(self.config["features"])
        self.inputs = list(meta["inputs"])
        options = onnxruntime.SessionOptions()
        # Memory patterns pre-plan one buffer per input shape; with a new shape every batch they
        # only raise the peak (benchmarks/results/memory.md).
        options.enable_mem_pattern = False
        options.intra_op_num_threads = intra_op_threads
        self.workers = max(1, (threads or usable_cores()) // intra_op_threads)
        self.session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        with safe_open(str(directory / WEIGHTS), "np") as weights:
            scores = [
                weights.get_tensor(f"crf.{name}") for name in ("start_transitions", "transitions", "end_transitions")
            ]
        penalty = transition_penalties(allowed_transitions(self.labels), len(self.labels))
        self.viterbi = Viterbi(scores[0] + penalty[0], scores[1] + penalty[1:-1], scores[2] + penalty[-1])

    def emissions(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """([B, T, K] emissions, [B] lengths) for non-empty texts."""
        arrays = self.featurizer.encode(texts)
        (emissions,) = self.session.run(None, {name: arrays[name] for name in self.inputs})
        return emissions, arrays["lengths"]

    def tag_scores(self, texts: Sequence[str]) -> list[tuple[list[int], np.ndarray]]:
        """Each text's label indices with its emissions [L, K], for entity confidences."""
        emissions, lengths = self.emissions(texts)
        paths = self.viterbi.decode(emissions, lengths)
        return [(path, emissions[i, : len(path)]) for i, path in enumerate(paths)]

    def confidence_scores(self) -> CrfScores:
        """The scores decoding uses (constraints included)."""
        return CrfScores(self.viterbi.start, self.viterbi.transitions, self.viterbi.end)

    def tag_ids(self, texts: Sequence[str]) -> list[list[int]]:
        emissions, lengths = self.emissions(texts)
        return self.viterbi.decode(emissions, lengths)
