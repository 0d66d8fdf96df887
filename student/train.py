"""Training the BiLSTM-CRF student, distilled from a teacher's emission cache or on gold alone.

Each epoch mixes the labeled sentences of the cache with up to ``unlabeled_ratio`` times as many
unlabeled ones (a different sample each epoch), in length-bucketed batches. With ``alpha == 1``
(or without a cache) it is the plain hard-label student: the baseline every report compares
against, with the same architecture and budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from distill.artifacts import read_model_dir
from distill.cache import CachedCorpus, load_cache, read_index
from distill.checkpoint import Checkpointer, Progress, start_run
from distill.data import (
    Dataset,
    Sentence,
    bucket_batches,
    convert_tags,
    label_mismatch,
    label_scheme,
    label_set,
    load_dataset,
    pad,
    split_sentences,
    tags_to_spans,
)
from distill.errors import DistillError
from distill.evaluation import evaluate
from distill.loop import EpochResult, Loop, fit
from distill.training import JsonlLog, adamw, resolve_device, seed_everything, use_threads

from .config import MAX_LEN, MEMORY_BUDGET_GB, StudentTrainConfig
from .features import Featurizer
from .losses import emission_kd, hard_nll, marginal_kd, mixed_loss
from .model import Architecture, BiLstmCrf, Student
from .vectors import VectorSource, bigram_source, char_source, initial_table, read_word2vec


@dataclass
class _Example:
    text: str
    gold: np.ndarray | None  # [L] label ids
    teacher: slice | None  # the sentence's rows in the cache arrays


def _cache_examples(corpus: CachedCorpus) -> tuple[list[_Example], list[_Example]]:
    labeled, unlabeled = [], []
    for i in range(len(corpus)):
        at = corpus.span(i)
        example = _Example(corpus.text(i), corpus.gold[at].astype(np.int64) if corpus.labeled(i) else None, at)
        (labeled if example.gold is not None else unlabeled).extend(_pieces(example))
    return labeled, unlabeled


def _pieces(example: _Example) -> list[_Example]:
    """``example`` cut at sentence ends into pieces of at most MAX_LEN characters (as prediction
    cuts text), each with its slice of the gold tags and of the teacher's rows: memory and time
    stay bounded whatever a sentence's length."""
    if len(example.text) <= MAX_LEN:
        return [example]
    out = []
    for start, end in split_sentences(example.text, MAX_LEN):
        gold = example.gold[start:end] if example.gold is not None else None
        rows = slice(example.teacher.start + start, example.teacher.start + end) if example.teacher else None
        out.append(_Example(example.text[start:end], gold, rows))
    return out


def _check_memory(cfg: StudentTrainConfig, num_tags: int, longest: int, source: object) -> None:
    """Refuse, before any work, a label set whose CRF scores would pass MEMORY_BUDGET_GB. The CRF's
    likelihood (and marginal KD's forward-backward) keeps batch x tags x tags scores for every
    position of a batch for the backward pass: ``longest`` positions at most, as batches are cut."""
    needed = cfg.batch_size * longest * num_tags * num_tags * 4 * 3 / 2**30  # scores, their gradient, a temporary
    if needed > MEMORY_BUDGET_GB:
        raise DistillError(
            f"{source}: {num_tags} tags: a training batch would hold about {needed:.1f} GB of CRF scores "
            f"(batch {cfg.batch_size} x {longest} characters x {num_tags} x {num_tags} tags), over the "
            f"{MEMORY_BUDGET_GB:g} GB budget: use a smaller --batch-size or fewer entity types"
        )


