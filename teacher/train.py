"""Fine-tuning the BERT-CRF teacher.

The loop is plain: length-bucketed batches, AdamW with separate learning rates for the encoder
and the head (linear + CRF) and no weight decay on biases and LayerNorm, linear warm-up then
decay, gradient clipping, dev F1 after every epoch, the best epoch kept, early stopping.
Under ``torchrun`` it trains with DistributedDataParallel (gloo on CPU, nccl on CUDA); rank 0
evaluates and writes.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from distill.artifacts import fingerprint, read_config
from distill.checkpoint import RUN_STARTS, Checkpointer, Progress, start_run
from distill.data import (
    Dataset,
    Sentence,
    bucket_batches,
    convert_tags,
    default_unlabeled_path,
    label_set,
    load_dataset,
    pad,
    read_raw_text,
)
from distill.data.schemes import tags_to_spans
from distill.errors import DistillError
from distill.evaluation import evaluate
from distill.loop import EpochResult, Loop, fit
from distill.training import (
    JsonlLog,
    Processes,
    adamw,
    seed_everything,
    use_threads,
)

from .backbone import DEFAULT_BACKBONE, load_backbone, resolve_backbone
from .charmap import CharVocab, build_char_vocab, prune_input_embeddings
from .config import TeacherTrainConfig
from .model import BertCrf, Teacher, autocast, precision_reason, use_bf16
from .piecemap import PieceVocab, build_piece_vocab
from .windows import encode_sentence, make_window_batch

_LAYER_INDEX = re.compile(r"\.layers?\.(\d+)\.")
"""The index in a transformer layer's parameter name (``encoder.encoder.layer.3.attention...``)."""


def _encoder_depth(name: str, num_layers: int) -> int:
    """Depth of an encoder parameter: 0 for the embeddings, i + 1 for transformer layer i, and
    ``num_layers`` for anything else (the top layer's depth)."""
    if ".embeddings." in name:
        return 0
    layer = _LAYER_INDEX.search(name)
    return int(layer.group(1)) + 1 if layer else num_layers


def param_groups(
    net: torch.nn.Module, lr: float, head_lr: float, weight_decay: float, layer_lr_decay: float = 1.0
) -> list[dict]:
    """AdamW groups of a network whose encoder is ``net.encoder`` and whose other parameters are its
    head: the head at ``head_lr``; the encoder at ``lr * layer_lr_decay ** (L - d)`` for depth d of L
    layers (the top layer at ``lr``, the embeddings at ``lr * layer_lr_decay ** L``); weight decay
    ``weight_decay``, none on biases, LayerNorm and the CRF."""
    num_layers = net.encoder.config.num_hidden_layers
    groups: dict[tuple[bool, bool, int], list] = {}
    for name, param in net.named_parameters():
        head = not name.startswith("encoder.")
        decay = param.ndim > 1 and "LayerNorm" not in name and "layer_norm" not in name and "crf." not in name
        depth = num_layers if head else _encoder_depth(name, num_layers)
        groups.setdefault((head, decay, depth), []).append(param)
    return [
        {
            "params": params,
            "lr": head_lr if head else lr * layer_lr_decay ** (num_layers - depth),
            "weight_decay": weight_decay if decay else 0.0,
        }
        for (head, decay, depth), params in groups.items()
    ]


def vocabulary_texts(dataset: Dataset, unlabeled: list[str]) -> list[str]:
    """The texts a new teacher prunes its embedding to: every split of ``dataset`` and the raw text files."""
    texts = []
    for split in ("train", "dev", "test"):
        if dataset.has(split):
            texts.extend(s.text for s in dataset.sentences(split))
    for path in unlabeled:
        texts.extend(s.text for s in read_raw_text(path))
    return texts


Start = tuple[BertCrf, CharVocab, object, int, dict]
"""Where training starts: (network, character vocabulary, tokenizer, window, origin for config.json)."""


