"""The V2 REST routes (the inference edge in front of the FastAPI app, in-process ASGI) with an in-memory Triton."""

from __future__ import annotations

import json
from collections import Counter

import httpx
import numpy as np
from fastapi import FastAPI
from gateway_fakes import FakeTriton

from loopline_serving_gateway.domain.deployments import Deployment, Split, route_for
from loopline_serving_gateway.domain.routing import RoutingTable, Variant
from loopline_serving_gateway.entrypoints.rest_infer import RestInferEdge
from loopline_serving_gateway.entrypoints.rest_v2 import v2_router
from loopline_serving_gateway.handlers.auth import Gatekeeper
from loopline_serving_gateway.handlers.inference import Inference
from loopline_serving_gateway.handlers.models import ModelCatalog
from loopline_serving_gateway.metrics import GatewayMetrics
from loopline_serving_gateway.settings import GatewaySettings, Limits


def _client() -> httpx.AsyncClient:
    triton = FakeTriton()
    table = RoutingTable()
    table.switch(route_for(Deployment("iris", 1, (Split(1, 1.0, Variant.CHAMPION),), shadow_versions=(2,)),
                           None, None))
    triton.loaded = set(table.referenced())
    inference = Inference(table, triton, None, GatewayMetrics(), GatewaySettings(), Counter())
    app = FastAPI()
    app.include_router(v2_router(ModelCatalog(table, triton)))
    edge = RestInferEdge(app, inference, Gatekeeper([]), Limits(max_request_bytes=4096))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=edge), base_url="http://gateway")


BODY = {"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": [0, 1, 2, 3]}]}


async def test_json_and_explicit_version_inference() -> None:
    async with _client() as client:
        reply = await client.post("/v2/models/iris/infer", json=BODY)
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        assert answer["model_name"] == "iris" and answer["outputs"][0]["data"] == [6.0]
        assert reply.headers["x-prediction-id"] == answer["parameters"]["prediction_id"]
        explicit = await client.post("/v2/models/iris/versions/2/infer", json=BODY)
        assert explicit.json()["outputs"][0]["data"] == [12.0] and explicit.headers["x-model-version"] == "2"
        missing = await client.post("/v2/models/iris/versions/7/infer", json=BODY)
        assert missing.status_code == 404 and "version 7" in missing.json()["error"]


async def test_binary_outputs_on_request() -> None:
    body = dict(BODY, outputs=[{"name": "prediction", "parameters": {"binary_data": True}}])
    async with _client() as client:
        reply = await client.post("/v2/models/iris/infer", content=json.dumps(body))
    length = int(reply.headers["inference-header-content-length"])
    assert np.frombuffer(reply.content[length:], np.float32).tolist() == [6.0]


async def test_limits_and_control_paths_are_refused() -> None:
    async with _client() as client:
        big = await client.post("/v2/models/iris/infer", content=b" " * 5000)
        assert big.status_code == 400 and "exceeds" in big.json()["error"]
        wrong = dict(BODY, inputs=[dict(BODY["inputs"][0], data=[1, 2, 3])])
        short = await client.post("/v2/models/iris/infer", json=wrong)
        assert short.status_code == 400 and "needs 4" in short.json()["error"]
        for path in ("/v2/repository/index", "/v2/repository/models/iris.v1/load", "/v2/systemsharedmemory/status",
                     "/v2/logging", "/v2/trace/setting"):
            assert (await client.post(path)).status_code == 403, path
