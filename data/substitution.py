"""Mention substitution: new sentences from labeled ones, each entity swapped for another mention of its type.

A labeled sentence ``张三在北京工作`` (PER, LOC) becomes ``李四在上海工作``: the same context with other
mentions the corpus holds for each type (Dai & Adel, 2020). The results are returned unlabeled: the
teacher tags them, so a student learns from the teacher's view of new combinations of context and
mention rather than from spans that may no longer fit.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from .schemes import tags_to_spans
from .sentence import Sentence


def substitute_mentions(sentences: Sequence[Sentence], count: int, seed: int) -> Iterator[Sentence]:
    """``count`` sentences, each a labeled sentence of ``sentences`` (drawn at random among those
    with an entity) with every entity replaced by a random other mention of the same type.

    Deterministic for a given ``seed`` and input. Yields nothing where no sentence has an entity.
    """
    rng = random.Random(seed)
    mentions: dict[str, list[str]] = {}
    with_entities: list[tuple[Sentence, list]] = []
    for sentence in sentences:
        spans = tags_to_spans(sentence.tags) if sentence.tags else []
        for span in spans:
            mentions.setdefault(span.type, []).append(sentence.text[span.start : span.end])
        if spans:
            with_entities.append((sentence, spans))
    pools = {kind: sorted(set(found)) for kind, found in mentions.items()}
    place = {kind: {mention: i for i, mention in enumerate(pool)} for kind, pool in pools.items()}
    for number in range(count if with_entities else 0):
        sentence, spans = with_entities[rng.randrange(len(with_entities))]
        pieces, at = [], 0
        for span in spans:
            pool, original = pools[span.type], sentence.text[span.start : span.end]
            drawn = rng.randrange(max(len(pool) - 1, 1))  # among the pool's other mentions: skip the original
            mention = pool[drawn + (drawn >= place[span.type][original])] if len(pool) > 1 else original
            pieces += [sentence.text[at : span.start], mention]
            at = span.end
        pieces.append(sentence.text[at:])
        yield Sentence("".join(pieces), None, f"{sentence.source} (mention substitution)", number + 1)
