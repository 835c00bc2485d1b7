"""Promotion behind the gate, deployments under revisions, rollback, and what served when."""

from __future__ import annotations

import pytest
from registry_world import HOLDOUT, OPERATOR, OTHER_HOLDOUT, READER, TRAINER, World
from loopline_core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

from loopline_registry.domain.deployment import TrafficSplit, Variant
from loopline_registry.domain.version import VersionStatus
from loopline_registry.service.commands import (PromoteModelVersion, RetireDeployment, RollBack, SetDeployment,
                                                SetVersionStatus)
from loopline_registry.service.queries import AuditFilter, Page

CHAMPION, CANARY = Variant.CHAMPION, Variant.CANARY


async def crowned(world: World, accuracy: float = 0.80) -> int:
    await world.model()
    first = await world.version(accuracy=accuracy)
    await world.h.promote(TRAINER, PromoteModelVersion("fraud", first, "champion"))
    return first


async def test_first_champion_needs_no_evidence_and_statuses_follow(world: World) -> None:
    first = await crowned(world)
    assert (await world.h.resolve_alias(READER, "fraud", "champion")).status == VersionStatus.PRODUCTION
    second = await world.version(accuracy=0.90)
    await world.h.promote(TRAINER, PromoteModelVersion("fraud", second, "champion", "better"))
    assert (await world.h.resolve_alias(READER, "fraud", "champion")).version == second
    assert (await world.h.get_version(READER, "fraud", first)).status == VersionStatus.STAGED
    assert (await world.h.get_model(READER, "fraud")).aliases == {"champion": second}
    assert await world.relay() == ["ModelVersionRegistered", "ModelVersionPromoted",
                                   "ModelVersionRegistered", "ModelVersionPromoted"]


@pytest.mark.parametrize(("accuracy", "holdout", "reason"), [
    (None, HOLDOUT, "has no 'accuracy' evaluation"),
    (0.95, OTHER_HOLDOUT, "has no 'accuracy' evaluation"),
    (0.805, HOLDOUT, "does not beat champion version 1"),
    (0.70, HOLDOUT, "does not beat champion version 1"),
])
async def test_the_gate_refuses_an_unproven_candidate(world: World, accuracy: float | None, holdout: str,
                                                      reason: str) -> None:
    await crowned(world)
    candidate = await world.version(accuracy=accuracy, holdout=holdout)
    with pytest.raises(FailedPrecondition, match=reason):
        await world.h.promote(TRAINER, PromoteModelVersion("fraud", candidate, "champion"))
    assert (await world.h.resolve_alias(READER, "fraud", "champion")).version == 1
    assert await world.relay() == ["ModelVersionRegistered", "ModelVersionPromoted", "ModelVersionRegistered"]


async def test_an_operator_may_override_the_gate_with_a_reason_which_is_audited(world: World) -> None:
    await crowned(world)
    candidate = await world.version(accuracy=0.5)
    with pytest.raises(PermissionDenied, match="overriding the promotion gate needs the operator role"):
        await world.h.promote(TRAINER, PromoteModelVersion("fraud", candidate, "champion", "trust me", True))
    with pytest.raises(InvalidArgument, match="reason is required"):
        await world.h.promote(OPERATOR, PromoteModelVersion("fraud", candidate, "champion", " ", True))
    await world.h.promote(OPERATOR, PromoteModelVersion("fraud", candidate, "champion", "incident 42", True))
    entries, _ = await world.h.list_audit(READER, AuditFilter(model="fraud", action="alias.moved"), Page())
    last = entries[-1]
    assert (last.actor, last.reason, last.before, last.after["gate_overridden"]) == (
        "operator-key", "incident 42", {"version": 1}, True)


async def test_other_aliases_move_without_the_gate(world: World) -> None:
    await crowned(world)
    candidate = await world.version()
    moved = await world.h.promote(TRAINER, PromoteModelVersion("fraud", candidate, "challenger"))
    assert moved.status == VersionStatus.CANDIDATE
    with pytest.raises(InvalidArgument, match="not a valid alias"):
        await world.h.promote(TRAINER, PromoteModelVersion("fraud", candidate, "../champion"))
    with pytest.raises(NotFound, match="no alias 'shadow'"):
        await world.h.resolve_alias(READER, "fraud", "shadow")


