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
    #: Seconds to wait for /readyz. The gateway is ready once every deployed model is loaded in
    #: Triton (a few seconds each with the python backend here), so its wait grows with the
    #: deployments a run directory has kept.
    start_timeout: float = 60.0

    @property
    def script(self) -> str:
        return f"loopline-{self.name}"


#: In start order (they start together; the order only decides the tables).
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("registry"),
    ServiceSpec("trainer"),
    ServiceSpec("feedback-collector"),
    ServiceSpec("drift-detector", grpc=False),
    ServiceSpec("serving-gateway", start_timeout=300.0),
)


#: The local stack's tuning of the closed loop (docs/demo.md, "Settings"): the services'
#: defaults suit production traffic (hundreds of labels per canary step, a 6 h retrain
#: cooldown); on one laptop-sized stream at ~20 requests/s the loop must close in
#: about a minute. Each value can be overridden by the same variable in the
#: environment of ``loopline stack up`` / ``loopline demo``.
LOOP_TUNING: dict[str, dict[str, str]] = {
    "registry": {
        "LOOPLINE_ROLLOUT__POLL_S": "1.0",
        # Canary 0.2 -> 0.5 -> 1.0: two judged steps instead of three.
        "LOOPLINE_ROLLOUT__STEPS": "[0.2, 0.5, 1.0]",
        # 40 labels per side: after a concept change the retrained candidate is ~45 points
        # better than the stale champion, far beyond what 40 labels can mistake.
        "LOOPLINE_ROLLOUT__MIN_SAMPLES": "40",
        "LOOPLINE_ROLLOUT__STEP_TIMEOUT_S": "180",
    },
    "trainer": {
        "LOOPLINE_ROLLOUT__CANARY_WEIGHT": "0.2",  # the controller's first step
        # After a concept change older rows contradict the new concept: train on the new one only.
        "LOOPLINE_DATASET__OLDER_SHARE": "0",
        "LOOPLINE_DATASET__MIN_ROWS": "600",
        "LOOPLINE_DATASET__WAIT_S": "120",
        "LOOPLINE_DATASET__POLL_S": "1.0",
    },
    "drift-detector": {
        # One retrain per model per demo run (the canary of the first one takes < 1 min).
        "LOOPLINE_RETRAIN__COOLDOWN_S": "300",
        # Quality streams: only the windowed accuracy drop (last 50 labels, 10 points below the
        # version's validation accuracy). Why not the defaults, measured on seeded error streams
        # (4% live error before, 45% after a concept change):
        # - error_cusum floors the validation error rate at 0.001: a version that scored 1.000 on its
        #   small holdout alarms on 4% live errors (50 of 50 runs); accuracy_drop: 0 of 100, delay 49;
        # - hddm_a reports its last 100 outcomes as the evidence window, so RetrainRequested.data_since
        #   falls ~70 labels before the change and the retrain mixes in old-concept rows (70 such rows
        #   in 570 cost 5 points of accuracy); a 50-label window starts at the change.
        "LOOPLINE_MONITOR": '{"concept": [], "performance": [{"name": "accuracy_drop", '
                            '"params": {"margin": 0.1, "window": 50}}]}',
    },
}


def loop_tuning(name: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """``LOOP_TUNING`` of one service, each value replaced by the environment's when set there."""
    environ = dict(os.environ) if environ is None else environ
    return {key: environ.get(key, value) for key, value in LOOP_TUNING.get(name, {}).items()}


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
    return auth | loop_tuning(spec.name) | {
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
        self.start_timeout = spec.start_timeout
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
