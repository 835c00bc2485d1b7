"""The consumer loop's batch mode on the in-memory broker (one handler call per polled
partition batch, poison records isolated) and its partition lanes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from kafka_consumer_harness import DLQ, GROUP, Harness, harness, run_until  # noqa: F401
from loopline.events.v1.predictions_pb2 import FeedbackReceived, PredictionLogged

from loopline_core.errors import InvalidArgument, Unavailable
from loopline_core.kafka.cloudevents import EventTypes
from loopline_core.kafka.consumer import EventConsumer
from loopline_core.kafka.handlers import Delivery
from loopline_core.kafka.producer import Outgoing
from loopline_core.kafka.topics import PREDICTIONS


# Batch mode: one call per polled partition batch, poison records isolated.

async def publish_same_key(harness: Harness, *ids: str, key: str = "k") -> None:
    await harness.producer.start()
    await harness.producer.send_batch(PREDICTIONS, [
        Outgoing(key, PredictionLogged(prediction_id=pid), event_id=f"e-{pid}") for pid in ids])


def batch_consumer(harness: Harness, batch_handler: Callable[[list[Delivery]], Awaitable[None]]) -> EventConsumer:
    return EventConsumer(harness.settings, group_id=GROUP, topics=[PREDICTIONS], types=EventTypes(PredictionLogged),
                         batch_handler=batch_handler, dead_letters=harness.producer,
                         driver=harness.broker.consumer(PREDICTIONS, group_id=GROUP))


async def test_a_batch_handler_gets_a_partition_batch_in_offset_order_then_it_is_committed(harness: Harness) -> None:
    await publish_same_key(harness, "a", "b", "c", "d")
    calls: list[list[str]] = []

    async def handle(batch: list[Delivery]) -> None:
        calls.append([d.event.data.prediction_id for d in batch])
        assert [d.offset for d in batch] == sorted(d.offset for d in batch)
        assert all(dict(d.headers)["ce_id"] == d.event.id.encode() for d in batch)

    consumer = batch_consumer(harness, handle)
    await run_until(consumer, lambda: harness.committed() == 4)
    assert calls == [["a", "b", "c", "d"]]
    assert consumer.stats.handled == 4


async def test_an_undecodable_record_in_a_batch_is_dead_lettered_and_the_rest_handled_together(
        harness: Harness) -> None:
    await publish_same_key(harness, "a")
    driver = harness.broker.producer()
    await (await driver.send(PREDICTIONS, value=b"junk", key=b"k", headers=[("ce_specversion", b"1.0")]))
    await publish_same_key(harness, "b")
    calls: list[list[str]] = []

    async def handle(batch: list[Delivery]) -> None:
        calls.append([d.event.data.prediction_id for d in batch])

    consumer = batch_consumer(harness, handle)
    await run_until(consumer, lambda: harness.committed() == 3)
    assert calls == [["a", "b"]]
    assert [r.value for r in harness.broker.records(DLQ)] == [b"junk"]


async def test_a_poison_record_fails_its_batch_and_is_isolated_one_record_at_a_time(harness: Harness) -> None:
    await publish_same_key(harness, "a", "bad", "c")
    applied: list[str] = []
    sizes: list[int] = []

    async def handle(batch: list[Delivery]) -> None:
        sizes.append(len(batch))
        if any(d.event.data.prediction_id == "bad" for d in batch):
            raise InvalidArgument("prediction 'bad' is not acceptable", field="prediction_id")
        applied.extend(d.event.data.prediction_id for d in batch)

    consumer = batch_consumer(harness, handle)
    await run_until(consumer, lambda: harness.committed() == 3)
    assert applied == ["a", "c"]
    assert sizes == [3, 1, 1, 1]
    [dead] = harness.broker.records(DLQ)
    assert dict(dead.headers)["dlq_reason"] == b"prediction_id: prediction 'bad' is not acceptable"
    assert (consumer.stats.handled, consumer.stats.dead_lettered) == (2, 1)


async def test_a_retryable_batch_failure_retries_the_whole_batch(harness: Harness) -> None:
    await publish_same_key(harness, "a", "b")
    attempts = 0

    async def handle(batch: list[Delivery]) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise Unavailable("database is restarting")

    consumer = batch_consumer(harness, handle)
    await run_until(consumer, lambda: harness.committed() == 2)
    assert attempts == 3 and consumer.stats.retried == 2
    assert harness.broker.records(DLQ) == []


def test_exactly_one_kind_of_handler_is_required(harness: Harness) -> None:
    with pytest.raises(InvalidArgument, match="exactly one of handler and batch_handler"):
        EventConsumer(harness.settings, group_id=GROUP, topics=[PREDICTIONS], types=EventTypes(PredictionLogged),
                      dead_letters=harness.producer)


# Partition lanes: batches of different partition numbers side by side, one partition number at a time.

def lane_consumer(harness: Harness, batch_handler: Callable[[list[Delivery]], Awaitable[None]],
                  *topics: str) -> EventConsumer:
    topics = topics or (PREDICTIONS,)
    return EventConsumer(harness.settings, group_id=GROUP, topics=list(topics),
                         types=EventTypes(PredictionLogged, FeedbackReceived), batch_handler=batch_handler,
                         dead_letters=harness.producer, driver=harness.broker.consumer(*topics, group_id=GROUP),
                         concurrent_partitions=True, max_records=1000)


def committed_on(harness: Harness, *topics: str) -> int:
    return sum(harness.broker.committed(GROUP, t, p) or 0 for t in topics for p in range(6))


async def test_lanes_run_partitions_side_by_side(harness: Harness) -> None:
    await harness.publish(*(f"p-{n}" for n in range(40)))
    in_flight: set[int] = set()
    most = 0

    async def handle(batch: list[Delivery]) -> None:
        nonlocal most
        in_flight.add(batch[0].partition)
        most = max(most, len(in_flight))
        await asyncio.sleep(0.01)
        in_flight.discard(batch[0].partition)

    consumer = lane_consumer(harness, handle)
    await run_until(consumer, lambda: harness.committed() == 40)
    assert most >= 2 and consumer.stats.handled == 40


async def test_co_partitioned_batches_of_one_partition_number_never_overlap(harness: Harness) -> None:
    from loopline_core.kafka.topics import FEEDBACK

    await harness.publish(*(f"p-{n}" for n in range(30)))
    await harness.producer.send_batch(FEEDBACK, [Outgoing(f"p-{n}", FeedbackReceived(prediction_id=f"p-{n}"))
                                                 for n in range(30)])
    in_flight: list[int] = []
    overlaps: list[int] = []
    seen: dict[str, set[str]] = {}

    async def handle(batch: list[Delivery]) -> None:
        partition = batch[0].partition
        if partition in in_flight:
            overlaps.append(partition)
        in_flight.append(partition)
        await asyncio.sleep(0.005)
        for d in batch:
            seen.setdefault(d.topic, set()).add(d.key or "")
        in_flight.remove(partition)

    consumer = lane_consumer(harness, handle, PREDICTIONS, FEEDBACK)
    await run_until(consumer, lambda: committed_on(harness, PREDICTIONS, FEEDBACK) == 60)
    assert overlaps == []
    assert seen[PREDICTIONS] == seen[FEEDBACK] == {f"p-{n}" for n in range(30)}


async def test_a_stop_lets_every_lane_finish_its_batch_in_hand_and_commits_them(harness: Harness) -> None:
    await harness.publish(*(f"p-{n}" for n in range(40)))
    started, release = asyncio.Event(), asyncio.Event()
    handled: list[str] = []

    async def handle(batch: list[Delivery]) -> None:
        started.set()
        await release.wait()
        handled.extend(d.key or "" for d in batch)

    consumer = lane_consumer(harness, handle)
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert len(handled) == harness.committed() == 40


async def test_a_poison_record_in_one_lane_is_dead_lettered_and_the_other_lanes_go_on(harness: Harness) -> None:
    await harness.publish(*(f"p-{n}" for n in range(20)), "bad")
    applied: list[str] = []

    async def handle(batch: list[Delivery]) -> None:
        if any(d.key == "bad" for d in batch):
            raise InvalidArgument("bad record", field="prediction_id")
        applied.extend(d.key or "" for d in batch)

    consumer = lane_consumer(harness, handle)
    await run_until(consumer, lambda: harness.committed() == 21)
    assert sorted(applied) == sorted(f"p-{n}" for n in range(20))
    assert [r.key for r in harness.broker.records(DLQ)] == [b"bad"]


async def test_the_real_driver_commits_by_hand_and_co_partitioned_groups_use_range_assignment() -> None:
    from aiokafka.coordinator.assignors.range import RangePartitionAssignor
    from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    from loopline_core.kafka.consumer import kafka_consumer
    from loopline_core.settings import KafkaSettings

    settings = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    plain = kafka_consumer(settings, [PREDICTIONS], "g")
    joined = kafka_consumer(settings, [PREDICTIONS], "g", co_partitioned=True, fetch_min_bytes=65536,
                            fetch_max_wait_ms=50)
    try:
        assert plain._partition_assignment_strategy == (RoundRobinPartitionAssignor,)
        assert not plain._enable_auto_commit and plain._fetch_min_bytes == 1
        assert joined._partition_assignment_strategy == (RangePartitionAssignor,)
        assert (joined._fetch_min_bytes, joined._fetch_max_wait_ms) == (65536, 50)
    finally:
        await plain.stop()
        await joined.stop()
