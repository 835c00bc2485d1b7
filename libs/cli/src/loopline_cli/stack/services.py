"""The five Loopline services as supervised processes, configured through LOOPLINE_* variables."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from loopline_cli.stack.component import Component
from loopline_cli.stack.config import StackConfig
from loopline_cli.stack.errors import PrerequisiteMissing
from loopline_cli.stack.ports import HOST
from loopline_cli.stack.readiness import http_ok
from loopline_cli.stack.secrets import ensure_keys, registry_auth_keys
from loopline_cli.stack.supervisor import Launch


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    grpc: bool = True

    @property
    def script(self) -> str:
        return f"loopline-{self.name}"


#: In start order (they start together; the order only decides the tables).
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("registry"),
    ServiceSpec("trainer"),
    ServiceSpec("feedback-collector"),
    ServiceSpec("drift-detector", grpc=False),
    ServiceSpec("serving-gateway"),
)


def service_env(config: StackConfig, spec: ServiceSpec) -> dict[str, str]:
    """The settings a service reads (loopline_core.settings: prefix LOOPLINE_, nesting ``__``)."""

    def grpc_of(name: str) -> str:
        return f"{HOST}:{config.port(name + '-grpc')}"

    keys = ensure_keys(config.run_dir)
    if spec.name == "registry":
        # A candidate must beat the champion by a point of accuracy on the same holdout.
        auth = {"LOOPLINE_AUTH__KEYS": registry_auth_keys(keys), "LOOPLINE_GATE__MARGIN": "0.01"}
    else:
        auth = {"LOOPLINE_ENDPOINTS__REGISTRY_API_KEY": keys.get(spec.name, "")}
    if spec.name == "drift-detector":
        auth["LOOPLINE_CHECKPOINT_KEY"] = keys["drift-checkpoint"]
    return auth | {
        "LOOPLINE_SERVICE_NAME": spec.name,
        "OTEL_SERVICE_NAME": spec.name,
        "LOOPLINE_HTTP_PORT": str(config.port(f"{spec.name}-http")),
        "LOOPLINE_GRPC_PORT": str(config.port(f"{spec.name}-grpc")) if spec.grpc else "0",
        "LOOPLINE_RUN_DIR": str(config.run_dir),
        "LOOPLINE_KAFKA__BOOTSTRAP_SERVERS": config.kafka_bootstrap,
        "LOOPLINE_POSTGRES__DSN": config.postgres_dsn,
        "LOOPLINE_TRITON__HTTP_URL": config.triton_http_url,
        "LOOPLINE_TRITON__GRPC_URL": config.triton_grpc_url,
        "LOOPLINE_TRITON__MODEL_REPOSITORY": str(config.model_repository),
        "LOOPLINE_ENDPOINTS__REGISTRY": grpc_of("registry"),
        "LOOPLINE_ENDPOINTS__TRAINER": grpc_of("trainer"),
        "LOOPLINE_ENDPOINTS__FEEDBACK_COLLECTOR": grpc_of("feedback-collector"),
        "LOOPLINE_TELEMETRY__LOCAL_TRACE_DIR": str(config.layout.traces_dir),
    }


class Service(Component):
    kind = "service"
    start_timeout = 60.0

    def __init__(self, config: StackConfig, spec: ServiceSpec, command: Sequence[str] | None = None) -> None:
        """``command`` replaces the console script (tests use a stand-in)."""
        super().__init__(config)
        self.spec = spec
        self.name = spec.name
        self.argv = list(command) if command else [str(config.venv_bin / spec.script)]

    @property
    def port_keys(self) -> tuple[str, ...]:
        http = f"{self.name}-http"
        return (http, f"{self.name}-grpc") if self.spec.grpc else (http,)

    def check_prerequisites(self) -> None:
        if not os.access(self.argv[0], os.X_OK):
            raise PrerequisiteMissing(self.name, f"executable {self.argv[0]}", "uv sync --all-packages")

    def launch(self) -> Launch:
        env = dict(os.environ) | service_env(self.config, self.spec)
        return Launch(argv=self.argv, env=env, cwd=self.config.run_dir, match=self.argv[0])

    def is_ready(self) -> bool:
        return http_ok(f"http://{HOST}:{self.config.port(self.name + '-http')}/readyz")
