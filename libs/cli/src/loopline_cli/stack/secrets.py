"""API keys of the local stack, made once per run directory.

The registry authenticates every call. The supervisor generates one key per
calling service and one admin key for operators, keeps them in
``<run-dir>/secrets/keys.json`` (mode 0600), provisions them into the registry
(``LOOPLINE_AUTH__KEYS``, stored hashed there) and hands each service its own
(``LOOPLINE_ENDPOINTS__REGISTRY_API_KEY``). ``<run-dir>/secrets/admin.key`` holds
the admin key for ``loopline models ...`` and the demo. The same file keeps the
drift detector's checkpoint-signing key (``LOOPLINE_CHECKPOINT_KEY``).
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import tempfile
import threading
from pathlib import Path

#: Parts start in threads (and a second ``up`` may run beside): one writer at a time.
_LOCK = threading.Lock()

#: Who gets a key, with the registry role it needs.
ROLES: dict[str, str] = {
    "trainer": "trainer",  # registers versions, requests canaries
    "serving-gateway": "reader",
    "feedback-collector": "reader",
    "drift-detector": "reader",
    "admin": "admin",  # operators: CLI, demo
}


#: Keys that are not registry credentials: the drift detector signs its checkpoints.
SERVICE_SECRETS: tuple[str, ...] = ("drift-checkpoint",)


def secrets_dir(run_dir: Path) -> Path:
    return run_dir / "secrets"


def admin_key_file(run_dir: Path) -> Path:
    return secrets_dir(run_dir) / "admin.key"


def ensure_keys(run_dir: Path) -> dict[str, str]:
    """The stack's keys by name, generated on first use and kept for later runs."""
    folder = secrets_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / "keys.json"
    with _LOCK, (folder / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        keys: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        missing = {name for name in (*ROLES, *SERVICE_SECRETS) if name not in keys}
        if missing:
            for name in sorted(missing):
                keys[name] = "llk_" + secrets.token_urlsafe(32)
            _write_private(path, json.dumps(keys, indent=2, sort_keys=True) + "\n")
            _write_private(admin_key_file(run_dir), keys["admin"] + "\n")
        return keys


def registry_auth_keys(keys: dict[str, str]) -> str:
    """The value of ``LOOPLINE_AUTH__KEYS`` for the registry."""
    return json.dumps({name: {"role": ROLES[name], "secret": keys[name]} for name in ROLES})


def _write_private(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")  # mode 0600
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
