"""Domain rules: names, the promotion gate, deployments, artifact sniffing (no I/O)."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime

import pytest
from loopline_core.errors import FailedPrecondition, InvalidArgument
from registry_fakes import onnx_bytes, pickle_bytes, torch_save_zip_bytes, torchscript_bytes

from loopline_registry.adapters.artifacts.staging import members_of_bytes
from loopline_registry.domain import artifact_format, auth, deployment, names
from loopline_registry.domain.artifact_format import check_content, sniff
from loopline_registry.domain.deployment import TrafficSplit, Variant, plan
from loopline_registry.domain.gate import judge
from loopline_registry.domain.model import GatePolicy
from loopline_registry.domain.version import (Artifact, Evaluation, ModelVersion, Signature, VersionStatus,
                                              transition)
from loopline_registry.service import queries

AT = datetime(2026, 1, 1, tzinfo=UTC)
H1, H2 = "11" * 32, "22" * 32


@pytest.mark.parametrize("module", [names, auth, deployment, artifact_format, queries])
def test_docstring_examples_run(module: object) -> None:
    assert doctest.testmod(module).failed == 0  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["../x", "..", "a/../b", "%2e%2e%2f", "/etc/passwd", "file://x", "a\x00b",
                                 "a b", "", "-lead", "x" * 65, "a..b", "C:\\win"])
def test_names_refuse_traversal_and_odd_characters(bad: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        names.check_name(bad, "name")
    assert error.value.field == "name"


@pytest.mark.parametrize("uri", ["../../etc/passwd", "%2e%2e%2fsecret", "/abs/path", "file:///etc/passwd",
                                 "artifact://sha256/../x", "artifact://sha256/" + "a" * 63, "s3://b/k",
                                 "artifact://sha256/" + "a" * 64 + "\x00"])
def test_artifact_uris_other_than_the_registrys_own_are_refused(uri: str) -> None:
    with pytest.raises(InvalidArgument, match="artifact URI"):
        names.parse_artifact_uri(uri)


def test_artifact_uri_round_trips() -> None:
    assert names.parse_artifact_uri(names.artifact_uri("a" * 64)) == "a" * 64


def test_text_refuses_nul_and_metrics_refuse_nan() -> None:
    with pytest.raises(InvalidArgument, match="NUL"):
        names.check_text("a\x00", "reason")
    with pytest.raises(InvalidArgument, match="finite"):
        names.check_metrics({"accuracy": float("nan")}, "metrics")


def _version(number: int, **evaluations: dict[str, float]) -> ModelVersion:
    evals = tuple(Evaluation(h, m) for h, m in evaluations.items())
    return ModelVersion("m", number, Artifact("a" * 64, 1, "torchscript", ""), Signature(), {}, {}, {},
                        VersionStatus.CANDIDATE, "", b"", evals, AT, "t")


POLICY = GatePolicy("accuracy", True, 0.01)


def test_gate_passes_when_there_is_no_champion() -> None:
    assert judge(_version(2), None, POLICY).passed


def test_gate_needs_an_evaluation_on_the_champions_holdout() -> None:
    decision = judge(_version(2, **{H2: {"accuracy": 0.99}}), _version(1, **{H1: {"accuracy": 0.5}}), POLICY)
    assert not decision.passed and "no 'accuracy' evaluation on a holdout" in decision.reason


@pytest.mark.parametrize(("candidate", "passed"), [(0.905, False), (0.90, False), (0.85, False), (0.911, True)])
def test_gate_needs_the_margin_on_the_same_holdout(candidate: float, passed: bool) -> None:
    champion = _version(1, **{H1: {"accuracy": 0.90}})
    assert judge(_version(2, **{H1: {"accuracy": candidate}}), champion, POLICY).passed is passed


def test_gate_lower_is_better_and_every_common_holdout_counts() -> None:
    policy = GatePolicy("rmse", False, 0.0)
    champion = _version(1, **{H1: {"rmse": 3.0}, H2: {"rmse": 2.0}})
    assert judge(_version(2, **{H1: {"rmse": 2.5}, H2: {"rmse": 1.5}}), champion, policy).passed
    assert not judge(_version(3, **{H1: {"rmse": 2.5}, H2: {"rmse": 2.1}}), champion, policy).passed


def test_gate_policy_refuses_negative_margins() -> None:
    with pytest.raises(InvalidArgument):
        GatePolicy("accuracy", True, -0.1)


def _plan(splits: list[TrafficSplit], shadows: tuple[int, ...] = (), expected: int = 0) -> deployment.Deployment:
    return plan(None, "m", expected, splits, shadows, at=AT, actor="ops", reason="")


@pytest.mark.parametrize(("splits", "shadows", "message"), [
    ([TrafficSplit(1, 0.5, Variant.CHAMPION), TrafficSplit(2, 0.4, Variant.CANARY)], (), "sum to 1"),
    ([TrafficSplit(1, 0.5, Variant.CANARY), TrafficSplit(2, 0.5, Variant.CANARY)], (), "exactly one"),
    ([TrafficSplit(1, 1.0, Variant.CHAMPION), TrafficSplit(1, 0.0, Variant.CANARY)], (), "more than once"),
    ([TrafficSplit(1, 1.5, Variant.CHAMPION)], (), r"\[0, 1\]"),
    ([TrafficSplit(1, 1.0, Variant.CHAMPION)], (1,), "both live and shadow"),
    ([], (), "1 to 16"),
])
def test_deployment_splits_are_validated(splits: list[TrafficSplit], shadows: tuple[int, ...], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        _plan(splits, shadows)


def test_deployment_revision_is_optimistic() -> None:
    first = _plan([TrafficSplit(1, 0.9, Variant.CHAMPION), TrafficSplit(2, 0.1, Variant.CANARY)])
    assert (first.revision, first.live_versions(), first.champion_version()) == (1, [1, 2], 1)
    second = plan(first, "m", 1, [TrafficSplit(2, 1.0, Variant.CHAMPION)], [1], at=AT, actor="o", reason="")
    assert second.revision == 2
    with pytest.raises(FailedPrecondition, match="revision 1, not 0"):
        plan(first, "m", 0, first.splits, (), at=AT, actor="o", reason="")


def test_status_transitions() -> None:
    version = _version(1)
    assert transition(version, VersionStatus.PRODUCTION).status == VersionStatus.PRODUCTION
    archived = transition(version, VersionStatus.ARCHIVED)
    with pytest.raises(FailedPrecondition, match="archived and cannot become staged"):
        transition(archived, VersionStatus.STAGED)


@pytest.mark.parametrize(("data", "found"), [
    (torchscript_bytes(), "torchscript"), (pickle_bytes(), "pickle"), (torch_save_zip_bytes(), "torch-save-pickle"),
    (onnx_bytes(), "onnx"), (b"hello world", "unknown"),
])
def test_sniffing_tells_torchscript_from_pickle(data: bytes, found: str) -> None:
    assert sniff(data[:16], members_of_bytes(data[:16], data)) == found


@pytest.mark.parametrize("data", [pickle_bytes(), torch_save_zip_bytes()])
def test_pickle_content_is_refused_whatever_the_declared_format(data: bytes) -> None:
    with pytest.raises(InvalidArgument, match="pickle-based formats are refused"):
        check_content("torchscript", data[:16], members_of_bytes(data[:16], data))


def test_declared_format_must_be_torchscript_or_onnx() -> None:
    with pytest.raises(InvalidArgument, match="pickle-based formats"):
        artifact_format.check_declared_format("pkl")


def test_roles_are_ordered_and_checked() -> None:
    with pytest.raises(Exception, match="needs the operator role; API key 'ci' has the trainer role"):
        auth.require(auth.Caller("ci", auth.Role.TRAINER), auth.Role.OPERATOR, "overriding the gate")
