"""One training run, end to end: snapshot, lineage, fit, evaluate against the
champion on the same holdout, export, register, and ask for the rollout."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, replace

import numpy as np

from loopline_core.errors import FailedPrecondition, InvalidArgument
from loopline_core.profiles import build_profile

from loopline_trainer.domain.dataset import Snapshot, split
from loopline_trainer.domain.dataset import Split as Parts
from loopline_trainer.domain.runs import Run
from loopline_trainer.learning.evaluate import evaluate
from loopline_trainer.learning.fit import FitConfig, FitResult, fit
from loopline_trainer.learning.mlp import NetworkFactory, from_torchscript, network_factory, to_torchscript
from loopline_trainer.service.datasets import snapshot_for
from loopline_trainer.service.ports import Champion, Events, Feedback, NewVersion, Registry, Split
from loopline_trainer.service.provenance import code_version, environment
from loopline_trainer.settings import TrainerSettings

_GATE_REFUSED = "promotion gate refused"
_REVISION_RETRIES = 3


@dataclass
class Deps:
    settings: TrainerSettings
    registry: Registry
    feedback: Feedback
    events: Events


def _task(run: Run, champion: Champion | None, snapshot: Snapshot) -> str:
    task = run.request.params.get("task") or (champion.params.get("task") if champion else "") or ""
    if not task:
        integral = np.all(snapshot.labels == np.round(snapshot.labels)) and snapshot.labels.min() >= 0
        task = "classification" if integral else "regression"
    if task not in ("classification", "regression"):
        raise InvalidArgument(f"task {task!r} is neither 'classification' nor 'regression'", field="task")
    return task


def _class_names(run: Run, champion: Champion | None) -> list[str]:
    text = run.request.params.get("class_names") or (champion.params.get("class_names", "") if champion else "")
    return [name.strip() for name in text.split(",") if name.strip()]


def _config(run: Run, deps: Deps, classify: bool, n_outputs: int) -> FitConfig:
    t, p = deps.settings.training, run.request.params
    try:
        return FitConfig(classify=classify, n_outputs=n_outputs, epochs=int(p.get("epochs", t.epochs)),
                         batch_size=int(p.get("batch_size", t.batch_size)),
                         learning_rate=float(p.get("learning_rate", t.learning_rate)),
                         hidden=int(p.get("hidden", t.hidden)), patience=int(p.get("patience", t.patience)),
                         seed=int(p.get("seed", t.seed)), threads=t.torch_threads, device=t.device)
    except ValueError as exc:
        raise InvalidArgument(f"a training param is not a number: {exc}", field="params") from exc


async def _fit(deps: Deps, run: Run, parts: Parts, config: FitConfig, network: NetworkFactory) -> FitResult:
    """Fits in a worker thread; per-epoch points reach the registry as they come."""
    loop = asyncio.get_running_loop()
    points: asyncio.Queue[tuple[int, dict[str, float]] | None] = asyncio.Queue()

    async def drain() -> None:
        while (item := await points.get()) is not None:
            epoch, values = item
            await deps.registry.log_metrics(run.run_id, [(name, epoch, v) for name, v in values.items()])

    drainer = asyncio.create_task(drain())
    try:
        return await asyncio.to_thread(
            fit, parts.train.features, parts.train.labels, parts.validation.features, parts.validation.labels,
            config, network, lambda epoch, values: loop.call_soon_threadsafe(points.put_nowait, (epoch, values)))
    finally:
        points.put_nowait(None)
        await drainer


async def _champion_metrics(deps: Deps, champion: Champion, holdout: Snapshot, classify: bool) -> dict[str, float]:
    data = await deps.registry.download(champion.artifact_sha256)
    module = await asyncio.to_thread(from_torchscript, data)
    return await asyncio.to_thread(evaluate, module, holdout.features, holdout.labels, classify=classify)


async def _record_datasets(deps: Deps, run: Run, snapshot: Snapshot, parts: Parts,
                           seed: int) -> list[tuple[str, int, str]]:
    """The snapshot and its three parts as dataset versions; each part's query names
    its parent and the seed, so the split can be redone from the registry's records."""
    model, t = run.model, deps.settings.training
    version = await deps.registry.dataset_version(f"{model}.snapshots", snapshot, f"{run.run_id}/snapshot")
    parent = {"dataset": f"{model}.snapshots", "version": version, "sha256": snapshot.content_sha256()}
    inputs = []
    for role, part in (("train", parts.train), ("validation", parts.validation), ("holdout", parts.holdout)):
        query = json.dumps({"split": role, "of": parent, "seed": seed, "validation_share": t.validation_share,
                            "holdout_share": t.holdout_share})
        made = await deps.registry.dataset_version(f"{model}.{role}", replace(part, query=query),
                                                   f"{run.run_id}/{role}")
        inputs.append((f"{model}.{role}", made, role))
    return inputs


