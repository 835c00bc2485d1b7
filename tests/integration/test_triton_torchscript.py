"""A TorchScript model written to the repository, loaded through Triton's repository
API (explicit model control) and inferred through tritonclient, on the real Triton."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from loopline_core.triton.repository import TensorConfig, render_config, write_entry


def _scripted_mlp(path: Path) -> torch.nn.Module:
    torch.manual_seed(7)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3), torch.nn.Softmax(dim=1))
    scripted = torch.jit.script(model.eval())
    scripted.save(str(path))
    return scripted


def test_torchscript_model_loads_and_infers(triton, tmp_path: Path) -> None:
    reference = _scripted_mlp(tmp_path / "model.pt")
    config = render_config(
        "skeleton-mlp",
        [TensorConfig("INPUT__0", "FP32", (4,))],
        [TensorConfig("OUTPUT__0", "FP32", (3,))],
    )
    write_entry(Path(triton.model_repository), "skeleton-mlp", 1, tmp_path / "model.pt", config)

    http = triton_http.InferenceServerClient(triton.http_url)
    http.load_model("skeleton-mlp")
    assert http.is_model_ready("skeleton-mlp", "1")
    # Triton parsed the thread parameters the shim reads (a malformed entry would not load)
    parameters = http.get_model_config("skeleton-mlp")["parameters"]
    assert parameters["INTRA_OP_THREAD_COUNT"] == {"string_value": "1"}
    assert parameters["INTER_OP_THREAD_COUNT"] == {"string_value": "1"}

    batch = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32)
    expected = reference(torch.from_numpy(batch)).detach().numpy()

    grpc = triton_grpc.InferenceServerClient(triton.grpc_url)
    request = triton_grpc.InferInput("INPUT__0", list(batch.shape), "FP32")
    request.set_data_from_numpy(batch)
    result = grpc.infer("skeleton-mlp", [request], model_version="1")
    np.testing.assert_allclose(result.as_numpy("OUTPUT__0"), expected, rtol=1e-5, atol=1e-6)

    http.unload_model("skeleton-mlp")
    assert not http.is_model_ready("skeleton-mlp", "1")
