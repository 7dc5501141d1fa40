"""FLOPs: a counting pass with torch's `FlopCounterMode`, plus the formulas it lacks on CPU.

The count is taken in a pass of its own, never inside a timed run: the counter
intercepts every operator and would distort the timing. Forward and backward are
counted in two separate `FlopCounterMode` windows.

Torch counts only matrix-multiply-like operators (``mm``, ``addmm``, ``bmm``,
``baddbmm``, convolutions and the fused attention kernels it knows); element-wise
work (LayerNorm, softmax, GELU, bias adds, embedding look-ups) counts 0. One
multiply-add counts as 2 FLOPs.

Torch 2.13's CPU build has no formula for the fused attention kernel that
``scaled_dot_product_attention`` dispatches to on CPU
(``aten._scaled_dot_product_flash_attention_for_cpu`` and its backward), so it counts
attention as 0 FLOPs there. `count_flops` passes formulas for those operators through
`FlopCounterMode`'s ``custom_mapping`` argument (torch's global registry is left
untouched), and turns the ``nn.MultiheadAttention``/``nn.TransformerEncoderLayer``
inference fast path off while counting, because its fused operators have no formula
either (the slow path computes the same function with counted operators).

Importing this module does not import torch; `count_flops` does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_greennlp.errors import ConfigError, GreenNLPError, MeasurementError

if TYPE_CHECKING:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

__all__ = ["FLOP_CONVENTION", "FlopCount", "count_flops", "extra_flop_formulas"]

logger = logging.getLogger(__name__)

#: How multiply-adds are counted; the same convention as torch's `FlopCounterMode`.
FLOP_CONVENTION = "1 multiply-add = 2 FLOPs"

#: Operators that torch may lack a FLOP formula for, by ``torch.ops.aten`` name,
#: with the kind of formula each needs. Only those missing from torch's own registry
#: are filled in, so a torch release that adds them takes precedence.
_FORWARD_SDPA_OPS = ("_scaled_dot_product_flash_attention_for_cpu",)
_BACKWARD_SDPA_OPS = ("_scaled_dot_product_flash_attention_for_cpu_backward",)


# Formulas. Under ``custom_mapping`` torch wraps each formula so that every tensor
# argument arrives as its shape, in the operator's schema order, plus ``out_shape``.


def _bmm_flops(b: int, m: int, k: int, n: int) -> int:
    """FLOPs of a batched ``(b, m, k) @ (b, k, n)`` product."""
    return 2 * b * m * k * n


def _sdpa_flop_count_fallback(
    query_shape: Sequence[int], key_shape: Sequence[int], value_shape: Sequence[int]
) -> int:
    """Forward attention FLOPs, as torch's ``sdpa_flop_count`` computes them."""
    b, h_q, s_q, d_q = query_shape
    _, _, s_k, _ = key_shape
    _, _, _, d_v = value_shape
    return _bmm_flops(b * h_q, s_q, d_q, s_k) + _bmm_flops(b * h_q, s_q, s_k, d_v)


def _sdpa_backward_flop_count_fallback(
    grad_out_shape: Sequence[int],
    query_shape: Sequence[int],
    key_shape: Sequence[int],
    value_shape: Sequence[int],
) -> int:
    """Backward attention FLOPs, as torch's ``sdpa_backward_flop_count`` computes them.

    Five products: the scores ``Q K^T`` are recomputed, then ``dS = dO V^T``,
    ``dV = P^T dO``, ``dQ = dS K`` and ``dK = dS^T Q``.
    """
    b, h_q, s_q, d_q = query_shape
    _, _, s_k, _ = key_shape
    _, _, _, d_v = value_shape
    return (
        _bmm_flops(b * h_q, s_q, d_q, s_k)
        + _bmm_flops(b * h_q, s_q, d_v, s_k)
        + _bmm_flops(b * h_q, s_k, s_q, d_v)
        + _bmm_flops(b * h_q, s_q, s_k, d_q)
        + _bmm_flops(b * h_q, d_q, s_q, s_k)
    )


def _sdpa_forward_flops(
    query_shape: Sequence[int], key_shape: Sequence[int], value_shape: Sequence[int]
) -> int:
    """Forward attention FLOPs with torch's own helper where this torch has one."""
    from torch.utils import flop_counter

    helper: Callable[..., int] = getattr(flop_counter, "sdpa_flop_count", _sdpa_flop_count_fallback)
    return int(helper(tuple(query_shape), tuple(key_shape), tuple(value_shape)))


