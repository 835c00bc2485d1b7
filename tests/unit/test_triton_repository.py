"""Model repository entries: atomic, and safe when several processes write the same one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loopline_core.triton.repository import TensorConfig, render_config, write_entry

CONFIG = render_config("iris.v1", [TensorConfig("features", "FP32", [4])], [TensorConfig("probabilities", "FP32", [3])])


def _write(args: tuple[str, str, str]) -> str:
    repository, artifact, config = args
    return str(write_entry(Path(repository), "iris.v1", 1, Path(artifact), config))


def test_writing_the_same_version_again_leaves_it_in_place(tmp_path: Path) -> None:
    artifact = tmp_path / "model.pt"
    artifact.write_bytes(b"weights-1")
    first = write_entry(tmp_path / "repo", "iris.v1", 1, artifact, CONFIG)
    inode, config_inode = first.stat().st_ino, (first.parent / "config.pbtxt").stat().st_ino
    again = write_entry(tmp_path / "repo", "iris.v1", 1, artifact, CONFIG)
    assert again == first and again.stat().st_ino == inode  # not removed and written anew under Triton
    assert (first.parent / "config.pbtxt").stat().st_ino == config_inode
    artifact.write_bytes(b"weights-2")  # other files for the version: replaced
    write_entry(tmp_path / "repo", "iris.v1", 1, artifact, CONFIG)
    assert (first / "model.pt").read_bytes() == b"weights-2"


def test_writers_of_the_same_entry_at_once_all_succeed(tmp_path: Path) -> None:
    artifact = tmp_path / "model.pt"
    artifact.write_bytes(b"w" * (1 << 20))
    repository = tmp_path / "repo"
    with ThreadPoolExecutor(8) as pool:  # the file system sees threads as it sees the workers' processes
        written = list(pool.map(_write, [(str(repository), str(artifact), CONFIG)] * 32))
    assert set(written) == {str(repository / "iris.v1" / "1")}
    entry = repository / "iris.v1"
    assert sorted(p.name for p in entry.iterdir()) == ["1", "config.pbtxt"]  # no staging or temporary left
    assert (entry / "1" / "model.pt").read_bytes() == artifact.read_bytes()
    assert (entry / "config.pbtxt").read_text() == CONFIG


async def test_an_entry_lock_held_by_another_process_is_waited_for(tmp_path: Path) -> None:
    import asyncio
    import subprocess
    import sys
    import time

    import pytest

    from loopline_core.triton.repository import entry_lock

    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"os.makedirs({str(tmp_path / '.locks')!r}, exist_ok=True)\n"
        f"fd = os.open({str(tmp_path / '.locks' / 'iris.v1.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(0.6)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        started = time.monotonic()
        async with entry_lock(tmp_path, "iris.v2"):
            assert time.monotonic() - started < 0.3  # another model's entry: not held up
        async with entry_lock(tmp_path, "iris.v1"):
            assert time.monotonic() - started >= 0.4  # only once the other process let go (0.6 s)
        with pytest.raises(TimeoutError):  # held here: a second holder (even in this process) waits
            async with entry_lock(tmp_path, "iris.v1"):
                async with asyncio.timeout(0.2), entry_lock(tmp_path, "iris.v1"):
                    pass
    finally:
        holder.wait(10)