async def test_canary_traffic_is_gated_and_revisions_are_optimistic(world: World) -> None:
    await crowned(world)
    weak, strong = await world.version(accuracy=0.79), await world.version(accuracy=0.85)
    split = (TrafficSplit(1, 0.9, CHAMPION), TrafficSplit(weak, 0.1, CANARY))
    with pytest.raises(FailedPrecondition, match="promotion gate refused"):
        await world.h.set_deployment(TRAINER, SetDeployment("fraud", 0, split))
    canary = (TrafficSplit(1, 0.9, CHAMPION), TrafficSplit(strong, 0.1, CANARY))
    first = await world.h.set_deployment(TRAINER, SetDeployment("fraud", 0, canary, (weak,), "canary"))
    assert (first.revision, first.shadow_versions) == (1, (weak,))
    with pytest.raises(FailedPrecondition, match="at revision 1, not 0"):
        await world.h.set_deployment(TRAINER, SetDeployment("fraud", 0, canary))
    second = await world.h.set_deployment(TRAINER, SetDeployment("fraud", 1, (TrafficSplit(1, 1.0, CHAMPION),)))
    assert second.revision == 2 and (await world.h.get_deployment(READER, "fraud")) == second
    assert (await world.relay()).count("DeploymentChanged") == 2


async def test_deployment_of_unknown_or_archived_versions_is_refused(world: World) -> None:
    await crowned(world)
    spare = await world.version()
    with pytest.raises(NotFound, match="has no version 9"):
        await world.h.set_deployment(TRAINER, SetDeployment("fraud", 0, (TrafficSplit(9, 1.0, CHAMPION),)))
    with pytest.raises(NotFound, match="has no version 9"):  # a zero weight still names a version
        await world.h.set_deployment(TRAINER, SetDeployment("fraud", 0, (TrafficSplit(1, 1.0, CHAMPION),
                                                                         TrafficSplit(9, 0.0, CANARY))))
    await world.h.set_version_status(OPERATOR, SetVersionStatus("fraud", spare, VersionStatus.ARCHIVED, "old"))
    with pytest.raises(FailedPrecondition, match="archived"):
        await world.h.set_deployment(OPERATOR, SetDeployment("fraud", 0, (TrafficSplit(1, 0.5, CHAMPION),
                                     TrafficSplit(spare, 0.5, CANARY)), (), "x", True))
    with pytest.raises(FailedPrecondition, match="still in use"):
        await world.h.set_version_status(OPERATOR, SetVersionStatus("fraud", 1, VersionStatus.ARCHIVED))


async def test_a_corrupt_artifact_never_becomes_deployable(world: World) -> None:
    await crowned(world)
    candidate = await world.version(accuracy=0.9)
    sha256 = (await world.h.get_version(READER, "fraud", candidate)).artifact.sha256
    world.store.blobs[sha256] = b"tampered"
    with pytest.raises(FailedPrecondition, match="missing or corrupt"):
        await world.h.promote(TRAINER, PromoteModelVersion("fraud", candidate, "champion"))


async def test_rollback_returns_alias_and_traffic_to_the_previous_champion(world: World) -> None:
    await crowned(world)
    second = await world.version(accuracy=0.9)
    await world.h.promote(TRAINER, PromoteModelVersion("fraud", second, "champion"))
    await world.h.set_deployment(TRAINER, SetDeployment("fraud", 0, (TrafficSplit(second, 1.0, CHAMPION),)))
    with pytest.raises(PermissionDenied):
        await world.h.rollback(TRAINER, RollBack("fraud", "bad"))
    champion, deployment = await world.h.rollback(OPERATOR, RollBack("fraud", "error rate up"))
    assert champion.version == 1 and champion.status == VersionStatus.PRODUCTION
    assert deployment is not None and deployment.live_versions() == [1] and deployment.revision == 2
    assert (await world.h.get_version(READER, "fraud", second)).status == VersionStatus.STAGED
    with pytest.raises(FailedPrecondition, match="no earlier champion"):
        await world.h.rollback(OPERATOR, RollBack("fraud", "again"))
    assert (await world.relay())[-2:] == ["DeploymentChanged", "RolledBack"]


