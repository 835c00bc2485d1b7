"""The trainer through its real bootstrap with fake registry, feedback store and events."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from loopline_core.errors import InvalidArgument
from loopline_core.profiles import ReferenceProfile
from trainer_fakes import NAMES, T0, FakeFeedback, FakeRegistry, RecordingEvents, concept_rows, fast_settings, records

from loopline_trainer.bootstrap import wire
from loopline_trainer.domain.runs import RunRequest, RunStatus
from loopline_trainer.learning.mlp import from_torchscript
from loopline_trainer.service.ports import Split


class World:
    def __init__(self, **dataset: object) -> None:
        self.registry, self.feedback, self.events = FakeRegistry(), FakeFeedback(), RecordingEvents()
        self.wired = wire(fast_settings(**dataset), registry=self.registry, feedback=self.feedback,
                          events=self.events)
        self.trainer = self.wired.trainer

    async def run(self, request: RunRequest):  # type: ignore[no-untyped-def]
        run = await self.trainer.submit(request)
        await self.trainer.idle()
        return await self.trainer.get(run.run_id)


def jsonl(tmp_path: Path, rows: list[dict[str, object]], name: str = "data.jsonl") -> str:
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return f"jsonl:{path}"


async def bootstrap_model(world: World, tmp_path: Path, model: str = "m") -> None:
    source = jsonl(tmp_path, records(400, concept=0, seed=1))
    run = await world.run(RunRequest(model, "boot", "bootstrap", {"source": source}))
    assert run.status is RunStatus.COMPLETED, run.error


async def test_first_run_registers_promotes_and_deploys_at_full_weight(tmp_path: Path) -> None:
    world = World()
    source = jsonl(tmp_path, records(400, concept=0, seed=1))
    run = await world.run(RunRequest("m", "req-1", "bootstrap", {"source": source}))

    assert run.status is RunStatus.COMPLETED, run.error
    assert run.version == 1 and run.gate_passed and run.metrics["accuracy"] > 0.85
    assert world.registry.aliases["m"] == 1
    assert world.registry.deployments["m"] == (1, [Split(1, 1.0, "champion")])
    assert world.events.kinds(run.run_id) == ["started", "completed"]
    version = world.registry.versions["m"][0].new
    assert version.feature_names == NAMES and version.outputs == ("probabilities", 2)
    assert version.params["task"] == "classification" and version.params["seed"] == "7"
    assert ReferenceProfile.from_bytes(version.reference_profile).row_count == run.metrics["train_rows"]
    epochs = {step for name, step, _ in world.registry.metrics[run.run_id] if name == "val_loss"}
    assert epochs == set(range(1, int(run.metrics["epochs_run"]) + 1))
    recorded = world.registry.runs[run.run_id]
    assert recorded["status"] == "completed" and str(recorded["code_version"]).startswith(("git:", "loopline"))
    assert [role for _, _, role in recorded["inputs"]] == ["train", "validation", "holdout"]  # type: ignore[union-attr]
    # The exported TorchScript answers probabilities for raw (unstandardized) features.
    module = from_torchscript(world.registry.artifacts[version.artifact_sha256])
    x, y = concept_rows(200, concept=0, seed=99)
    probabilities = module(torch.as_tensor(x)).detach().numpy()
    assert probabilities.shape == (200, 2) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert (probabilities.argmax(axis=1) == y).mean() > 0.85


async def test_the_same_request_id_gives_the_same_run_and_one_version(tmp_path: Path) -> None:
    world = World()
    source = jsonl(tmp_path, records(300, concept=0, seed=1))
    first = await world.run(RunRequest("m", "same", "", {"source": source}))
    again = await world.run(RunRequest("m", "same", "", {"source": source}))
    assert again.run_id == first.run_id and again.status is RunStatus.COMPLETED
    assert len(world.registry.versions["m"]) == 1


async def test_runs_of_one_model_never_overlap(tmp_path: Path) -> None:
    world = World()
    source = jsonl(tmp_path, records(300, concept=0, seed=1))
    runs = [await world.trainer.submit(RunRequest("m", f"r{i}", "", {"source": source, "epochs": "3"}))
            for i in range(3)]
    assert {r.status for r in runs} == {RunStatus.QUEUED}
    await world.trainer.idle()
    assert world.registry.max_active == 1 and len(world.registry.versions["m"]) == 3


async def test_retrain_on_the_new_concept_beats_the_champion_and_requests_a_canary(tmp_path: Path) -> None:
    world = World(older_share=0.25)
    await bootstrap_model(world, tmp_path)
    x_old, y_old = concept_rows(200, concept=0, seed=2)
    x_new, y_new = concept_rows(400, concept=1, seed=3)
    drift = T0 + timedelta(hours=1)
    world.feedback.add(x_old, y_old, T0)
    world.feedback.add(x_new, y_new, drift)

    run = await world.run(RunRequest("m", "drift-1", "concept drift", {}, data_since=drift))

    assert run.status is RunStatus.COMPLETED, run.error
    assert run.gate_passed and run.version == 2
    assert run.metrics["accuracy"] > run.metrics["champion_accuracy"] + 0.2
    assert world.registry.deployments["m"][1] == [Split(1, 0.9, "champion"), Split(2, 0.1, "canary")]
    holdout = world.registry.versions["m"][1].new.holdout_sha256
    assert holdout in world.registry.versions["m"][0].evaluations  # the champion, scored on the same rows
    snapshot = world.registry.datasets["m.snapshots"][-1]
    assert snapshot[1] == 400 + 100  # recent rows plus a quarter as many older ones
    assert json.loads(snapshot[2])["recent"]["since"] == drift.isoformat()


async def test_a_candidate_that_does_not_beat_the_champion_is_refused_by_the_gate(tmp_path: Path) -> None:
    world = World()
    await bootstrap_model(world, tmp_path)
    x, y = concept_rows(400, concept=0, seed=4)
    world.feedback.add(x, y, T0)

    # One epoch at a tiny learning rate: a candidate far worse than the champion on the same rows.
    run = await world.run(RunRequest("m", "weak-1", "weak", {"epochs": "1", "learning_rate": "0.00001"}))

    assert run.status is RunStatus.COMPLETED and not run.gate_passed and run.version == 2
    assert run.metrics["accuracy"] < run.metrics["champion_accuracy"]
    assert "promotion gate refused" in run.gate_reason
    assert world.registry.deployments["m"][1] == [Split(1, 1.0, "champion")]
    assert world.events.kinds(run.run_id) == ["started", "completed"]


async def test_a_retired_model_is_retrained_and_registered_but_not_put_back_into_service(tmp_path: Path) -> None:
    world = World()
    await bootstrap_model(world, tmp_path)
    revision, _ = world.registry.deployments["m"]
    world.registry.deployments["m"] = (revision + 1, [])  # RetireDeployment: a revision with no splits
    x, y = concept_rows(400, concept=1, seed=6)
    world.feedback.add(x, y, T0)

    run = await world.run(RunRequest("m", "after-retire", "asked for", {}))

    assert run.status is RunStatus.COMPLETED and run.version == 2 and not run.gate_passed
    assert f"m is retired (deployment revision {revision + 1} serves nothing)" in run.gate_reason
    assert "version 2 registered, not rolled out" in run.gate_reason
    assert world.registry.deployments["m"] == (revision + 1, [])
    assert len(world.registry.versions["m"]) == 2


async def test_too_few_labelled_rows_fail_the_run_with_the_reason() -> None:
    world = World(min_rows=100)
    x, y = concept_rows(30, concept=0, seed=5)
    world.feedback.add(x, y, T0)
    run = await world.run(RunRequest("m", "few", "", {}))
    assert run.status is RunStatus.FAILED
    assert "only 30 labelled rows" in run.error and "100 are needed" in run.error
    assert world.events.kinds(run.run_id) == ["failed"]


@pytest.mark.parametrize(("line", "problem"), [
    ('{"features": {"a": 1.0}}', "label must be a number"),
    ('{"features": {"a": "x"}, "label": 1}', "features.a must be a number"),
    ('{"features": {"a": 1.0}, "label": 1, "event_time": "yesterday"}', "is not RFC 3339"),
    ("not json", "is not JSON"),
])
async def test_a_bad_jsonl_record_fails_the_run_naming_the_problem(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"features": {"a": 0.5}, "label": 0}\n' + line + "\n")
    world = World()
    run = await world.run(RunRequest("m", "bad", "", {"source": f"jsonl:{path}"}))
    assert run.status is RunStatus.FAILED and problem in run.error
    assert not world.registry.versions


async def test_requests_without_model_or_request_id_are_refused() -> None:
    world = World()
    with pytest.raises(InvalidArgument, match="request_id"):
        await world.trainer.submit(RunRequest("m", " "))
    with pytest.raises(InvalidArgument, match="model"):
        await world.trainer.submit(RunRequest("", "r"))


async def test_a_regressor_exports_a_prediction_column(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 2))
    rows = [{"features": {"u": float(a), "v": float(b)}, "label": float(3 * a - b + 0.5)} for a, b in x]
    world = World()
    run = await world.run(RunRequest("r", "reg", "", {"source": jsonl(tmp_path, rows), "task": "regression",
                                                    "epochs": "60", "patience": "10"}))
    assert run.status is RunStatus.COMPLETED, run.error
    version = world.registry.versions["r"][0].new
    assert version.outputs == ("prediction", 1) and run.metrics["rmse"] < 0.5
    assert world.registry.models["r"] == "regression"


async def test_user_entry_points_supply_the_data_and_the_network() -> None:
    world = World()
    run = await world.run(RunRequest("u", "user", "", {"source": "entrypoint:trainer_fakes:entry_records",
                                                     "model_entrypoint": "trainer_fakes:linear"}))
    assert run.status is RunStatus.COMPLETED, run.error
    assert run.metrics["accuracy"] > 0.85  # the concept is linear
    assert world.registry.versions["u"][0].new.params["model_entrypoint"] == "trainer_fakes:linear"
    broken = await world.run(RunRequest("u", "broken", "", {"source": "entrypoint:trainer_fakes:missing"}))
    assert broken.status is RunStatus.FAILED and "dataset entry point 'trainer_fakes:missing'" in broken.error
    unknown = await world.run(RunRequest("u", "unknown", "", {"source": "s3://bucket"}))
    assert unknown.status is RunStatus.FAILED and "unknown dataset source 's3://bucket'" in unknown.error
