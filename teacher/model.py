"""The BERT-CRF teacher: any HuggingFace encoder + dropout + linear to the tags + the shared CRF.

:class:`BertCrf` is the network; :class:`Teacher` bundles it with what turns text into its input
(the character vocabulary, the window plan) and the labels, and saves or loads a teacher
directory (``config.json``, ``model.safetensors``, the tokenizer files).
"""

from __future__ import annotations

import functools
import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from distill.artifacts import (
    load_module_weights,
    member_dirs,
    module_weights,
    read_config,
    read_model_dir,
    write_model_dir,
)
from distill.crf import CRF
from distill.data import allowed_transitions, label_scheme
from distill.errors import DistillError

from .charmap import CharVocab
from .config import Precision
from .piecemap import SEGMENTS, PieceVocab
from .windows import EncodedSentence, WindowBatch, encode_sentence, make_window_batch, stitch

if typing.TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

KIND = "teacher"


def _drop_pooler(encoder: nn.Module) -> nn.Module:
    # Tagging reads every position; a pooler would be an unused parameter (and DDP objects to those).
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return encoder


class BertCrf(nn.Module):
    """Encoder -> dropout -> linear -> CRF, over windows of text.

    With ``pieces`` the encoder reads the tokenizer's pieces (``distill.teacher.piecemap``) and a character
    adds a learned score per tag for its place in its piece to the piece's emission.
    """

    def __init__(
        self, encoder: nn.Module, num_labels: int, labels: Sequence[str], dropout: float = 0.1, pieces: bool = False
    ) -> None:
        super().__init__()
        self.encoder = _drop_pooler(encoder)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)
        self.crf = CRF(num_labels, allowed_transitions(labels))
        self.segment_scores = nn.Parameter(torch.zeros(SEGMENTS, num_labels)) if pieces else None  # [4, K]

    def emissions(self, batch: WindowBatch) -> torch.Tensor:
        """[B, T, K] float32 emission scores of each sentence's characters."""
        hidden = self.encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        width = batch.input_ids.shape[1] - 2
        window_scores = self.classifier(self.dropout(hidden[:, 1 : width + 1])).float()  # [P, W, K]
        emissions = stitch(window_scores, batch)  # [B, T, K]
        if self.segment_scores is not None:
            emissions = emissions + self.segment_scores[batch.segments] * batch.mask[..., None]
        return emissions

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        gather: torch.Tensor,
        mask: torch.Tensor,
        segments: torch.Tensor,
        tags: torch.Tensor,
    ) -> torch.Tensor:
        """Mean negative log-likelihood of gold ``tags`` [B, T] (the training entry point, for DDP)."""
        emissions = self.emissions(WindowBatch(input_ids, attention_mask, gather, mask, segments))
        return self.crf.nll(emissions, tags, mask, reduction="mean")


def encoder_from_config(encoder_config: dict) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model(**encoder_config)
    return _drop_pooler(AutoModel.from_config(config))