def _from_backbone(cfg: TeacherTrainConfig, texts: list[str], labels: list[str], say: Callable[[str], None]) -> Start:
    """A new network on ``cfg.model``, its input embeddings pruned to the characters of ``texts``;
    with ``cfg.encoder_from``, on that teacher's backbone and with its encoder."""
    from transformers import AutoModel, AutoTokenizer

    donor = _encoder_donor(cfg) if cfg.encoder_from else None
    model = donor.config["backbone"] if donor else cfg.model
    backbone = resolve_backbone(model)
    tokenizer = load_backbone(AutoTokenizer, backbone)
    vocab, unknown = (build_piece_vocab if cfg.input == "pieces" else build_char_vocab)(texts, tokenizer)
    if unknown:
        say(f"{sum(unknown.values())} characters ({len(unknown)} distinct) have no embedding and read as unknown")
    encoder = load_backbone(AutoModel, backbone)
    full_rows = encoder.get_input_embeddings().weight.shape[0]
    prune_input_embeddings(encoder, vocab)
    say(f"vocabulary pruned from {full_rows} to {len(vocab.backbone_ids)} embedding rows")
    window = cfg.window or (encoder.config.max_position_embeddings - 2)
    net = BertCrf(encoder, len(labels), labels, cfg.dropout, pieces=isinstance(vocab, PieceVocab))
    origin: dict = {"backbone": model}
    if donor:
        taken = _take_encoder(net, vocab, donor)
        say(f"encoder from {cfg.encoder_from}: {taken} of {len(vocab.backbone_ids)} embedding rows trained there")
        origin["encoder_from"] = {"path": str(cfg.encoder_from), "fingerprint": fingerprint(donor.config)}
    return net, vocab, tokenizer, window, origin


def _encoder_donor(cfg: TeacherTrainConfig) -> Teacher:
    if cfg.model != DEFAULT_BACKBONE:
        raise DistillError("--encoder-from and --model both name a backbone: give one (the teacher has its backbone)")
    return Teacher.load(cfg.encoder_from)


def _take_encoder(net: BertCrf, vocab: CharVocab, donor: Teacher) -> int:
    """Copy ``donor``'s encoder into ``net``'s; returns how many embedding rows came from it.

    Both encoders are pruned copies of one backbone: a row of ``net``'s input embedding takes the
    donor's row for the same backbone id where the donor has one, and keeps the backbone's otherwise.
    """
    embedding = donor.input_embedding_name().removeprefix("encoder.")
    state = {k.removeprefix("encoder."): v for k, v in donor.net.state_dict().items() if k.startswith("encoder.")}
    donor_rows = state.pop(embedding)  # [V_donor, H]
    missing, unexpected = net.encoder.load_state_dict(state, strict=False)
    if missing != [embedding] or unexpected:
        raise DistillError(
            f"the encoder of {donor.config['backbone']} does not fit this backbone's (missing {missing}, "
            f"unexpected {unexpected})"
        )
    row_in_donor = {backbone_id: row for row, backbone_id in enumerate(donor.vocab.backbone_ids)}
    pairs = [(row, row_in_donor[b]) for row, b in enumerate(vocab.backbone_ids) if b in row_in_donor]
    rows, from_rows = (torch.tensor(list(column), dtype=torch.long) for column in zip(*pairs))
    with torch.no_grad():
        net.encoder.get_input_embeddings().weight[rows] = donor_rows[from_rows]
    return len(pairs)


def _from_teacher(cfg: TeacherTrainConfig, texts: list[str], labels: list[str], say: Callable[[str], None]) -> Start:
    """The network of the teacher in ``cfg.init_from``, to train further (more epochs, or more data
    with the same labels): its encoder, head, CRF, vocabulary and window. Characters of ``texts``
    it has no row for read as unknown, as they do when it tags."""
    from transformers import AutoTokenizer

    if cfg.model != DEFAULT_BACKBONE:
        raise DistillError("--init-from and --model both say where to start: give one (the teacher has its backbone)")
    start = Teacher.load(cfg.init_from)
    reads = "pieces" if isinstance(start.vocab, PieceVocab) else "chars"
    if cfg.input not in (None, reads):
        raise DistillError(f"{cfg.init_from} reads {reads}: a teacher trained further keeps its --input")
    if start.labels != labels:
        raise DistillError(
            f"{cfg.init_from} tags {' '.join(start.labels)}; this data and --scheme need {' '.join(labels)}: "
            "a teacher can only continue on its own label set"
        )
    unknown = start.vocab.unknown(texts)
    if unknown:
        say(f"{sum(unknown.values())} characters ({len(unknown)} distinct) are not in {cfg.init_from}'s vocabulary")
    start.net.dropout.p = cfg.dropout
    origin = {
        "backbone": start.config["backbone"],
        "initialised_from": {"path": str(cfg.init_from), "fingerprint": fingerprint(start.config)},
    }
    tokenizer = load_backbone(AutoTokenizer, str(cfg.init_from))
    return start.net.train(), start.vocab, tokenizer, cfg.window or start.window, origin


