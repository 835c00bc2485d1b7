"""Metrics of a module (the candidate, or the champion's TorchScript) on a holdout."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from loopline_core.errors import InvalidArgument


def evaluate(module: Any, features: np.ndarray, labels: np.ndarray, *, classify: bool) -> dict[str, float]:
    """Classifier: accuracy and log_loss; regressor: rmse and mae. ``module`` maps
    features to probabilities or predictions (the exported forward)."""
    with torch.no_grad():
        try:
            out = module(torch.as_tensor(features, dtype=torch.float32)).cpu().numpy()
        except RuntimeError as exc:
            raise InvalidArgument(f"the model cannot score this holdout: {exc}".splitlines()[0],
                                  field="model") from exc
    if classify:
        index = labels.astype(np.int64)
        if out.ndim != 2 or index.max(initial=0) >= out.shape[1]:
            raise InvalidArgument(f"the model outputs {list(out.shape)} for labels up to {index.max()}",
                                  field="model")
        chosen = np.clip(out[np.arange(len(index)), index], 1e-12, 1.0)
        return {"accuracy": float((out.argmax(axis=1) == index).mean()),
                "log_loss": float(-np.log(chosen).mean())}
    error = out.reshape(-1) - labels
    return {"rmse": float(np.sqrt((error ** 2).mean())), "mae": float(np.abs(error).mean())}
