"""The drift detector on the real Kafka and PostgreSQL: retrain requests debounced per
cooldown window, a restart mid-stream, and two replicas sharing the work."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from loopline.events.v1 import drift_pb2 as dpb
from loopline_core.kafka.producer import EventProducer, Outgoing
from loopline_core.kafka.topics import DRIFT, DRIFT_INPUTS, PREDICTIONS, RETRAIN
from loopline_core.profiles.reference import NumericProfile, ReferenceProfile
from loopline_core.settings import KafkaSettings
from loopline_drift_detector.adapters.registry import InMemoryVersions, VersionInfo
from loopline_drift_detector.domain.catalogue import ValidationMetrics
from loopline_drift_detector.synthetic_events import prediction

from drift_it import (
    SECOND, Replica, checkpointed_offset, events, oracle, partition_of, read_topic, routed_events, schema_pool,
    settings,
    start_at_the_end, unique, wait_for,
)

pytestmark = pytest.mark.integration
FEATURES = ("x", "y")
_rng = np.random.default_rng(11)
PROFILE = ReferenceProfile({f: NumericProfile.from_values(_rng.normal(0, 1, 5000)) for f in FEATURES}, 5000)
COOLDOWN_S = 600


def registry(*models: str) -> InMemoryVersions:
    return InMemoryVersions({(m, 1): VersionInfo(m, 1, FEATURES, PROFILE, ValidationMetrics(0.8)) for m in models})


def drifting(model: str, seed: int, n: int = 2400, change: int = 400):  # noqa: ANN201
    """Rows one second apart, both features shifted by 1.5σ from ``change`` on."""
    from datetime import datetime, timezone
    t0 = datetime(2025, 3, 1, tzinfo=timezone.utc)
    rows = np.random.default_rng(seed).normal(0, 1, (n, len(FEATURES)))
    rows[change:] += 1.5
    return [prediction(model, 1, r, at=t0 + i * SECOND) for i, r in enumerate(rows.tolist())]


async def publish(kafka_bootstrap: str, messages) -> None:  # noqa: ANN001
    producer = EventProducer(KafkaSettings(bootstrap_servers=kafka_bootstrap), service="gateway")
    await producer.start()
    try:
        await producer.send_batch(PREDICTIONS, [Outgoing(m.prediction_id, m) for m in messages])
    finally:
        await producer.stop()


async def routed_and_checkpointed(kafka_bootstrap: str, pool, group: str, model: str, n: int) -> bool:  # noqa: ANN001
    records = await read_topic(kafka_bootstrap, DRIFT_INPUTS, model)
    if routed_events(records) < n:
        return False
    return await checkpointed_offset(pool, group, records[-1].partition) > records[-1].offset


async def test_injected_drift_gives_one_retrain_request_per_cooldown_window_and_survives_a_restart(
        kafka_bootstrap: str, postgres_dsn: str) -> None:
    model, run = unique("it-churn"), unique("drift")
    versions = registry(model)
    async with schema_pool(postgres_dsn) as pool:
        s = settings(kafka_bootstrap, postgres_dsn, "unused", run,
                     retrain={"cooldown_s": COOLDOWN_S, "request_timeout_s": COOLDOWN_S})
        stream = drifting(model, seed=3)
        starts = await start_at_the_end(kafka_bootstrap, s)
        await publish(kafka_bootstrap, stream)
        first = Replica(s, pool, versions)
        await first.start()
        # stop mid-stream: once the detect loop has checkpointed part of the model's partition
        partition = partition_of(model)
        await wait_for(lambda: _past_events(kafka_bootstrap, pool, s.detect_group, model, partition,
                                            starts[partition], 600), "a first checkpoint")
        await first.stop()
        second = Replica(s, pool, versions)
        await second.start()
        await wait_for(lambda: routed_and_checkpointed(kafka_bootstrap, pool, s.detect_group, model, len(stream)),
                       "the whole stream to be detected")
        await second.stop()

        drifts = await events(kafka_bootstrap, DRIFT, model)
        retrains = await events(kafka_bootstrap, RETRAIN, model)
        drift_ids, request_ids = await oracle(kafka_bootstrap, model, versions, s)
        assert [d.drift_id for d in drifts] == drift_ids  # neither repeated nor lost across the restart
        assert [r.request_id for r in retrains] == request_ids
        assert {d.feature for d in drifts} == set(FEATURES) and all(d.kind == dpb.DRIFT_KIND_DATA for d in drifts)
        times = [r.requested_at.ToDatetime() for r in retrains]
        windows = {int((t - times[0]).total_seconds() // COOLDOWN_S) for t in times}
        assert len(retrains) >= 2 and len(windows) == len(retrains)  # one per cooldown window
        assert all((b - a).total_seconds() >= COOLDOWN_S for a, b in zip(times, times[1:]))
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def _past_events(kafka_bootstrap: str, pool, group: str, model: str, partition: int, start: int,  # noqa: ANN001
                       n: int) -> bool:
    """The checkpoint has passed the routed record that carries the model's ``n``-th event."""
    records = [r for r in await read_topic(kafka_bootstrap, DRIFT_INPUTS, model) if r.offset >= start]
    carried = 0
    for record in records:
        carried += routed_events([record])
        if carried >= n:
            return await checkpointed_offset(pool, group, partition) > record.offset
    return False


async def test_two_replicas_split_the_models_without_double_alerts(kafka_bootstrap: str, postgres_dsn: str) -> None:
    models = [unique("it-a"), unique("it-b")]
    while partition_of(models[0]) == partition_of(models[1]):
        models[1] = unique("it-b")
    run = unique("drift2")
    versions = registry(*models)
    async with schema_pool(postgres_dsn) as pool:
        s = settings(kafka_bootstrap, postgres_dsn, "unused", run)
        await start_at_the_end(kafka_bootstrap, s)
        replicas = [Replica(s, pool, versions), Replica(s, pool, versions)]
        for r in replicas:
            await r.start()
        # both in the group before the stream starts, or the first may handle all of it alone
        await wait_for(lambda: _both_assigned(replicas), "both replicas to be given partitions")
        streams = {m: drifting(m, seed=i, n=1600) for i, m in enumerate(models)}
        await publish(kafka_bootstrap, [e for pair in zip(*streams.values()) for e in pair])
        for m in models:
            await wait_for(lambda m=m: routed_and_checkpointed(kafka_bootstrap, pool, s.detect_group, m, 1600),
                           f"{m} to be detected", timeout_s=90)
        owned = [sorted(r.service.persistence.states) for r in replicas]
        await asyncio.gather(*(r.stop() for r in replicas))
        for m in models:
            drifts = await events(kafka_bootstrap, DRIFT, m)
            ids = [d.drift_id for d in drifts]
            assert len(ids) == len(set(ids)) and ids
            assert ids == (await oracle(kafka_bootstrap, m, versions, s))[0]
            assert len(await events(kafka_bootstrap, RETRAIN, m)) == 1
        assert all(owned) and not set(owned[0]) & set(owned[1])  # both replicas own partitions, none twice


async def _both_assigned(replicas: list[Replica]) -> bool:
    owned = [r.service.persistence.owned for r in replicas]
    return all(owned) and not set.intersection(*owned)  # type: ignore[arg-type]
