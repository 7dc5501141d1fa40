"""Counted against analytic FLOPs for a MiniLM-L6-shaped BERT, with and without our formulas.

Run ``python benchmarks/flops_accuracy.py``. The model is randomly initialised (no
download) with the shape of ``all-MiniLM-L6-v2``: 6 layers, hidden 384, 12 heads,
intermediate 1536, vocabulary 30522. It runs in eval mode, so CPU attention goes
through the fused kernel ``aten._scaled_dot_product_flash_attention_for_cpu``, which
torch's ``FlopCounterMode`` does not count by itself.

The analytic count, with 1 multiply-add = 2 FLOPs and per layer of batch ``B``,
length ``L``, hidden ``H``, intermediate ``I``:

- forward: projections ``4 * 2BLH^2``, feed-forward ``2 * 2BLHI``, attention products
  ``Q K^T`` and ``P V`` ``2 * 2BL^2H``; plus the pooler ``2BH^2`` once;
- backward of ``last_hidden_state.sum()``: every projection twice its forward (input
  and weight grads), attention five products (the fused kernel recomputes ``Q K^T``,
  then computes ``dS``, ``dV``, ``dQ``, ``dK``); the pooler is not in the graph.

Embeddings, LayerNorm, softmax, GELU and bias adds are left out of both the analytic
and the counted figures. Exits 1 if any counted/analytic ratio is off by more than 1%.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import transformers

from pytest_greennlp.measure.flops import count_flops

LAYERS, HIDDEN, HEADS, INTERMEDIATE, VOCAB = 6, 384, 12, 1536, 30522
TOLERANCE = 0.01


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    seq_len: int
    pass_name: str
    counted: int
    analytic: int
    plain: int
    count_s: float

    @property
    def ratio(self) -> float:
        return self.counted / self.analytic

    @property
    def plain_ratio(self) -> float:
        return self.plain / self.analytic


def analytic_flops(batch: int, seq_len: int) -> tuple[int, int]:
    """Forward and backward FLOPs of the MiniLM-L6 shape, as the module docstring derives."""
    b, n, h, i = batch, seq_len, HIDDEN, INTERMEDIATE
    linear = 4 * 2 * b * n * h * h + 2 * 2 * b * n * h * i
    attention = 2 * 2 * b * n * n * h
    pooler = 2 * b * h * h
    forward = LAYERS * (linear + attention) + pooler
    backward = LAYERS * (2 * linear + 5 * attention // 2)
    return forward, backward


def machine() -> str:
    """One line describing where the figures come from."""
    return (
        f"{platform.platform()} | {platform.processor() or platform.machine()} | "
        f"{os.cpu_count()} CPUs | python {platform.python_version()} | "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads) | "
        f"transformers {transformers.__version__}"
    )


def build_model(max_len: int) -> torch.nn.Module:
    """A random-init BertModel with the MiniLM-L6 shape, in eval mode."""
    torch.manual_seed(0)
    shape: dict[str, Any] = {
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": max(512, max_len),
        "attn_implementation": "sdpa",
    }
    model: torch.nn.Module = transformers.BertModel(transformers.BertConfig(**shape))
    return model.eval()


def measure(model: torch.nn.Module, batch: int, seq_len: int) -> list[Row]:
    """Count one forward and one forward+backward pass at `seq_len`."""
    inputs = {
        "input_ids": torch.randint(0, VOCAB, (batch, seq_len)),
        "attention_mask": torch.ones(batch, seq_len, dtype=torch.long),
    }
    forward, backward = analytic_flops(batch, seq_len)

    start = time.perf_counter()
    ours_fwd = count_flops(model, inputs)
    fwd_s = time.perf_counter() - start
    start = time.perf_counter()
    ours = count_flops(model, inputs, backward=True)
    both_s = time.perf_counter() - start
    plain_fwd = count_flops(model, inputs, fill_gaps=False)
    plain = count_flops(model, inputs, backward=True, fill_gaps=False)

    return [
        Row(seq_len, "forward", ours_fwd.forward, forward, plain_fwd.forward, fwd_s),
        Row(seq_len, "fwd+bwd", ours.total, forward + backward, plain.total, both_s),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table; return 1 if any ratio is off by more than `TOLERANCE`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    parser.add_argument(
        "--seq-lens", type=int, nargs="+", default=[128, 512], help="lengths (default 128 512)"
    )
    args = parser.parse_args(argv)

    print(f"machine: {machine()}")
    model = build_model(max(args.seq_lens))
    print(
        f"model: random-init BERT, MiniLM-L6 shape ({LAYERS} layers, hidden {HIDDEN}, "
        f"{HEADS} heads, intermediate {INTERMEDIATE}, vocab {VOCAB}), eval mode, "
        f"sdpa attention; batch {args.batch}"
    )
    rows = [row for seq_len in args.seq_lens for row in measure(model, args.batch, seq_len)]

    header = (
        f"{'seq':>5} {'pass':<8} {'counted GFLOP':>14} {'analytic GFLOP':>15} "
        f"{'ratio':>8} {'torch-only ratio':>17} {'count s':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row.seq_len:>5} {row.pass_name:<8} {row.counted / 1e9:>14.4f} "
            f"{row.analytic / 1e9:>15.4f} {row.ratio:>8.4f} {row.plain_ratio:>17.4f} "
            f"{row.count_s:>8.2f}"
        )

    off = [row for row in rows if abs(row.ratio - 1.0) > TOLERANCE]
    for row in off:
        print(
            f"FAIL: seq {row.seq_len} {row.pass_name}: counted/analytic {row.ratio:.4f} "
            f"is off by more than {TOLERANCE:.0%}",
            file=sys.stderr,
        )
    if not off:
        print(f"OK: every counted/analytic ratio is within {TOLERANCE:.0%}.")
    return 1 if off else 0


if __name__ == "__main__":
    sys.exit(main())
