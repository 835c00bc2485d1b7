"""What the prediction log writes: every datatype in its contents field, each tensor converted
once, and never an event larger than Kafka takes."""

from __future__ import annotations

import pytest
from gateway_fakes import wide_served
from tritonclient.grpc import service_pb2 as pb

from loopline_serving_gateway.handlers.prediction_events import events_of


def test_every_datatype_family_is_logged_in_its_contents_field() -> None:
    import numpy as np

    from loopline_serving_gateway.handlers.tensors import flat_values

    bf16 = (np.array([1.5, -2.0], np.float32).view(np.uint32) >> 16).astype(np.uint16).tobytes()
    assert flat_values("BF16", bf16) == ("fp_contents", [1.5, -2.0])
    assert flat_values("FP16", np.array([0.5], np.float16).tobytes()) == ("fp_contents", [0.5])
    assert flat_values("INT64", np.array([-3, 4], np.int64).tobytes()) == ("int_contents", [-3, 4])
    assert flat_values("UINT8", b"\x07") == ("int_contents", [7])
    assert flat_values("BOOL", b"\x01\x00") == ("bool_contents", [True, False])
    assert flat_values("BYTES", b"\x02\x00\x00\x00hi") == ("bytes_contents", [b"hi"])
    typed = pb.InferTensorContents(int_contents=[5, 6])
    assert flat_values("INT32", None, typed) == ("int_contents", [5, 6])


def test_raw_tensors_convert_as_flat_values_does() -> None:
    """The array fast path for raw FP32/FP64/INT32/INT64 gives what the numpy conversion gives."""
    import numpy as np

    from loopline_serving_gateway.handlers.prediction_events import _tensors
    from loopline_serving_gateway.handlers.tensors import flat_values

    request = pb.ModelInferRequest()
    arrays = {"FP32": np.array([[1.5, -0.1, np.inf, 3e38]], np.float32),
              "FP64": np.array([[0.1, -2.5]], np.float64), "INT32": np.array([[-(2**31), 7]], np.int32),
              "INT64": np.array([[2**62, -3]], np.int64), "UINT8": np.array([[255, 1]], np.uint8)}
    for datatype, values in arrays.items():
        request.inputs.add(name=datatype, datatype=datatype, shape=list(values.shape))
        request.raw_input_contents.append(values.tobytes())
    found, _, _ = _tensors(request.inputs, request.raw_input_contents)
    for (name, datatype, shape, field, values), raw in zip(found, request.raw_input_contents, strict=True):
        assert (field, values) == flat_values(datatype, raw)
        assert [type(v) for v in values] == [type(v) for v in flat_values(datatype, raw)[1]]


def test_a_tensor_that_would_pass_the_event_limit_is_logged_without_its_values() -> None:
    limit = 64 * 1024
    small, large = wide_served(1, 1000), wide_served(2, 20_000)  # 10 kB and 200 kB of values at most
    (event,) = events_of(small, limit)
    assert len(event.message.inputs[0].fp_contents) == 1000 and small.omitted_tensors == 0
    (event,) = events_of(large, limit)
    tensor = event.message.inputs[0]
    assert (tensor.name, tensor.datatype, list(tensor.shape), len(tensor.fp_contents)) == (
        "features", "FP32", [1, 20_000], 0)
    assert list(event.message.outputs[0].fp_contents) == pytest.approx([0.2, 0.3, 0.5])  # outputs kept
    assert large.omitted_tensors == 1 and event.message.ByteSize() < limit
    (event,) = events_of(wide_served(3, 20_000))  # no limit: everything
    assert len(event.message.inputs[0].fp_contents) == 20_000
