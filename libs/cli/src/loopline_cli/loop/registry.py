"""The registry calls the loop makes (with the admin key of the local stack), and reading a deployment."""

from __future__ import annotations

import re

import grpc
from loopline.common.v1 import common_pb2
from loopline.registry.v1 import registry_pb2 as rpb
from loopline.registry.v1.registry_pb2_grpc import RegistryServiceStub


def splits_of(deployment: rpb.Deployment) -> list[tuple[int, float]]:
    return [(s.version, round(s.weight, 6)) for s in deployment.splits]


def full_champion(deployment: rpb.Deployment) -> int | None:
    """The version serving 100% of the traffic, None while traffic is split (or nothing deployed)."""
    full = [s.version for s in deployment.splits if s.weight >= 1.0 - 1e-9]
    return full[0] if len(full) == 1 and len(deployment.splits) == 1 else None


#: The names ``loopline demo`` gives its models by default (``demo-<6 hex digits>``).
DEMO_MODEL = re.compile(r"demo-[0-9a-f]{6}")


class Registry:
    """The registry calls the loop makes, with the admin key."""

    def __init__(self, target: str, admin_key: str) -> None:
        self._channel = grpc.aio.insecure_channel(target)
        self.stub = RegistryServiceStub(self._channel)
        self.metadata = (("authorization", f"Bearer {admin_key}"),)

    async def deployment(self, model: str) -> rpb.Deployment | None:
        try:
            return await self.stub.GetDeployment(rpb.GetDeploymentRequest(model=model), metadata=self.metadata,
                                                 timeout=5.0)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    async def retire_earlier_demos(self, keep: str) -> list[str]:
        """Retires the deployments of the models earlier demo runs made (``DEMO_MODEL``), all but
        ``keep``; returns their names. Each run makes a model of its own: without this the gateway
        and Triton kept every earlier run's versions loaded, and loaded them all again at each start.
        Their versions and history stay in the registry. A deployment changed meanwhile is left
        for the next run."""
        reply = await self.stub.ListDeployments(rpb.ListDeploymentsRequest(), metadata=self.metadata, timeout=10.0)
        retired = []
        for deployment in reply.deployments:
            if deployment.model == keep or not deployment.splits or not DEMO_MODEL.fullmatch(deployment.model):
                continue
            try:
                await self.stub.RetireDeployment(rpb.RetireDeploymentRequest(
                    model=deployment.model, expected_revision=deployment.revision,
                    reason=f"an earlier demo run's model, retired by the run of {keep}"),
                    metadata=self.metadata, timeout=10.0)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                continue
            retired.append(deployment.model)
        return retired

    async def audit(self, model: str) -> list[rpb.AuditEntry]:
        entries: list[rpb.AuditEntry] = []
        token = ""
        while True:
            page = await self.stub.ListAuditEntries(rpb.ListAuditEntriesRequest(
                model=model, page=common_pb2.PageRequest(page_size=200, page_token=token)),
                metadata=self.metadata, timeout=10.0)
            entries += page.entries
            token = page.next_page_token
            if not token:
                return entries

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Registry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
