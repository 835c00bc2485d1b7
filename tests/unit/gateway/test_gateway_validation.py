"""Every refused request names what is wrong."""

from __future__ import annotations

import pytest
from gateway_fakes import request
from tritonclient.grpc import service_pb2 as pb

from loopline_core.errors import InvalidArgument

from loopline_serving_gateway.handlers.validation import validate
from loopline_serving_gateway.settings import Limits


def _with(change: object) -> pb.ModelInferRequest:
    message = request("iris", rows=2)
    change(message)  # type: ignore[operator]
    return message


def _second_input(m: pb.ModelInferRequest) -> None:
    m.inputs.add(name="extra", datatype="FP32", shape=[3, 1])
    m.raw_input_contents.append(b"\x00" * 12)


CASES = [
    (lambda m: setattr(m, "model_name", "../etc"), "model_name"),
    (lambda m: setattr(m, "model_version", "latest"), "not a version number"),
    (lambda m: m.inputs[0].shape.__setitem__(1, -1), "negative dimension"),
    (lambda m: setattr(m.inputs[0], "datatype", "FP128"), "unknown datatype"),
    (lambda m: m.raw_input_contents.__setitem__(0, b"1234"), "4 bytes given"),
    (lambda m: m.parameters["shared_memory_region"].__setattr__("string_param", "r"), "shared memory"),
    (lambda m: m.inputs[0].parameters["shared_memory_byte_size"].__setattr__("int64_param", 8), "shared memory"),
    (_second_input, "batch dimension 3"),
    (lambda m: m.raw_input_contents.append(b""), "2 raw_input_contents for 1 inputs"),
]


@pytest.mark.parametrize(("change", "message"), CASES)
def test_bad_requests_are_refused_by_name(change: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        validate(_with(change), Limits())


def test_element_and_tensor_limits() -> None:
    with pytest.raises(InvalidArgument, match="more than 4 elements"):
        validate(request("iris", rows=2), Limits(max_elements=4))
    assert validate(request("iris", rows=2), Limits()) == 2


def test_typed_contents_are_counted() -> None:
    message = pb.ModelInferRequest(model_name="iris")
    message.inputs.add(name="features", datatype="FP32", shape=[1, 2]).contents.fp32_contents.extend([1.0])
    with pytest.raises(InvalidArgument, match="1 values given, shape \\[1, 2\\] needs 2"):
        validate(message, Limits())


@pytest.mark.parametrize(("change", "message"), CASES)
def test_a_signature_accepted_before_does_not_let_a_bad_variant_through(change: object, message: str) -> None:
    assert validate(request("iris", rows=2), Limits()) == 2  # accepted and remembered
    assert validate(request("iris", rows=2), Limits()) == 2
    for _ in range(2):  # a refusal is never remembered either
        with pytest.raises(InvalidArgument, match=message):
            validate(_with(change), Limits())
    # the same signature under tighter limits is checked again
    with pytest.raises(InvalidArgument, match="more than 4 elements"):
        validate(request("iris", rows=2), Limits(max_elements=4))


def test_the_request_tensor_bytes_come_with_the_verdict_remembered_or_not() -> None:
    from loopline_serving_gateway.handlers.validation import checked

    assert checked(request("iris", rows=3), Limits()) == (3, 3 * 4 * 4)  # FP32 [3, 4], raw
    assert checked(request("iris", rows=3), Limits()) == (3, 48)  # the remembered verdict
    typed = pb.ModelInferRequest(model_name="iris")
    typed.inputs.add(name="ids", datatype="INT64", shape=[2, 5]).contents.int64_contents.extend(range(10))
    assert checked(typed, Limits()) == (2, 80)


def test_an_answers_tensor_bytes_are_read_from_its_shapes_and_bytes_from_their_lengths() -> None:
    from loopline_serving_gateway.handlers.validation import answer_bytes

    answer = pb.ModelInferResponse()
    answer.outputs.add(name="scores", datatype="FP32", shape=[2, 3])
    answer.outputs.add(name="labels", datatype="BYTES", shape=[2])
    answer.outputs.add(name="ids", datatype="INT64", shape=[2, 1])
    answer.raw_output_contents.extend([b"\x00" * 24, b"\x03\x00\x00\x00cat\x04\x00\x00\x00bird", b"\x00" * 16])
    assert answer_bytes(answer) == 24 + 15 + 16
    typed = pb.ModelInferResponse()
    typed.outputs.add(name="labels", datatype="BYTES", shape=[2]).contents.bytes_contents.extend([b"cat", b"bird"])
    typed.outputs.add(name="scores", datatype="FP16", shape=[4])
    assert answer_bytes(typed) == 7 + 8
    assert answer_bytes(pb.ModelInferResponse()) == 0
