"""The python-backend shim (loopline_core.triton.model) and the config that feeds it, without Triton:
the shim runs in a child process with a stand-in for the backend's utils module."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from loopline_core.errors import InvalidArgument
from loopline_core.triton.repository import TensorConfig, render_config

_CHILD = textwrap.dedent("""
    import json, sys, types
    import numpy as np
    utils = types.ModuleType("triton_python_backend_utils")
    utils.triton_string_to_numpy = lambda name: np.float32
    sys.modules["triton_python_backend_utils"] = utils
    import torch
    from loopline_core.triton.model import TritonPythonModel
    args = json.loads(sys.argv[1])
    before = torch.get_num_threads()
    TritonPythonModel().initialize(args)
    print(json.dumps({"before": before, "after": torch.get_num_threads(), "interop": torch.get_num_interop_threads()}))
""")


def _config(threads: int) -> dict[str, object]:
    text = render_config("m", [TensorConfig("x", "FP32", (4,))], [TensorConfig("y", "FP32", (3,))], threads=threads)
    parameters = {}
    for line in text.splitlines():
        if line.startswith("parameters:"):
            key = line.split('key: "')[1].split('"')[0]
            parameters[key] = {"string_value": line.split('string_value: "')[1].split('"')[0]}
    return {"input": [{"name": "x"}], "output": [{"name": "y", "data_type": "TYPE_FP32"}], "parameters": parameters}


def _initialize(tmp_path: Path, threads: int) -> dict[str, int]:
    model = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(4, 3)).eval())
    (tmp_path / "1").mkdir()
    model.save(str(tmp_path / "1" / "model.pt"))
    args = {"model_config": json.dumps(_config(threads)), "model_repository": str(tmp_path), "model_version": "1",
            "model_instance_kind": "CPU", "model_instance_device_id": "0"}
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_config_sizes_torch_threads_in_the_stub(tmp_path: Path) -> None:
    seen = _initialize(tmp_path, 1)
    assert seen["after"] == 1 and seen["interop"] == 1


def test_zero_threads_leaves_torch_default(tmp_path: Path) -> None:
    seen = _initialize(tmp_path, 0)
    assert seen["after"] == seen["before"]
    assert "parameters" not in render_config("m", [TensorConfig("x", "FP32", (4,))],
                                             [TensorConfig("y", "FP32", (3,))], threads=0)


def test_rendered_config_names_both_thread_counts() -> None:
    text = render_config("m", [TensorConfig("x", "FP32", (4,))], [TensorConfig("y", "FP32", (3,))], threads=3)
    assert 'parameters: { key: "INTRA_OP_THREAD_COUNT" value: { string_value: "3" } }' in text
    assert 'parameters: { key: "INTER_OP_THREAD_COUNT" value: { string_value: "3" } }' in text


def test_negative_threads_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="threads"):
        render_config("m", [TensorConfig("x", "FP32", (4,))], [TensorConfig("y", "FP32", (3,))], threads=-1)