async def train(deps: Deps, run: Run) -> Run:
    model, params = run.model, run.request.params
    champion = await deps.registry.champion(model)
    snapshot = await snapshot_for(run.request, deps.settings.dataset, deps.feedback, champion)
    task = _task(run, champion, snapshot)
    classify = task == "classification"
    if classify and (snapshot.labels.min() < 0 or not np.all(snapshot.labels == np.round(snapshot.labels))):
        raise InvalidArgument("classifier labels must be class indices (integers >= 0)", field="label")
    class_names = _class_names(run, champion)
    n_outputs = max(int(snapshot.labels.max()) + 1, len(class_names), 2) if classify else 1
    await deps.registry.ensure_model(model, task)
    config = _config(run, deps, classify, n_outputs)
    t = deps.settings.training
    parts = split(snapshot, seed=config.seed, validation_share=t.validation_share, holdout_share=t.holdout_share)
    snapshot_sha, holdout_sha = snapshot.content_sha256(), parts.holdout.content_sha256()
    inputs = await _record_datasets(deps, run, snapshot, parts, config.seed)
    await deps.events.started(run, snapshot_sha)
    run_params = {**params, "task": task, "seed": str(config.seed), "epochs": str(config.epochs),
                  "batch_size": str(config.batch_size), "learning_rate": str(config.learning_rate),
                  "hidden": str(config.hidden), "patience": str(config.patience),
                  "split": f"validation={t.validation_share},holdout={t.holdout_share}",
                  "dataset_sha256": snapshot_sha, "holdout_sha256": holdout_sha}
    await deps.registry.create_run(run.run_id, model, run_params, code_version(), environment(config.device), inputs)
    result = await _fit(deps, run, parts, config, network_factory(params.get("model_entrypoint")))
    metrics = await asyncio.to_thread(evaluate, result.module, parts.holdout.features, parts.holdout.labels,
                                      classify=classify)
    run.metrics = {**metrics, "best_epoch": float(result.best_epoch), "epochs_run": float(len(result.history)),
                   "train_rows": float(len(parts.train)), "holdout_rows": float(len(parts.holdout))}
    champion_metrics: dict[str, float] | None = None
    if champion is not None:
        try:
            champion_metrics = await _champion_metrics(deps, champion, parts.holdout, classify)
        except InvalidArgument as exc:
            run.gate_reason = f"champion version {champion.version} cannot be evaluated: {exc}"
        else:
            run.metrics.update({f"champion_{k}": v for k, v in champion_metrics.items()})
    artifact = await asyncio.to_thread(to_torchscript, result.module)
    artifact_sha = hashlib.sha256(artifact).hexdigest()
    await deps.registry.upload(artifact, artifact_sha)
    profile = build_profile(parts.train.features, list(snapshot.feature_names)).to_bytes()
    version_params = {**run_params, "device": result.device}
    if class_names:
        version_params["class_names"] = ",".join(class_names)
    output = ("probabilities", n_outputs) if classify else ("prediction", 1)
    run.version = await deps.registry.register(NewVersion(
        model, artifact_sha, snapshot.feature_names, output, version_params, dict(run.metrics), run.run_id,
        profile, holdout_sha, metrics, f"{run.run_id}/version"))
    if champion is not None and champion_metrics is not None:
        await deps.registry.record_evaluation(model, champion.version, holdout_sha, champion_metrics)
    await _roll_out(deps, run, champion)
    await deps.registry.finish_run(run.run_id, True, run.gate_reason)
    return run


async def _roll_out(deps: Deps, run: Run, champion: Champion | None) -> None:
    model, version = run.model, run.version
    revision, splits = await deps.registry.deployment(model)
    if revision > 0 and not splits:
        # retired in the registry: a retrain does not put the model back into service (an
        # operator does, with SetDeployment); the version stays registered
        run.gate_passed = False
        run.gate_reason = "; ".join(filter(None, [
            f"{model} is retired (deployment revision {revision} serves nothing): "
            f"version {version} registered, not rolled out", run.gate_reason]))
        return
    if champion is None:
        await deps.registry.promote(model, version, f"first version of {model}, trained by {run.run_id}")
        await deps.registry.set_deployment(model, revision, [Split(version, 1.0, "champion")],
                                           f"first champion, {run.run_id}")
        run.gate_passed, run.gate_reason = True, "there was no champion; promoted and deployed at 100%"
        return
    weight = deps.settings.rollout.canary_weight
    splits = [Split(champion.version, 1.0 - weight, "champion"), Split(version, weight, "canary")]
    reason = f"canary of version {version} from {run.run_id}: {run.request.reason or 'retrain'}"
    for attempt in range(_REVISION_RETRIES):
        try:
            await deps.registry.set_deployment(model, revision, splits, reason)
        except FailedPrecondition as exc:
            if _GATE_REFUSED in exc.message:
                run.gate_passed = False
                run.gate_reason = "; ".join(filter(None, [exc.message, run.gate_reason]))
                return
            if attempt + 1 == _REVISION_RETRIES:
                raise
            revision, _ = await deps.registry.deployment(model)  # someone else changed it meanwhile
            continue
        run.gate_passed, run.gate_reason = True, f"canary requested at weight {weight:g}"
        return


__all__ = ["Deps", "train"]
