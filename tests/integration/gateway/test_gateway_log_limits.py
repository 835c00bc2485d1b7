"""A prediction too large for one Kafka record, on the real Triton and Kafka: it is logged
without its inputs' values (shape kept, outputs whole, counted), and the predictions after it
are logged too. Before, Kafka refused the record and the log retried that batch for ever."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc.aio as grpc_client
from loopline.common.v1 import common_pb2
from loopline_cli.stack import TritonEndpoints

from gateway_it import FakeRegistry, gateway_settings, read_predictions, registry_server, running_gateway, scripted_model

pytestmark = pytest.mark.integration
WIDE = 200_000  # one row: 800 kB of FP32 in the request, 1.6 MB as the event's doubles (Kafka takes 1 MiB)


async def test_a_prediction_too_large_for_one_record_is_logged_without_its_inputs_and_the_log_goes_on(
        triton: TritonEndpoints, kafka_bootstrap: str, tmp_path: Path) -> None:
    model = f"wide-{uuid.uuid4().hex[:6]}"
    registry = FakeRegistry()
    registry.add_version(model, 1, scripted_model(3, WIDE)[0], features=WIDE)
    registry.deploy(model, [(1, 1.0, common_pb2.VARIANT_CHAMPION)])
    ids, answers = [], []
    async with registry_server(registry) as target:
        settings = gateway_settings(triton, kafka_bootstrap, target, tmp_path)
        async with running_gateway(settings) as gateway:
            client = grpc_client.InferenceServerClient(f"127.0.0.1:{gateway.grpc_server.port}")
            try:
                for seed in range(3):
                    tensor = grpc_client.InferInput("features", [1, WIDE], "FP32")
                    tensor.set_data_from_numpy(np.random.default_rng(seed).normal(size=(1, WIDE)).astype(np.float32))
                    reply = await client.infer(model, [tensor])
                    ids.append(reply.get_response().parameters["prediction_id"].string_param)
                    answers.append(reply.as_numpy("probabilities")[0])
            finally:
                await client.close()
            logged = await read_predictions(kafka_bootstrap, set(ids), timeout_s=60)
            omitted = gateway.metrics.registry.get_sample_value("gateway_prediction_log_omitted_tensors_total")
    assert omitted == 3
    for prediction_id, answer in zip(ids, answers, strict=True):
        (event,) = logged[prediction_id]
        (inputs,) = event.inputs
        assert (inputs.name, inputs.datatype, list(inputs.shape), len(inputs.fp_contents)) == (
            "features", "FP32", [1, WIDE], 0)
        np.testing.assert_allclose(event.outputs[0].fp_contents, answer, rtol=1e-6)  # outputs whole: labels join