def train_teacher(cfg: TeacherTrainConfig) -> dict:
    """Train, keep the best epoch in ``cfg.out``, and return its metrics."""
    from transformers import get_linear_schedule_with_warmup

    procs = Processes.from_env()
    device = procs.start(cfg.device)
    how = procs.broadcast_choice(start_run(cfg.out, cfg.resume, cfg.overwrite) if procs.main else "", RUN_STARTS)
    if how == "complete":
        tqdm.write(f"{cfg.out} holds a finished teacher: nothing to resume")
        procs.stop()
        return read_config(cfg.out)["metrics"]
    seed_everything(cfg.seed)
    use_threads(cfg.threads)
    say = tqdm.write if procs.main else (lambda *_: None)
    dataset, train, dev, labels = _labeled_data(cfg)
    unlabeled = cfg.unlabeled if cfg.unlabeled else ([str(default_unlabeled_path())] if cfg.data is None else [])
    if cfg.init_from and cfg.encoder_from:
        raise DistillError("--init-from and --encoder-from both say where to start: give one")
    start = _from_teacher if cfg.init_from else _from_backbone
    net, vocab, tokenizer, window, origin = start(cfg, vocabulary_texts(dataset, unlabeled), labels, say)
    net = net.to(device)
    overlap = min(cfg.overlap, window // 2)
    model = net
    if procs.distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    run = _Run(cfg, procs, device, model, train, dev, labels, tokenizer)
    run.encode(vocab, window, overlap)
    steps = run.steps_per_epoch * cfg.epochs
    optimizer = adamw(param_groups(net, cfg.lr, cfg.head_lr, cfg.weight_decay, cfg.layer_lr_decay))
    run.scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(cfg.warmup * steps), steps)
    checkpoints = Checkpointer(cfg.out, net, optimizer, run.scheduler, writer=procs.main)
    progress = checkpoints.progress(how, say)
    if cfg.precision != "auto" or "bf16" not in progress.choices:
        # auto times bf16 in each process, and a busy machine can time it either way: every process
        # takes rank 0's choice, and a resumed run keeps the one it started with.
        progress.choices["bf16"] = procs.broadcast_flag(use_bf16(cfg.precision, device))
    run.bf16 = progress.choices["bf16"]
    resumed = how == "resume" and cfg.precision == "auto"
    run.reason = "kept from the run's start" if resumed else precision_reason(cfg.precision, device, run.bf16)
    say(f"encoder arithmetic: {'bf16 autocast' if run.bf16 else 'float32'} on {device} ({run.reason})")
    run.teacher = Teacher(net, vocab, labels, window, overlap, {**origin, "dropout": cfg.dropout}, run.bf16)
    log = JsonlLog(cfg.out / "train_log.jsonl", keep_before_epoch=progress.epoch) if procs.main else None
    best = fit(run.loop(net, optimizer, checkpoints, log), progress).best
    procs.barrier()
    if procs.main:
        run.finish(dataset, best)
        checkpoints.clear()
    procs.stop()
    return best


def _labeled_data(cfg: TeacherTrainConfig) -> tuple[Dataset, list[Sentence], list[Sentence], list[str]]:
    """(the dataset, its non-empty training sentences, its dev sentences, the labels to learn)."""
    dataset = load_dataset(cfg.data)
    train = [s for s in dataset.load_labeled("train", "training a teacher") if len(s) > 0]
    if cfg.max_train:
        train = train[: cfg.max_train]
    dev = dataset.load_labeled("dev", "choosing the best epoch")
    types = sorted({span.type for s in train for span in tags_to_spans(s.tags)})
    if not types:
        raise DistillError(f"the training data of {dataset.name} has no entities to learn")
    return dataset, train, dev, label_set(types, cfg.scheme)


