"""The consumer loop on the in-memory broker: commit after handling, retries in
place, dead letters with reasons, graceful stop, and redelivery after a crash."""

from __future__ import annotations

import asyncio

import pytest
from kafka_consumer_harness import DLQ, GROUP, Harness, SimulatedCrash, eventually, harness, run_until  # noqa: F401
from loopline.events.v1.predictions_pb2 import FeedbackReceived, PredictionLogged

from loopline_core.errors import InvalidArgument, MalformedEvent, Unavailable
from loopline_core.kafka.cloudevents import EventTypes, derive_event_id
from loopline_core.kafka.consumer import EventConsumer
from loopline_core.kafka.handlers import Delivery, EventRouter
from loopline_core.kafka.inbox import InMemoryInbox, MemoryTransaction, idempotent
from loopline_core.kafka.producer import Outgoing
from loopline_core.kafka.topics import DRIFT_STATE, PREDICTIONS


async def test_records_are_handled_then_committed(harness: Harness) -> None:
    await harness.publish("a", "b", "c")
    seen: list[str] = []

    async def handler(delivery: Delivery) -> None:
        seen.append(delivery.event.data.prediction_id)

    consumer = harness.consumer(handler)
    await run_until(consumer, lambda: harness.committed() == 3)
    assert sorted(seen) == ["a", "b", "c"]
    assert (consumer.stats.handled, consumer.stats.retried, consumer.stats.dead_lettered) == (3, 0, 0)


async def test_delivery_names_key_topic_and_position(harness: Harness) -> None:
    await harness.publish("a")
    deliveries: list[Delivery] = []

    async def handler(delivery: Delivery) -> None:
        deliveries.append(delivery)

    await run_until(harness.consumer(handler), lambda: len(deliveries) == 1)
    [delivery] = deliveries
    record = harness.broker.records(PREDICTIONS)[0]
    assert (delivery.topic, delivery.partition, delivery.offset, delivery.key) == (
        PREDICTIONS, record.partition, 0, "a")
    assert delivery.event.id == "e-a"


async def test_a_poison_record_is_dead_lettered_as_it_was_and_the_loop_goes_on(harness: Harness) -> None:
    await harness.producer.start()
    poison_headers = [("ce_specversion", b"1.0"), ("content-type", b"application/protobuf"), ("x-app", b"1")]
    driver = harness.broker.producer()
    await (await driver.send(PREDICTIONS, value=b"junk", key=b"a", headers=poison_headers))
    await harness.publish("a")
    seen: list[str] = []

    async def handler(delivery: Delivery) -> None:
        seen.append(delivery.event.id)

    consumer = harness.consumer(handler)
    await run_until(consumer, lambda: harness.committed() == 2)
    assert seen == ["e-a"]
    [dead] = harness.broker.records(DLQ)
    assert (dead.key, dead.value) == (b"a", b"junk")
    assert dead.headers[:3] == tuple(poison_headers)
    headers = dict(dead.headers)
    assert headers["dlq_reason"] == b"ce_id: required header ce_id is missing or empty"
    assert headers["dlq_error_type"] == b"loopline_core.errors.MalformedEvent"
    assert headers["dlq_attempts"] == b"1"
    assert (headers["dlq_source_topic"], headers["dlq_source_offset"]) == (PREDICTIONS.encode(), b"0")
    assert headers["dlq_consumer_group"] == GROUP.encode()
    assert headers["dlq_failed_at"].endswith(b"Z")
    assert consumer.stats.dead_lettered == 1 and consumer.stats.handled == 1


async def test_an_event_of_an_unexpected_type_is_dead_lettered(harness: Harness) -> None:
    await harness.producer.start()
    await harness.producer.send(PREDICTIONS, "a", FeedbackReceived(prediction_id="a"))
    consumer = harness.consumer(lambda d: asyncio.sleep(0))
    await run_until(consumer, lambda: harness.committed() == 1)
    assert b"unexpected event type 'loopline.events.v1.FeedbackReceived'" in harness.dead_letters()[0]["dlq_reason"]


@pytest.mark.parametrize("error", [InvalidArgument("bad version", field="version"), KeyError("model"),
                                   MalformedEvent("missing model")])
async def test_errors_that_are_not_retryable_are_dead_lettered_at_once(harness: Harness, error: Exception) -> None:
    await harness.publish("a")
    calls = 0

    async def handler(delivery: Delivery) -> None:
        nonlocal calls
        calls += 1
        raise error

    consumer = harness.consumer(handler)
    await run_until(consumer, lambda: harness.committed() == 1)
    assert calls == 1 and consumer.stats.retried == 0
    [headers] = harness.dead_letters()
    assert headers["dlq_attempts"] == b"1"
    assert headers["dlq_reason"] == str(error).encode()


