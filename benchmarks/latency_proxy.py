"""A small HTTP/1.1 latency proxy for the remote-store benchmark (B5).

It listens on 127.0.0.1, forwards each request to an upstream HTTP server (moto in
server mode) after holding it for a fixed delay (10 ms by default), and counts what
passes: requests, requests per operation, and sequential *waves*.

A wave is a maximal group of requests whose lifetimes (from the request's arrival at
the proxy to the end of its response) overlap: requests sent concurrently form one
wave; a request sent only after another one's response came back starts a new one.
So the number of waves is the number of round trips a client had to wait for one after
the other, which the added latency multiplies.

Control port (one command per line, one JSON or ``ok`` line back):
``reset`` clears the counters, ``stats`` returns them.

Usage::

    python latency_proxy.py --upstream 127.0.0.1:5000 [--delay-ms 10]

prints ``{"port": ..., "control_port": ...}`` once it listens.
"""

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    """What the proxy saw since the last reset."""

    spans: list[tuple[float, float]] = field(default_factory=list)
    operations: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0

    def record(self, operation: str, start: float, end: float) -> None:
        """Record one finished request."""
        self.spans.append((start, end))
        self.operations[operation] = self.operations.get(operation, 0) + 1

    def summary(self) -> dict[str, Any]:
        """Requests, waves, and the time from the first request to the last response."""
        waves: list[list[float]] = []  # [start, end, requests]
        for start, end in sorted(self.spans):
            if waves and start <= waves[-1][1]:
                waves[-1][1] = max(waves[-1][1], end)
                waves[-1][2] += 1
            else:
                waves.append([start, end, 1])
        edges = sorted([(s, 1) for s, _ in self.spans] + [(e, -1) for _, e in self.spans])
        most = level = 0
        for _, step in edges:
            level += step
            most = max(most, level)
        busy = (max(e for _, e in self.spans) - min(s for s, _ in self.spans)) if self.spans else 0
        return {
            "requests": len(self.spans),
            "waves": len(waves),
            "wave_detail": [
                {"requests": int(n), "ms": round((end - start) * 1000, 1)}
                for start, end, n in waves
            ],
            "max_in_flight": most,
            "span_seconds": busy,
            "in_flight": self.in_flight,
            "operations": dict(sorted(self.operations.items())),
        }


class ProtocolError(Exception):
    """Raised when a peer sends something this proxy does not parse."""


async def read_head(reader: asyncio.StreamReader) -> bytes | None:
    """Read a message head up to the blank line; ``None`` at a clean end of stream."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("connection closed inside a message head") from exc
        return None


def parse_headers(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    """Split a head into its first line and its headers."""
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


def header(headers: list[tuple[str, str]], name: str) -> str | None:
    """The value of header ``name`` (case-insensitive), if present."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


async def read_body(reader: asyncio.StreamReader, headers: list[tuple[str, str]]) -> bytes:
    """Read a message body framed by Content-Length or chunked transfer coding."""
    if (header(headers, "transfer-encoding") or "").lower() == "chunked":
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            parts.append(size_line)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while True:
                    trailer = await reader.readuntil(b"\r\n")
                    parts.append(trailer)
                    if trailer == b"\r\n":
                        return b"".join(parts)
            parts.append(await reader.readexactly(size + 2))
    length = int(header(headers, "content-length") or 0)
    return await reader.readexactly(length) if length else b""


def rebuild_head(first_line: str, headers: list[tuple[str, str]]) -> bytes:
    """A message head from its first line and headers."""
    lines = [first_line, *(f"{k}: {v}" for k, v in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def operation_of(first_line: str, headers: list[tuple[str, str]]) -> str:
    """A short name for the request: DynamoDB's target, or the S3 method and query."""
    target = header(headers, "x-amz-target")
    if target:
        return target.rsplit(".", 1)[-1]
    method, _, rest = first_line.partition(" ")
    path = rest.rsplit(" ", 1)[0]
    query = path.partition("?")[2]
    names = sorted({part.partition("=")[0] for part in query.split("&") if part})
    return f"{method} {'?' + '&'.join(names) if names else ''}".strip()


class Proxy:
    """Forward requests to ``upstream`` after ``delay`` seconds, counting them."""

    def __init__(self, upstream_host: str, upstream_port: int, delay: float) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay = delay
        self.stats = Stats()

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        """Serve one client connection over one upstream connection of its own."""
        up_r, up_w = await asyncio.open_connection(*self.upstream)
        try:
            while await self.forward_one(client_r, client_w, up_r, up_w):
                pass
        except (ProtocolError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (client_w, up_w):
                w.close()

    async def forward_one(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        up_r: asyncio.StreamReader,
        up_w: asyncio.StreamWriter,
    ) -> bool:
        """Forward one request and its response; False once the client is gone."""
        head = await read_head(client_r)
        if head is None:
            return False
        start = time.perf_counter()
        self.stats.in_flight += 1
        try:
            first_line, headers = parse_headers(head)
            if (header(headers, "expect") or "").lower() == "100-continue":
                # Answer the expectation here so the client sends its body at once.
                headers = [(k, v) for k, v in headers if k.lower() != "expect"]
                client_w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await client_w.drain()
            body = await read_body(client_r, headers)
            await asyncio.sleep(self.delay)
            up_w.write(rebuild_head(first_line, headers) + body)
            await up_w.drain()
            method = first_line.split(" ", 1)[0]
            while True:
                resp_head = await read_head(up_r)
                if resp_head is None:
                    raise ProtocolError("upstream closed before answering")
                status_line, resp_headers = parse_headers(resp_head)
                status = int(status_line.split(" ")[1])
                if 100 <= status < 200:
                    continue
                break
            if method == "HEAD" or status in (204, 304):
                resp_body = b""
            else:
                resp_body = await read_body(up_r, resp_headers)
            client_w.write(resp_head + resp_body)
            await client_w.drain()
        finally:
            self.stats.in_flight -= 1
        self.stats.record(operation_of(first_line, headers), start, time.perf_counter())
        return (header(resp_headers, "connection") or "").lower() != "close"

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer ``reset`` and ``stats`` commands."""
        try:
            while line := await reader.readline():
                command = line.decode().strip()
                if command == "reset":
                    self.stats = Stats()
                    writer.write(b"ok\n")
                elif command == "stats":
                    writer.write(json.dumps(self.stats.summary()).encode() + b"\n")
                else:
                    writer.write(b'{"error": "unknown command"}\n')
                await writer.drain()
        finally:
            writer.close()


async def serve(upstream: str, delay_ms: float, port: int, control_port: int) -> None:
    """Listen until cancelled."""
    host, _, up_port = upstream.rpartition(":")
    proxy = Proxy(host, int(up_port), delay_ms / 1000)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", port)
    ctl = await asyncio.start_server(proxy.control, "127.0.0.1", control_port)
    ports = {
        "port": server.sockets[0].getsockname()[1],
        "control_port": ctl.sockets[0].getsockname()[1],
    }
    print(json.dumps(ports), flush=True)
    async with server, ctl:
        await asyncio.gather(server.serve_forever(), ctl.serve_forever())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--upstream", required=True, help="host:port of the HTTP server to front")
    p.add_argument("--delay-ms", type=float, default=10.0)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--control-port", type=int, default=0)
    args = p.parse_args()
    try:
        asyncio.run(serve(args.upstream, args.delay_ms, args.port, args.control_port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
