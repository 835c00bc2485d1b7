"""The HTTP/1.1 data plane to Triton against a scripted HTTP server on loopback:
the V2 binary encoding both ways, error taxonomy, keep-alive, stale connections,
deadlines, chunked answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest
from gateway_fakes import request
from tritonclient.grpc import service_pb2 as pb

from loopline_core.errors import InvalidArgument, Unavailable

from loopline_serving_gateway.adapters.triton_http import TritonHttp
from loopline_serving_gateway.adapters.triton_v2_codec import decode_response, encode_request


def _answer(status: int = 200, *, body: bytes | None = None, chunked: bool = False, close: bool = False) -> bytes:
    if body is None:
        header = json.dumps({"model_name": "iris.v1", "model_version": "1", "id": "r1",
                             "parameters": {"sequence_end": False},
                             "outputs": [{"name": "prediction", "datatype": "FP32", "shape": [1, 2],
                                          "parameters": {"binary_data_size": 8}}]}).encode()
        body = header + np.array([1.5, 2.5], np.float32).tobytes()
        extra = f"Inference-Header-Content-Length: {len(header)}\r\n"
    else:
        extra = ""
    if close:
        extra += "Connection: close\r\n"
    if chunked:
        parts = (body[:7], body[7:])
        payload = b"".join(f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in parts) + b"0\r\n\r\n"
        return f"HTTP/1.1 {status} X\r\nTransfer-Encoding: chunked\r\n{extra}\r\n".encode() + payload
    return f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


class Scripted:
    """A loopback HTTP server: each request gets ``reply(request_head, body)``; records what came in."""

    def __init__(self, reply: Callable[[bytes, bytes], bytes | None]) -> None:
        self.reply = reply
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                answer = self.reply(head, body)
                if answer is None:
                    continue  # never answer
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Callable[[bytes, bytes], bytes | None]], object]]:
    servers = []

    async def start(reply: Callable[[bytes, bytes], bytes | None]) -> tuple[Scripted, TritonHttp]:
        scripted = Scripted(reply)
        server = await asyncio.start_server(scripted.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return scripted, TritonHttp(f"127.0.0.1:{port}")

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()


def test_a_request_becomes_binary_v2_and_the_answer_raw_outputs() -> None:
    message = request("iris.v1", rows=2, features=3, version="1")
    message.id = "abc"
    message.parameters["priority"].int64_param = 2
    message.inputs[0].parameters["binary_data_size"].int64_param = 999  # a client cannot skew the framing
    message.outputs.add(name="prediction").parameters["binary_data"].bool_param = False
    path, header, tail = encode_request(message)
    decoded = json.loads(header)
    assert path == "/v2/models/iris.v1/versions/1/infer"
    assert decoded["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [2, 3],
                                  "parameters": {"binary_data_size": 24}}]
    assert decoded["parameters"] == {"priority": 2, "binary_data_output": True}
    assert decoded["outputs"] == [{"name": "prediction", "parameters": {"binary_data": True}}]
    assert decoded["id"] == "abc" and tail == [message.raw_input_contents[0]]


def test_typed_contents_are_packed_to_raw_bytes() -> None:
    message = pb.ModelInferRequest(model_name="m")
    tensor = message.inputs.add(name="x", datatype="INT32", shape=[1, 3])
    tensor.contents.int_contents.extend([1, -2, 3])
    words = message.inputs.add(name="w", datatype="BYTES", shape=[1, 2])
    words.contents.bytes_contents.extend([b"ab", b"c"])
    _, header, tail = encode_request(message)
    assert np.frombuffer(tail[0], np.int32).tolist() == [1, -2, 3]
    assert tail[1] == b"\x02\x00\x00\x00ab\x01\x00\x00\x00c"
    assert [i["parameters"]["binary_data_size"] for i in json.loads(header)["inputs"]] == [12, 11]


def test_json_outputs_are_converted_to_raw_bytes_too() -> None:
    body = json.dumps({"model_name": "m", "model_version": "2", "outputs": [
        {"name": "y", "datatype": "INT64", "shape": [1, 2], "data": [7, 8]},
        {"name": "s", "datatype": "BYTES", "shape": [1], "data": ["hé"]}]}).encode()
    response = decode_response(body, None)
    assert response.model_version == "2"
    assert np.frombuffer(response.raw_output_contents[0], np.int64).tolist() == [7, 8]
    assert response.raw_output_contents[1] == b"\x03\x00\x00\x00h\xc3\xa9"


def test_plain_requests_reuse_the_header_of_their_signature() -> None:
    from loopline_serving_gateway.adapters import triton_v2_codec

    first, same, other = request("iris.v1", rows=2, version="1"), request("iris.v1", rows=2, version="1"), \
        request("iris.v1", rows=3, version="1")
    same.raw_input_contents[0] = bytes(len(same.raw_input_contents[0]))  # other values, same signature
    path, header, tail = encode_request(first)
    assert (path, header) == triton_v2_codec._encode_request(first)[:2]  # noqa: SLF001
    again = encode_request(same)
    assert again[:2] == (path, header) and again[2] == [same.raw_input_contents[0]]
    assert encode_request(other)[1] == triton_v2_codec._encode_request(other)[1] != header  # noqa: SLF001
    with_id = request("iris.v1", rows=2, version="1")
    with_id.id = "r-7"
    assert json.loads(encode_request(with_id)[1])["id"] == "r-7"  # an id is never served from the cache
    named = request("iris.v1", rows=2, version="1")
    named.inputs[0].parameters["x"].int64_param = 1
    assert json.loads(encode_request(named)[1])["inputs"][0]["parameters"] == {"x": 1, "binary_data_size": 32}


def test_a_repeated_answer_header_decodes_as_the_first_and_copies_are_independent() -> None:
    from loopline_serving_gateway.adapters import triton_v2_codec

    header = json.dumps({"model_name": "iris.v1", "model_version": "1", "parameters": {"sequence_end": False},
                         "outputs": [{"name": "a", "datatype": "FP32", "shape": [1, 2],
                                      "parameters": {"binary_data_size": 8}},
                                     {"name": "b", "datatype": "INT32", "shape": [1],
                                      "parameters": {"binary_data_size": 4}}]}).encode()
    bodies = [header + np.array([n, n + 1], np.float32).tobytes() + np.array([n], np.int32).tobytes()
              for n in range(3)]
    answers = [decode_response(body, len(header)) for body in bodies]
    assert header in triton_v2_codec._ANSWERS  # noqa: SLF001
    for body, answer in zip(bodies, answers, strict=True):
        assert answer == triton_v2_codec._decode_response(body, len(header))  # noqa: SLF001
    answers[0].parameters["prediction_id"].string_param = "p"  # the gateway stamps its answers
    assert "prediction_id" not in decode_response(bodies[1], len(header)).parameters
    with_id = json.dumps({"model_name": "m", "id": "r1", "outputs": [
        {"name": "a", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}]}).encode()
    assert decode_response(with_id + bytes(4), len(with_id)).id == "r1"
    assert with_id not in triton_v2_codec._ANSWERS  # noqa: SLF001


async def test_infer_keeps_the_connection_and_sends_the_trace_context(serve: Callable[..., object]) -> None:
    scripted, triton = await serve(lambda head, body: _answer())  # type: ignore[misc]
    for _ in range(3):
        response = await triton.infer(request("iris.v1", version="1"), 5.0, (("traceparent", "00-ab-cd-01"),))
        assert response.model_name == "iris.v1" and response.id == "r1"
        assert np.frombuffer(response.raw_output_contents[0], np.float32).tolist() == [1.5, 2.5]
        assert list(response.outputs[0].shape) == [1, 2]
        assert not response.parameters["sequence_end"].bool_param
    assert scripted.connections == 1
    head, body = scripted.requests[0]
    assert head.startswith(b"POST /v2/models/iris.v1/versions/1/infer HTTP/1.1\r\n")
    assert b"\r\ntraceparent: 00-ab-cd-01\r\n" in head
    split = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                     if line.lower().startswith(b"inference-header-content-length")))
    assert json.loads(body[:split])["inputs"][0]["name"] == "features"
    await triton.stop()


@pytest.mark.parametrize(("status", "error"), [(400, InvalidArgument), (404, Unavailable), (500, Unavailable),
                                               (503, Unavailable)])
async def test_triton_errors_keep_the_taxonomy(serve: Callable[..., object], status: int,
                                               error: type[Exception]) -> None:
    _, triton = await serve(lambda head, body: _answer(status, body=b'{"error":"no such thing"}'))  # type: ignore[misc]
    with pytest.raises(error, match="no such thing"):
        await triton.infer(request("iris.v1"), 5.0)
    await triton.stop()


async def test_chunked_answers_and_connection_close_are_honoured(serve: Callable[..., object]) -> None:
    scripted, triton = await serve(lambda head, body: _answer(chunked=True, close=True))  # type: ignore[misc]
    for _ in range(2):
        response = await triton.infer(request("iris.v1"), 5.0)
        assert np.frombuffer(response.raw_output_contents[0], np.float32).tolist() == [1.5, 2.5]
    assert scripted.connections == 2  # closed after each answer, as asked


async def test_an_idle_connection_closed_by_triton_is_replaced_transparently(serve: Callable[..., object]) -> None:
    scripted, triton = await serve(lambda head, body: _answer())  # type: ignore[misc]
    await triton.infer(request("iris.v1"), 5.0)
    scripted.writers[0].close()  # Triton drops the kept-alive connection
    await asyncio.sleep(0.05)
    await triton.infer(request("iris.v1"), 5.0)
    assert scripted.connections == 2


async def test_a_deadline_is_unavailable_and_the_connection_is_not_reused(serve: Callable[..., object]) -> None:
    answers = iter([None, _answer()])
    scripted, triton = await serve(lambda head, body: next(answers))  # type: ignore[misc]
    with pytest.raises(Unavailable, match="DEADLINE_EXCEEDED"):
        await triton.infer(request("iris.v1"), 0.2)
    await triton.infer(request("iris.v1"), 5.0)
    assert scripted.connections == 2


async def test_each_call_keeps_its_own_deadline_under_the_pools_one_timer(serve: Callable[..., object]) -> None:
    scripted, triton = await serve(  # type: ignore[misc]
        lambda head, body: None if b"/models/slow/" in head else _answer())
    loop = asyncio.get_running_loop()
    patient = asyncio.create_task(triton.infer(request("slow"), 30.0))
    await asyncio.sleep(0.05)
    started = loop.time()
    with pytest.raises(Unavailable, match="DEADLINE_EXCEEDED after 0.2 s"):  # due before the one in flight
        await triton.infer(request("slow"), 0.2)
    assert 0.2 <= loop.time() - started < 0.6
    answered = await asyncio.gather(*(triton.infer(request("iris.v1"), 0.3) for _ in range(8)))
    assert all(r.id == "r1" for r in answered)
    await asyncio.sleep(0.4)  # past those calls' deadlines: answered calls are not failed afterwards
    assert not patient.done()
    with pytest.raises(Unavailable, match="DEADLINE_EXCEEDED"):
        await asyncio.gather(triton.infer(request("slow"), 0.1), triton.infer(request("slow"), 0.15))
    patient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await patient
    assert (await triton.infer(request("iris.v1"), 1.0)).id == "r1"
    assert len(scripted.requests) == 13
    await triton.stop()


async def test_an_unreachable_triton_is_unavailable() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(Unavailable, match="not reachable"):
        await TritonHttp(f"127.0.0.1:{port}").infer(request("iris.v1"), 1.0)


def test_the_address_must_be_host_and_port() -> None:
    with pytest.raises(InvalidArgument, match="host:port"):
        TritonHttp("triton")