def _start_embeddings(
    net: BiLstmCrf,
    featurizer: Featurizer,
    chars_from: VectorSource | None,
    bigram_vectors: Path | None,
    rng: np.random.Generator,
) -> dict:
    """Copy pretrained vectors into the character and bigram embeddings; returns what the
    student's config records of their sources and coverage."""
    note = {}
    if bigram_vectors is not None and featurizer.bigram_pairs is None:
        raise DistillError("--bigram-vectors needs --bigrams")
    if featurizer.bigram_pairs is None or (chars_from is None and bigram_vectors is None):
        bigrams_from = None
    else:
        pairs = featurizer.bigram_pairs
        wanted = {pairs[i : i + 2] for i in range(0, len(pairs), 2)}
        bigrams_from = (
            read_word2vec(bigram_vectors, keep=wanted.__contains__) if bigram_vectors else bigram_source(chars_from)
        )
    for kind, source, embedding, entries in (
        ("char", chars_from, net.chars, featurizer.chars),
        ("bigram", bigrams_from, net.bigrams, _bigram_entries(featurizer)),
    ):
        if source is None:
            continue
        table = initial_table(entries, source, embedding.embedding_dim, rng)
        with torch.no_grad():
            embedding.weight.copy_(torch.from_numpy(table.weights))
        note[f"{kind}_vectors"] = table.coverage(source)
        tqdm.write(f"{kind} embeddings: {table.found} of {len(entries)} start from {source.name}'s vectors")
    return note


def _bigram_entries(featurizer: Featurizer) -> list[str]:
    pairs = featurizer.bigram_pairs or ""
    return [pairs[i : i + 2] for i in range(0, len(pairs), 2)]


