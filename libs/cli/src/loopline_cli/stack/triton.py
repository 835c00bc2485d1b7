"""The Triton Inference Server shipped in the nvidia-pytriton wheel, explicit model control.

The wheel's ``tritonserver`` folder is copied once into the cache (the python
backend needs the stub for the running Python beside it, and the wheel's folder
is not ours to write), then run on ``<run>/triton/models``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from loopline_cli.stack.component import Component
from loopline_cli.stack.errors import PrerequisiteMissing
from loopline_cli.stack.ports import HOST
from loopline_cli.stack.readiness import http_ok
from loopline_cli.stack.supervisor import Launch

PY_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
_STUB = "triton_python_backend_stub"


@dataclass(frozen=True)
class TritonEndpoints:
    http_url: str
    grpc_url: str
    model_repository: Path


def pytriton_dir() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise PrerequisiteMissing(
            "triton", "Python package nvidia-pytriton (ships tritonserver)", "uv sync --all-packages"
        )
    return Path(spec.origin).parent


def install_dir(cache_dir: Path) -> Path:
    version = importlib.metadata.version("nvidia-pytriton")
    return cache_dir / f"triton-{version}-py{PY_VERSION}" / "tritonserver"


def ensure_install(cache_dir: Path) -> Path:
    target = install_dir(cache_dir)
    if (target / "backends/python" / _STUB).is_file():
        return target
    source = pytriton_dir() / "tritonserver"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".copy-", dir=target.parent))
    try:
        copy = staging / "tritonserver"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("python_backend_stubs"))
        shutil.copy2(source / "python_backend_stubs" / PY_VERSION / _STUB, copy / "backends/python" / _STUB)
        shutil.rmtree(target, ignore_errors=True)  # an incomplete earlier copy
        try:
            copy.rename(target)
        except OSError:
            if not (target / "backends/python" / _STUB).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


class Triton(Component):
    name = "triton"
    start_timeout = 60.0

    @property
    def port_keys(self) -> tuple[str, ...]:
        return ("triton-http", "triton-grpc", "triton-metrics")

    def endpoints(self) -> TritonEndpoints:
        return TritonEndpoints(self.config.triton_http_url, self.config.triton_grpc_url, self.config.model_repository)

    def check_prerequisites(self) -> None:
        source = pytriton_dir() / "tritonserver"
        for needed in (source / "bin/tritonserver", source / "python_backend_stubs" / PY_VERSION / _STUB):
            if not needed.is_file():
                raise PrerequisiteMissing(self.name, f"file {needed} from the nvidia-pytriton wheel")

    def prepare(self) -> None:
        ensure_install(self.config.cache_dir)
        self.config.model_repository.mkdir(parents=True, exist_ok=True)

    def launch(self) -> Launch:
        home = install_dir(self.config.cache_dir)
        argv = [
            str(home / "bin/tritonserver"),
            f"--model-repository={self.config.model_repository}",
            f"--backend-directory={home / 'backends'}",
            f"--cache-directory={home / 'caches'}",
            "--model-control-mode=explicit",
            # One model that fails to load (a broken artifact) must not make the whole server
            # unready: the gateway keeps serving the versions that did load.
            "--strict-readiness=false",
            f"--http-address={HOST}",
            f"--http-port={self.config.port('triton-http')}",
            f"--grpc-address={HOST}",
            f"--grpc-port={self.config.port('triton-grpc')}",
            f"--metrics-address={HOST}",
            f"--metrics-port={self.config.port('triton-metrics')}",
            "--exit-timeout-secs=10",
        ]
        return Launch(argv=argv, env=self._env(), cwd=self.config.model_repository.parent, match="tritonserver")

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        libs = [str(pytriton_dir().parent / "nvidia_pytriton.libs"), sysconfig.get_config_var("LIBDIR") or ""]
        env["LD_LIBRARY_PATH"] = ":".join(p for p in [*libs, env.get("LD_LIBRARY_PATH", "")] if p)
        # The python backend's stub runs model.py with the Python found first on PATH.
        env["PATH"] = f"{self.config.venv_bin}:{env.get('PATH', '')}"
        return env

    def is_ready(self) -> bool:
        base = f"http://{self.config.triton_http_url}/v2/health"
        return http_ok(f"{base}/live") and http_ok(f"{base}/ready")
