"""What a run records so that its model can be rebuilt: code version and environment."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import numpy
import torch


@functools.cache
def code_version() -> str:
    """The git commit of the source tree when there is one, else the package version."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        if sha:
            return f"git:{sha}"
    except (OSError, subprocess.SubprocessError):
        pass
    return f"loopline-trainer=={metadata.version('loopline-trainer')}"


def environment(device: str) -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "platform": platform.platform(), "device": device,
            "cuda_available": str(torch.cuda.is_available()).lower()}
