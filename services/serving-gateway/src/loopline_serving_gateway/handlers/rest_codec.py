"""V2 REST bodies (JSON, with the binary tensor data extension) to and from ModelInferRequest/Response.

Inputs always travel to Triton as raw bytes, so the gRPC path and the REST path
call Triton the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from tritonclient.grpc import service_pb2 as pb

from loopline_core.errors import InvalidArgument

from loopline_serving_gateway.handlers.tensors import NUMPY, decode_bytes, encode_bytes, params_of, set_param, to_array
from loopline_serving_gateway.handlers.validation import ITEM_BYTES, elements_of


def _tensor_bytes(spec: dict[str, Any], where: str, binary: memoryview, at: int) -> tuple[bytes, int]:
    datatype, shape = spec["datatype"], spec["shape"]
    count = elements_of(shape, where)
    size = (spec.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or at + size > len(binary):
            raise InvalidArgument(f"binary_data_size {size} runs past the {len(binary)} binary bytes", field=where)
        return bytes(binary[at:at + size]), at + size
    if "data" not in spec:
        raise InvalidArgument("neither data nor binary_data_size is given", field=where)
    if datatype == "BYTES":
        items = np.asarray(spec["data"], dtype=object).reshape(-1).tolist()
        if len(items) != count:
            raise InvalidArgument(f"{len(items)} values given, shape {shape} needs {count}", field=where)
        return encode_bytes([i.encode() if isinstance(i, str) else bytes(i) for i in items]), at
    try:
        array = np.asarray(spec["data"], dtype=NUMPY[datatype])
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"data does not fit {datatype}: {exc}", field=where) from None
    if array.size != count:
        raise InvalidArgument(f"{array.size} values given, shape {shape} needs {count}", field=where)
    return array.tobytes(), at


@dataclass(frozen=True)
class OutputMode:
    """Which outputs the client wants as binary tensor data."""

    default_binary: bool = False
    binary: frozenset[str] = frozenset()
    listed: frozenset[str] = frozenset()

    def wants_binary(self, name: str) -> bool:
        return name in self.binary if name in self.listed else self.default_binary


def parse_request(model: str, version: str, body: bytes,
                  header_length: str | None) -> tuple[pb.ModelInferRequest, OutputMode]:
    split = len(body)
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise InvalidArgument(f"Inference-Header-Content-Length {header_length!r} does not fit the body",
                                  field="Inference-Header-Content-Length")
        split = int(header_length)
    try:
        header = json.loads(body[:split])
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"the request body is not valid JSON: {exc}", field="body") from None
    if not isinstance(header, dict) or not isinstance(header.get("inputs"), list):
        raise InvalidArgument("the request must be an object with an inputs list", field="inputs")
    binary = memoryview(body)[split:]
    request = pb.ModelInferRequest(model_name=model, model_version=version, id=str(header.get("id", "")))
    params = header.get("parameters") or {}
    for key, value in params.items():
        set_param(request.parameters, key, value)
    at = 0
    for index, spec in enumerate(header["inputs"]):
        where = f"inputs[{index}]"
        if not isinstance(spec, dict) or not {"name", "datatype", "shape"} <= spec.keys():
            raise InvalidArgument("each input needs name, datatype and shape", field=where)
        if spec["datatype"] not in ITEM_BYTES or not isinstance(spec["shape"], list):
            raise InvalidArgument(f"datatype {spec['datatype']!r} or shape is not valid", field=where)
        tensor = request.inputs.add(name=str(spec["name"]), datatype=spec["datatype"], shape=spec["shape"])
        for key, value in (spec.get("parameters") or {}).items():
            if key != "binary_data_size":
                set_param(tensor.parameters, key, value)
        raw, at = _tensor_bytes(spec, f"inputs[{spec['name']}]", binary, at)
        request.raw_input_contents.append(raw)
    if at != len(binary):
        raise InvalidArgument(f"{len(binary) - at} binary bytes after the last tensor", field="body")
    binary_outputs: set[str] = set()
    default_binary = bool(params.get("binary_data_output", False))
    for spec in header.get("outputs") or []:
        output = request.outputs.add(name=str(spec.get("name", "")))
        wants = (spec.get("parameters") or {}).get("binary_data", default_binary)
        if wants:
            binary_outputs.add(output.name)
    request.parameters.pop("binary_data_output", None)
    return request, OutputMode(default_binary, frozenset(binary_outputs), frozenset(o.name for o in request.outputs))


def render_response(mode: OutputMode, response: pb.ModelInferResponse) -> tuple[bytes, int | None]:
    """The JSON header (and binary tail); the second value is the header length when binary follows."""
    outputs, tail = [], []
    raw = response.raw_output_contents
    for index, tensor in enumerate(response.outputs):
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        data = raw[index] if raw else None
        if mode.wants_binary(tensor.name) and data is not None:
            entry["parameters"] = {"binary_data_size": len(data)}
            tail.append(data)
        elif tensor.datatype == "BYTES" and data is not None:
            entry["data"] = [item.decode("utf-8", "replace") for item in decode_bytes(data)]
        else:
            entry["data"] = to_array(tensor.datatype, [-1], data, tensor.contents).tolist()
        outputs.append(entry)
    params = params_of(response.parameters)
    header = json.dumps({"model_name": response.model_name, "model_version": response.model_version,
                         "id": response.id, "parameters": params, "outputs": outputs}).encode()
    if not tail:
        return header, None
    return header + b"".join(tail), len(header)
