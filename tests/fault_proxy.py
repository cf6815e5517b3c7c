"""A small HTTP proxy on 127.0.0.1 that breaks chosen requests on their way to moto.

Each client connection carries one request, forwarded to the upstream server on a
connection of its own. A :class:`Fault` picks requests by a predicate and breaks them:

- ``"error_500"``: answer ``500 Internal Server Error`` without forwarding;
- ``"drop_answer"``: forward (the upstream applies it), then close without answering,
  as when a connection dies after the service did the work;
- ``"cut_body"``: forward, then send the headers and half the body and close;
- ``"strip_conditions"``: forward without ``If-Match`` / ``If-None-Match``, as a server
  that ignores conditional writes would treat them;
- ``"strip_item"``: forward, then remove ``Item`` from a DynamoDB answer (as servers
  that ignore ``ReturnValuesOnConditionCheckFailure`` answer), its checksum redone;
- ``"delay"``: forward (the upstream applies it), then wait ``Fault.delay`` seconds
  before answering (a slow server).
"""

from __future__ import annotations

import asyncio
import json
import zlib
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
    action: Literal[
        "error_500", "drop_answer", "cut_body", "strip_conditions", "strip_item", "delay"
    ]
    times: int = 1
    delay: float = 0.0
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
            if fault is not None and fault.action == "strip_conditions":
                _strip_conditions(request)
            answer = await self._forward(request)
            if fault is not None and fault.action == "delay":
                await asyncio.sleep(fault.delay)
            if fault is not None and fault.action == "strip_item":
                answer = _without_item(answer)
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


def _without_item(answer: bytes) -> bytes:
    """A DynamoDB answer without its ``Item`` (length and CRC32 header redone)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {line.partition(":")[0].strip().lower() for line in lines[1:]}
    if "transfer-encoding" in headers:
        body = _dechunked(body)
    try:
        document = json.loads(body)
    except ValueError:
        return answer
    if not isinstance(document, dict) or "Item" not in document:
        return answer
    del document["Item"]
    body = json.dumps(document).encode()
    kept = [
        line
        for line in lines[1:]
        if line.partition(":")[0].strip().lower()
        not in {"content-length", "x-amz-crc32", "transfer-encoding"}
    ]
    kept += [f"Content-Length: {len(body)}", f"x-amz-crc32: {zlib.crc32(body)}"]
    return ("\r\n".join([lines[0], *kept]) + "\r\n\r\n").encode("latin-1") + body


def _dechunked(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


def _strip_conditions(request: Request) -> None:
    """Drop ``If-Match`` / ``If-None-Match`` and sign the request again without them.

    The test credentials are the emulator's dummy ones (``testing``), so the proxy can
    produce the signature a client that never sent the headers would have.
    """
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    for name in ("if-match", "if-none-match", "authorization", "x-amz-date"):
        request.headers.pop(name, None)
    host = request.headers.get("host", "127.0.0.1")
    unsigned = AWSRequest(
        method=request.method,
        url=f"http://{host}{request.path}",
        headers=dict(request.headers),
        data=request.body,
    )
    S3SigV4Auth(Credentials("testing", "testing"), "s3", "us-east-1").add_auth(unsigned)
    request.headers.update({k.lower(): str(v) for k, v in unsigned.headers.items()})
