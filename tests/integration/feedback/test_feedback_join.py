"""Acceptance of the feedback collector on the real Kafka and PostgreSQL: 10k predictions and
labels, shuffled, 20% of labels before their prediction, 5% duplicated, 5% never labelled,
with a kill -9 of the collector mid-stream; then bad input on every path."""

from __future__ import annotations

import random
import signal
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import pytest
from feedback_it import Collector, classifier_prediction, label, labeled_on_topic, scalar, wait_for
from google.protobuf.message import Message
from loopline.common.v1 import common_pb2
from loopline.feedback.v1 import feedback_pb2, feedback_pb2_grpc
from loopline_core.kafka.producer import EventProducer, Outgoing
from loopline_core.kafka.topics import FEEDBACK, PREDICTIONS, dead_letter_topic
from loopline_core.settings import KafkaSettings

N = 10_000


def shuffled_stream(model: str, rng: random.Random) -> tuple[list[tuple[str, Message]], dict[str, int], set[str]]:
    """Events in a shuffled order, with the expected label of each labelled prediction and the unlabelled ids."""
    events: list[tuple[float, str, Message]] = []
    expected: dict[str, int] = {}
    unlabelled: set[str] = set()
    for i in range(N):
        pid = str(uuid.uuid4())
        predicted = rng.randrange(3)
        first, second = sorted((rng.random(), rng.random()))
        events_of = []
        if i % 20 == 0:  # 5% never labelled
            unlabelled.add(pid)
            events.append((rng.random(), pid, classifier_prediction(model, pid, predicted=predicted)))
            continue
        actual = predicted if rng.random() < 0.7 else rng.randrange(3)
        expected[pid] = actual
        early = rng.random() < 0.2  # label before its prediction
        prediction = classifier_prediction(model, pid, predicted=predicted)
        feedback = label(pid, class_index=actual)
        events_of = [(first, feedback), (second, prediction)] if early else [(first, prediction), (second, feedback)]
        if rng.random() < 0.05:  # duplicated label, delivered again later
            events_of.append((second + (1 - second) * rng.random(), label(pid, class_index=actual,
                                                                           event_time=feedback.event_time.ToDatetime(
                                                                               tzinfo=UTC))))
        events.extend((at, pid, message) for at, message in events_of)
    events.sort(key=lambda e: e[0])
    return [(pid, message) for _, pid, message in events], expected, unlabelled


async def produce(producer: EventProducer, stream: list[tuple[str, Message]], chunk: int = 1000) -> None:
    for start in range(0, len(stream), chunk):
        part = stream[start:start + chunk]
        for topic, want in ((PREDICTIONS, "PredictionLogged"), (FEEDBACK, "FeedbackReceived")):
            items = [Outgoing(pid, m) for pid, m in part if type(m).__name__ == want]
            if items:
                await producer.send_batch(topic, items)


