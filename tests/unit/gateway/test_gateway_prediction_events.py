"""What the prediction log writes: every datatype in its contents field, each tensor converted
once, and never an event larger than Kafka takes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from gateway_fakes import wide_served
from loopline.events.v1 import predictions_pb2
from tritonclient.grpc import service_pb2 as pb

from loopline_serving_gateway.handlers.prediction_events import Served, events_of
from loopline_serving_gateway.handlers.tensors import CONTENTS, encode_bytes, flat_values


def test_every_datatype_family_is_logged_in_its_contents_field() -> None:
    bf16 = (np.array([1.5, -2.0], np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()
    assert flat_values("BF16", bf16) == ("fp_contents", [1.5, -2.0])
    assert flat_values("FP16", np.array([0.5], np.float16).tobytes()) == ("fp_contents", [0.5])
    assert flat_values("INT64", np.array([-3, 4], np.int64).tobytes()) == ("int_contents", [-3, 4])
    assert flat_values("UINT8", b"\x07") == ("int_contents", [7])
    assert flat_values("BOOL", b"\x01\x00") == ("bool_contents", [True, False])
    assert flat_values("BYTES", b"\x02\x00\x00\x00hi") == ("bytes_contents", [b"hi"])
    typed = pb.InferTensorContents(int_contents=[5, 6])
    assert flat_values("INT32", None, typed) == ("int_contents", [5, 6])


def _reference(entry: Served) -> list[predictions_pb2.PredictionLogged]:
    """The events of ``entry`` built the plain way, field by field on upb messages (what the
    wire form must equal): values through ``flat_values``, a batch dimension sliced per row."""
    def tensors(specs: Any, raw: Any) -> list[tuple[Any, str, list[object]]]:
        return [(t, *flat_values(t.datatype, raw[i] if raw else None, t.contents)) for i, t in enumerate(specs)]

    def add(target: Any, converted: list[tuple[Any, str, list[object]]], row: int) -> None:
        for tensor, field, values in converted:
            shape = list(tensor.shape)
            if entry.rows > 1 and shape and shape[0] == entry.rows:
                width = len(values) // entry.rows
                shape, values = [1, *shape[1:]], values[row * width:(row + 1) * width]
            target.add(name=tensor.name, datatype=tensor.datatype, shape=shape, **{field: values})

    inputs = tensors(entry.request.inputs, entry.request.raw_input_contents)
    outputs = tensors(entry.response.outputs, entry.response.raw_output_contents)
    events = []
    for row in range(entry.rows):
        message = predictions_pb2.PredictionLogged(
            prediction_id=entry.prediction_id if entry.rows == 1 else f"{entry.prediction_id}/{row}",
            model=entry.model, version=entry.version, variant=entry.variant,  # type: ignore[arg-type]
            triton_model=entry.triton_model, triton_version=entry.version, latency_us=entry.latency_us,
            request_key=entry.request_key, fallback=bool(entry.fallback_reason),
            fallback_reason=entry.fallback_reason)
        add(message.inputs, inputs, row)
        add(message.outputs, outputs, row)
        message.served_at.seconds, message.served_at.nanos = divmod(entry.served_at_ns, 1_000_000_000)
        message.trace.traceparent, message.trace.tracestate = entry.traceparent, entry.tracestate
        events.append(message)
    return events


def _served(inputs: list[tuple[str, np.ndarray]], outputs: list[tuple[str, np.ndarray]], rows: int = 1,
            typed: bool = False, **fields: Any) -> Served:
    request, response = pb.ModelInferRequest(model_name="m.v2"), pb.ModelInferResponse()
    for target, raw, tensors in ((request.inputs, request.raw_input_contents, inputs),
                                 (response.outputs, response.raw_output_contents, outputs)):
        for index, (datatype, values) in enumerate(tensors):
            tensor = target.add(name=f"t{index}", datatype=datatype, shape=list(values.shape))
            if datatype == "BYTES":
                data = encode_bytes(list(values.reshape(-1)))
            elif datatype == "BF16":
                data = (values.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()
            else:
                data = values.tobytes()
            if typed and target is request.inputs:  # every input typed (V2: all raw or none)
                getattr(tensor.contents, CONTENTS[datatype]).extend(values.reshape(-1).tolist())
            else:
                raw.append(data)
    settings = {"request_key": "", "traceparent": "", "tracestate": "", "fallback_reason": "", "latency_us": 0,
                "served_at_ns": 0, "variant": 1, **fields}
    return Served("p-1", "m", 2, settings.pop("variant"), "m.v2", request, response, settings.pop("latency_us"),
                  settings.pop("served_at_ns"), rows, **settings)


_RNG = np.random.default_rng(5)
_CASES = {
    "small FP32": ([("FP32", _RNG.normal(size=(1, 16)).astype(np.float32))], [("FP32", np.ones((1, 4), np.float32))]),
    "wide FP32 (numpy)": ([("FP32", _RNG.normal(size=(1, 4096)).astype(np.float32))],
                          [("FP32", _RNG.random((1, 3)).astype(np.float32))]),
    "FP64, FP16, BF16 small and wide": (
        [("FP64", np.array([[0.1, -2.5, np.inf]])), ("FP64", _RNG.normal(size=(1, 300))),
         ("FP16", _RNG.normal(size=(1, 400)).astype(np.float16)), ("FP16", np.array([[0.5]], np.float16)),
         ("BF16", np.array([[1.5, -2.0]], np.float32)), ("BF16", _RNG.normal(size=(1, 600)).astype(np.float32))],
        [("FP32", np.array([[np.nan, -0.0]], np.float32))]),
    "integers, bools, bytes": (
        [("INT32", np.array([[-(2**31), 7, 0]], np.int32)), ("INT64", np.array([[2**62, -3, 127, 128]], np.int64)),
         ("UINT8", np.array([[255, 1]], np.uint8)), ("UINT64", np.array([[2**63 + 5]], np.uint64)),
         ("BOOL", np.array([[True, False, True]])), ("BYTES", np.array([[b"hi", b"", b"x" * 300]], object))],
        [("INT64", np.array([[0, 1]], np.int64))]),
    "a batch of 3 and a tensor without a batch dimension": (
        [("FP32", _RNG.normal(size=(3, 200)).astype(np.float32)), ("INT32", np.array([[1, 2], [3, 4], [5, 6]], np.int32)),
         ("FP32", np.array([9.5], np.float32)), ("BYTES", np.array([[b"a"], [b"bb"], [b"ccc"]], object))],
        [("FP32", _RNG.random((3, 2)).astype(np.float32))]),
}


@pytest.mark.parametrize(("case", "typed"), [(case, False) for case in _CASES] + [
    (case, True) for case, (inputs, _) in _CASES.items() if all(d in CONTENTS for d, _ in inputs)])
def test_the_wire_form_is_what_the_message_built_field_by_field_is(case: str, typed: bool) -> None:
    inputs, outputs = _CASES[case]
    rows = 3 if "batch of 3" in case else 1
    for fields in ({}, {"request_key": "user-7", "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
                        "tracestate": "k=v", "fallback_reason": "v3 failed: timeout", "latency_us": 1234,
                        "served_at_ns": 1_764_640_000_123_456_789, "variant": 3}):
        entry = _served(inputs, outputs, rows, typed, **fields)
        events = events_of(entry, 900 * 1024)
        expected = _reference(entry)
        assert [e.key for e in events] == [m.prediction_id for m in expected]
        for event, message in zip(events, expected, strict=True):
            wire = event.message.SerializeToString()
            assert predictions_pb2.PredictionLogged.FromString(wire) == message
            assert wire == message.SerializeToString()  # field for field, in protobuf's own order


def test_a_tensor_that_would_pass_the_event_limit_is_logged_without_its_values() -> None:
    limit = 64 * 1024
    small, large = wide_served(1, 1000), wide_served(2, 20_000)  # 10 kB and 200 kB of values at most
    (event,) = events_of(small, limit)
    assert len(event.message.decoded().inputs[0].fp_contents) == 1000 and small.omitted_tensors == 0
    (event,) = events_of(large, limit)
    logged = event.message.decoded()
    tensor = logged.inputs[0]
    assert (tensor.name, tensor.datatype, list(tensor.shape), len(tensor.fp_contents)) == (
        "features", "FP32", [1, 20_000], 0)
    assert list(logged.outputs[0].fp_contents) == pytest.approx([0.2, 0.3, 0.5])  # outputs kept
    assert large.omitted_tensors == 1 and event.message.ByteSize() < limit
    (event,) = events_of(wide_served(3, 20_000))  # no limit: everything
    assert len(event.message.decoded().inputs[0].fp_contents) == 20_000