def train_student(cfg: StudentTrainConfig) -> dict:
    """Train, keep the best (or last) epoch in ``cfg.out``, and return its metrics."""
    device = resolve_device(cfg.device)
    how = start_run(cfg.out, cfg.resume, cfg.overwrite)
    if how == "complete":
        tqdm.write(f"{cfg.out} holds a finished student: nothing to resume")
        return read_model_dir(cfg.out, verify=False)[0]["metrics"]
    seed_everything(cfg.seed)
    use_threads(cfg.threads)
    rng = np.random.default_rng(cfg.seed)
    data = _training_set(cfg)
    net, featurizer, init_note = _network(cfg, data, rng)
    net.to(device)
    average = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema)) if cfg.ema else None
    # What dev F1 measures and what is saved: the averaged weights when there are any.
    student = Student(average.module if average else net, featurizer, data.labels, {})
    record = {"training": cfg.as_record(), "distillation": _distillation_record(cfg, data), **init_note}

    features = [featurizer.encode([e.text]) for e in data.examples]  # once, not every epoch
    optimizer = adamw(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    checkpoints = Checkpointer(cfg.out, net, optimizer, average=average)
    progress = checkpoints.progress(how, tqdm.write)
    log = JsonlLog(cfg.out / "train_log.jsonl", keep_before_epoch=progress.epoch)

    def loss(batch: list[int], epoch: int, step: int) -> tuple[torch.Tensor, int]:
        examples = [data.examples[i] for i in batch]
        value = _batch_loss(net, cfg, examples, [features[i] for i in batch], data.corpus, device)
        return value, sum(len(e.text) for e in examples)

    loop = _loop(cfg, data, student, optimizer, checkpoints, log, record, rng, loss)
    if average is not None:
        loop.after_step = lambda: average.update_parameters(net)
    best = fit(loop, progress).best
    best_student = Student.load(cfg.out, device)
    test = [s for s in data.dataset.load("test")[0] if s.tags] if data.dataset.has("test") else []
    if test:  # an unlabeled test split is nothing to score
        test = _in_scheme(test, data.labels)
        scores, _ = evaluate(best_student.tag_ids, test, data.labels, cfg.eval_batch_size)
        best["test"] = scores.as_dict()
        tqdm.write(f"{cfg.keep} epoch {best['epoch']}: dev F1 {best['dev_f1']:.4f}, test F1 {scores.f1:.4f}")
    best_student.save(cfg.out, record | {"metrics": best, "training_complete": True})
    checkpoints.clear()
    return best


@dataclass
class _TrainingSet:
    """What a student learns from (the cache's sentences, or gold alone) and is scored on."""

    dataset: Dataset
    labels: list[str]
    labeled: list[_Example]
    unlabeled: list[_Example]
    dev: list[Sentence]
    """In the labels' scheme."""
    corpus: CachedCorpus | None = None
    index: dict = field(default_factory=dict)

    @property
    def examples(self) -> list[_Example]:
        return self.labeled + self.unlabeled


def _training_set(cfg: StudentTrainConfig) -> _TrainingSet:
    corpus, index = None, {}
    if cfg.cache is not None:
        index = read_index(cfg.cache)
        corpus = load_cache(cfg.cache)
    elif cfg.alpha < 1:
        raise DistillError(
            "distillation (--alpha below 1) needs a teacher cache: pass --cache (see distill teacher-cache)"
        )
    data = cfg.data if cfg.data is not None else index.get("data")
    dataset = load_dataset(data)
    dev = dataset.load_labeled("dev", "scoring each epoch")
    if corpus is not None:
        labels = corpus.labels
        labeled, unlabeled = _cache_examples(corpus)
        if cfg.alpha == 1:
            unlabeled = []  # the hard-label baseline sees what the baseline without a cache sees
        if corpus.emissions.shape[1] != len(labels):
            raise DistillError(
                f"{cfg.cache}: emissions have {corpus.emissions.shape[1]} tags but the index lists {len(labels)}"
            )
    else:
        train = dataset.load_labeled("train", "training a student")
        labels = label_set(sorted({span.type for s in train for span in tags_to_spans(s.tags)}), "bioes")
        index_of = {label: i for i, label in enumerate(labels)}
        gold = [_Example(s.text, np.array([index_of[t] for t in s.tags]), None) for s in train if len(s) > 0]
        labeled = [piece for example in gold for piece in _pieces(example)]
        unlabeled = []
    longest = max((len(example.text) for example in [*labeled, *unlabeled]), default=1)
    _check_memory(cfg, len(labels), longest, cfg.cache if corpus is not None else dataset.source("train").path)
    problem = label_mismatch(dev, labels, "the cache" if corpus is not None else "the training split")
    if problem:
        raise DistillError(problem)
    return _TrainingSet(dataset, labels, labeled, unlabeled, _in_scheme(dev, labels), corpus, index)


def _in_scheme(sentences: list[Sentence], labels: list[str]) -> list[Sentence]:
    scheme = label_scheme(labels)
    return [type(s)(s.text, convert_tags(s.tags, scheme), s.source, s.line) for s in sentences]


def _network(
    cfg: StudentTrainConfig, data: _TrainingSet, rng: np.random.Generator
) -> tuple[BiLstmCrf, Featurizer, dict]:
    """The network, its featurizer, and what config.json records of where its embeddings started."""
    texts = [e.text for e in data.examples]
    featurizer = Featurizer.build(texts, cfg.bigrams, cfg.jieba, cfg.min_bigram_count)
    teacher_dir = Path(data.index["teacher"]["path"]) if data.index else None
    chars_from = char_source(cfg.char_vectors, teacher_dir)
    if chars_from is not None:  # every character the source knows gets a row, seen in training or not
        every_char = "".join(sorted(set(featurizer.chars) | set(chars_from.chars)))
        featurizer = Featurizer(every_char, featurizer.bigram_pairs, cfg.jieba)
    arch = Architecture(cfg.embedding_dim, cfg.hidden, cfg.layers, cfg.dropout, cfg.bigram_dim, cfg.word_dim)
    net = BiLstmCrf(arch, featurizer.num_chars, featurizer.num_bigrams, cfg.jieba, data.labels)
    return net, featurizer, _start_embeddings(net, featurizer, chars_from, cfg.bigram_vectors, rng)


def _distillation_record(cfg: StudentTrainConfig, data: _TrainingSet) -> dict:
    return {
        "kd": cfg.kd if cfg.alpha < 1 else None,
        "alpha": cfg.alpha,
        "temperature": cfg.temperature,
        "unlabeled_hard": cfg.unlabeled_hard,
        "unlabeled_ratio": cfg.unlabeled_ratio if data.unlabeled else 0.0,
        "unlabeled_pool": len(data.unlabeled),
        "teacher": data.index.get("teacher", {}).get("fingerprint"),
        "cache": str(cfg.cache) if cfg.cache else None,
    }


def _loop(
    cfg: StudentTrainConfig,
    data: _TrainingSet,
    student: Student,
    optimizer: torch.optim.Optimizer,
    checkpoints: Checkpointer,
    log: JsonlLog,
    record: dict,
    rng: np.random.Generator,
    loss: Callable[[list[int], int, int], tuple[torch.Tensor, int]],
) -> Loop:
    """The student's loop: each epoch mixes the labeled sentences with a different window of the
    unlabeled pool, so all of it is used in turn."""
    n_labeled, pool = len(data.labeled), len(data.unlabeled)
    n_unlabeled = min(pool, round(cfg.unlabeled_ratio * n_labeled))
    order = rng.permutation(pool) + n_labeled

    def chosen(epoch: int) -> list[int]:
        start = ((epoch - 1) * n_unlabeled) % max(1, pool)
        return list(range(n_labeled)) + np.roll(order, -start)[:n_unlabeled].tolist()

    def batches(epoch: int) -> list[list[int]]:
        members = chosen(epoch)
        lengths = [len(data.examples[i].text) for i in members]
        buckets = bucket_batches(lengths, cfg.batch_size, shuffle=True, seed=cfg.seed + epoch)
        return [[members[i] for i in batch] for batch in buckets]

    def start_epoch(epoch: int) -> None:
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * ((cfg.epochs - epoch + 1) / cfg.epochs if cfg.lr_decay == "linear" else 1.0)

    def end_epoch(epoch: int) -> EpochResult:
        scores, _ = evaluate(student.tag_ids, data.dev, data.labels, cfg.eval_batch_size)
        fields = {
            "dev": scores.overall.__dict__,
            "sentences": len(chosen(epoch)),
            "lr": optimizer.param_groups[0]["lr"],
        }
        return EpochResult(fields, scores.f1, f"dev F1 {scores.f1:.4f}", {"dev": scores.as_dict()})

    def on_best(progress: Progress) -> None:
        student.save(cfg.out, record | {"metrics": progress.best})

    return Loop(
        "student",
        cfg.out,
        cfg.epochs,
        student.net,
        optimizer,
        checkpoints,
        log,
        batches,
        loss,
        end_epoch,
        on_best,
        start_epoch,
        max_grad_norm=cfg.max_grad_norm,
        patience=cfg.patience,
        keep_last=cfg.keep == "last",
        checkpoint_every=cfg.checkpoint_every,
    )


def _batch_loss(
    net: BiLstmCrf,
    cfg: StudentTrainConfig,
    batch: list[_Example],
    features: list[dict],
    corpus: CachedCorpus | None,
    device: torch.device,
) -> torch.Tensor:
    width = max(len(e.text) for e in batch)
    inputs = {
        key: torch.from_numpy(pad([f[key][0] for f in features], width=width)[0]).to(device)
        for key in features[0]
        if key != "lengths"
    }
    lengths = torch.tensor([len(e.text) for e in batch], device=device)
    mask = torch.arange(width, device=device)[None, :] < lengths[:, None]
    emissions = net(lengths=lengths, **inputs)
    hard = soft = None
    if cfg.alpha > 0:
        targets, use = [], []
        for e in batch:
            if e.gold is not None:
                targets.append(e.gold)
                use.append(True)
            else:
                targets.append(
                    corpus.viterbi[e.teacher].astype(np.int64)
                    if cfg.unlabeled_hard == "viterbi"
                    else np.zeros(len(e.text), np.int64)
                )
                use.append(cfg.unlabeled_hard == "viterbi")
        tags = torch.from_numpy(pad(targets, width=width)[0]).to(device)
        hard = hard_nll(net.crf, emissions, tags, mask, torch.tensor(use, device=device))
    if cfg.alpha < 1:
        source = corpus.emissions if cfg.kd == "emission" else corpus.marginals
        teacher = torch.from_numpy(pad([source[e.teacher] for e in batch], 0, np.float32, width)[0]).to(device)
        if cfg.kd == "emission":
            soft = emission_kd(emissions, teacher, mask, cfg.temperature)
        else:
            soft = marginal_kd(net.crf, emissions, teacher, mask)
    return mixed_loss(hard, soft, cfg.alpha)
