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
