"""A real S3-compatible server for the registry's S3 tests: moto's standalone server in a
child process on a free loopback port, one per test module, waited on until it answers."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@contextlib.contextmanager
def moto_server(log_dir: Path, ready_within_s: float = 20.0) -> Iterator[str]:
    """Yields the endpoint URL of a running ``moto_server``; stops it afterwards."""
    port = _free_port()
    script = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    log = (log_dir / "moto.log").open("wb")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "it", "AWS_SECRET_ACCESS_KEY": "it-secret"}
    process = subprocess.Popen([script, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT,
                               env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_within_s
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not start; see {log_dir / 'moto.log'}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