async def test_a_retryable_error_is_retried_in_place_then_succeeds(harness: Harness) -> None:
    await harness.publish("a", "a2", "a3")  # crc32 puts these keys on different partitions; order per partition
    attempts: dict[str, int] = {}
    order: list[str] = []

    async def handler(delivery: Delivery) -> None:
        pid = delivery.event.data.prediction_id
        attempts[pid] = attempts.get(pid, 0) + 1
        if pid == "a" and attempts[pid] <= 2:
            raise Unavailable("database restarting")
        order.append(pid)

    consumer = harness.consumer(handler)
    await run_until(consumer, lambda: harness.committed() == 3)
    assert attempts["a"] == 3 and consumer.stats.retried == 2
    assert harness.dead_letters() == []
    assert sorted(order) == ["a", "a2", "a3"]


async def test_retries_do_not_skip_ahead_on_the_partition(harness: Harness) -> None:
    await harness.producer.start()
    await harness.producer.send_batch(PREDICTIONS, [Outgoing("same", PredictionLogged(latency_us=n)) for n in range(3)])
    order: list[int] = []
    failures = iter([True, True, False])

    async def handler(delivery: Delivery) -> None:
        n = delivery.event.data.latency_us
        if n == 0 and next(failures):
            raise Unavailable("not yet")
        order.append(n)

    await run_until(harness.consumer(handler), lambda: harness.committed() == 3)
    assert order == [0, 1, 2]


async def test_a_retryable_error_past_the_limit_is_dead_lettered(harness: Harness) -> None:
    await harness.publish("a", "b")

    async def handler(delivery: Delivery) -> None:
        if delivery.key == "a":
            raise Unavailable("still down")

    consumer = harness.consumer(handler)
    await run_until(consumer, lambda: harness.committed() == 2)
    [headers] = harness.dead_letters()
    assert headers["dlq_attempts"] == b"4"  # the first attempt and max_retries=3 retries
    assert headers["dlq_error_type"] == b"loopline_core.errors.Unavailable"
    assert consumer.stats.retried == 3 and consumer.stats.handled == 1


async def test_nothing_is_committed_until_the_dead_letter_is_written(harness: Harness) -> None:
    await harness.publish("a")

    async def handler(delivery: Delivery) -> None:
        raise InvalidArgument("no")

    consumer = harness.consumer(handler)
    task = asyncio.create_task(consumer.run())
    harness.broker.unavailable = True
    await eventually(lambda: harness.broker.refused >= 3)
    assert harness.committed() == 0 and consumer.stats.dead_lettered == 0
    harness.broker.unavailable = False
    await eventually(lambda: harness.committed() == 1)
    consumer.stop()
    await asyncio.wait_for(task, 5)
    assert consumer.stats.dead_lettered == 1 and len(harness.dead_letters()) == 1


async def test_earlier_dead_letter_headers_are_replaced(harness: Harness) -> None:
    await harness.producer.start()
    driver = harness.broker.producer()
    await (await driver.send(PREDICTIONS, value=b"x", key=b"a", headers=[("dlq_reason", b"old"), ("a", b"1")]))
    await run_until(harness.consumer(lambda d: asyncio.sleep(0)), lambda: harness.committed() == 1)
    [dead] = harness.broker.records(DLQ)
    assert [k for k, _ in dead.headers].count("dlq_reason") == 1
    assert dict(dead.headers)["dlq_reason"] != b"old" and dict(dead.headers)["a"] == b"1"


async def test_stop_finishes_the_record_in_hand_and_commits_it(harness: Harness) -> None:
    await harness.publish("a", "b")
    started, release = asyncio.Event(), asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        started.set()
        await release.wait()

    consumer = harness.consumer(handler, max_records=1)
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(started.wait(), 5)
    consumer.stop()
    release.set()
    await asyncio.wait_for(task, 5)
    assert consumer.stats.handled == 1 and harness.committed() == 1


async def test_cancelling_run_is_a_graceful_stop(harness: Harness) -> None:
    await harness.publish("a", "b")
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def handler(delivery: Delivery) -> None:
        started.set()
        await release.wait()
        finished.append(delivery.key or "")

    consumer = harness.consumer(handler, max_records=1)
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert len(finished) == 1 and harness.committed() == 1


async def test_a_stop_during_a_retry_wait_leaves_the_record_for_redelivery(harness: Harness) -> None:
    harness.settings = harness.settings.model_copy(update={"retry_backoff_ms": 60_000, "retry_backoff_max_ms": 60_000})
    await harness.publish("a")
    failed = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        failed.set()
        raise Unavailable("down")

    consumer = harness.consumer(handler)
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(failed.wait(), 5)
    consumer.stop()
    await asyncio.wait_for(task, 5)
    assert harness.committed() == 0 and harness.dead_letters() == []


