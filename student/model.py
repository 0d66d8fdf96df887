"""The student: character embedding (+ optional bigram and word-position embeddings) -> BiLSTM ->
dropout -> linear to the teacher's tags -> the shared CRF.

The backward direction reads each sentence reversed within its own length (``lstm_pair``), so
padding never leaks into real positions; an ONNX export makes each layer a forward and a reverse
LSTM node.
:class:`Student` bundles the network with its featurizer and labels, and saves or loads a
student directory (``config.json`` + ``model.safetensors``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from distill.artifacts import load_module_weights, module_weights, read_model_dir, write_model_dir
from distill.crf import CRF
from distill.data import allowed_transitions, label_scheme
from distill.errors import DistillError

from .features import Featurizer
from .lstm_pair import lstm_pair

KIND = "student"


@dataclass
class Architecture:
    """The network's shape, as student-train's settings of the same names give it."""

    embedding_dim: int
    hidden: int
    """LSTM units per direction."""
    layers: int
    dropout: float
    bigram_dim: int
    word_dim: int


class BiLstmCrf(nn.Module):
    def __init__(
        self, arch: Architecture, num_chars: int, num_bigrams: int, use_words: bool, labels: Sequence[str]
    ) -> None:
        super().__init__()
        self.arch = arch
        self.chars = nn.Embedding(num_chars, arch.embedding_dim, padding_idx=0)
        width = arch.embedding_dim
        self.bigrams = nn.Embedding(num_bigrams, arch.bigram_dim, padding_idx=0) if num_bigrams else None
        width += arch.bigram_dim if num_bigrams else 0
        self.words = nn.Embedding(5, arch.word_dim, padding_idx=0) if use_words else None
        width += arch.word_dim if use_words else 0
        self.forward_layers = nn.ModuleList()
        self.backward_layers = nn.ModuleList()
        for layer in range(arch.layers):
            size = width if layer == 0 else 2 * arch.hidden
            self.forward_layers.append(nn.LSTM(size, arch.hidden, batch_first=True))
            self.backward_layers.append(nn.LSTM(size, arch.hidden, batch_first=True))
        self.dropout = nn.Dropout(arch.dropout)
        self.classifier = nn.Linear(2 * arch.hidden, len(labels))
        self.crf = CRF(len(labels), allowed_transitions(labels))

    def forward(
        self,
        chars: torch.Tensor,
        lengths: torch.Tensor,
        bigrams: torch.Tensor | None = None,
        words: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B, T, K] emission scores for [B, T] ids and [B] lengths."""
        parts = [self.chars(chars)]
        if self.bigrams is not None:
            parts.append(self.bigrams(bigrams))
        if self.words is not None:
            parts.append(self.words(words))
        x = self.dropout(torch.cat(parts, dim=-1))  # [B, T, E]
        for fwd, bwd in zip(self.forward_layers, self.backward_layers):
            x = self.dropout(lstm_pair(fwd, bwd, x, lengths))  # [B, T, 2H]
        return self.classifier(x)


@dataclass
class Student:
    """A student ready to tag text."""

    net: BiLstmCrf
    featurizer: Featurizer
    labels: list[str]
    config: dict

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def inputs(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        arrays = self.featurizer.encode(texts)
        return {k: torch.from_numpy(v).to(self.device) for k, v in arrays.items()}

    @torch.no_grad()
    def emissions(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """([B, T, K] emissions, [B, T] mask) for non-empty texts, in eval mode."""
        self.net.eval()
        inputs = self.inputs(texts)
        emissions = self.net(**inputs)
        mask = torch.arange(emissions.shape[1], device=self.device)[None, :] < inputs["lengths"][:, None]
        return emissions, mask

    def tag_ids(self, texts: Sequence[str]) -> list[list[int]]:
        emissions, mask = self.emissions(texts)
        return self.net.crf.decode(emissions, mask)

    def tag_scores(self, texts: Sequence[str]) -> list[tuple[list[int], np.ndarray]]:
        """Each text's label indices with its emissions [L, K], for entity confidences."""
        return self.net.crf.scored_decode(*self.emissions(texts))

    def save(self, directory: Path, extra: dict | None = None) -> dict:
        state = module_weights(self.net)
        config = {
            **self.config,
            "kind": KIND,
            "labels": self.labels,
            "scheme": label_scheme(self.labels),
            "architecture": asdict(self.net.arch),
            "features": self.featurizer.to_config(),
            **(extra or {}),
        }
        return write_model_dir(directory, config, state)

    @classmethod
    def load(cls, directory: Path, device: str | torch.device = "cpu") -> Student:
        config, weights = read_model_dir(directory)
        if config["kind"] != KIND:
            raise DistillError(f"{directory} holds a {config['kind']} model, not a student")
        featurizer = Featurizer.from_config(config["features"])
        net = BiLstmCrf(
            Architecture(**config["architecture"]),
            featurizer.num_chars,
            featurizer.num_bigrams,
            featurizer.jieba,
            config["labels"],
        )
        load_module_weights(net, weights, directory)
        return cls(net.to(device).eval(), featurizer, list(config["labels"]), config)
