"""The gateway processes of a benchmark run: the model they serve, their configuration from the
bench's knobs, starting them (the current code, and a baseline with other code or settings), and
waiting until Kafka has acknowledged what they logged."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from loadtests.gateway.serve import free_port

#: Inputs of the served model (``BENCH_GATEWAY_FEATURES``, default 16: 64 bytes a request).
FEATURES = int(os.environ.get("BENCH_GATEWAY_FEATURES", "16"))
CLASSES = 4


def artifact(path: Path) -> None:
    """The served model: a TorchScript MLP, FEATURES in, CLASSES probabilities out."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(FEATURES, 32), torch.nn.ReLU(), torch.nn.Linear(32, CLASSES),
                                torch.nn.Softmax(dim=1)).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        buffer = io.BytesIO()
        torch.jit.save(torch.jit.script(model), buffer)
    path.write_bytes(buffer.getvalue())


@dataclass
class Gateway:
    """One gateway process of the run ("current", or "baseline" with other code or settings)."""

    name: str
    pid: int
    grpc_port: int
    http_port: int
    logging: bool = True  # prediction log on (BENCH_GATEWAY_LOG in its environment)
    logged: float = 0.0  # PredictionLogged events Kafka must have acknowledged

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


async def acknowledged(session: aiohttp.ClientSession, base: str) -> float:
    """The PredictionLogged events Kafka has acknowledged to the gateway at ``base`` (its metric)."""
    async with session.get(f"{base}/metrics") as reply:
        for line in (await reply.text()).splitlines():
            if line.startswith("gateway_prediction_log_sent_total "):
                return float(line.split()[1])
    return 0.0


async def drain(session: aiohttp.ClientSession, gateway: Gateway) -> None:
    """Waits (30 s at most) until Kafka has acknowledged every event ``gateway`` logged."""
    if not gateway.logging:
        return
    deadline = time.perf_counter() + 30
    while await acknowledged(session, gateway.http) < gateway.logged and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)


def config(cfg: object, root: Path) -> dict[str, object]:
    """What ``loadtests.gateway.serve`` is given (the stack's addresses, the model, the knobs:
    BENCH_GATEWAY_TRACING, _UVLOOP, _GRPC_SERVER, _TRITON, _LOG, _FLUSH_MS)."""
    settings: dict[str, object] = {
        "run_dir": str(root / "gw"),
        "grpc_server": os.environ.get("BENCH_GATEWAY_GRPC_SERVER", "native"),
        "triton": {"http_url": cfg.triton_http_url, "grpc_url": cfg.triton_grpc_url,  # type: ignore[attr-defined]
                   "model_repository": str(cfg.model_repository)},  # type: ignore[attr-defined]
        "kafka": {"bootstrap_servers": cfg.kafka_bootstrap},  # type: ignore[attr-defined]
        "telemetry": {"local_trace_dir": str(root / "traces")},
        "prediction_log": {"enabled": os.environ.get("BENCH_GATEWAY_LOG", "1") != "0",
                           "flush_interval_ms": int(os.environ.get("BENCH_GATEWAY_FLUSH_MS", "100"))}}
    if "BENCH_GATEWAY_TRITON" in os.environ:
        settings["triton_data_plane"] = os.environ["BENCH_GATEWAY_TRITON"]
    return {"artifact": str(root / "model.pt"), "features": FEATURES, "classes": CLASSES,
            "tracing": os.environ.get("BENCH_GATEWAY_TRACING", "1") != "0",
            "uvloop": os.environ.get("BENCH_GATEWAY_UVLOOP", "1") != "0", "settings": settings}


def variants() -> list[tuple[str, dict[str, str]]]:
    """("current", its environment) and, with BENCH_GATEWAY_BASELINE (code first on its PYTHONPATH)
    or BENCH_GATEWAY_BASELINE_ENV (variables of its own), ("baseline", its environment)."""
    env = dict(os.environ)
    found = [("current", _sampled(env))]
    baseline_path = os.environ.get("BENCH_GATEWAY_BASELINE", "")
    baseline_env = dict(item.split("=", 1) for item in os.environ.get("BENCH_GATEWAY_BASELINE_ENV", "").split(",")
                        if item)
    if baseline_path or baseline_env:
        extra = dict(env, **baseline_env)
        if baseline_path:
            extra["PYTHONPATH"] = os.pathsep.join(p for p in (baseline_path, env.get("PYTHONPATH", "")) if p)
        found.append(("baseline", _sampled(extra)))
    return found


def _sampled(env: dict[str, str]) -> dict[str, str]:
    """``env`` with BENCH_GATEWAY_SAMPLE (its own: a baseline's may differ) as the OTel sampler."""
    sample = env.get("BENCH_GATEWAY_SAMPLE", "")
    if sample:
        env = dict(env, OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG=sample)
    return env


def start(root: Path, name: str, config: dict[str, object], env: dict[str, str], *,
          grpc_port: int | None = None) -> tuple[subprocess.Popen[bytes], Gateway | None]:
    """Starts the gateway ``name`` (``serve`` in its own process, ``env`` its environment) and waits
    until it is ready (180 s at most); the Gateway is None when it did not start. ``grpc_port``:
    a port other gateway processes serve too (SO_REUSEPORT), for several workers."""
    config = json.loads(json.dumps(config))
    http_port = free_port()
    config["settings"].update(http_port=http_port, grpc_port=grpc_port or free_port(),  # type: ignore[attr-defined]
                              run_dir=str(root / f"gw-{name}"))
    config_path = root / f"gateway-{name}.json"
    config_path.write_text(json.dumps(config))
    process = subprocess.Popen([sys.executable, "-m", "loadtests.gateway.serve", str(config_path)], env=env)
    ready = config_path.with_suffix(".ready")
    deadline = time.monotonic() + 180
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            return process, None
        time.sleep(0.1)
    return process, Gateway(name, process.pid, int(json.loads(ready.read_text())["grpc_port"]), http_port,
                            env.get("BENCH_GATEWAY_LOG", "1") != "0")
