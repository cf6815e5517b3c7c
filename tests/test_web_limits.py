"""The dashboard under hostile input: unauthenticated floods, oversized, deep and odd bodies,
foreign Host headers. The flood test runs a real uvicorn server in its own process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ttflow_async import Client, RunContext, setup
from ttflow_async.web import create_app

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def make_client(tmp_path: Path) -> Client:
    client = setup(f"local:{tmp_path / 'state.json'}")

    @client.workflow()
    async def hello(c: RunContext, args: Any) -> None:
        await c.log(f"hello {args}")

    return client


async def post(app: Any, path: str, *, host: str = "127.0.0.1", **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as http:
        return await http.post(path, **kwargs)


async def history(client: Client) -> list[str]:
    return [h.workflow_name for h in await client.run_history()]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "content",
    [
        b'{"name": "hello", "args": ' + nested(5000).encode() + b"}",
        b'{"name": "hello", "args": ' + nested(300).encode() + b"}",
        b'{"name": "hel\\ud800lo", "args": 1}',
        b'{"name": "hello", "args": {"k": "\\udc00"}}',
        b'{"name": "hello", "args": "\xff"}',
    ],
    ids=["deep-5000", "deep-300", "surrogate-name", "surrogate-args", "not-utf8"],
)
async def test_bad_bodies_with_a_valid_token_get_400(tmp_path: Path, content: bytes) -> None:
    client = make_client(tmp_path)
    app = create_app(client, token=TOKEN)
    headers = {**AUTH, "Content-Type": "application/json"}
    response = await post(app, "/api/trigger", content=content, headers=headers)
    assert response.status_code in (400, 422)
    assert isinstance(response.json()["detail"], str | list)
    assert await history(client) == []


@pytest.mark.parametrize("name", ["state_changed_door", "workflows_changed", "_every"])
async def test_engine_event_names_are_refused(tmp_path: Path, name: str) -> None:
    client = make_client(tmp_path)
    app = create_app(client, token=TOKEN)
    for path in ("/api/events", "/api/trigger"):
        response = await post(app, path, json={"name": name, "args": 1}, headers=AUTH)
        assert response.status_code == 400
        assert "reserved for the engine" in response.json()["detail"]


async def test_a_body_over_the_cap_gets_413_before_it_is_read(tmp_path: Path) -> None:
    client = make_client(tmp_path)
    app = create_app(client, token=TOKEN, max_body=1000)
    big = json.dumps({"name": "hello", "args": "x" * 2000}).encode()
    declared = await post(app, "/api/trigger", content=big, headers=AUTH)
    assert declared.status_code == 413

    async def chunks() -> Any:
        for start in range(0, len(big), 100):
            yield big[start : start + 100]

    streamed = await post(app, "/api/trigger", content=chunks(), headers=AUTH)
    assert streamed.status_code == 413
    assert await history(client) == []
    fits = await post(app, "/api/trigger", json={"name": "hello", "args": 1}, headers=AUTH)
    assert fits.status_code == 200


async def test_create_app_answers_only_loopback_hosts_by_default(tmp_path: Path) -> None:
    client = make_client(tmp_path)
    transport = httpx.ASGITransport(app=create_app(client))
    async with httpx.AsyncClient(transport=transport, base_url="http://evil.example") as http:
        assert (await http.get("/api/status")).status_code == 400
    for host in ("localhost:8000", "127.0.0.1", "[::1]:8000"):
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as http:
            assert (await http.get("/api/status")).status_code == 200
    anyone = httpx.ASGITransport(app=create_app(client, allowed_hosts=None))
    async with httpx.AsyncClient(transport=anyone, base_url="http://evil.example") as http:
        assert (await http.get("/api/status")).status_code == 200


# -- a real server, a 50 MB unauthenticated body -----------------------------------------

SERVER = textwrap.dedent(
    """
    import sys
    import uvicorn
    from ttflow_async import setup
    from ttflow_async.web import create_app

    client = setup(sys.argv[1])
    app = create_app(client, token="s3cret-token")
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    """
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, f"local:{tmp_path / 'state.json'}", str(port)]
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/status", trust_env=False).is_success:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield process, port
    finally:
        process.terminate()
        process.wait(timeout=30)


def flood(port: int, headers: dict[str, str], size: int) -> tuple[int, float]:
    """POST ``size`` bytes; return the status and how long the answer took."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST /api/trigger HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n{head}\r\n"
    )
    started = time.monotonic()
    sock.sendall(request.encode())

    def send_body() -> None:
        chunk = b"x" * (1 << 20)
        try:
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
        except OSError:
            pass  # the server answered and closed: the rest is never read

    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    sock.settimeout(30)
    answer = sock.recv(65536)
    elapsed = time.monotonic() - started
    sender.join(timeout=60)
    sock.close()
    status = int(answer.split(b" ", 2)[1])
    return status, elapsed


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 401), (AUTH, 413)],
    ids=["no-token", "wrong-token", "valid-token-too-big"],
)
def test_a_50_mb_body_is_refused_fast_without_growing_the_server(
    server: tuple[subprocess.Popen[bytes], int], headers: dict[str, str], expected: int
) -> None:
    process, port = server
    before = peak_rss_kb(process.pid)
    status, elapsed = flood(port, headers, 50 * (1 << 20))
    grown_mb = (peak_rss_kb(process.pid) - before) / 1024
    assert status == expected
    assert elapsed < 2.0
    assert grown_mb < 20, f"the server grew by {grown_mb:.1f} MB"
    assert process.poll() is None


async def test_cancel_from_the_dashboard_and_cancelled_runs_in_the_history(
    tmp_path: Path,
) -> None:
    client = make_client(tmp_path)

    @client.workflow()
    async def waiter(c: RunContext) -> None:
        await c.wait_event("go")

    async with client:
        (started,) = await client.run("waiter")
    app = create_app(client, token=TOKEN)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        refused = await http.post(f"/api/runs/{started.run_id}/cancel")
        assert refused.status_code == 401
        done = await http.post(f"/api/runs/{started.run_id}/cancel", headers=AUTH)
        assert done.status_code == 200
        assert done.json() == {"run_id": started.run_id}
        again = await http.post(f"/api/runs/{started.run_id}/cancel", headers=AUTH)
        assert again.status_code == 404
        listed = await http.get("/api/runs/history")
    assert listed.status_code == 200  # "cancelled" is a status the history model knows
    (entry,) = listed.json()
    assert entry["status"] == "cancelled"
    assert entry["error_message"]


async def test_callbacks_are_answered_from_the_dashboard(tmp_path: Path) -> None:
    client = make_client(tmp_path)

    @client.workflow()
    async def shipping(c: RunContext) -> Any:
        cb = await c.create_callback(name="delivered")
        await c.set_state("callback_id", cb.id)
        return await cb.result()

    async with client:
        await client.run("shipping")
        first = await client.get_state("callback_id")
    transport = httpx.ASGITransport(app=create_app(client, token=TOKEN))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        url = f"/api/callbacks/{first}/complete"
        assert (await http.post(url, json={"result": 1})).status_code == 401
        done = await http.post(url, json={"result": {"at": 9}}, headers=AUTH)
        assert done.status_code == 200
        (result,) = done.json()["results"]
        assert (result["status"], result["result"]) == ("succeeded", {"at": 9})
        missing = await http.post("/api/callbacks/nope/fail", json={"error": "x"}, headers=AUTH)
        assert missing.status_code == 404
