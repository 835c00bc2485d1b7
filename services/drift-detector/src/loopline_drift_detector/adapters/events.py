"""Decisions of the domain as protobuf events (protos/loopline/events/v1/drift.proto)."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from loopline.events.v1 import drift_pb2 as dpb

from loopline_drift_detector.domain.decisions import DriftDecision, DriftKind, RetrainRequest

KINDS = {DriftKind.DATA: dpb.DRIFT_KIND_DATA, DriftKind.CONCEPT: dpb.DRIFT_KIND_CONCEPT,
         DriftKind.PERFORMANCE: dpb.DRIFT_KIND_PERFORMANCE}


def _ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def drift_detected(d: DriftDecision) -> dpb.DriftDetected:
    w = d.window
    return dpb.DriftDetected(
        drift_id=d.drift_id, model=d.model, version=d.version, kind=KINDS[d.kind], feature=d.feature,
        detector=d.detector, statistic=d.statistic, threshold=d.threshold,
        window=dpb.EvidenceWindow(start=_ts(w.start), end=_ts(w.end), sample_count=w.sample_count,
                                  reference_count=w.reference_count, change_index=w.change_index),
        reference_summary=dict(d.reference_summary), current_summary=dict(d.current_summary),
        sample_trace_ids=list(d.sample_trace_ids), detected_at=_ts(d.detected_at))


def retrain_requested(r: RetrainRequest) -> dpb.RetrainRequested:
    return dpb.RetrainRequested(
        request_id=r.request_id, model=r.model, version=r.version, reason=r.reason,
        evidence=[drift_detected(d) for d in r.evidence], requested_by=r.requested_by,
        requested_at=_ts(r.requested_at), data_since=_ts(r.data_since))
