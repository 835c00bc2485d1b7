"""Writes Triton model repository entries for TorchScript artifacts.

Layout (one layout for the local python backend and the official image's
pytorch_libtorch backend; only ``backend`` in config.pbtxt differs)::

    <repository>/<triton name>/config.pbtxt
    <repository>/<triton name>/<version>/model.pt   (the TorchScript artifact)
    <repository>/<triton name>/<version>/model.py   (python backend shim)
    <repository>/.locks/<triton name>.lock          (``entry_lock``; Triton runs with explicit
                                                     model control and never reads it)
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from loopline_core.errors import InvalidArgument

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_TYPES = {"BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"}


@dataclass(frozen=True)
class TensorConfig:
    name: str
    datatype: str
    #: Dimensions without the batch dimension; -1 for variable.
    dims: tuple[int, ...]


def check_name(name: str, field: str = "name") -> str:
    if not _NAME.match(name) or ".." in name:
        raise InvalidArgument(f"{name!r} is not a valid name (letters, digits, _ . -; at most 128)", field=field)
    return name


def _tensor(t: TensorConfig) -> str:
    check_name(t.name, "tensor name")
    if t.datatype not in _TYPES:
        raise InvalidArgument(f"unsupported datatype {t.datatype!r}", field="datatype")
    dims = ", ".join(str(d) for d in t.dims)
    return f'  {{ name: "{t.name}" data_type: TYPE_{t.datatype} dims: [ {dims} ] }}'


def render_config(name: str, inputs: list[TensorConfig], outputs: list[TensorConfig], *,
                  backend: str = "python", max_batch_size: int = 256, gpu: bool = False, threads: int = 1) -> str:
    """config.pbtxt of one model. ``threads``: torch's intra- and inter-op threads per instance
    (``INTRA_OP_THREAD_COUNT``/``INTER_OP_THREAD_COUNT``, the names Triton's pytorch backend reads;
    our python-backend shim reads them too); 0 leaves torch's default (one per core).

    One thread is the default because torch's default pool spins on every core after
    each operator: for the small models of a serving path on a shared machine that
    burns CPU the gateway and Triton's own front end need (measured on a 2-core
    machine: Triton's CPU per request 1.09 -> 0.52 ms at 4 concurrent requests).
    Scale a model with instances (``instance_group``) rather than threads."""
    if threads < 0:
        raise InvalidArgument(f"threads must be >= 0, got {threads}", field="threads")
    kind = "KIND_GPU" if gpu else "KIND_CPU"
    parameters = [f'parameters: {{ key: "{key}" value: {{ string_value: "{threads}" }} }}'
                  for key in ("INTRA_OP_THREAD_COUNT", "INTER_OP_THREAD_COUNT")] if threads else []
    return "\n".join([
        f'name: "{check_name(name)}"',
        f'backend: "{backend}"',
        f"max_batch_size: {max_batch_size}",
        "input [", ",\n".join(_tensor(t) for t in inputs), "]",
        "output [", ",\n".join(_tensor(t) for t in outputs), "]",
        "version_policy: { all { } }",
        "dynamic_batching { max_queue_delay_microseconds: 200 }",
        f"instance_group [ {{ kind: {kind} count: 1 }} ]",
        *parameters,
        "",
    ])


def write_entry(repository: Path, name: str, version: int, artifact: Path, config: str) -> Path:
    """Materialise one version atomically (written aside, then renamed into place).

    Several processes may write the same entry at once (the gateway's workers each reconcile
    the same deployments): a version already in place with the same files is left as it is
    (Triton may be loading it), and every temporary name is unique to its writer."""
    check_name(name)
    if version < 1:
        raise InvalidArgument("version must be a positive integer", field="version")
    model_dir = repository / name
    model_dir.mkdir(parents=True, exist_ok=True)
    shim = (resources.files("loopline_core.triton") / "model.py").read_text()
    target = model_dir / str(version)
    staging: Path | None = None
    try:
        for _ in range(8):
            if _holds(target, artifact, shim):
                break
            if staging is None:
                staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=model_dir))
                shutil.copyfile(artifact, staging / "model.pt")
                (staging / "model.py").write_text(shim)
            if target.exists():  # other files for this version: moved aside in one step, then removed
                aside = Path(tempfile.mkdtemp(prefix=f".old-{version}-", dir=model_dir)) / "v"
                with contextlib.suppress(FileNotFoundError):
                    os.replace(target, aside)
                shutil.rmtree(aside.parent, ignore_errors=True)
            try:
                os.replace(staging, target)
                staging = None
                break
            except OSError:
                continue  # another writer put its copy in place meanwhile: look at it again
        else:
            raise OSError(f"could not put version {version} of {name} in place in {model_dir}")
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    config_path = model_dir / "config.pbtxt"
    if not (config_path.is_file() and config_path.read_text() == config):
        handle, config_tmp = tempfile.mkstemp(prefix=".config-", suffix=".tmp", dir=model_dir)
        with os.fdopen(handle, "w") as out:
            out.write(config)
        os.replace(config_tmp, config_path)
    return target


def entry_sha256(repository: Path, name: str, version: int) -> str | None:
    """The sha256 of the artifact in place for this version (read in 1 MiB chunks), or None."""
    digest = hashlib.sha256()
    try:
        with open(repository / check_name(name) / str(version) / "model.pt", "rb") as entry:
            while chunk := entry.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _holds(target: Path, artifact: Path, shim: str) -> bool:
    """Whether the version directory already has exactly this artifact and shim."""
    try:
        return ((target / "model.py").read_text() == shim
                and (target / "model.pt").read_bytes() == artifact.read_bytes())
    except OSError:
        return False


#: How often a process waiting for ``entry_lock`` tries again.
LOCK_POLL_S = 0.05


@contextlib.asynccontextmanager
async def entry_lock(repository: Path, name: str) -> AsyncIterator[None]:
    """Hold one Triton model's entry against every other process on this host (the gateway's
    workers each reconcile the same deployments): whoever holds it writes, loads or unloads
    that model; the others wait, then find it loaded. An advisory ``flock`` on
    ``<repository>/.locks/<name>.lock``, asked for without blocking and again every
    ``LOCK_POLL_S`` (a thread blocked in ``flock`` could not be cancelled); released when the
    process ends, however it ends. Lock files are never removed (removing one while another
    process waits on it would let two hold it)."""
    locks = repository / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    handle = os.open(locks / f"{check_name(name)}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(LOCK_POLL_S)
        yield
    finally:
        os.close(handle)  # releases the lock
