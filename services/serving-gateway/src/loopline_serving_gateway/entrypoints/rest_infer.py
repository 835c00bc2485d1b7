"""The V2 REST inference routes, served straight on ASGI ahead of the FastAPI app.

``POST /v2/models/{name}/infer`` and ``POST /v2/models/{name}/versions/{version}/infer``
are answered here; every other request goes on to the FastAPI app (metadata, health,
/metrics, the 403 for Triton's control routes). Through FastAPI an inference spent about
85 % of the gateway's CPU in the framework (its middleware stack, routing, request and
response objects, the OTel ASGI middleware's span) and 15 % in the gateway's own work.
Here a request is its ASGI scope, its body and two messages back, and its trace is the
gateway's light spans (``handlers.tracing``, as on the native gRPC edge): a SERVER span
named for the route, with a CLIENT span per Triton call under it.

Answers are those of the FastAPI routes they replace: the same JSON and binary bodies,
``x-prediction-id``, ``x-model-version``, ``x-fallback`` and ``Inference-Header-Content-Length``
headers, errors as ``{"error": "..."}`` with the status of the shared table (and
``Retry-After`` when retrying can help). The body limit is checked against
``Content-Length`` before anything is read and again while reading.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from loopline_core.edges.http import status_for
from loopline_core.errors import InvalidArgument, LooplineError

from loopline_serving_gateway.handlers.auth import Gatekeeper
from loopline_serving_gateway.handlers.inference import Inference
from loopline_serving_gateway.handlers.rest_codec import parse_request, render_response
from loopline_serving_gateway.handlers.tracing import Tracing, failed
from loopline_serving_gateway.settings import Limits

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
_ROUTES = ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer")
_JSON, _BINARY = b"application/json", b"application/octet-stream"


class _ClientGone(Exception):
    """The client disconnected before its body was read: nobody to answer."""


class RestInferEdge:
    """An ASGI app: the V2 infer routes, and ``app`` for everything else."""

    def __init__(self, app: ASGIApp, inference: Inference, gatekeeper: Gatekeeper, limits: Limits,
                 tracing: Tracing | None = None) -> None:
        self._app = app
        self._inference = inference
        self._gate = gatekeeper
        self._max_bytes = limits.max_request_bytes
        self._tracing = tracing or Tracing(False)
        self._fields = frozenset(name.encode() for name in self._tracing.fields)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _PATH.fullmatch(scope["path"])
            if match is not None:
                await self._infer(scope, receive, send, match[1], match[2] or "")
                return
        await self._app(scope, receive, send)

    async def _infer(self, scope: Scope, receive: Receive, send: Send, name: str, version: str) -> None:
        authorization = key = ""
        declared = header_length = None
        carrier: dict[str, str] | None = None
        fields = self._fields
        for header, value in scope["headers"]:
            if header == b"content-length":
                declared = value
            elif header == b"authorization":
                authorization = value.decode("latin-1")
            elif header == b"inference-header-content-length":
                header_length = value.decode("latin-1")
            elif header == b"x-routing-key":
                key = value.decode("latin-1")
            elif header in fields:
                if carrier is None:
                    carrier = {}
                carrier[header.decode("latin-1")] = value.decode("latin-1")
        route = _ROUTES[1] if version else _ROUTES[0]
        opened = self._tracing.server(f"POST {route}", carrier)
        span = opened[0] if opened is not None else None
        status = 0  # none sent
        try:
            try:
                self._gate.admit(authorization)
                body = await self._body(receive, declared)
                request, mode = parse_request(name, version, body, header_length)
                if not key and "routing_key" in request.parameters:
                    key = request.parameters["routing_key"].string_param
                answer = await self._inference.infer(request, key=key, protocol="rest",
                                                     trace=opened[1] if opened is not None else None)
            except LooplineError as exc:
                status = status_for(exc)
                if span is not None:
                    failed(span, exc)
                extra = ((b"retry-after", b"1"),) if exc.retryable else ()
                await _respond(send, status, json.dumps({"error": str(exc)}).encode(), _JSON, extra)
                return
            content, binary_header = render_response(mode, answer.response)
            headers: tuple[tuple[bytes, bytes], ...] = (
                (b"x-prediction-id", answer.prediction_id.encode()), (b"x-model-version", b"%d" % answer.version))
            if answer.fallback_reason:
                headers += ((b"x-fallback", b"true"),)
            if binary_header is not None:
                headers += ((b"inference-header-content-length", b"%d" % binary_header),)
            if span is not None and span.is_recording():
                span.set_attributes({"loopline.prediction_id": answer.prediction_id,
                                     "loopline.model_version": answer.version})
            status = 200
            await _respond(send, 200, content, _JSON if binary_header is None else _BINARY, headers)
        except _ClientGone:
            return
        except BaseException as exc:
            if span is not None:
                failed(span, exc)
            raise
        finally:
            if span is not None:
                if span.is_recording():  # HTTP semantic conventions
                    span.set_attributes({"http.request.method": "POST", "http.route": route,
                                         **({"http.response.status_code": status} if status else {})})
                span.end()

    async def _body(self, receive: Receive, declared: bytes | None) -> bytes:
        limit = self._max_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise InvalidArgument(f"body of {declared.decode()} bytes exceeds {limit}", field="body")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise InvalidArgument(f"body of more than {limit} bytes exceeds {limit} (refused while reading it)",
                                      field="body")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(send: Send, status: int, content: bytes, content_type: bytes,
                   headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(content)), *headers]})
    await send({"type": "http.response.body", "body": content})