def _sdpa_backward_flops(
    grad_out_shape: Sequence[int],
    query_shape: Sequence[int],
    key_shape: Sequence[int],
    value_shape: Sequence[int],
) -> int:
    """Backward attention FLOPs with torch's own helper where this torch has one."""
    from torch.utils import flop_counter

    helper: Callable[..., int] = getattr(
        flop_counter, "sdpa_backward_flop_count", _sdpa_backward_flop_count_fallback
    )
    return int(
        helper(tuple(grad_out_shape), tuple(query_shape), tuple(key_shape), tuple(value_shape))
    )


def _fused_sdpa_forward_flop(
    query_shape: Sequence[int],
    key_shape: Sequence[int],
    value_shape: Sequence[int],
    *args: object,
    out_shape: object = None,
    **kwargs: object,
) -> int:
    """Formula for ``_scaled_dot_product_flash_attention_for_cpu``.

    Schema: ``(Tensor query, Tensor key, Tensor value, float dropout_p=0.,
    bool is_causal=False, *, Tensor? attn_mask=None, float? scale=None)`` with query
    ``(B, H_q, L, E)``, key ``(B, H_kv, S, E)``, value ``(B, H_kv, S, E_v)``. Like
    torch's formulas for the CUDA kernels, a causal or masked attention counts in full.
    """
    return _sdpa_forward_flops(query_shape, key_shape, value_shape)


def _fused_sdpa_backward_flop(
    grad_out_shape: Sequence[int],
    query_shape: Sequence[int],
    key_shape: Sequence[int],
    value_shape: Sequence[int],
    *args: object,
    out_shape: object = None,
    **kwargs: object,
) -> int:
    """Formula for ``_scaled_dot_product_flash_attention_for_cpu_backward``.

    Schema: ``(Tensor grad_out, Tensor query, Tensor key, Tensor value, Tensor out,
    Tensor logsumexp, float dropout_p, bool is_causal, *, Tensor? attn_mask=None,
    float? scale=None)``; ``grad_out`` is ``(B, H_q, L, E_v)``.
    """
    return _sdpa_backward_flops(grad_out_shape, query_shape, key_shape, value_shape)


# The counting pass.


def _call(model: torch.nn.Module, inputs: Any) -> Any:
    """Call `model` the way `inputs` asks: one tensor, positional args or keyword args."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _first_tensor(output: Any) -> torch.Tensor | None:
    """The first tensor in a model output, or None.

    The output itself, else the first one found, depth first, in a mapping's values
    (a Hugging Face ``ModelOutput`` holds only its non-None fields) or a tuple or list,
    else its ``logits`` or ``last_hidden_state`` attribute.
    """
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        values: Iterator[Any] = iter(output.values())
    elif isinstance(output, (tuple, list)):
        values = iter(output)
    else:
        for name in ("logits", "last_hidden_state"):
            value = getattr(output, name, None)
            if isinstance(value, torch.Tensor):
                return value
        return None
    for value in values:
        found = _first_tensor(value)
        if found is not None:
            return found
    return None


def _scalar_loss(output: Any, loss_fn: Callable[[Any], Any] | None) -> torch.Tensor:
    """The scalar to call ``backward()`` on; raise `MeasurementError` if there is none."""
    import torch

    if loss_fn is not None:
        loss = loss_fn(output)
        origin = "loss_fn(output)"
    elif getattr(output, "loss", None) is not None:
        loss = output.loss
        origin = "output.loss"
    else:
        first = _first_tensor(output)
        if first is None:
            raise MeasurementError(
                f"backward FLOP count needs a tensor in the model output; "
                f"got {type(output).__name__} with none, pass loss_fn."
            )
        loss = first.float().sum()
        origin = "the sum of the first output tensor"
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise MeasurementError(
            f"backward FLOP count needs a one-element tensor from {origin}; got {shape}."
        )
    if not loss.requires_grad:
        raise MeasurementError(
            f"backward FLOP count needs {origin} to require grad; "
            f"it does not (no trainable parameter or input in its graph)."
        )
    return loss


def _grad_leaves(loss: torch.Tensor) -> list[torch.Tensor]:
    """Every leaf whose ``.grad`` ``loss.backward()`` writes.

    Found through the ``AccumulateGrad`` nodes of the graph, so parameters of the
    model, of ``loss_fn`` and input leaves are all covered.
    """
    import torch

    leaves: dict[int, torch.Tensor] = {}
    seen: dict[int, Any] = {}  # keeps the visited nodes alive, so their ids stay unique
    stack: list[Any] = [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen[id(node)] = node
        variable = getattr(node, "variable", None)
        if isinstance(variable, torch.Tensor):
            leaves.setdefault(id(variable), variable)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return list(leaves.values())


@contextmanager
def _model_state_kept(model: torch.nn.Module) -> Iterator[None]:
    """Restore buffers (BatchNorm statistics) and the RNG state after the counting pass."""
    import torch

    buffers = [(buf, buf.detach().clone()) for buf in model.buffers()]
    devices = sorted(
        {
            t.device.index
            for t in (*model.parameters(), *model.buffers())
            if t.device.type == "cuda" and t.device.index is not None
        }
    )
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            with torch.no_grad():
                for buf, saved in buffers:
                    buf.copy_(saved)


@contextmanager
def _mha_fastpath_off() -> Iterator[None]:
    """Turn the fused ``nn.MultiheadAttention``/``TransformerEncoderLayer`` path off."""
    import torch

    mha = getattr(torch.backends, "mha", None)
    if mha is None:  # pragma: no cover - torch without the switch
        yield
        return
    was_enabled = bool(mha.get_fastpath_enabled())
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(was_enabled)


def _counter(fill_gaps: bool) -> FlopCounterMode:
    """A silent `FlopCounterMode`, with our formulas unless `fill_gaps` is False."""
    from torch.utils.flop_counter import FlopCounterMode

    mapping = extra_flop_formulas() if fill_gaps else {}
    return FlopCounterMode(display=False, custom_mapping=mapping)


def _per_module(counter: FlopCounterMode) -> dict[str, int]:
    """Sum each module's per-operator counts; "Global" is always present."""
    counts: dict[str, dict[Any, int]] = counter.get_flop_counts()
    per_module = {name: int(sum(by_op.values())) for name, by_op in counts.items()}
    per_module.setdefault("Global", 0)
    return per_module