async def test_join_exactly_once_across_kill_9(kafka_bootstrap: str, postgres_dsn: str, tmp_path: Path) -> None:
    model = f"acc-{uuid.uuid4().hex[:8]}"
    schema = f"fb_{uuid.uuid4().hex[:8]}"
    stream, expected, unlabelled = shuffled_stream(model, random.Random(5))
    collector = Collector(postgres_dsn, kafka_bootstrap, tmp_path, schema=schema, group=f"fb-{schema}",
                          window_s=3600.0, expiry_interval_s=0.5)
    producer = EventProducer(KafkaSettings(bootstrap_servers=kafka_bootstrap), service="feedback-it")
    await producer.start()
    try:
        collector.start()
        await collector.ready()
        half = len(stream) // 2
        await produce(producer, stream[:half])

        async def some_joined() -> bool | object:
            count = await scalar(postgres_dsn, schema, "SELECT count(*) FROM joined WHERE model = $1", model)
            return count > 1000 or count  # type: ignore[operator]

        await wait_for(some_joined, 90, "the first joins")
        collector.kill(signal.SIGKILL)  # mid-stream: part of the first half is not joined yet
        await produce(producer, stream[half:])
        collector.start()
        await collector.ready()

        async def all_joined() -> bool | object:
            count = await scalar(postgres_dsn, schema, "SELECT count(*) FROM joined WHERE model = $1", model)
            return count == len(expected) or count

        await wait_for(all_joined, 120, "every labelled prediction joined")
        conn_rows = await scalar(
            postgres_dsn, schema,
            "SELECT count(*) FROM joined j WHERE model = $1 AND revision = 0 AND label_class IS NOT NULL", model)
        assert conn_rows == len(expected)

        on_topic = await labeled_on_topic(kafka_bootstrap, model, len(expected))
        by_id: dict[str, str] = {}
        for event_id, record in on_topic:
            assert by_id.setdefault(event_id, record.prediction.prediction_id) == record.prediction.prediction_id
            assert record.feedback.label.class_index == expected[record.prediction.prediction_id]
            assert record.correct == (record.feedback.label.class_index ==
                                      max(range(3), key=list(record.prediction.outputs[0].fp_contents).__getitem__))
        joined_ids = Counter(by_id.values())
        assert set(joined_ids) == set(expected), "every labelled prediction is on the topic, no unlabelled one"
        assert max(joined_ids.values()) == 1, "one LabeledPrediction id per joined prediction"
        repeats = len(on_topic) - len(by_id)  # re-sent after the kill with the same ids
        assert repeats <= 2000

        # Restart once more with a short join window: what never matched expires and is counted.
        collector.kill(signal.SIGTERM)
        collector.env["LOOPLINE_JOIN__WINDOW_S"] = "1"
        collector.start()
        await collector.ready()

        async def unlabelled_expired() -> bool | object:
            count = await scalar(postgres_dsn, schema,
                                 "SELECT count(*) FROM predictions WHERE model = $1 AND expired", model)
            return count == len(unlabelled) or count

        await wait_for(unlabelled_expired, 90, "the unlabelled predictions expired")
        async with httpx.AsyncClient(base_url=collector.url) as client:
            counts = (await client.get("/v1/expired")).json()
            assert counts["predictions"] >= len(unlabelled)
            quality = (await client.get(f"/v1/quality/{model}")).json()
        [window] = quality["windows"]
        assert int(window["labelled"]) == len(expected)
        truth = await scalar(postgres_dsn, schema, "SELECT avg(correct::int) FROM joined WHERE model = $1", model)
        assert window["metrics"]["accuracy"] == pytest.approx(float(truth))  # type: ignore[arg-type]
        assert window["label_coverage"] == pytest.approx(len(expected) / N)
        assert 0 < window["metrics"]["f1"] <= 1 and window["metrics"]["log_loss"] > 0
    finally:
        collector.kill()
        await producer.stop()


