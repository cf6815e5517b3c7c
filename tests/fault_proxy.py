"""A small HTTP proxy on 127.0.0.1 that breaks chosen requests on their way to moto.

Each client connection carries one request, forwarded to the upstream server on a
connection of its own. A :class:`Fault` picks requests by a predicate and breaks them:

- ``"error_500"``: answer ``500 Internal Server Error`` without forwarding;
- ``"drop_answer"``: forward (the upstream applies it), then close without answering,
  as when a connection dies after the service did the work;
- ``"cut_body"``: forward, then send the headers and half the body and close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit


@dataclass
class Request:
    """What the proxy saw of one request."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def target(self) -> str:
        """The DynamoDB operation (``X-Amz-Target``), or ``""``."""
        return self.headers.get("x-amz-target", "").rpartition(".")[2]


@dataclass
class Fault:
    """Break the next ``times`` requests that ``matches`` selects."""

    matches: Callable[[Request], bool]
    action: Literal["error_500", "drop_answer", "cut_body"]
    times: int = 1
    hits: list[Request] = field(default_factory=list)


class FaultProxy:
    """``async with FaultProxy(upstream) as proxy:``; ``proxy.url`` is its endpoint."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self.faults: list[Fault] = []
        self.seen: list[Request] = []
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _fault_for(self, request: Request) -> Fault | None:
        for fault in self.faults:
            if len(fault.hits) < fault.times and fault.matches(request):
                fault.hits.append(request)
                return fault
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await self._read_request(reader, writer)
            if request is None:
                return
            self.seen.append(request)
            fault = self._fault_for(request)
            if fault is not None and fault.action == "error_500":
                body = b'{"__type":"InternalServerError","message":"injected"}'
                writer.write(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                return
            answer = await self._forward(request)
            if fault is not None and fault.action == "drop_answer":
                return
            if fault is not None and fault.action == "cut_body":
                head, _, body = answer.partition(b"\r\n\r\n")
                writer.write(head + b"\r\n\r\n" + body[: len(body) // 2])
                await writer.drain()
                return
            writer.write(answer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Request(method, path, headers, body)

    async def _forward(self, request: Request) -> bytes:
        reader, writer = await asyncio.open_connection(self._host, self._port)
        try:
            skip = {"expect", "connection", "keep-alive"}
            lines = [f"{request.method} {request.path} HTTP/1.1"]
            lines += [f"{k}: {v}" for k, v in request.headers.items() if k not in skip]
            lines.append("Connection: close")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body)
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()
