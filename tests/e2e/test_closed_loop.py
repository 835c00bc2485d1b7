"""End to end on the whole local stack (Kafka, PostgreSQL, Triton and the five services, started by the
Stack supervisor in a temporary run directory): the loop closes by itself, and a bad retrain is stopped.

1. A shorter ``loopline demo`` scenario: bootstrap through the trainer, live traffic over gRPC and REST,
   delayed labels, an unannounced concept change; the platform detects it, retrains, canaries and
   promotes; accuracy recovers.
2. A retrain on corrupted labels (every label flipped): it beats the champion on its own (corrupted)
   holdout, so the gate lets it through to a canary; live labels show it worse and the rollout
   controller rolls it back, with the statistics in the audit log.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from loopline.registry.v1 import registry_pb2 as rpb
from loopline.trainer.v1 import trainer_pb2 as tpb
from loopline.trainer.v1.trainer_pb2_grpc import TrainerServiceStub

from loopline_cli.loop.live import LoopOptions, render_report, run_loop
from loopline_cli.loop.platform import bootstrap_model, read_admin_key, wait_run
from loopline_cli.loop.registry import Registry, full_champion, splits_of
from loopline_cli.loop.scenario import run_scenario
from loopline_cli.loop.sources import Record, Synthetic, write_jsonl
from loopline_cli.loop.traffic import FeedbackClient, GatewayClient, GatewayError
from loopline_cli.stack import Stack, StackConfig, StartFailed
from loopline_cli.stack.ports import HOST
from loopline_cli.trace import read_spans, trace_files

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

#: The demo's tuning, made explicit here (the environment overrides LOOP_TUNING).
E2E_TUNING = {"LOOPLINE_DATASET__MIN_ROWS": "600"}
RATE_HZ = 25.0


@pytest.fixture(scope="module")
def e2e_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Every part of the stack, on free ports, stopped when the module ends (before the integration
    tests start their own infrastructure)."""
    stack = Stack(StackConfig.for_tests(tmp_path_factory.mktemp("e2e")))
    saved = {key: os.environ.get(key) for key in E2E_TUNING}
    os.environ.update(E2E_TUNING)  # services read the loop tuning from the environment they start in
    try:
        results = stack.up("all")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        failed = [r.error for r in results if r.error is not None]
        if failed:
            error = failed[0]
            pytest.fail(error.detailed() if isinstance(error, StartFailed) else str(error), pytrace=False)
        yield stack
    finally:
        stack.down()


async def test_the_loop_closes_after_an_unannounced_concept_change(e2e_stack: Stack) -> None:
    out = io.StringIO()
    options = LoopOptions(source="synthetic:seed=11,n=4800,switch=1100", bootstrap=800, rate_hz=RATE_HZ,
                          label_delay_s=1.5, after_s=14.0, max_seconds=170.0, model=f"e2e-{uuid.uuid4().hex[:6]}")
    began = time.monotonic()
    result = await run_loop(e2e_stack.config, options, out)
    report = render_report(result, e2e_stack.config.run_dir)
    print(out.getvalue() + report)
    assert not result.run.errors, result.run.errors[:5]
    s = result.summary
    # the platform saw the change, retrained through the gate, and the new version took all the traffic
    assert result.run.detected_s is not None and result.timeline.retrain is not None, report
    assert result.timeline.completed is not None and result.timeline.completed.gate_passed, report
    assert result.run.new_champion == result.timeline.completed.version != result.boot.version, report
    assert s.recovery_s is not None and s.recovery_s <= 120.0, report
    # quality fell at the change and came back to within 3 points of before
    assert s.during < s.before - 0.1, report
    assert s.recovered and s.after >= s.before - 0.03, report
    async with Registry(f"{HOST}:{e2e_stack.config.port('registry-grpc')}",
                        read_admin_key(e2e_stack.config.run_dir)) as registry:
        champion = await registry.stub.ResolveAlias(rpb.ResolveAliasRequest(model=result.model, alias="champion"),
                                                    metadata=registry.metadata)
        assert champion.version == result.run.new_champion
    # the retrain chain is one trace: drift detector -> trainer -> registry
    assert result.trace_id
    spans = read_spans(trace_files(e2e_stack.config.run_dir), result.trace_id)
    assert {"drift-detector", "trainer", "registry"} <= {span.service for span in spans}, \
        sorted({(span.service, span.name) for span in spans})
    print(f"e2e loop: {time.monotonic() - began:.0f}s, change -> champion {s.recovery_s:.1f}s, "
          f"before {s.before:.3f} after {s.after:.3f}")


def flipped(records: list[Record]) -> list[Record]:
    return [Record(r.features, 1 - r.label, r.event_time) for r in records]


