"""Masked-character pretraining of a backbone on unlabeled in-domain text.

Domain-adaptive pretraining (Gururangan et al., 2020, "Don't Stop Pretraining"): before
fine-tuning, the encoder goes on learning its masked-language-model task on text like the
text it will tag. The encoder reads one position per character, as the teacher does
(``distill.teacher.charmap``); 15% of the characters are chosen, and of those 80% are replaced by the
mask token, 10% by a random character and 10% kept, and the model predicts them. The output
layer is the (pruned) input embedding; a fresh transform (linear, GELU, LayerNorm) sits under
it, since encoders such as multilingual-e5 ship without their MLM head.

The result is a backbone directory in ``save_pretrained`` form, with the full embedding (the
rows trained here written back into it) and the tokenizer: ``distill teacher-train --model OUT``
fine-tunes it like any other backbone.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from tqdm import tqdm

from distill.artifacts import sha256_file
from distill.checkpoint import Checkpointer, start_run
from distill.data import bucket_batches, plain_texts
from distill.errors import DistillError
from distill.loop import EpochResult, Loop, fit
from distill.training import JsonlLog, Processes, adamw, resolve_device, seed_everything, use_threads

from .backbone import load_backbone, resolve_backbone
from .charmap import CharVocab, build_char_vocab, expand_input_embeddings, prune_input_embeddings
from .config import PretrainConfig
from .model import autocast, use_bf16
from .train import param_groups
from .windows import encode_sentence, make_window_batch

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

RECORD = "pretraining.json"
"""What a finished run writes beside the backbone: settings, corpora, held-out scores."""
IGNORED = -100
"""Target of a position that is not predicted."""


class MaskedCharModel(nn.Module):
    """An encoder and a masked-character head whose output layer is the encoder's input embedding."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        hidden = encoder.config.hidden_size
        self.encoder = encoder
        self.transform = nn.Sequential(
            nn.Linear(hidden, hidden), nn.GELU(), nn.LayerNorm(hidden, eps=encoder.config.layer_norm_eps)
        )
        self.bias = nn.Parameter(torch.zeros(encoder.get_input_embeddings().weight.shape[0]))  # [V]

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[P, L] ids (masked), [P, L] attention, [P, L] targets (IGNORED where not predicted) ->
        (mean cross-entropy, [M] logits' argmax) over the M predicted positions."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [P, L, H]
        chosen = targets != IGNORED
        picked = self.transform(hidden[chosen])  # [M, H]
        logits = picked @ self.encoder.get_input_embeddings().weight.T + self.bias  # [M, V]
        return nn.functional.cross_entropy(logits.float(), targets[chosen]), logits.argmax(-1)


@dataclass(frozen=True)
class Masker:
    """Chooses the characters to predict and corrupts them (BERT's 80/10/10)."""

    specials: dict[str, int]
    mask_row: int
    char_rows: torch.Tensor
    """[C]: rows a random replacement is drawn from (characters, no specials)."""
    rate: float

    def __call__(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[P, L] ids and attention -> ([P, L] corrupted ids, [P, L] targets)."""
        candidates = attention_mask.bool() & (input_ids != self.specials["cls"]) & (input_ids != self.specials["sep"])
        chosen = candidates & (torch.rand(input_ids.shape, generator=generator) < self.rate)
        if not chosen.any():  # a short batch can draw none: predict its first character
            chosen.view(-1)[candidates.view(-1).nonzero()[0]] = True
        roll = torch.rand(input_ids.shape, generator=generator)
        drawn = self.char_rows[torch.randint(len(self.char_rows), input_ids.shape, generator=generator)]
        corrupted = torch.where(chosen & (roll < 0.8), self.mask_row, input_ids)
        corrupted = torch.where(chosen & (roll >= 0.8) & (roll < 0.9), drawn, corrupted)
        return corrupted, torch.where(chosen, input_ids, IGNORED)


def corpus_texts(cfg: PretrainConfig) -> list[str]:
    """The sentences to pretrain on: each --unlabeled file's, then the training split's of --data."""
    texts = plain_texts(cfg.unlabeled, cfg.data, cfg.max_len)
    if not texts:
        raise DistillError("nothing to pretrain on: give --unlabeled text files or --data")
    return texts[: cfg.max_sentences] if cfg.max_sentences else texts


def split_held_out(texts: Sequence[str], count: int) -> tuple[list[str], list[str]]:
    """(training texts, every n-th text held out so that ``count`` are), the held out spread over the corpus."""
    if count <= 0 or len(texts) < 2 * count:
        return list(texts), []
    step = len(texts) // count
    held = set(range(step - 1, step * count, step))
    return [t for i, t in enumerate(texts) if i not in held], [texts[i] for i in sorted(held)]


def with_mask_row(vocab: CharVocab, tokenizer: PreTrainedTokenizerBase) -> tuple[CharVocab, int]:
    """``vocab`` with a row for the tokenizer's mask token added (its pruned row is returned)."""
    if tokenizer.mask_token_id is None:
        raise DistillError("the backbone's tokenizer has no mask token: masked-character pretraining needs one")
    row = len(vocab.backbone_ids)
    return CharVocab(vocab.char_to_id, [*vocab.backbone_ids, tokenizer.mask_token_id], vocab.specials), row


@torch.no_grad()
def score_held_out(
    model: MaskedCharModel,
    batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    device: torch.device,
    bf16: bool,
) -> dict:
    """Masked-character cross-entropy and accuracy on fixed, pre-masked held-out batches."""
    model.eval()
    loss_sum, correct, total = 0.0, 0, 0
    for input_ids, attention, targets in batches:
        with autocast(device, bf16):
            loss, predicted = model(input_ids.to(device), attention.to(device), targets.to(device))
        gold = targets[targets != IGNORED].to(device)
        loss_sum += loss.item() * len(gold)
        correct += int((predicted == gold).sum())
        total += len(gold)
    model.train()
    return {"loss": loss_sum / max(total, 1), "accuracy": correct / max(total, 1), "predicted": total}


@dataclass
class _Run:
    """One pretraining run: the backbone made ready (its embedding pruned to the corpus's characters
    plus a mask row, under a masked-character head) and what the loop asks of it."""

    cfg: PretrainConfig
    device: torch.device
    model: MaskedCharModel
    vocab: CharVocab
    masker: Masker
    tokenizer: object
    full_embedding: torch.Tensor
    """[V_full, H]: the backbone's whole input embedding, to write the trained rows back into."""
    train_texts: list[str]
    held_texts: list[str]
    bf16: bool = False
    generator: torch.Generator = field(default_factory=torch.Generator)

    @property
    def lengths(self) -> list[int]:
        return [len(t) for t in self.train_texts]

    def windows(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input ids, attention mask) of sentences, one position per character."""
        encoded = [encode_sentence(t, self.vocab.tokenize, self.cfg.max_len, 0) for t in texts]
        batch = make_window_batch(encoded, self.vocab.specials)
        return batch.input_ids, batch.attention_mask

    def held_out(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The held-out sentences in batches, masked once, the same way after every epoch."""
        fixed = torch.Generator().manual_seed(self.cfg.seed)
        out = []
        for index in bucket_batches([len(t) for t in self.held_texts], self.cfg.eval_batch_size):
            input_ids, attention = self.windows([self.held_texts[i] for i in index])
            corrupted, targets = self.masker(input_ids, attention, fixed)
            out.append((corrupted, attention, targets))
        return out

    def loop(
        self, optimizer: torch.optim.Optimizer, scheduler: object, checkpoints: Checkpointer, log: JsonlLog
    ) -> Loop:
        cfg, lengths, held = self.cfg, self.lengths, self.held_out()

        def batches(epoch: int) -> list[list[int]]:
            return bucket_batches(
                lengths, cfg.batch_size, max_tokens=cfg.max_tokens, shuffle=True, seed=cfg.seed + epoch
            )

        def loss(batch: list[int], epoch: int, step: int) -> tuple[torch.Tensor, int]:
            self.generator.manual_seed(cfg.seed * 1_000_003 + epoch * 100_003 + step)  # resumable masks
            input_ids, attention = self.windows([self.train_texts[i] for i in batch])
            corrupted, targets = self.masker(input_ids, attention, self.generator)
            with autocast(self.device, self.bf16):
                value, _ = self.model(corrupted.to(self.device), attention.to(self.device), targets.to(self.device))
            return value, sum(lengths[i] for i in batch)

        def end_epoch(epoch: int) -> EpochResult:
            scores = score_held_out(self.model, held, self.device, self.bf16) if held else None
            summary = f"held-out loss {scores['loss']:.4f}, accuracy {scores['accuracy']:.4f}" if scores else ""
            return EpochResult({"held_out": scores}, summary=summary)

        return Loop(
            "pretrain",
            cfg.out,
            cfg.epochs,
            self.model,
            optimizer,
            checkpoints,
            log,
            batches,
            loss,
            end_epoch,
            scheduler=scheduler,
            max_grad_norm=cfg.max_grad_norm,
            checkpoint_every=cfg.checkpoint_every,
        )

    def save(self, log: JsonlLog) -> dict:
        """The backbone in save_pretrained form, its full vocabulary restored with the trained rows,
        and the run's record."""
        cfg, encoder = self.cfg, self.model.encoder
        encoder.set_input_embeddings(expand_input_embeddings(encoder, self.vocab, self.full_embedding))
        encoder.save_pretrained(cfg.out, safe_serialization=True)
        self.tokenizer.save_pretrained(cfg.out)
        result = {
            "backbone": cfg.model,
            "settings": cfg.as_record(),
            "corpus": {
                "files": {path: sha256_file(Path(path)) for path in cfg.unlabeled},
                "data": cfg.data,
                "sentences": len(self.train_texts),
                "characters": sum(self.lengths),
                "held_out_sentences": len(self.held_texts),
            },
            "encoder_arithmetic": "bf16" if self.bf16 else "fp32",
            "epochs": log.records(),
            "training_complete": True,
        }
        (cfg.out / RECORD).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return result


def _start(cfg: PretrainConfig, texts: list[str], device: torch.device) -> _Run:
    from transformers import AutoModel, AutoTokenizer

    backbone = resolve_backbone(cfg.model)
    tokenizer = load_backbone(AutoTokenizer, backbone)
    # the corpus's characters alone: masked-character prediction is a softmax over the kept rows
    vocab, unknown = build_char_vocab(texts, tokenizer, every_character=False)
    if unknown:
        tqdm.write(f"{sum(unknown.values())} characters ({len(unknown)} distinct) have no embedding: read as unknown")
    vocab, mask_row = with_mask_row(vocab, tokenizer)
    encoder = load_backbone(AutoModel, backbone)
    full_embedding = encoder.get_input_embeddings().weight.detach().clone()  # [V_full, H]
    prune_input_embeddings(encoder, vocab)
    model = MaskedCharModel(encoder).to(device)
    char_rows = torch.tensor(sorted(set(vocab.char_to_id.values())), dtype=torch.long)
    masker = Masker(vocab.specials, mask_row, char_rows, cfg.mask_rate)
    train_texts, held_texts = split_held_out(texts, cfg.held_out)
    return _Run(cfg, device, model, vocab, masker, tokenizer, full_embedding, train_texts, held_texts)


def pretrain(cfg: PretrainConfig) -> dict:
    """Pretrain ``cfg.model`` on the corpus, write the backbone to ``cfg.out``, and return the record."""
    from transformers import get_linear_schedule_with_warmup

    if Processes.from_env().distributed:
        raise DistillError("teacher-pretrain runs in one process: start it without torchrun")
    device = resolve_device(cfg.device)
    how = start_run(cfg.out, cfg.resume, cfg.overwrite, record=RECORD)
    if how == "complete":
        tqdm.write(f"{cfg.out} holds a finished pretraining run: nothing to resume")
        return json.loads((cfg.out / RECORD).read_text(encoding="utf-8"))
    seed_everything(cfg.seed)
    use_threads(cfg.threads)
    run = _start(cfg, corpus_texts(cfg), device)
    steps = len(bucket_batches(run.lengths, cfg.batch_size, max_tokens=cfg.max_tokens)) * cfg.epochs
    optimizer = adamw(param_groups(run.model, cfg.lr, cfg.head_lr, cfg.weight_decay))
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(cfg.warmup * steps), steps)
    checkpoints = Checkpointer(cfg.out, run.model, optimizer, scheduler)
    progress = checkpoints.progress(how, tqdm.write)
    if "bf16" not in progress.choices:
        progress.choices["bf16"] = use_bf16(cfg.precision, device)
    run.bf16 = progress.choices["bf16"]
    tqdm.write(
        f"pretraining on {len(run.train_texts)} sentences ({sum(run.lengths)} characters), "
        f"{len(run.held_texts)} held out; {len(set(run.vocab.char_to_id.values()))} characters; "
        f"{'bf16 autocast' if run.bf16 else 'float32'} on {device}"
    )
    log = JsonlLog(cfg.out / "pretrain_log.jsonl", keep_before_epoch=progress.epoch)
    fit(run.loop(optimizer, scheduler, checkpoints, log), progress)
    result = run.save(log)
    checkpoints.clear()
    return result
