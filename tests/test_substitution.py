"""Mention substitution: new sentences from labeled ones, and a cache that holds them."""

from __future__ import annotations

import json

from distill.data import Sentence, substitute_mentions, tags_to_spans


def labeled(text: str, tags: str) -> Sentence:
    return Sentence(text, tags.split())


CORPUS = [
    labeled("张三在北京工作", "B-PER E-PER O B-LOC E-LOC O O"),
    labeled("李四去上海", "B-PER E-PER O B-LOC E-LOC"),
    labeled("王小五来了", "B-PER I-PER E-PER O O"),
    labeled("今天下雨", "O O O O"),
]


def test_each_entity_is_swapped_for_another_mention_of_its_type_in_the_same_context():
    made = list(substitute_mentions(CORPUS, 50, seed=1))
    assert len(made) == 50 and all(s.tags is None for s in made)
    people, places = {"张三", "李四", "王小五"}, {"北京", "上海"}
    contexts = {"在{}工作", "去{}", "来了"}
    for sentence in made:
        text = sentence.text
        person = next(p for p in sorted(people, key=len, reverse=True) if text.startswith(p))
        rest = text[len(person) :]
        assert rest == "来了" or any(rest == c.format(place) for c in contexts for place in places), text
    originals = {s.text for s in CORPUS}
    assert not {s.text for s in made} & originals  # every entity changed: a mention of its type, never itself
    assert [s.text for s in made] == [s.text for s in substitute_mentions(CORPUS, 50, seed=1)]
    assert [s.text for s in made] != [s.text for s in substitute_mentions(CORPUS, 50, seed=2)]


def test_no_entities_no_sentences():
    assert list(substitute_mentions([labeled("今天下雨", "O O O O")], 5, seed=1)) == []
    assert tags_to_spans(CORPUS[0].tags)[0].type == "PER"


def test_the_cache_holds_substituted_sentences_tagged_by_the_teacher(tiny_teacher, tmp_path):
    from distill.cache import load_cache
    from distill.data import load_dataset
    from distill.teacher.cache import CacheConfig, build_cache
    from tests.conftest import PRECISION

    settings = {"teacher": tiny_teacher["teacher"], "data": str(tiny_teacher["data"]), "precision": PRECISION}
    build_cache(CacheConfig(out=tmp_path / "cache", substitutions=30, seed=5, **settings))
    index = json.loads((tmp_path / "cache" / "index.json").read_text())
    assert [s["kind"] for s in index["sources"]] == ["labeled", "substituted"]
    assert index["sources"][1]["seed"] == 5 and index["sources"][1]["limit"] == 30
    corpus = load_cache(tmp_path / "cache")
    made = [i for i in range(len(corpus)) if not corpus.labeled(i)]
    assert len(made) == 30
    expected = substitute_mentions(load_dataset(str(tiny_teacher["data"])).load_labeled("train", "a test"), 30, seed=5)
    assert [corpus.text(i) for i in made] == [s.text for s in expected]