async def test_a_retrain_on_corrupted_labels_is_rolled_back_by_the_canary(e2e_stack: Stack,
                                                                          tmp_path: Path) -> None:
    config = e2e_stack.config
    model = f"e2e-bad-{uuid.uuid4().hex[:6]}"
    source = Synthetic(seed=13, n=4000, switch=4000)  # one concept throughout
    records = iter(source)
    head = [next(records) for _ in range(600)]
    good, bad = tmp_path / "good.jsonl", tmp_path / "corrupted.jsonl"
    write_jsonl(head, good)
    write_jsonl(flipped([next(records) for _ in range(600)]), bad)
    names = source.names()
    async with Registry(f"{HOST}:{config.port('registry-grpc')}", read_admin_key(config.run_dir)) as registry:
        gateway = GatewayClient(model, f"{HOST}:{config.port('serving-gateway-grpc')}",
                                f"http://{HOST}:{config.port('serving-gateway-http')}", names)
        feedback = FeedbackClient(f"{HOST}:{config.port('feedback-collector-grpc')}")
        try:
            boot = await bootstrap_model(model=model, dataset=good, trainer_target=f"{HOST}:{config.port('trainer-grpc')}",
                                         registry=registry, gateway=gateway, probe=head[0])

            class Deployments:
                async def drift_detected(self) -> bool:
                    return False

                async def champion_at_full(self) -> int | None:
                    deployment = await registry.deployment(model)
                    return None if deployment is None else full_champion(deployment)

            traffic = asyncio.create_task(run_scenario(
                records, gateway=gateway, feedback=feedback, watcher=Deployments(), rate_hz=RATE_HZ,
                label_delay_s=1.5, change_at=-1, initial_champion=boot.version, max_seconds=150.0))
            async with grpc.aio.insecure_channel(f"{HOST}:{config.port('trainer-grpc')}") as channel:
                trainer = TrainerServiceStub(channel)
                started = await trainer.StartTraining(tpb.StartTrainingRequest(
                    model=model, request_id="corrupted-labels", reason="e2e: every label flipped",
                    params={"source": f"jsonl:{bad}"}))
                run = await wait_run(trainer, started.run_id, 120.0)
            assert run.status == tpb.RUN_STATUS_COMPLETED, run.error
            candidate = run.registered_version
            # on its own corrupted holdout the candidate looks far better: the gate cannot see it
            assert run.metrics["accuracy"] > run.metrics["champion_accuracy"] + 0.5, dict(run.metrics)
            seen: list[list[tuple[int, float]]] = []
            deadline = time.monotonic() + 120.0
            rolled_back = None
            while time.monotonic() < deadline and not traffic.done():
                deployment = await registry.deployment(model)
                assert deployment is not None
                splits = splits_of(deployment)
                if not seen or seen[-1] != splits:
                    seen.append(splits)
                if len(seen) > 1 and splits == [(boot.version, 1.0)]:
                    rolled_back = deployment
                    break
                await asyncio.sleep(0.5)
            traffic.cancel()
            scenario = await asyncio.gather(traffic, return_exceptions=True)
            assert rolled_back is not None, f"deployments seen: {seen}; traffic: {scenario}"
            assert [(boot.version, 0.8), (candidate, 0.2)] in seen, seen
            assert all(candidate not in dict(s) or dict(s)[candidate] < 1.0 for s in seen), seen
            entries = await registry.audit(model)
            rollback = [e for e in entries if e.actor == "rollout-controller" and e.action == "deployment.changed"]
            assert rollback and "worse" in rollback[-1].reason, [(e.actor, e.action, e.reason) for e in entries]
            print(f"rolled back: {rollback[-1].reason}")
            champion = await registry.stub.ResolveAlias(rpb.ResolveAliasRequest(model=model, alias="champion"),
                                                        metadata=registry.metadata)
            assert champion.version == boot.version
            await retired_and_let_go(config, registry, gateway, model, head[0], rolled_back.revision)
        finally:
            await gateway.close()
            await feedback.close()


async def retired_and_let_go(config: StackConfig, registry: Registry, gateway: GatewayClient, model: str,
                             probe: Record, revision: int) -> None:
    """Retired in the registry, the model stops answering through the gateway and Triton unloads its
    versions (registry on PostgreSQL -> DeploymentChanged on Kafka -> gateway -> Triton)."""
    retired = await registry.stub.RetireDeployment(rpb.RetireDeploymentRequest(
        model=model, expected_revision=revision, reason="e2e: taken out of service"), metadata=registry.metadata)
    assert list(retired.splits) == [] and retired.revision == revision + 1
    deadline, answer, loaded = time.monotonic() + 60.0, "", ["?"]
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                await gateway.infer_grpc(probe)
                answer = "answered"
            except GatewayError as exc:
                answer = str(exc)
            async with http.post(f"http://{HOST}:{config.port('triton-http')}/v2/repository/index",
                                 json={"ready": True}) as reply:
                loaded = [m["name"] for m in await reply.json() if m["name"].startswith(f"{model}.")]
            if "NOT_FOUND" in answer and f"model {model!r} is not deployed" in answer and not loaded:
                return
            await asyncio.sleep(0.5)
    pytest.fail(f"retired {model}: the gateway still says {answer!r}; Triton still has {loaded} READY")

