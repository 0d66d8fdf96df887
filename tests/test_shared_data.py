"""The counts of ../shared/data/*/SOURCE.md, reproduced by our readers (skipped where absent)."""

from __future__ import annotations

import pytest
from seqeval.metrics.sequence_labeling import get_entities

from distill.data import dataset_file_stats, load_dataset
from distill.data.column import read_column
from tests.conftest import needs_shared_data


def by_split(name: str) -> dict[str, dict]:
    dataset = load_dataset(needs_shared_data(name))
    return {"+".join(s.split()[0] for s in r["splits"]): r for r in dataset_file_stats(dataset)}


def test_resume_counts():
    stats = by_split("resume")
    assert [stats[s]["sentences"] for s in ("train", "dev", "test")] == [3821, 463, 477]
    assert [stats[s]["characters"] for s in ("train", "dev", "test")] == [124099, 13890, 15100]
    assert stats["train"]["total_entities"] == 13440
    assert stats["train"]["entities"] == {
        "CONT": 260,
        "EDU": 858,
        "LOC": 47,
        "NAME": 952,
        "ORG": 4613,
        "PRO": 287,
        "RACE": 115,
        "TITLE": 6308,
    }
    assert stats["test"]["scheme"] == "bmes" and stats["train"]["longest"] == 178


def test_weibo_counts():
    stats = by_split("weibo")
    assert [stats[s]["sentences"] for s in ("train", "dev", "test")] == [1350, 270, 270]
    assert [stats[s]["characters"] for s in ("train", "dev", "test")] == [73778, 14509, 14842]
    assert [stats[s]["total_entities"] for s in ("train", "dev", "test")] == [1895, 389, 418]
    assert stats["test"]["entities"]["PER.NOM"] == 172
    repaired = sum(stats[s]["repairs"].get("multi-character token: kept its first character", 0) for s in stats)
    assert repaired == 44  # SOURCE.md: emoji destroyed into two U+FFFD, 44 tokens


def test_msra_counts_and_carve():
    stats = by_split("msra")
    train, test = stats["train+dev"], stats["test"]
    assert (train["sentences"], test["sentences"]) == (45000, 3442)
    assert (train["characters"], test["characters"]) == (2171573, 172601)
    assert (train["total_entities"], test["total_entities"]) == (75059, 6190)
    assert train["entities"] == {"LOC": 36860, "ORG": 20584, "PER": 17615}
    assert train["repairs"] == {"empty tag -> O": 57}
    assert test["longest"] == 2427


@pytest.mark.parametrize("name, file", [("resume", "train.char.bmes"), ("weibo", "weiboNER_2nd_conll.train")])
def test_entities_equal_seqevals_on_the_raw_tags(name, file):
    path = needs_shared_data(name, file)
    ours = sum(len(get_entities(s.tags)) for s in read_column(path))
    raw, sentence = [], []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.strip():
            sentence.append(line.split()[-1].replace("M-", "I-"))
        elif sentence:
            raw.append(sentence)
            sentence = []
    assert ours == sum(len(get_entities(s)) for s in raw)
