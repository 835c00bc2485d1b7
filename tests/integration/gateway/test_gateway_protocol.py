"""Triton's own clients (tritonclient.grpc and tritonclient.http, unchanged) against the
gateway on the real Triton: metadata, readiness, inference equal to Triton's own
answers, prediction ids in the response, and the prediction log on the real Kafka."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import asyncio

import numpy as np
import pytest
import tritonclient.grpc as sync_grpc_client
import tritonclient.grpc.aio as grpc_client
import tritonclient.http.aio as http_client
from loopline.common.v1 import common_pb2
from loopline_cli.stack import Stack, TritonEndpoints
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from tritonclient.utils import InferenceServerException

from gateway_it import CLASSES, FEATURES, FakeRegistry, gateway_settings, read_predictions, registry_server, \
    running_gateway, scripted_model

pytestmark = pytest.mark.integration
CHAMPION = common_pb2.VARIANT_CHAMPION


def _grpc_input(batch: np.ndarray) -> grpc_client.InferInput:
    tensor = grpc_client.InferInput("features", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch)
    return tensor


@pytest.mark.parametrize("edge", ["native", "aio"])
async def test_triton_clients_work_unchanged_through_the_gateway(triton: TritonEndpoints, kafka_bootstrap: str,
                                                                tmp_path: Path, edge: str) -> None:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    model = f"proto-{uuid.uuid4().hex[:6]}"
    artifact, reference = scripted_model(11)
    registry = FakeRegistry()
    registry.add_version(model, 1, artifact)
    registry.deploy(model, [(1, 1.0, CHAMPION)])
    batch = np.random.default_rng(5).normal(size=(3, FEATURES)).astype(np.float32)
    single = batch[:1]

    async with registry_server(registry) as target:
        settings = gateway_settings(triton, kafka_bootstrap, target, tmp_path, grpc_server=edge)
        async with running_gateway(settings) as gateway:
            direct = grpc_client.InferenceServerClient(triton.grpc_url)
            via_grpc = grpc_client.InferenceServerClient(f"127.0.0.1:{gateway.grpc_server.port}")
            via_http = http_client.InferenceServerClient(f"127.0.0.1:{settings.http_port}")
            try:
                assert await via_grpc.is_server_live() and await via_grpc.is_server_ready()
                assert await via_grpc.is_model_ready(model)
                assert not await via_grpc.is_model_ready("no-such-model")
                meta = await via_grpc.get_model_metadata(model)
                assert meta.name == model and list(meta.versions) == ["1"]
                assert meta.inputs[0].name == "features" and list(meta.inputs[0].shape) == [-1, FEATURES]
                assert (await via_http.get_model_metadata(model))["outputs"][0]["name"] == "probabilities"
                assert await via_http.is_server_ready() and await via_http.is_model_ready(model)

                expected = (await direct.infer(f"{model}.v1", [_grpc_input(batch)])).as_numpy("probabilities")
                np.testing.assert_allclose(expected, reference(__import__("torch").from_numpy(batch)).detach().numpy(),
                                           rtol=1e-5, atol=1e-6)
                g = await via_grpc.infer(model, [_grpc_input(batch)])
                np.testing.assert_array_equal(g.as_numpy("probabilities"), expected)
                grpc_reply = g.get_response()
                assert grpc_reply.model_name == model and grpc_reply.model_version == "1"
                batch_id = grpc_reply.parameters["prediction_id"].string_param
                assert uuid.UUID(batch_id).version == 4

                for binary in (True, False):
                    tensor = http_client.InferInput("features", list(single.shape), "FP32")
                    tensor.set_data_from_numpy(single, binary_data=binary)
                    outputs = [http_client.InferRequestedOutput("probabilities", binary_data=binary)]
                    h = await via_http.infer(model, [tensor], outputs=outputs)
                    np.testing.assert_allclose(h.as_numpy("probabilities"), expected[:1], rtol=1e-6)
                    assert h.get_response()["model_version"] == "1"
                single_id = h.get_response()["parameters"]["prediction_id"]

                with pytest.raises(InferenceServerException, match="not deployed"):
                    await via_grpc.infer("unknown-model", [_grpc_input(single)])
                bad = grpc_client.InferInput("features", [1, FEATURES + 1], "FP32")
                bad.set_data_from_numpy(np.zeros((1, FEATURES + 1), np.float32))
                with pytest.raises(InferenceServerException, match="features"):
                    await via_grpc.infer(model, [bad])
                with pytest.raises(InferenceServerException, match="not reachable through the gateway"):
                    await via_grpc.load_model(model)
                with pytest.raises(InferenceServerException, match="not reachable through the gateway"):
                    await via_http.unload_model(model)
            finally:
                await direct.close()
                await via_grpc.close()
                await via_http.close()

        logged = await read_predictions(kafka_bootstrap, {f"{batch_id}/0", f"{batch_id}/2", single_id})
    row = logged[f"{batch_id}/2"][0]
    assert row.model == model and row.version == 1 and row.variant == CHAMPION
    assert list(row.inputs[0].shape) == [1, FEATURES]
    np.testing.assert_allclose(row.inputs[0].fp_contents, batch[2], rtol=1e-6)
    np.testing.assert_allclose(row.outputs[0].fp_contents, expected[2], rtol=1e-6)
    assert list(row.outputs[0].shape) == [1, CLASSES] and row.trace.traceparent.startswith("00-")
    assert logged[single_id][0].prediction_id == single_id


async def test_large_tensors_many_streams_and_deadlines_through_the_native_edge(
        triton: TritonEndpoints, kafka_bootstrap: str, tmp_path: Path, local_stack: Stack) -> None:
    """tritonclient.grpc (the blocking client) through the native edge: a 1.36 MB request (Triton
    refuses its batch size, and says so through the gateway as it does directly), 32 concurrent
    calls on one channel equal to Triton's answers, and a client deadline. (Answers over 1 MiB, which
    this model cannot produce, are in the edge's unit tests.)"""
    model = f"big-{uuid.uuid4().hex[:6]}"
    artifact, _ = scripted_model(12)
    registry = FakeRegistry()
    registry.add_version(model, 1, artifact)
    registry.deploy(model, [(1, 1.0, CHAMPION)])
    big = np.random.default_rng(6).normal(size=(85_000, FEATURES)).astype(np.float32)  # 1.36 MB of FP32

    def tensor(batch: np.ndarray) -> sync_grpc_client.InferInput:
        inp = sync_grpc_client.InferInput("features", list(batch.shape), "FP32")
        inp.set_data_from_numpy(batch)
        return inp

    async with registry_server(registry) as target:
        settings = gateway_settings(triton, kafka_bootstrap, target, tmp_path, grpc_server="native",
                                    prediction_log={"enabled": False})
        async with running_gateway(settings) as gateway:
            direct = sync_grpc_client.InferenceServerClient(triton.grpc_url)
            via = sync_grpc_client.InferenceServerClient(f"127.0.0.1:{gateway.grpc_server.port}")
            try:
                # 1.36 MB in (many DATA frames and window updates): the gateway reads it whole and
                # passes Triton's refusal of the batch size back, as Triton answers it directly
                with pytest.raises(InferenceServerException, match="batch-size must be <= 256") as at_triton:
                    await asyncio.to_thread(lambda: direct.infer(f"{model}.v1", [tensor(big)]))
                with pytest.raises(InferenceServerException, match="batch-size must be <= 256") as at_gateway:
                    await asyncio.to_thread(lambda: via.infer(model, [tensor(big)]))
                assert at_gateway.value.status() == at_triton.value.status() == "StatusCode.INVALID_ARGUMENT"
                expected = await asyncio.to_thread(
                    lambda: direct.infer(f"{model}.v1", [tensor(big[:256])]).as_numpy("probabilities"))
                got = await asyncio.to_thread(lambda: via.infer(model, [tensor(big[:256])]).as_numpy("probabilities"))
                np.testing.assert_array_equal(got, expected)
                rows = [big[i:i + 1 + i % 5] for i in range(32)]
                answers = await asyncio.gather(*[asyncio.to_thread(
                    lambda r=r: via.infer(model, [tensor(r)]).as_numpy("probabilities")) for r in rows])
                for i, (r, a) in enumerate(zip(rows, answers, strict=True)):
                    assert a.shape == (len(r), CLASSES)
                    np.testing.assert_allclose(a, expected[i:i + len(r)], rtol=1e-5, atol=1e-6)
                # a client deadline while Triton is paused (SIGSTOP), so that no answer can come in time
                # (a tiny deadline was not enough: grpcio's timers have millisecond resolution and a fast
                # gateway answered first): the client gets DEADLINE_EXCEEDED, and once Triton resumes the
                # gateway serves on (the edge's own deadline handling: unit tests)
                record = local_stack.supervisor.running("triton")
                assert record is not None
                os.kill(record.pid, signal.SIGSTOP)
                try:
                    with pytest.raises(InferenceServerException, match="(?i)deadline"):
                        await asyncio.to_thread(lambda: via.infer(model, [tensor(big[:256])], client_timeout=0.3))
                finally:
                    os.kill(record.pid, signal.SIGCONT)
                assert await asyncio.to_thread(via.is_server_live)
                again = await asyncio.to_thread(lambda: via.infer(model, [tensor(big[:256])]).as_numpy("probabilities"))
                np.testing.assert_array_equal(again, expected)
            finally:
                direct.close()
                via.close()
