"""Bigram vectors trained on the user's own text, for ``student-train --bigram-vectors``.

LAC-small gives the student pretrained character vectors offline, but nothing offline gives
bigram vectors, the other half of what published character BiLSTM-CRFs start from. This trains
them: skip-gram word2vec (gensim) over the student's own bigrams (:func:`student.features.bigrams`,
so the last character of a sentence pairs with the end mark, as the student reads it) of the
training split and any unlabeled text, and writes a binary word2vec file that
:func:`student.vectors.read_word2vec` reads.

With ``threads=1`` the file is the same bytes on every run of the same text and settings; with
more threads gensim's workers race, which is faster but not repeatable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from tqdm import tqdm

from distill.data import plain_texts
from distill.errors import DistillError

from .config import MAX_LEN, BigramVectorsConfig
from .features import bigrams


def record_path(vectors: Path) -> Path:
    """Where the record of what made ``vectors`` goes: beside them, written after them."""
    return Path(f"{vectors}.json")


def corpus_texts(cfg: BigramVectorsConfig) -> list[str]:
    """The sentences to learn from: each --unlabeled file's, then the training split's of --data."""
    texts = plain_texts(cfg.unlabeled, cfg.data, MAX_LEN)
    if not texts:
        raise DistillError("nothing to learn bigram vectors from: give --data, --unlabeled text files, or both")
    return texts


class _Bigrams:
    """The corpus as gensim reads it: each sentence's bigrams, made afresh on every pass (a list of
    all of them would take gigabytes on a large corpus). Bigrams with whitespace are left out: a
    word2vec file separates a word from its vector by a space."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = texts

    def __iter__(self) -> Iterator[list[str]]:
        for text in self.texts:
            yield [b for b in bigrams(text) if not any(c.isspace() for c in b)]


def _digest(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8") + b"\n")
    return digest.hexdigest()


def train_bigram_vectors(cfg: BigramVectorsConfig) -> dict:
    """Train, write ``cfg.out`` (binary word2vec) and :func:`record_path` (what made it); return that record."""
    from gensim.models import Word2Vec
    from gensim.models.callbacks import CallbackAny2Vec

    texts = corpus_texts(cfg)
    corpus = _Bigrams(texts)
    model = Word2Vec(
        vector_size=cfg.dim,
        window=cfg.window,
        min_count=cfg.min_count,
        sg=1,
        negative=cfg.negative,
        workers=cfg.threads,
        seed=cfg.seed,
    )
    model.build_vocab(corpus)
    if not len(model.wv):
        raise DistillError(f"no bigram occurs {cfg.min_count} times or more in the text: lower --min-count")

    class Progress(CallbackAny2Vec):
        def __init__(self) -> None:
            self.bar = tqdm(total=cfg.epochs, desc="bigram vectors", unit="epoch")

        def on_epoch_end(self, model: Word2Vec) -> None:
            self.bar.update()

    progress = Progress()
    model.train(corpus, total_examples=model.corpus_count, epochs=cfg.epochs, callbacks=[progress])
    progress.bar.close()

    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    model.wv.save_word2vec_format(str(cfg.out), binary=True)
    record = {
        "kind": "bigram-vectors",
        "bigrams": len(model.wv),
        "dim": cfg.dim,
        "sentences": len(texts),
        "characters": sum(len(t) for t in texts),
        "text_sha256": _digest(texts),
        "training": cfg.as_record(),
    }
    record_path(cfg.out).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return record