async def test_bad_input_is_named_and_the_consumer_goes_on(kafka_bootstrap: str, postgres_dsn: str,
                                                           tmp_path: Path) -> None:
    model = f"bad-{uuid.uuid4().hex[:8]}"
    schema = f"fb_{uuid.uuid4().hex[:8]}"
    collector = Collector(postgres_dsn, kafka_bootstrap, tmp_path, schema=schema, group=f"fb-{schema}",
                          window_s=3600.0, expiry_interval_s=0.3, max_batch=10)
    producer = EventProducer(KafkaSettings(bootstrap_servers=kafka_bootstrap), service="feedback-it")
    await producer.start()
    try:
        collector.start()
        await collector.ready()
        good = classifier_prediction(model, predicted=1)
        typed = classifier_prediction(model, predicted=0)
        await producer.send_batch(PREDICTIONS, [Outgoing(good.prediction_id, good), Outgoing(typed.prediction_id, typed)])
        # Malformed records on loopline.feedback.v1: garbage bytes, and a label with a bad id.
        marker = uuid.uuid4().hex
        await producer.send_record(FEEDBACK, key=marker.encode(), value=b"\x00not a protobuf",
                                   headers=[("ce_type", b"loopline.events.v1.FeedbackReceived")])
        await producer.send(FEEDBACK, "x", label("not-a-uuid", class_index=1))
        async with httpx.AsyncClient(base_url=collector.url) as client:
            bad_id = await client.post("/v1/feedback", json={"prediction_id": "42", "label": {"class_index": 1}})
            assert bad_id.status_code == 400 and "prediction id" in bad_id.text
            future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
            bad_time = await client.post("/v1/feedback", json={"prediction_id": good.prediction_id,
                                                               "label": {"class_index": 1}, "event_time": future})
            assert bad_time.status_code == 400 and "in the future" in bad_time.text
            two = await client.post("/v1/feedback", json={"prediction_id": good.prediction_id,
                                                          "label": {"class_index": 1, "number": 2.0}})
            assert two.status_code == 400 and "exactly one of" in two.text
            oversized = await client.post("/v1/feedback/batch", json={"labels": [
                {"prediction_id": str(uuid.uuid4()), "label": {"number": 1.0}} for _ in range(11)]})
            assert oversized.status_code == 400 and "at most 10" in oversized.text
            # a good label, a wrong label type (number for a classifier), and an unknown prediction id
            unknown = str(uuid.uuid4())
            now = datetime.now(UTC).isoformat()
            batch = await client.post("/v1/feedback/batch", json={"labels": [
                {"prediction_id": good.prediction_id, "label": {"class_index": 1}, "event_time": now},
                {"prediction_id": typed.prediction_id, "label": {"number": 3.0}, "event_time": now},
                {"prediction_id": unknown, "label": {"class_index": 0}, "event_time": now}]})
            assert batch.status_code == 202, batch.text
            again = await client.post("/v1/feedback", json={"prediction_id": good.prediction_id,
                                                            "label": {"class_index": 1}, "event_time": now})
            assert again.status_code == 202

            async def settled() -> bool | object:
                joined = await scalar(postgres_dsn, schema, "SELECT count(*) FROM joined WHERE model = $1", model)
                rejected = await scalar(postgres_dsn, schema, "SELECT reason FROM rejected WHERE prediction_id = $1",
                                        typed.prediction_id)
                # the batch's labels are keyed by prediction id, so they travel on different partitions
                # and may be consumed in different polls: the unknown one is waited for too
                pending = await scalar(postgres_dsn, schema, "SELECT count(*) FROM labels WHERE prediction_id = $1",
                                       unknown)
                return (joined == 1 and rejected is not None and pending == 1) or (joined, rejected, pending)

            await wait_for(settled, 120, "the join, the rejection and the pending label")
            # The unknown prediction id stays pending; a restart with a 1 s window expires and counts it.
            assert await scalar(postgres_dsn, schema, "SELECT expired FROM labels WHERE prediction_id = $1",
                                unknown) is False
            collector.kill(signal.SIGTERM)
            collector.env["LOOPLINE_JOIN__WINDOW_S"] = "1"
            collector.start()
            await collector.ready()

            async def expired() -> bool | object:
                return await scalar(postgres_dsn, schema, "SELECT expired FROM labels WHERE prediction_id = $1",
                                    unknown) is True

            await wait_for(expired, 60, "the unknown prediction's label expired")
            reason = await scalar(postgres_dsn, schema, "SELECT reason FROM rejected WHERE prediction_id = $1",
                                  typed.prediction_id)
            assert "classifier" in str(reason) and "not a number" in str(reason)
            assert (await client.get("/v1/expired")).json()["labels"] >= 1
            quality = (await client.get(f"/v1/quality/{model}")).json()
            assert quality["windows"][0]["metrics"]["accuracy"] == 1.0

        async with grpc.aio.insecure_channel(f"127.0.0.1:{collector.grpc_port}") as channel:
            stub = feedback_pb2_grpc.FeedbackServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.SubmitFeedback(feedback_pb2.SubmitFeedbackRequest(
                    prediction_id="nope", label=common_pb2.Label(class_index=1)))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "prediction id" in (refused.value.details() or "")

            def stream():  # type: ignore[no-untyped-def]
                for pid in (good.prediction_id, "bad id", good.prediction_id):
                    request = feedback_pb2.SubmitFeedbackRequest(prediction_id=pid,
                                                                 label=common_pb2.Label(class_index=1))
                    request.event_time.FromDatetime(datetime.fromisoformat(now))
                    yield request

            streamed = await stub.StreamFeedback(stream())
            assert (streamed.accepted, streamed.duplicates, [e.index for e in streamed.errors]) == (1, 1, [1])
            quality_rpc = await stub.GetQuality(feedback_pb2.GetQualityRequest(model=model))
            assert [w.labelled for w in quality_rpc.windows] == [1]
            since_request = feedback_pb2.GetQualityRequest(model=model)
            since_request.since.FromDatetime(datetime(2020, 1, 1, tzinfo=UTC))
            windows = {w.window for w in (await stub.GetQuality(since_request)).windows}
            assert "since:2020-01-01T00:00:00+00:00" in windows  # the contract's spelling: since:<RFC 3339>
            exported = [r async for chunk in stub.ExportLabeled(feedback_pb2.ExportLabeledRequest(model=model))
                        for r in chunk.records]
            assert [r.prediction.prediction_id for r in exported] == [good.prediction_id]

        dlq = await labeled_on_topic_raw(kafka_bootstrap, dead_letter_topic(FEEDBACK), marker.encode())
        assert dlq, "the malformed record is on the dead-letter topic"
    finally:
        collector.kill()
        await producer.stop()


