"""The exported module: standardization, a user or built-in network, and the output head.

Input ``features`` FP32 [-1, n_features]. A classifier returns ``probabilities``
(softmax, [-1, n_classes]); a regressor returns ``prediction`` ([-1, 1]). The
standardization constants are buffers of the module, so serving needs nothing else.
"""

from __future__ import annotations

import importlib
import io
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from loopline_core.errors import InvalidArgument


def mlp(n_features: int, n_outputs: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_outputs))


NetworkFactory = Callable[[int, int, int], nn.Module]


def network_factory(entrypoint: str | None) -> NetworkFactory:
    """``module:function`` taking (n_features, n_outputs, hidden) and returning an nn.Module
    that maps standardized features to logits (classifier) or the target (regressor)."""
    if not entrypoint:
        return mlp
    module_name, _, attr = entrypoint.partition(":")
    if not module_name or not attr:
        raise InvalidArgument(f"model entry point {entrypoint!r} is not 'module:function'", field="model_entrypoint")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidArgument(f"model entry point {entrypoint!r} cannot be loaded: {exc}",
                              field="model_entrypoint") from exc
    return factory  # type: ignore[no-any-return]


class Tabular(nn.Module):
    def __init__(self, body: nn.Module, mean: np.ndarray, std: np.ndarray, classify: bool) -> None:
        super().__init__()
        self.body = body
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(np.where(std > 1e-12, std, 1.0), dtype=torch.float32))
        self.classify = classify

    def raw(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (classifier) or the prediction (regressor): what the loss sees."""
        return self.body((features - self.mean) / self.scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.raw(features)
        if self.classify:
            return torch.softmax(out, dim=1)
        return out


def to_torchscript(module: Tabular) -> bytes:
    module = module.cpu().eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated upstream but is what Triton serves here
        torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


def from_torchscript(data: bytes) -> torch.jit.ScriptModule:
    """Loads an artifact (the champion's) for local evaluation; TorchScript only, never pickle."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(io.BytesIO(data), map_location="cpu")