async def test_the_fallback_is_the_champion_a_deployment_replaced_and_lasts_through_canaries(world: World) -> None:
    await crowned(world)

    async def deploy(revision: int, *splits: TrafficSplit) -> int:
        command = SetDeployment("fraud", revision, splits, (), "operator's choice", True)  # gate overridden
        return (await world.h.set_deployment(OPERATOR, command)).fallback_version

    assert await deploy(0, TrafficSplit(1, 1.0, CHAMPION)) == 0  # nothing before it
    v2, v3 = await world.version(accuracy=0.9), await world.version(accuracy=0.95)
    assert await deploy(1, TrafficSplit(1, 0.9, CHAMPION), TrafficSplit(v2, 0.1, CANARY)) == 0  # v1 still serves
    await world.h.promote(TRAINER, PromoteModelVersion("fraud", v2, "champion"))
    assert await deploy(2, TrafficSplit(v2, 1.0, CHAMPION)) == 1  # promoted: the replaced champion
    assert await deploy(3, TrafficSplit(v2, 0.9, CHAMPION), TrafficSplit(v3, 0.1, CANARY)) == 1  # kept
    assert await deploy(4, TrafficSplit(v2, 0.5, CHAMPION), TrafficSplit(1, 0.5, CANARY)) == 0  # v1 serves again
    assert await deploy(5, TrafficSplit(v2, 1.0, CHAMPION)) == 0
    await world.h.promote(TRAINER, PromoteModelVersion("fraud", v3, "champion"))
    assert await deploy(6, TrafficSplit(v3, 1.0, CHAMPION)) == v2
    assert (await world.h.get_deployment(READER, "fraud")).fallback_version == v2
    # archiving the fallback: the deployment's next revision has none, published and audited
    await world.h.set_version_status(OPERATOR, SetVersionStatus("fraud", v2, VersionStatus.ARCHIVED, "superseded"))
    current = await world.h.get_deployment(READER, "fraud")
    assert (current.revision, current.live_versions(), current.fallback_version) == (8, [v3], 0)
    assert current.reason == f"v{v2} archived: no fallback (superseded)"
    entries, _ = await world.h.list_audit(READER, AuditFilter(model="fraud", action="deployment.changed"), Page())
    assert (entries[-1].before["fallback_version"], entries[-1].after["fallback_version"]) == (v2, 0)
    assert (await world.relay()).count("DeploymentChanged") == 8
    # a retired deployment has none; one deployed again starts without one
    retired = await world.h.retire_deployment(OPERATOR, RetireDeployment("fraud", 8, "withdrawn"))
    assert retired.fallback_version == 0
    assert await deploy(9, TrafficSplit(v3, 1.0, CHAMPION)) == 0


async def test_a_rollback_keeps_the_fallback_but_never_makes_it_the_version_rolled_back_from(world: World) -> None:
    await crowned(world)
    v2, v3 = await world.version(accuracy=0.9), await world.version(accuracy=0.95)
    await world.h.set_deployment(TRAINER, SetDeployment("fraud", 0, (TrafficSplit(1, 1.0, CHAMPION),)))
    await world.h.promote(TRAINER, PromoteModelVersion("fraud", v2, "champion"))
    await world.h.set_deployment(TRAINER, SetDeployment("fraud", 1, (TrafficSplit(v2, 1.0, CHAMPION),)))
    await world.h.promote(TRAINER, PromoteModelVersion("fraud", v3, "champion"))
    promoted = await world.h.set_deployment(TRAINER, SetDeployment("fraud", 2, (TrafficSplit(v3, 1.0, CHAMPION),)))
    assert promoted.fallback_version == v2
    # back to v2, which was the fallback: it serves now, and v3 (rolled back from) does not become it
    _, deployment = await world.h.rollback(OPERATOR, RollBack("fraud", "error rate up"))
    assert deployment is not None and (deployment.live_versions(), deployment.fallback_version) == ([v2], 0)
    assert (await world.h.get_deployment(READER, "fraud")).fallback_version == 0


