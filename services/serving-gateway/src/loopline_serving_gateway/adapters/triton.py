"""Triton adapter: the gateway's connection to the inference server."""

from __future__ import annotations

import tritonclient.http.aio as triton_http

from loopline_core.errors import Unavailable
from loopline_core.servers.host import Component


class TritonConnection:
    """An HTTP client to Triton; ready when Triton reports itself live."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client: triton_http.InferenceServerClient | None = None

    @property
    def client(self) -> triton_http.InferenceServerClient:
        if self._client is None:
            raise Unavailable("Triton client is not connected yet")
        return self._client

    async def start(self) -> None:
        client = triton_http.InferenceServerClient(self.url)
        try:
            live = await client.is_server_live()
        except Exception as exc:
            await client.close()
            raise Unavailable(f"Triton at {self.url} is not reachable: {exc}") from exc
        if not live:
            await client.close()
            raise Unavailable(f"Triton at {self.url} is not live")
        self._client = client

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def check(self) -> None:
        try:
            live = await self.client.is_server_live()
        except Exception as exc:
            raise Unavailable(f"Triton at {self.url}: {exc}") from exc
        if not live:
            raise Unavailable(f"Triton at {self.url} is not live")

    def component(self) -> Component:
        return Component("triton", self.start, self.stop, self.check)
