"""One BiLSTM layer of the student: a forward and a backward ``nn.LSTM`` over padded sentences.

In PyTorch the backward LSTM reads each sentence reversed within its own length (a gather, not
packing), so padding never leaks into real positions. In an ONNX export the pair becomes two
ONNX ``LSTM`` nodes (forward and reverse) given each sentence's length (``sequence_lens``),
which reverse within lengths themselves: PyTorch's own export of the pair is two LSTM nodes in
some forty gather, shape and transpose nodes, each a call onnxruntime pays per sentence (a whole
student's INT8 graph: 47 nodes run -> 18). INT8
quantisation turns each node into a ``DynamicQuantizeLSTM``.
"""

from __future__ import annotations

import torch
from torch import nn

ONNX_INT32 = 6  # TensorProto.INT32, the type of an ONNX LSTM's sequence_lens


def reverse_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """[B, T]: position t of each sentence reversed within its length; padding stays in place."""
    t = torch.arange(steps, device=lengths.device)[None, :]
    return torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)


def lstm_pair(fwd: nn.LSTM, bwd: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[B, T, 2H]: both directions' outputs for [B, T, E] input and [B] lengths.

    Only real positions are defined: past a sentence's end the two graphs differ (PyTorch runs on
    over the padding, ONNX gives zeros), and nothing downstream reads there.
    """
    both = _run_pair(fwd, bwd, x, lengths)
    if torch.onnx.is_in_onnx_export():
        # The exporter keeps the node's symbolic form only; the PyTorch graph above has no other
        # reader and is dropped from the export.
        return _LstmPairNodes.apply(x, lengths, *_onnx_weights(fwd), *_onnx_weights(bwd), both)
    return both


def _run_pair(fwd: nn.LSTM, bwd: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    flip = reverse_index(lengths, x.shape[1])[..., None]  # [B, T, 1]
    # Explicit zero states sized from the input, so a traced graph takes any batch size.
    zeros = x.new_zeros(1, x.shape[0], fwd.hidden_size)
    ahead, _ = fwd(x, (zeros, zeros))
    back, _ = bwd(x.gather(1, flip.expand(-1, -1, x.shape[-1])), (zeros, zeros))
    back = back.gather(1, flip.expand(-1, -1, back.shape[-1]))
    return torch.cat([ahead, back], dim=-1)


def _onnx_weights(lstm: nn.LSTM) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ONNX's W [1, 4H, E], R [1, 4H, H] and B [1, 8H] of one direction, the gates reordered from
    PyTorch's (input, forget, cell, output) to ONNX's (input, output, forget, cell). Computed from
    the parameters inside the export, so the exporter folds them into initializers."""

    def onnx_gates(weight: torch.Tensor) -> torch.Tensor:
        i, f, c, o = weight.chunk(4, dim=0)
        return torch.cat([i, o, f, c])

    bias = torch.cat([onnx_gates(lstm.bias_ih_l0), onnx_gates(lstm.bias_hh_l0)])
    return onnx_gates(lstm.weight_ih_l0)[None], onnx_gates(lstm.weight_hh_l0)[None], bias[None]


class _LstmPairNodes(torch.autograd.Function):
    """Takes the value PyTorch computed (``both``); exports as a forward and a reverse ONNX LSTM
    node (two nodes rather than one bidirectional: each direction's buffers are freed before the
    next is run, which lowers the peak memory at the same speed: benchmarks/results/memory.md)."""

    @staticmethod
    def forward(ctx, x, lengths, w_f, r_f, b_f, w_b, r_b, b_b, both):
        return both.clone()

    @staticmethod
    def symbolic(g, x, lengths, w_f, r_f, b_f, w_b, r_b, b_b, both):
        hidden = w_f.type().sizes()[1] // 4
        steps_first = g.op("Transpose", x, perm_i=[1, 0, 2])  # [T, B, E]
        sequence_lens = g.op("Cast", lengths, to_i=ONNX_INT32)  # [B]
        directions = [
            g.op("LSTM", steps_first, w, r, b, sequence_lens, direction_s=direction, hidden_size_i=hidden, outputs=3)[0]
            for direction, w, r, b in (("forward", w_f, r_f, b_f), ("reverse", w_b, r_b, b_b))
        ]  # [T, 1, B, H] each
        y = g.op("Concat", *directions, axis_i=1)  # [T, 2, B, H]
        batch_first = g.op("Transpose", y, perm_i=[2, 0, 1, 3])  # [B, T, 2, H]
        return g.op("Reshape", batch_first, g.op("Constant", value_t=torch.tensor([0, 0, -1])))  # [B, T, 2H]
