"""Training with early stopping on the validation loss, seeded, on CUDA when present."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from loopline_trainer.learning.mlp import NetworkFactory, Tabular


@dataclass(frozen=True)
class FitConfig:
    classify: bool
    n_outputs: int
    epochs: int
    batch_size: int
    learning_rate: float
    hidden: int
    patience: int
    seed: int
    threads: int = 1
    device: str = "auto"


@dataclass
class FitResult:
    module: Tabular
    #: Per epoch: train_loss and val_loss.
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    device: str = "cpu"


#: Called after each epoch with (epoch, {"train_loss": .., "val_loss": ..}).
EpochHook = Callable[[int, dict[str, float]], None]


def pick_device(wanted: str) -> torch.device:
    if wanted == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(wanted)


def _loss(config: FitConfig) -> nn.Module:
    return nn.CrossEntropyLoss() if config.classify else nn.MSELoss()


def _target(labels: np.ndarray, config: FitConfig, device: torch.device) -> torch.Tensor:
    if config.classify:
        return torch.as_tensor(labels, dtype=torch.long, device=device)
    return torch.as_tensor(labels, dtype=torch.float32, device=device).reshape(-1, 1)


def fit(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, config: FitConfig,
        network: NetworkFactory, on_epoch: EpochHook | None = None) -> FitResult:
    """Runs in a worker thread: blocking, CPU or GPU bound."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    model = Tabular(network(x_train.shape[1], config.n_outputs, config.hidden), mean, std, config.classify).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loss_fn = _loss(config)
    xt, yt = torch.as_tensor(x_train, device=device), _target(y_train, config, device)
    xv, yv = torch.as_tensor(x_val, device=device), _target(y_val, config, device)
    order = torch.Generator().manual_seed(config.seed)
    result = FitResult(model, device=device.type)
    best, best_state, waited = float("inf"), copy.deepcopy(model.state_dict()), 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        total = 0.0
        for batch in torch.randperm(len(xt), generator=order).split(config.batch_size):
            batch = batch.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model.raw(xt[batch]), yt[batch])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        model.eval()
        with torch.no_grad():
            val = float(loss_fn(model.raw(xv), yv))
        point = {"train_loss": total / len(xt), "val_loss": val}
        result.history.append(point)
        if on_epoch:
            on_epoch(epoch, point)
        if val < best - 1e-6:
            best, best_state, waited, result.best_epoch = val, copy.deepcopy(model.state_dict()), 0, epoch
        else:
            waited += 1
            if waited >= config.patience:
                break
    model.load_state_dict(best_state)
    result.module = model.cpu().eval()
    return result