async def test_a_retired_deployment_serves_nothing_until_deployed_again(world: World) -> None:
    await crowned(world)
    with pytest.raises(FailedPrecondition, match="fraud is not deployed; there is nothing to retire"):
        await world.h.retire_deployment(OPERATOR, RetireDeployment("fraud", 0, "unused"))
    await world.h.set_deployment(TRAINER, SetDeployment("fraud", 0, (TrafficSplit(1, 1.0, CHAMPION),)))
    with pytest.raises(PermissionDenied, match="retiring a deployment needs the operator role"):
        await world.h.retire_deployment(TRAINER, RetireDeployment("fraud", 1, "unused"))
    with pytest.raises(InvalidArgument, match="a reason is required"):
        await world.h.retire_deployment(OPERATOR, RetireDeployment("fraud", 1, " "))
    with pytest.raises(FailedPrecondition, match="at revision 1, not 0"):
        await world.h.retire_deployment(OPERATOR, RetireDeployment("fraud", 0, "unused"))
    in_service = world.clock()
    world.clock.advance(10)
    retired = await world.h.retire_deployment(OPERATOR, RetireDeployment("fraud", 1, "product withdrawn"))
    assert (retired.revision, retired.splits, retired.shadow_versions, retired.retired) == (2, (), (), True)
    assert await world.h.get_deployment(READER, "fraud") == retired
    with pytest.raises(FailedPrecondition, match="not deployed"):
        await world.h.retire_deployment(OPERATOR, RetireDeployment("fraud", 2, "again"))
    # what served when: v1 before, nothing after; the champion alias stays
    assert (await world.h.served_at(READER, "fraud", in_service)).serving_versions() == [1]
    after = await world.h.served_at(READER, "fraud", world.clock())
    assert (after.serving_versions(), after.champion) == ([], 1)
    entries, _ = await world.h.list_audit(READER, AuditFilter(model="fraud", action="deployment.retired"), Page())
    assert [(e.actor, e.reason, e.after["splits"]) for e in entries] == [("operator-key", "product withdrawn", [])]
    # a rollback moves the alias but leaves a retired model out of service
    second = await world.version(accuracy=0.9)
    await world.h.promote(TRAINER, PromoteModelVersion("fraud", second, "champion"))
    champion, deployment = await world.h.rollback(OPERATOR, RollBack("fraud", "bad version"))
    assert (champion.version, deployment) == (1, None)
    assert (await world.h.get_deployment(READER, "fraud")).retired
    # deployed again from the retired revision
    again = await world.h.set_deployment(TRAINER, SetDeployment("fraud", 2, (TrafficSplit(1, 1.0, CHAMPION),)))
    assert (again.revision, again.live_versions()) == (3, [1])
    events = await world.relay()
    assert events.count("DeploymentChanged") == 3 and events[-1] == "DeploymentChanged"


async def test_served_at_answers_from_history(world: World) -> None:
    await world.model()
    before_anything = world.clock()
    first = await world.version(accuracy=0.8)
    await world.h.promote(TRAINER, PromoteModelVersion("fraud", first, "champion"))
    world.clock.advance(10)
    await world.h.set_deployment(TRAINER, SetDeployment("fraud", 0, (TrafficSplit(first, 1.0, CHAMPION),)))
    world.clock.advance(10)
    at_first = world.clock()
    world.clock.advance(10)
    second = await world.version(accuracy=0.9)
    await world.h.set_deployment(TRAINER, SetDeployment("fraud", 1, (TrafficSplit(first, 0.8, CHAMPION),
                                                                     TrafficSplit(second, 0.2, CANARY))))
    world.clock.advance(10)
    during_canary = world.clock()
    empty = await world.h.served_at(READER, "fraud", before_anything)
    assert (empty.deployment, empty.champion, empty.serving_versions()) == (None, None, [])
    assert (await world.h.served_at(READER, "fraud", at_first)).serving_versions() == [first]
    served = await world.h.served_at(READER, "fraud", during_canary)
    assert (served.serving_versions(), served.champion, served.deployment.revision) == ([first, second], first, 2)