@dataclass
class Teacher:
    """A teacher ready to tag text: network, character vocabulary, labels and window plan."""

    net: BertCrf
    vocab: CharVocab
    labels: list[str]
    window: int
    overlap: int
    config: dict
    bf16: bool = False
    """Run the encoder under bf16 autocast (see :func:`use_bf16`)."""

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def batch(self, texts: Sequence[str]) -> WindowBatch:
        return make_window_batch([self.encode(t) for t in texts], self.vocab.specials)

    def encode(self, text: str) -> EncodedSentence:
        """A non-empty text as encoder windows."""
        return encode_sentence(text, self.vocab.tokenize, self.window, self.overlap)

    @torch.no_grad()
    def emissions(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """([B, T, K] emissions, [B, T] mask) for non-empty texts, in eval mode on the teacher's device."""
        self.net.eval()
        batch = self.batch(texts).to(self.device)
        with autocast(self.device, self.bf16):
            emissions = self.net.emissions(batch)
        return emissions.float(), batch.mask

    @property
    def crf(self) -> CRF:
        return self.net.crf

    def tag_ids(self, texts: Sequence[str]) -> list[list[int]]:
        emissions, mask = self.emissions(texts)
        return self.crf.decode(emissions, mask)

    def tag_scores(self, texts: Sequence[str]) -> list[tuple[list[int], np.ndarray]]:
        """Each text's label indices with its emissions [L, K], for entity confidences."""
        return self.crf.scored_decode(*self.emissions(texts))

    def save(
        self, directory: Path, extra: dict | None = None, tokenizer: PreTrainedTokenizerBase | None = None
    ) -> dict:
        """Write the teacher directory; ``extra`` (training arguments, metrics) goes into config.json."""
        state = module_weights(self.net)
        config = {
            **self.config,
            "kind": KIND,
            "labels": self.labels,
            "scheme": label_scheme(self.labels),
            "window": self.window,
            "overlap": self.overlap,
            "input": "pieces" if isinstance(self.vocab, PieceVocab) else "chars",
            "char_vocab": self.vocab.to_config(),
            "encoder_config": self.net.encoder.config.to_dict(),
            # Where the character embeddings are, for a student that starts from them.
            "input_embedding": self.input_embedding_name(),
            **(extra or {}),
        }
        config["encoder_config"].pop("_name_or_path", None)
        written = write_model_dir(directory, config, state)
        if tokenizer is not None:
            tokenizer.save_pretrained(directory)
        return written

    def input_embedding_name(self) -> str:
        embedding = self.net.encoder.get_input_embeddings()
        return next(f"{name}.weight" for name, module in self.net.named_modules() if module is embedding)

    @classmethod
    def load(cls, directory: Path, device: str | torch.device = "cpu", precision: str = "fp32") -> Teacher:
        """Load a teacher directory onto ``device``, to run in ``precision`` (one of ``PRECISIONS``)."""
        if member_dirs(directory, read_config(directory)):
            raise DistillError(
                f"{directory} is an ensemble of teachers: where one teacher's network is needed, give one of its "
                "member-N folders"
            )
        config, weights = read_model_dir(directory)
        if config["kind"] != KIND:
            raise DistillError(f"{directory} holds a {config['kind']} model, not a teacher")
        vocab = read_vocab(directory, config)
        encoder = encoder_from_config(dict(config["encoder_config"]))
        pieces = isinstance(vocab, PieceVocab)
        net = BertCrf(encoder, len(config["labels"]), config["labels"], config.get("dropout", 0.1), pieces)
        load_module_weights(net, weights, directory)
        net.to(device).eval()
        labels, window, overlap = list(config["labels"]), int(config["window"]), int(config["overlap"])
        return cls(net, vocab, labels, window, overlap, config, use_bf16(precision, torch.device(device)))


def read_vocab(directory: Path, config: dict) -> CharVocab:
    """A teacher's input vocabulary; one that reads pieces comes with the directory's tokenizer."""
    if config.get("input", "chars") != "pieces":
        return CharVocab.from_config(config["char_vocab"])
    from transformers import AutoTokenizer

    return PieceVocab.from_config(config["char_vocab"], AutoTokenizer.from_pretrained(str(directory)))


PRECISIONS = typing.get_args(Precision)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: CUDA with bf16, or a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, so probed with care
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


PRECISION_RECORD = "precision.json"
"""Where a machine's timing of bf16 against float32 is kept (in the backbone cache directory), so
that every later ``--precision auto`` on it chooses the same: timings on a busy machine vary."""


@functools.cache
def _bf16_faster_on_cpu() -> bool:
    """Whether bf16 beat float32 on this CPU: its recorded timing, else timed now and recorded."""
    import json

    from distill.environment import describe_environment

    from .backbone import cache_root

    env = describe_environment()
    key = f"{env['cpu']} | {env['cores']} cores | torch {env['versions'].get('torch')}"
    path = cache_root() / PRECISION_RECORD
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    if not isinstance(recorded, dict):
        recorded = {}
    if key not in recorded:
        recorded[key] = _time_bf16_against_fp32()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(recorded, indent=1) + "\n", encoding="utf-8")
        except OSError:
            pass  # a read-only home: the choice holds for this process only
    return bool(recorded[key])


def _time_bf16_against_fp32() -> bool:
    """Time one encoder-sized linear layer (384 -> 1536 over 512 positions) both ways, best of 5."""
    layer, x = nn.Linear(384, 1536), torch.randn(512, 384)

    def best_seconds(bf16: bool) -> float:
        times = []
        for _ in range(7):
            started = time.perf_counter()
            with torch.no_grad(), autocast(torch.device("cpu"), bf16):
                layer(x)
            times.append(time.perf_counter() - started)
        return min(times[2:])  # the first two warm the kernels up

    return best_seconds(True) < 0.8 * best_seconds(False)


def bf16_faster(device: torch.device) -> bool:
    """Whether bf16 autocast beats float32 on ``device``: native bf16 on CUDA; on a CPU, native
    bf16 and a linear layer that measures faster under autocast (timed once per machine, ~0.1 s,
    and recorded in ``PRECISION_RECORD``: delete it to time again).

    Native support alone does not decide it: CPUs with AVX512-BF16 differ on whether bf16 is
    faster for this encoder (``benchmarks/results/precision.md``), so it is timed.
    """
    if not native_bf16(device):
        return False
    return device.type == "cuda" or _bf16_faster_on_cpu()


def precision_reason(precision: str, device: torch.device, bf16: bool) -> str:
    """Why a run computes as it does, for its output and its record."""
    if precision != "auto":
        return f"--precision {precision}"
    if not native_bf16(device):
        return f"auto: {device.type} has no native bf16"
    if device.type == "cuda":
        return "auto: native bf16 on CUDA"
    from .backbone import cache_root

    speed = "faster" if bf16 else "no faster"
    return f"auto: native bf16, timed {speed} than float32 on this CPU (recorded in {cache_root() / PRECISION_RECORD})"


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether a teacher on ``device`` runs its encoder under bf16 autocast for ``precision``."""
    if precision not in PRECISIONS:
        raise DistillError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return bf16_faster(device)
    return precision == "bf16"


def autocast(device: torch.device, bf16: bool) -> torch.autocast:
    """bf16 autocast of the encoder on ``device`` when ``bf16``; a no-op otherwise."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