async def test_after_a_crash_before_commit_the_record_is_redelivered_and_the_inbox_skips_it(harness: Harness) -> None:
    await harness.publish("a")
    inbox = InMemoryInbox()
    effects: list[str] = []
    runs = 0

    async def on_prediction_logged(delivery: Delivery, tx: MemoryTransaction) -> None:
        nonlocal runs
        runs += 1
        tx.on_commit(lambda: effects.append(delivery.event.id))

    handle = idempotent("test", inbox, on_prediction_logged)

    async def crash_after_handling(delivery: Delivery) -> None:
        await handle(delivery)
        raise SimulatedCrash()

    with pytest.raises(SimulatedCrash):
        await asyncio.wait_for(harness.consumer(crash_after_handling).run(), 5)
    assert harness.committed() == 0 and effects == ["e-a"]

    consumer = harness.consumer(handle)
    await run_until(consumer, lambda: harness.committed() == 1)
    assert runs == 1 and effects == ["e-a"] and consumer.stats.handled == 1


async def test_a_crash_inside_the_handler_leaves_no_mark_and_the_redelivery_runs_it(harness: Harness) -> None:
    await harness.publish("a")
    inbox = InMemoryInbox()
    effects: list[str] = []
    crash = True

    async def on_prediction_logged(delivery: Delivery, tx: MemoryTransaction) -> None:
        tx.on_commit(lambda: effects.append(delivery.event.id))
        if crash:
            raise SimulatedCrash()

    handle = idempotent("test", inbox, on_prediction_logged)
    with pytest.raises(SimulatedCrash):
        await asyncio.wait_for(harness.consumer(handle).run(), 5)
    assert effects == [] and not await inbox.seen("test", "e-a")

    crash = False
    await run_until(harness.consumer(handle), lambda: harness.committed() == 1)
    assert effects == ["e-a"] and await inbox.seen("test", "e-a")


async def test_the_router_dispatches_by_type_and_decodes_only_its_types(harness: Harness) -> None:
    await harness.producer.start()
    await harness.producer.send(PREDICTIONS, "a", PredictionLogged(prediction_id="a"))
    await harness.producer.send(PREDICTIONS, "a", FeedbackReceived(prediction_id="a"))
    got: list[str] = []

    async def on_prediction_logged(delivery: Delivery) -> None:
        got.append(delivery.event.type)

    router = EventRouter().on(PredictionLogged, on_prediction_logged)
    assert router.types.names() == ["loopline.events.v1.PredictionLogged"]
    consumer = EventConsumer(harness.settings, group_id=GROUP, topics=[PREDICTIONS], types=router.types,
                             handler=router, dead_letters=harness.producer,
                             driver=harness.broker.consumer(PREDICTIONS, group_id=GROUP))
    await run_until(consumer, lambda: harness.committed() == 2)
    assert got == ["loopline.events.v1.PredictionLogged"] and consumer.stats.dead_lettered == 1
    with pytest.raises(ValueError, match="already registered"):
        router.on(PredictionLogged, on_prediction_logged)


async def test_types_the_router_ignores_are_skipped_not_dead_lettered(harness: Harness) -> None:
    await harness.producer.start()
    await harness.producer.send(PREDICTIONS, "a", FeedbackReceived(prediction_id="a"))
    await harness.producer.send(PREDICTIONS, "a", PredictionLogged(prediction_id="a"))
    got: list[str] = []

    async def on_prediction_logged(delivery: Delivery) -> None:
        got.append(delivery.event.type)

    router = EventRouter().on(PredictionLogged, on_prediction_logged).ignore(FeedbackReceived)
    consumer = EventConsumer(harness.settings, group_id=GROUP, topics=[PREDICTIONS], types=router.types,
                             handler=router, dead_letters=harness.producer,
                             driver=harness.broker.consumer(PREDICTIONS, group_id=GROUP))
    await run_until(consumer, lambda: harness.committed() == 2)
    assert got == ["loopline.events.v1.PredictionLogged"] and consumer.stats.dead_lettered == 0


def test_a_topic_without_a_dead_letter_topic_is_refused(harness: Harness) -> None:
    with pytest.raises(InvalidArgument, match="no dead-letter topic"):
        EventConsumer(harness.settings, group_id=GROUP, topics=[DRIFT_STATE], types=EventTypes(),
                      handler=lambda d: asyncio.sleep(0), dead_letters=harness.producer)


def test_derived_ids_make_re_emitted_events_identical() -> None:
    assert derive_event_id("e-a", "labeled") == derive_event_id("e-a", "labeled")
