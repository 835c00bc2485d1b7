"""The scenario runner against fakes: a gateway whose champion goes stale at the change, and recovers."""

from __future__ import annotations

from loopline_cli.loop.report import summarize
from loopline_cli.loop.scenario import run_scenario
from loopline_cli.loop.sources import Record, Synthetic
from loopline_cli.loop.traffic import Answer

SOURCE = Synthetic(seed=5, n=400, switch=150)


def model(concept: int):  # type: ignore[no-untyped-def]
    w = SOURCE.weights(concept)
    if concept == 1:  # the source flips half the signs when both concepts agree everywhere
        before = SOURCE.weights(0)
        if all(a * b > 0 for a, b in zip(before, w)):
            w = [x if i % 2 else -x for i, x in enumerate(w)]
    return lambda r: int(sum(a * r.features[f"f{i}"] for i, a in enumerate(w)) > 0)


class FakeLoop:
    """Version 1 knows concept 0; after 40 labels of the new concept, version 2 (concept 1) takes over."""

    def __init__(self) -> None:
        self.old, self.new = model(0), model(1)
        self.count, self.labels_after_change, self.sent = 0, 0, []

    def _answer(self, record: Record, protocol: str) -> Answer:
        self.count += 1
        version = 2 if self.labels_after_change >= 40 else 1
        predicted = (self.new if version == 2 else self.old)(record)
        return Answer(f"p{self.count}", version, predicted, protocol)

    async def infer_grpc(self, record: Record) -> Answer:
        return self._answer(record, "grpc")

    async def infer_rest(self, record: Record) -> Answer:
        return self._answer(record, "rest")

    async def submit(self, prediction_id: str, record: Record) -> str:
        self.sent.append(prediction_id)
        if int(prediction_id[1:]) > SOURCE.switch:
            self.labels_after_change += 1
        return "accepted"

    async def drift_detected(self) -> bool:
        return self.labels_after_change >= 20

    async def champion_at_full(self) -> int | None:
        return 2 if self.labels_after_change >= 40 else 1


async def test_the_runner_measures_detection_recovery_and_accuracy() -> None:
    loop = FakeLoop()
    run = await run_scenario(SOURCE, gateway=loop, feedback=loop, watcher=loop, rate_hz=400.0, label_delay_s=0.05,
                             change_at=SOURCE.switch, initial_champion=1, stop_after_recovery_s=0.3,
                             watch_s=0.01)
    assert not run.errors and run.labels_sent == len(run.outcomes) > 200
    assert run.change_s is not None and run.detected_s is not None and run.promoted_s is not None
    assert run.change_s < run.detected_s <= run.promoted_s and run.new_champion == 2
    summary = summarize(run.outcomes, change_s=run.change_s, detected_s=run.detected_s,
                        promoted_s=run.promoted_s, settle_s=0.1)
    assert summary.before == 1.0 and summary.during < 0.9 and summary.after == 1.0 and summary.recovered