async def labeled_on_topic_raw(bootstrap: str, topic: str, key: bytes) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        found: list[bytes] = []
        for _ in range(10):
            batch = await consumer.getmany(timeout_ms=500)
            found += [r.value for records in batch.values() for r in records if r.key == key]
            if found:
                break
        return found
    finally:
        await consumer.stop()


async def test_a_later_label_replaces_an_earlier_one_and_an_older_one_is_ignored(
        kafka_bootstrap: str, postgres_dsn: str, tmp_path: Path) -> None:
    model = f"rev-{uuid.uuid4().hex[:8]}"
    schema = f"fb_{uuid.uuid4().hex[:8]}"
    collector = Collector(postgres_dsn, kafka_bootstrap, tmp_path, schema=schema, group=f"fb-{schema}")
    producer = EventProducer(KafkaSettings(bootstrap_servers=kafka_bootstrap), service="feedback-it")
    await producer.start()
    pid = str(uuid.uuid4())
    t0 = datetime.now(UTC) - timedelta(minutes=1)

    async def joined_as(revision: int, label_class: int) -> None:
        async def check() -> bool | object:
            row = await scalar(postgres_dsn, schema, "SELECT revision::text || '/' || label_class::text FROM joined"
                                                     " WHERE prediction_id = $1", pid)
            return row == f"{revision}/{label_class}" or row

        await wait_for(check, 90, f"revision {revision} with class {label_class}")

    try:
        collector.start()
        await collector.ready()
        await producer.send(PREDICTIONS, pid, classifier_prediction(model, pid, predicted=0))
        await producer.send(FEEDBACK, pid, label(pid, class_index=0, event_time=t0))
        await joined_as(0, 0)
        await producer.send(FEEDBACK, pid, label(pid, class_index=2, event_time=t0 + timedelta(seconds=1)))
        await joined_as(1, 2)
        await producer.send(FEEDBACK, pid, label(pid, class_index=1, event_time=t0 - timedelta(seconds=1)))
        # Two labels of one prediction in one batch: the later event time wins, whatever the order.
        await producer.send_batch(FEEDBACK, [
            Outgoing(pid, label(pid, class_index=1, event_time=t0 + timedelta(seconds=3))),
            Outgoing(pid, label(pid, class_index=0, event_time=t0 + timedelta(seconds=2)))])
        await joined_as(2, 1)
        # An older label, then newer ones, in one batch: applied in arrival order, each change
        # recorded (revisions 3 and 4), as if they had come one at a time.
        await producer.send_batch(FEEDBACK, [
            Outgoing(pid, label(pid, class_index=2, event_time=t0 + timedelta(seconds=4))),
            Outgoing(pid, label(pid, class_index=0, event_time=t0 + timedelta(seconds=5)))])
        await joined_as(4, 0)
        changes = await scalar(postgres_dsn, schema, "SELECT string_agg(old_value || '>' || new_value, ',' ORDER BY"
                                                     " revision) FROM label_changes WHERE prediction_id = $1", pid)
        assert changes == ("class_index:0>class_index:2,class_index:2>class_index:1,class_index:1>class_index:2,"
                           "class_index:2>class_index:0")
        on_topic = await labeled_on_topic(kafka_bootstrap, model, 4)
        emitted = sorted({(event_id, record.revision, record.feedback.label.class_index)
                          for event_id, record in on_topic}, key=lambda r: r[1])
        # revision 3 is on the topic only if the two labels came in two batches
        assert [row for row in emitted if row[1] != 3] == [
            (domain_event_id(pid, revision), revision, label_class)
            for revision, label_class in ((0, 0), (1, 2), (2, 1), (4, 0))]
        async with httpx.AsyncClient(base_url=collector.url) as client:
            metrics = (await client.get("/metrics")).text
        # The label older than what was held, and the older of the pair, both counted stale,
        # whether they shared a batch with the newer labels or not.
        assert 'feedback_labels_total{outcome="changed"} 4.0' in metrics, metrics
        assert 'feedback_labels_total{outcome="stale"} 2.0' in metrics, metrics
    finally:
        collector.kill()
        await producer.stop()


def domain_event_id(prediction_id: str, revision: int) -> str:
    from loopline_feedback_collector.domain import labeled_event_id

    return labeled_event_id(prediction_id, 1, common_pb2.VARIANT_CHAMPION, revision)
