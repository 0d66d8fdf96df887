"""Tiny models and corpora built on the spot, so no test needs a download."""

from __future__ import annotations

from pathlib import Path

CHARS = "张三李四王五在北京上海工作学习是的了一个人公司大学中国我们他"
ENTITIES = {"PER": ["张三", "李四", "王五"], "LOC": ["北京", "上海", "中国"], "ORG": ["公司", "大学"]}


def tiny_backbone(
    directory: Path,
    layers: int = 2,
    hidden: int = 32,
    max_positions: int = 24,
    pieces: tuple[str, ...] = (),
    mask: bool = False,
) -> Path:
    """A 2-layer BERT over a few dozen characters, with a Unigram tokenizer, in save_pretrained form.

    ``pieces``: multi-character pieces the tokenizer prefers to their characters (it splits text
    into the fewest pieces), as XLM-R's merges ``北京``. ``mask``: the tokenizer has a mask token
    (``<mask>``, the last piece), as masked-character pretraining needs."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import Unigram
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁", *dict.fromkeys(CHARS + "，。 abc123"), *pieces]
    pieces += ["<mask>"] if mask else []
    tokenizer = Tokenizer(Unigram([(p, -1.0) for p in pieces], unk_id=3))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        **({"mask_token": "<mask>"} if mask else {}),
    )
    config = BertConfig(
        vocab_size=len(pieces),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=max_positions,
        pad_token_id=1,
    )
    BertModel(config).save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


def tiny_corpus(directory: Path, n_train: int = 60, seed: int = 0) -> Path:
    """train/dev/test column files of short sentences like '张三在北京工作'."""
    import random

    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    templates = ["{PER}在{LOC}工作", "{PER}是{ORG}的人", "我们在{LOC}学习", "{PER}和{PER}在{LOC}{ORG}"]
    for split, n in (("train", n_train), ("dev", 12), ("test", 12)):
        lines = []
        for _ in range(n):
            template = rng.choice(templates)
            chars, tags = [], []
            i = 0
            while i < len(template):
                if template[i] == "{":
                    j = template.index("}", i)
                    kind = template[i + 1 : j]
                    word = rng.choice(ENTITIES[kind])
                    chars += list(word)
                    tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(word) - 1)
                    i = j + 1
                else:
                    chars.append(template[i])
                    tags.append("O")
                    i += 1
            lines += [f"{c}\t{t}" for c, t in zip(chars, tags)] + [""]
        (directory / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def source_copy(directory: Path) -> Path:
    """The files a build of distill reads, copied to ``directory`` (building in the repository
    itself would leave build/ and *.egg-info there)."""
    import shutil

    root = Path(__file__).resolve().parents[1]
    directory.mkdir(parents=True)
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(root / name, directory / name)
    for folder in ("distill", "data", "teacher", "student"):
        shutil.copytree(root / folder, directory / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return directory


def oldest_python() -> str | None:
    """An interpreter of the oldest Python that setup.cfg allows (3.10): ``python3.10`` on the PATH, or
    pyenv's; None where none runs."""
    import glob
    import os
    import shutil
    import subprocess

    pyenv = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10")))
    for candidate in [shutil.which("python3.10"), *pyenv]:
        check = [candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 10)"] if candidate else None
        if check and subprocess.run(check, capture_output=True, check=False).returncode == 0:
            return candidate
    return None


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def started_server(command: list, port: int, timeout: float = 60):
    """``command`` (a ``distill serve`` line) running, once it answers on ``port``."""
    import subprocess
    import time
    import urllib.request

    server = subprocess.Popen([str(c) for c in command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return server
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                raise AssertionError(f"the server did not start: {server.communicate()}") from None
            time.sleep(0.2)
