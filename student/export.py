"""``distill export``: the student's network to ONNX; decoding stays outside, in numpy.

Writes ``model.onnx``, ``model-int8.onnx`` (onnxruntime's dynamic INT8 quantisation of it: weights
of the LSTMs, the linear layer and the embeddings stored as int8, activations quantised on the
fly) and ``onnx.json`` (the opset, the inputs, the SHA-256 of each ONNX file and of the weights
they came from, so a stale export is detected). The float export is checked against the PyTorch
network on unseen input before it is kept; the INT8 one differs by design, and the benchmark
reports how often it tags as the PyTorch network does.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from distill.artifacts import atomic_write, atomic_write_json
from distill.errors import DistillError

from .model import Student
from .onnx_runtime import ONNX_FILE, ONNX_INT8_FILE, ONNX_META

OPSET = 17


def input_names(student: Student) -> list[str]:
    names = ["chars", "lengths"]
    if student.net.bigrams is not None:
        names.append("bigrams")
    if student.net.words is not None:
        names.append("words")
    return names


def export_onnx(directory: Path, out_dir: Path | None = None) -> Path:
    """Export the student in ``directory`` to ``out_dir`` (default: the same directory)."""
    directory = Path(directory)
    out_dir = Path(out_dir) if out_dir is not None else directory
    student = Student.load(directory)
    net = student.net.eval()
    names = input_names(student)
    example = student.featurizer.encode(["张三在北京工作。", "李四"])
    args = tuple(torch.from_numpy(example[name]) for name in names)
    axes = {name: {0: "batch", 1: "time"} for name in names if name != "lengths"}
    axes |= {"lengths": {0: "batch"}, "emissions": {0: "batch", 1: "time"}}

    wrapper = _Positional(net, names).eval()  # export restores the wrapper's mode on the net
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ONNX_FILE
        with warnings.catch_warnings():
            # The TorchScript exporter warns about its deprecation and about tracing LSTM shapes;
            # _check below is what tells whether the export is right.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                args,
                str(path),
                input_names=names,
                output_names=["emissions"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
        data = path.read_bytes()
        _check(data, student, names)
        quantized = _quantize(path, Path(tmp) / ONNX_INT8_FILE)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / ONNX_FILE, data)
    atomic_write(out_dir / ONNX_INT8_FILE, quantized)
    atomic_write_json(
        out_dir / ONNX_META,
        {
            "file": ONNX_FILE,
            "sha256": hashlib.sha256(data).hexdigest(),
            "int8": {
                "file": ONNX_INT8_FILE,
                "sha256": hashlib.sha256(quantized).hexdigest(),
                "method": "onnxruntime.quantization.quantize_dynamic, int8 weights (QInt8)",
            },
            "weights_sha256": student.config["weights_sha256"],
            "opset": OPSET,
            "inputs": names,
            "outputs": ["emissions"],
        },
    )
    return out_dir / ONNX_FILE


def _quantize(source: Path, target: Path) -> bytes:
    """onnxruntime's dynamic INT8 quantisation of the exported graph."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # It logs a suggestion to pre-process the graph first, which changes nothing for this graph.
    previous = logging.root.manager.disable
    logging.disable(max(previous, logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(source, target, weight_type=QuantType.QInt8)
    finally:
        logging.disable(previous)
    return target.read_bytes()


class _Positional(torch.nn.Module):
    """The network with positional inputs in a fixed order, as ONNX wants them."""

    def __init__(self, net: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.net, self.names = net, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.net(**dict(zip(self.names, inputs)))


def _check(data: bytes, student: Student, names: list[str]) -> None:
    """The exported graph must give the network's emissions on ragged input it has not seen."""
    import onnxruntime

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    texts = ["北京大学的张三说：今天天气很好！", "上海", "abc 123 😀 李四在深圳工作"]
    inputs = student.featurizer.encode(texts)
    expected = student.net(**{k: torch.from_numpy(v) for k, v in inputs.items()}).detach().numpy()
    got = session.run(None, {name: inputs[name] for name in names})[0]
    mask = np.arange(expected.shape[1])[None, :] < inputs["lengths"][:, None]
    error = float(np.abs(got - expected)[mask].max())
    if error > 1e-3:
        raise DistillError(f"the ONNX export disagrees with the PyTorch network (max error {error:.2g}); not kept")
