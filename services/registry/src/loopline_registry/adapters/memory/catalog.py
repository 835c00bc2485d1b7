"""In-memory repositories of models, versions, aliases, deployments and artifacts."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from loopline_registry.domain.deployment import Deployment
from loopline_registry.domain.model import RegisteredModel
from loopline_registry.domain.version import Artifact, Evaluation, ModelVersion, VersionStatus
from loopline_registry.service.ports import AliasMove

if TYPE_CHECKING:
    from loopline_registry.adapters.memory.state import MemoryUnitOfWork


class _Repo:
    def __init__(self, uow: MemoryUnitOfWork) -> None:
        self._uow = uow

    @property
    def t(self):  # type: ignore[no-untyped-def]
        return self._uow.tables


class Models(_Repo):
    def _with_aliases(self, model: RegisteredModel) -> RegisteredModel:
        aliases = {a: v for (m, a), v in self.t.aliases.items() if m == model.name}
        return replace(model, aliases=aliases)

    async def add(self, model: RegisteredModel) -> None:
        self.t.models[model.name] = replace(model, aliases={})
        self.t.last_version[model.name] = 0

    async def get(self, name: str, *, for_update: bool = False) -> RegisteredModel | None:
        found = self.t.models.get(name)
        return self._with_aliases(found) if found else None

    async def list(self, *, after: str, limit: int, name_prefix: str = "") -> list[RegisteredModel]:
        names = sorted(n for n in self.t.models if n > after and n.startswith(name_prefix))[:limit]
        return [self._with_aliases(self.t.models[n]) for n in names]

    async def next_version(self, name: str) -> int:
        self.t.last_version[name] += 1
        return self.t.last_version[name]


class Versions(_Repo):
    async def add(self, version: ModelVersion) -> None:
        self.t.versions[(version.model, version.version)] = version

    async def get(self, model: str, version: int) -> ModelVersion | None:
        return self.t.versions.get((model, version))

    async def by_alias(self, model: str, alias: str) -> ModelVersion | None:
        number = self.t.aliases.get((model, alias))
        return self.t.versions.get((model, number)) if number else None

    async def list(self, model: str, *, after: int, limit: int,
                   status: VersionStatus | None = None) -> list[ModelVersion]:
        found = [v for (m, n), v in sorted(self.t.versions.items())
                 if m == model and n > after and (status is None or v.status == status)]
        return found[:limit]

    async def set_status(self, model: str, version: int, status: VersionStatus) -> None:
        self.t.versions[(model, version)] = replace(self.t.versions[(model, version)], status=status)

    async def add_evaluation(self, model: str, version: int, evaluation: Evaluation) -> None:
        found = self.t.versions[(model, version)]
        self.t.versions[(model, version)] = replace(found, evaluations=(*found.evaluations, evaluation))


class Aliases(_Repo):
    async def move(self, move: AliasMove) -> None:
        self.t.aliases[(move.model, move.alias)] = move.version
        self.t.alias_history.append(move)

    async def history(self, model: str, alias: str) -> list[AliasMove]:
        return [m for m in self.t.alias_history if (m.model, m.alias) == (model, alias)]

    async def at(self, model: str, alias: str, moment: datetime) -> int | None:
        moves = [m for m in await self.history(model, alias) if m.at <= moment]
        return moves[-1].version if moves else None


class Deployments(_Repo):
    async def get(self, model: str, *, for_update: bool = False) -> Deployment | None:
        return self.t.deployments.get(model)

    async def save(self, deployment: Deployment, *, traceparent: str = "") -> None:
        self.t.deployments[deployment.model] = deployment
        self.t.deployment_history.append(deployment)
        self.t.deployment_traces[(deployment.model, deployment.revision)] = traceparent

    async def list(self) -> list[Deployment]:
        return [self.t.deployments[m] for m in sorted(self.t.deployments)]

    async def at(self, model: str, moment: datetime) -> Deployment | None:
        found = [d for d in self.t.deployment_history if d.model == model and d.updated_at <= moment]
        return found[-1] if found else None

    async def traceparent(self, model: str, revision: int) -> str:
        return self.t.deployment_traces.get((model, revision), "")


class Artifacts(_Repo):
    async def add(self, artifact: Artifact, *, at: datetime, actor: str) -> bool:
        if artifact.sha256 in self.t.artifacts:
            return False
        self.t.artifacts[artifact.sha256] = artifact
        return True

    async def get(self, sha256: str) -> Artifact | None:
        return self.t.artifacts.get(sha256)
