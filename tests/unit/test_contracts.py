"""The generated contracts are exactly what `make protos` would write now."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

from loopline.events.v1 import predictions_pb2

ROOT = Path(__file__).resolve().parents[2]


def _files(base: Path) -> dict[str, Path]:
    return {str(p.relative_to(base)): p for p in base.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_regeneration_changes_nothing(tmp_path: Path) -> None:
    env_bin = str(Path(sys.executable).parent)
    subprocess.run(
        ["bash", str(ROOT / "scripts/gen_protos.sh"), str(tmp_path)],
        check=True, capture_output=True, env={"PATH": f"{env_bin}:/usr/bin:/bin"},
    )
    fresh, committed = _files(tmp_path / "loopline"), _files(ROOT / "libs/contracts/src/loopline")
    assert sorted(fresh) == sorted(committed), "run `make protos`: the set of generated files differs"
    stale = [name for name in fresh if not filecmp.cmp(fresh[name], committed[name], shallow=False)]
    assert not stale, f"run `make protos`: these generated files are stale: {stale}"


def test_event_full_names_follow_the_package_path() -> None:
    assert predictions_pb2.PredictionLogged.DESCRIPTOR.full_name == "loopline.events.v1.PredictionLogged"