@dataclass
class _Run:
    """One teacher's training: what the loop asks of it each batch and each epoch."""

    cfg: TeacherTrainConfig
    procs: Processes
    device: torch.device
    model: torch.nn.Module
    """The network, or DistributedDataParallel around it."""
    train: list[Sentence]
    dev: list[Sentence]
    labels: list[str]
    tokenizer: object
    teacher: Teacher | None = None
    vocab: CharVocab | PieceVocab | None = None
    scheduler: object = None
    bf16: bool = False
    reason: str = ""
    """Why the encoder computes as it does (``precision_reason``)."""
    inputs: list = field(default_factory=list)
    tags: list[list[int]] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)

    def encode(self, vocab: CharVocab | PieceVocab, window: int, overlap: int) -> None:
        """Each training sentence as the encoder reads it, and its tag ids."""
        index = {label: i for i, label in enumerate(self.labels)}
        self.vocab = vocab
        self.inputs = [encode_sentence(s.text, vocab.tokenize, window, overlap) for s in self.train]
        self.tags = [[index[t] for t in convert_tags(s.tags, self.cfg.scheme)] for s in self.train]
        self.lengths = [len(s) for s in self.train]

    @functools.cached_property
    def steps_per_epoch(self) -> int:
        """Batches each process takes per epoch (every process the same number; once ``encode``d)."""
        cfg = self.cfg
        return len(bucket_batches(self.lengths, cfg.batch_size, max_tokens=cfg.max_tokens)) // self.procs.world

    def batches(self, epoch: int) -> list[list[int]]:
        cfg, procs = self.cfg, self.procs
        every = bucket_batches(
            self.lengths, cfg.batch_size, max_tokens=cfg.max_tokens, shuffle=True, seed=cfg.seed + epoch
        )
        return every[: self.steps_per_epoch * procs.world][procs.rank :: procs.world]  # this process's share

    def loss(self, batch: list[int], epoch: int, step: int) -> tuple[torch.Tensor, int]:
        windows = make_window_batch([self.inputs[i] for i in batch], self.vocab.specials).to(self.device)
        tags = torch.from_numpy(pad([self.tags[i] for i in batch], width=windows.shape[1])[0]).to(self.device)
        with autocast(self.device, self.bf16):
            value = self.model(
                windows.input_ids, windows.attention_mask, windows.gather, windows.mask, windows.segments, tags
            )
        return value, sum(self.lengths[i] for i in batch)

    def end_epoch(self, epoch: int) -> EpochResult:
        scores, _ = evaluate(self.teacher.tag_ids, self.dev, self.labels, self.cfg.eval_batch_size)
        dev = scores.overall
        summary = f"dev P/R/F1 {dev.precision:.4f}/{dev.recall:.4f}/{scores.f1:.4f}"
        record = {"dev": dev.__dict__, "lr": self.scheduler.get_last_lr()[0]}
        return EpochResult(record, scores.f1, summary, {"dev": scores.as_dict()})

    @property
    def record(self) -> dict:
        """What config.json records of the run (the arithmetic --precision auto chose among it)."""
        arithmetic = {"encoder_arithmetic": "bf16" if self.bf16 else "fp32", "encoder_arithmetic_reason": self.reason}
        return {"training": self.cfg.as_record(), **arithmetic}

    def loop(
        self, net: torch.nn.Module, optimizer: torch.optim.Optimizer, checkpoints: Checkpointer, log: JsonlLog | None
    ) -> Loop:
        cfg = self.cfg
        return Loop(
            "teacher",
            cfg.out,
            cfg.epochs,
            net,
            optimizer,
            checkpoints,
            log,
            self.batches,
            self.loss,
            self.end_epoch,
            self.on_best,
            scheduler=self.scheduler,
            max_grad_norm=cfg.max_grad_norm,
            patience=cfg.patience,
            checkpoint_every=cfg.checkpoint_every,
            procs=self.procs,
        )

    def on_best(self, progress: Progress) -> None:
        self.teacher.save(self.cfg.out, self.record | {"metrics": progress.best}, self.tokenizer)

    def finish(self, dataset: Dataset, best: dict) -> None:
        """Score the best epoch's teacher on the test split, if there is one, and mark the run complete."""
        best_teacher = Teacher.load(self.cfg.out, self.device, "bf16" if self.bf16 else "fp32")
        test = [s for s in dataset.load("test")[0] if s.tags] if dataset.has("test") else []
        if test:  # an unlabeled test split is nothing to score
            scores, _ = evaluate(best_teacher.tag_ids, test, self.labels, self.cfg.eval_batch_size)
            best["test"] = scores.as_dict()
            tqdm.write(f"best epoch {best['epoch']}: dev F1 {best['dev_f1']:.4f}, test F1 {scores.f1:.4f}")
        best_teacher.save(self.cfg.out, self.record | {"metrics": best, "training_complete": True})