def _method(fill_gaps: bool) -> str:
    """One line naming the counter and, when used, greennlp's additions."""
    import torch

    base = f"torch.utils.flop_counter.FlopCounterMode (torch {torch.__version__})"
    if not fill_gaps:
        return base
    added = ", ".join(f"aten.{name}" for name in sorted(_op_names(extra_flop_formulas())))
    extras = f"greennlp formulas for {added}" if added else "no greennlp formulas needed"
    return f"{base} + {extras}; MultiheadAttention fast path off while counting"


def _op_names(mapping: Mapping[Any, Any]) -> list[str]:
    """``torch.ops.aten`` names of the operators in a FLOP mapping."""
    return [str(op).removeprefix("aten.") for op in mapping]


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message``."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


# Public API.


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one forward pass and, if counted, one backward pass.

    Attributes
    ----------
    forward
        FLOPs of the forward pass (including ``loss_fn``, if one was given).
    backward
        FLOPs of ``loss.backward()``; 0 when the backward pass was not counted.
    by_module
        Forward FLOPs per module, as torch's ``FlopCounterMode.get_flop_counts()``
        names modules, summed over operators. ``"Global"`` is the whole forward pass
        (equal to `forward`); the other keys are dotted paths that start with the root
        module's class name: ``"BertModel"``, ``"BertModel.encoder"``,
        ``"BertModel.encoder.layer.0"``, ``"BertModel.encoder.layer.0.attention.self"``.
        A module's figure includes its submodules and every call of it; modules that
        ran no counted operator are absent.
    method
        One line: the counter, the torch version and greennlp's additions.
    convention
        How multiply-adds are counted (`FLOP_CONVENTION`).
    total
        ``forward + backward`` (computed, not passed).

    Examples
    --------
    >>> count = FlopCount(forward=192, backward=384, by_module={"Global": 192}, method="m")
    >>> count.total
    576
    """

    forward: int
    backward: int
    by_module: Mapping[str, int] = field(hash=False)
    method: str
    convention: str = FLOP_CONVENTION
    total: int = field(init=False)

    def __post_init__(self) -> None:
        # Validate the arguments.
        for name in ("forward", "backward"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise MeasurementError(f"{name} FLOPs must be a non-negative int; got {value!r}.")
        object.__setattr__(self, "total", self.forward + self.backward)


def extra_flop_formulas() -> dict[Any, Callable[..., int]]:
    """Formulas greennlp adds to `FlopCounterMode` through ``custom_mapping``.

    Only operators that this torch build has and its ``flop_registry`` lacks are
    included: in torch 2.13 the CPU fused attention kernel
    ``aten._scaled_dot_product_flash_attention_for_cpu`` and its backward. The
    formulas reuse torch's ``sdpa_flop_count`` and ``sdpa_backward_flop_count``.

    Returns
    -------
    dict
        ``torch.ops.aten`` operator packets mapped to shape formulas, ready for
        ``FlopCounterMode(custom_mapping=...)``. Empty if torch already covers them.
    """
    import torch
    from torch.utils.flop_counter import flop_registry

    mapping: dict[Any, Callable[..., int]] = {}
    for names, formula in (
        (_FORWARD_SDPA_OPS, _fused_sdpa_forward_flop),
        (_BACKWARD_SDPA_OPS, _fused_sdpa_backward_flop),
    ):
        for name in names:
            op = getattr(torch.ops.aten, name, None)
            if op is not None and op not in flop_registry:
                mapping[op] = formula
    return mapping


def count_flops(
    model: torch.nn.Module,
    inputs: torch.Tensor | Sequence[Any] | Mapping[str, Any],
    *,
    backward: bool = False,
    loss_fn: Callable[[Any], torch.Tensor] | None = None,
    fill_gaps: bool = True,
) -> FlopCount:
    """Count the FLOPs of one forward (and optionally backward) pass of `model`.

    Run this apart from any timed run. The pass leaves the model as it found it:
    training mode, parameters, buffers (BatchNorm statistics), the RNG state and the
    ``.grad`` of every leaf the backward pass reaches (parameters of the model and of
    ``loss_fn``, input tensors) are what they were before.

    Parameters
    ----------
    model
        The module to run. It stays in its current training mode, which can change
        the kernels used (dropout routes attention to the unfused path on CPU); the
        count is the same either way except for the backward, where the fused kernel
        recomputes the attention scores (counted, as torch does on CUDA).
    inputs
        A tensor (``model(inputs)``), a tuple or list of positional arguments
        (``model(*inputs)``), or a mapping of keyword arguments (``model(**inputs)``,
        as for a Hugging Face tokenizer's output).
    backward
        Also count ``loss.backward()``. The forward then runs with grad enabled,
        otherwise under ``torch.no_grad()``.
    loss_fn
        Maps the model output to the scalar loss; only with ``backward=True``. By
        default the output's ``.loss`` is used if it is not None, else the first tensor
        in the output (``logits``, ``last_hidden_state``, ``output[0]``) summed in
        float32. The loss is computed inside the forward window, so ``loss_fn``'s own
        FLOPs count as forward FLOPs, as a Hugging Face ``.loss`` does.
    fill_gaps
        Add greennlp's formulas (`extra_flop_formulas`) and turn the
        ``nn.MultiheadAttention`` fast path off while counting. False counts with
        torch's `FlopCounterMode` alone, for comparison.

    Returns
    -------
    FlopCount
        Forward and backward FLOPs, forward FLOPs per module, and how they were counted.

    Raises
    ------
    ConfigError
        If `model`, `inputs` or `loss_fn` is of the wrong kind, or `loss_fn` is given
        without ``backward=True``.
    MeasurementError
        If the model fails under the counter, or there is no scalar loss that
        requires grad for the backward pass.

    Examples
    --------
    >>> import torch
    >>> count = count_flops(torch.nn.Linear(8, 4), torch.randn(3, 8))
    >>> count.forward, count.backward  # 2 * 8 * 4 * 3
    (192, 0)
    """
    import torch

    # Validate the arguments.
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    if not isinstance(inputs, (torch.Tensor, tuple, list, Mapping)):
        raise ConfigError(
            f"inputs must be a tensor, a tuple or list of positional arguments or a "
            f"mapping of keyword arguments; got {type(inputs).__name__}."
        )
    if loss_fn is not None and not callable(loss_fn):
        raise ConfigError(f"loss_fn must be callable or None; got {type(loss_fn).__name__}.")
    if loss_fn is not None and not backward:
        raise ConfigError("loss_fn is only used with backward=True; got backward=False.")

    name = type(model).__name__
    fastpath = _mha_fastpath_off() if fill_gaps else nullcontext()
    with fastpath, _model_state_kept(model):
        forward_counter = _counter(fill_gaps)
        grad_mode = torch.enable_grad() if backward else torch.no_grad()
        try:
            with grad_mode, forward_counter:
                output = _call(model, inputs)
                loss = _scalar_loss(output, loss_fn) if backward else None
        except GreenNLPError:
            raise
        except Exception as exc:
            raise MeasurementError(
                f"FLOP counting forward pass of {name} failed: {_one_line(exc)}"
            ) from exc

        backward_flops = 0
        if loss is not None:
            leaves = _grad_leaves(loss)
            saved = [leaf.grad for leaf in leaves]
            backward_counter = _counter(fill_gaps)
            try:
                for leaf in leaves:
                    leaf.grad = None
                with backward_counter:
                    loss.backward()  # type: ignore[no-untyped-call]
            except Exception as exc:
                raise MeasurementError(
                    f"FLOP counting backward pass of {name} failed: {_one_line(exc)}"
                ) from exc
            finally:
                for leaf, grad in zip(leaves, saved):
                    leaf.grad = grad
            backward_flops = int(backward_counter.get_total_flops())

    count = FlopCount(
        forward=int(forward_counter.get_total_flops()),
        backward=backward_flops,
        by_module=_per_module(forward_counter),
        method=_method(fill_gaps),
    )
    logger.debug(
        "%s: %d forward + %d backward FLOPs (%s)",
        name,
        count.forward,
        count.backward,
        count.method,
    )
    return count
