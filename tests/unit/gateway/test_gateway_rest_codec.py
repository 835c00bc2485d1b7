"""V2 REST bodies, JSON and binary tensor data, to and from the gRPC messages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb

from loopline_core.errors import InvalidArgument

from loopline_serving_gateway.handlers.rest_codec import parse_request, render_response


def test_json_and_binary_inputs_become_raw_bytes() -> None:
    binary = np.arange(4, dtype=np.float32)
    header = json.dumps({"inputs": [
        {"name": "a", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}},
        {"name": "b", "datatype": "INT64", "shape": [1, 2], "data": [[5, 6]]},
        {"name": "c", "datatype": "BYTES", "shape": [1], "data": ["hi"]}],
        "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}).encode()
    request, mode = parse_request("iris", "", header + binary.tobytes(), str(len(header)))
    assert request.raw_input_contents[0] == binary.tobytes()
    assert np.frombuffer(request.raw_input_contents[1], np.int64).tolist() == [5, 6]
    assert request.raw_input_contents[2] == b"\x02\x00\x00\x00hi"
    assert mode.wants_binary("y") and not mode.wants_binary("z")


@pytest.mark.parametrize(("body", "length", "message"), [
    (b"{not json", None, "not valid JSON"),
    (b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1, 2], "data": [1]}]}', None, "1 values given"),
    (b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1, 2], "parameters": {"binary_data_size": 8}}]}',
     None, "runs past"),
    (b'{"inputs": []}xx', "14", "2 binary bytes after"),
    (b'{"inputs": []}', "99", "does not fit"),
    (b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": ["x"]}]}', None, "does not fit FP32"),
])
def test_bad_bodies_are_named(body: bytes, length: str | None, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_request("iris", "", body, length)


def test_responses_render_as_json_or_binary() -> None:
    response = pb.ModelInferResponse(model_name="iris", model_version="2")
    response.outputs.add(name="y", datatype="FP32", shape=[1, 2])
    response.raw_output_contents.append(np.array([0.25, 0.75], np.float32).tobytes())
    response.parameters["prediction_id"].string_param = "abc"
    _, json_mode = parse_request("iris", "", b'{"inputs": []}', None)
    body, length = render_response(json_mode, response)
    assert length is None and json.loads(body)["outputs"][0]["data"] == [0.25, 0.75]
    assert json.loads(body)["parameters"] == {"prediction_id": "abc"}
    _, binary_mode = parse_request("iris", "", b'{"inputs": [], "parameters": {"binary_data_output": true}}', None)
    body, length = render_response(binary_mode, response)
    assert length is not None and body[length:] == response.raw_output_contents[0]
