"""The registry wired by its real bootstrap with in-memory adapters and fakes (World), and
the callers of each role. A module of its own, not conftest: test modules import it, and
several conftest modules exist in one session."""

from __future__ import annotations

from registry_fakes import FakeClock, SequentialIds, chunks_of, sha, torchscript_bytes

from loopline_registry.adapters.artifacts.memory import MemoryArtifactStore
from loopline_registry.adapters.memory.outbox import MemoryPublisher
from loopline_registry.bootstrap import Registry, wire
from loopline_registry.domain.auth import Caller, Role
from loopline_registry.domain.version import Evaluation
from loopline_registry.service.commands import CreateModel, RegisterModelVersion, UploadArtifact
from loopline_registry.settings import RegistrySettings

READER = Caller("reader-key", Role.READER)
TRAINER = Caller("trainer-key", Role.TRAINER)
OPERATOR = Caller("operator-key", Role.OPERATOR)
ADMIN = Caller("admin-key", Role.ADMIN)
HOLDOUT = "ab" * 32
OTHER_HOLDOUT = "cd" * 32


def settings(**overrides: object) -> RegistrySettings:
    base: dict[str, object] = {"backend": "memory", "relay": {"enabled": True, "poll_s": 0.01},
                               "gate": {"metric": "accuracy", "margin": 0.01}}
    return RegistrySettings(**{**base, **overrides})


class World:
    """A registry wired by bootstrap, plus the fakes behind it."""

    def __init__(self, **overrides: object) -> None:
        self.clock = FakeClock()
        self.ids = SequentialIds()
        self.store = MemoryArtifactStore()
        self.publisher = MemoryPublisher()
        self.registry: Registry = wire(settings(**overrides), artifacts=self.store, publisher=self.publisher,
                                       clock=self.clock, new_id=self.ids)
        self.h = self.registry.handlers
        self.uploads = 0

    async def upload(self, data: bytes | None = None) -> str:
        self.uploads += 1
        data = data if data is not None else torchscript_bytes(f"m{self.uploads}")
        artifact = await self.h.upload_artifact(TRAINER, UploadArtifact("torchscript", sha(data), len(data)),
                                                chunks_of(data))
        return artifact.sha256

    async def model(self, name: str = "fraud") -> None:
        await self.h.create_model(TRAINER, CreateModel(name, "detects fraud", "classification"))

    async def version(self, name: str = "fraud", accuracy: float | None = None, holdout: str = HOLDOUT) -> int:
        """Registers a version with its own artifact and, given an accuracy, an evaluation on ``holdout``."""
        evaluations = (Evaluation(holdout, {"accuracy": accuracy}),) if accuracy is not None else ()
        found = await self.h.register_version(
            TRAINER, RegisterModelVersion(name, await self.upload(), evaluations=evaluations))
        self.clock.advance(1)
        return found.version

    async def relay(self) -> list[str]:
        """Runs the outbox relay once; returns the short type names published so far."""
        assert self.registry.relay is not None
        await self.registry.relay.relay_once()
        return [r.type_name.rsplit(".", 1)[1] for r in self.publisher.published]
